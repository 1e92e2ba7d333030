"""ferkit.frames, the one frame source of video, live and batch: frames chosen every n-th or per second and within
a range; a damaged frame skipped (told as met), a damaged tail reported as an early end, a file that gives nothing
refused; the same rules whoever reads. Real Motion-JPEG files (every frame its own JPEG: damage stays in a frame)."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
from tests._videos import jpeg_starts

from ferkit.frames import (MAX_FAILED_READS, FrameReader, VideoError, every_nth, frame_range, is_sampled, open_video,
                           per_second, seek)

N = 40
FPS = 10.0


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    """40 frames at 10 fps, frame i's mean grey level 20 + 5 * i (read back within a few levels); noise makes each
    JPEG a few kilobytes, so wiping the start of one leaves the next whole."""
    path = tmp_path_factory.mktemp("frames") / "grey.avi"
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), FPS, (160, 120))
    noise = np.random.default_rng(0).integers(-10, 11, (120, 160, 3))
    for i in range(N):
        writer.write((20 + 5 * i + noise).astype(np.uint8))
    writer.release()
    return path


def _damaged(clip, tmp_path, frames, name="damaged.avi"):
    data = bytearray(clip.read_bytes())
    starts = jpeg_starts(bytes(data))
    assert len(starts) == N and min(np.diff(starts)) > 1000
    for i in frames:
        data[starts[i]:starts[i] + 300] = bytes(300)
    (tmp_path / name).write_bytes(bytes(data))
    return tmp_path / name


def _read(path, **options):
    cap, info = open_video(path)
    seek(cap, options.get("start", 0))
    reader = FrameReader(cap, info, **options)
    try:
        frames = list(reader)
    finally:
        cap.release()
    return reader, frames


def test_every_frame_in_order_with_its_own_picture(clip):
    reader, frames = _read(clip)
    assert [f.index for f in frames] == list(range(N)) and all(f.chosen for f in frames)
    assert all(abs(float(f.image.mean()) - 20 - 5 * f.index) < 3 for f in frames)
    assert reader.frames_read == N and reader.skipped == [] and reader.truncated_at is None and reader.problems == []


def test_every_nth_and_per_second_choose_by_index(clip):
    _, frames = _read(clip, choose=every_nth(3))
    assert [f.index for f in frames] == list(range(0, N, 3))
    _, frames = _read(clip, choose=per_second(FPS, 2.5))
    assert [f.index for f in frames] == list(range(0, N, 4))
    _, frames = _read(clip, choose=every_nth(3), decode_all=True)  # an annotated copy needs every frame
    assert [f.index for f in frames] == list(range(N)) and [f.index for f in frames if f.chosen] == list(range(0, N, 3))
    assert is_sampled(7, 30.0, 100.0) and not is_sampled(1, 30.0, 5.0) and is_sampled(6, 30.0, 5.0)
    with pytest.raises(ValueError, match="every must be >= 1"):
        every_nth(0)


def test_a_range_of_frames_and_of_seconds(clip):
    _, frames = _read(clip, start=10, stop=20)
    assert [f.index for f in frames] == list(range(10, 20))
    assert abs(float(frames[0].image.mean()) - 70) < 3  # the seek landed on frame 10
    cap, info = open_video(clip)
    cap.release()
    assert frame_range(info, 1.0, 2.05) == (10, 21) and frame_range(info) == (0, None)
    with pytest.raises(ValueError, match="must come after its start"):
        frame_range(info, 2, 1)
    with pytest.raises(ValueError, match="after its end"):
        frame_range(info, 10)


def test_a_damaged_frame_is_skipped_and_told_as_met(clip, tmp_path):
    told = []
    reader, frames = _read(_damaged(clip, tmp_path, [12]), on_problem=told.append)
    assert [f.index for f in frames if f.image is not None] == [i for i in range(N) if i != 12]
    assert [f.index for f in frames if f.image is None] == [12]  # chosen and damaged: the reader's caller says so
    assert told == ["frame 12: could not be decoded, skipped"] == reader.problems
    assert reader.skipped == [12] and reader.truncated_at is None and reader.frames_read == N - 1


def test_a_damaged_frame_not_chosen_is_said_but_gives_no_row(clip, tmp_path):
    """FFmpeg decodes a frame to step over it, so damage is met (and said) whether the frame is chosen or not; only
    a chosen one comes out, as a frame without a picture, for its caller's error row."""
    reader, frames = _read(_damaged(clip, tmp_path, [13]), choose=every_nth(2))
    assert [f.index for f in frames] == list(range(0, N, 2)) and all(f.image is not None for f in frames)
    assert reader.skipped == [13]


def test_a_damaged_tail_is_an_early_end(clip, tmp_path):
    told = []
    reader, frames = _read(_damaged(clip, tmp_path, range(8, N)), on_problem=told.append)
    assert [f.index for f in frames] == list(range(8)) and reader.truncated_at == 8
    assert len(told) == 1 and "video ends at frame 8 of the 40 it announces (truncated or damaged)" in told[0]
    assert N - 8 > MAX_FAILED_READS


def test_damage_in_the_last_frames_is_the_end_not_a_truncation(clip, tmp_path):
    reader, frames = _read(_damaged(clip, tmp_path, [N - 2, N - 1]))
    assert [f.index for f in frames] == list(range(N - 2)) and reader.truncated_at is None and reader.problems == []


def test_a_file_that_gives_no_frame_is_refused(clip, tmp_path):
    path = _damaged(clip, tmp_path, range(N), "ruined.avi")
    with pytest.raises(VideoError, match="ruined.avi: no frame could be decoded"):
        _read(path)


def test_failures_over_a_ranges_end_are_read_past_it_to_tell_skipped_from_truncated(clip, tmp_path):
    """`ferkit batch` reads a video in ranges: damage that runs over a range's end is judged as a whole reader
    would judge it: frames skipped when a good frame follows, an early end when none does; the next range, starting
    in the damage, is an early end at its start."""
    reader, frames = _read(_damaged(clip, tmp_path, [19, 20, 21]), start=10, stop=20)
    assert [f.index for f in frames if f.image is None] == [19] and reader.skipped == [19]
    assert reader.truncated_at is None and reader.frames_read == 9
    cut = _damaged(clip, tmp_path, range(18, N), "cut.avi")
    reader, frames = _read(cut, start=10, stop=20)
    assert [f.index for f in frames] == list(range(10, 18)) and reader.truncated_at == 18 and reader.skipped == []
    reader, frames = _read(cut, start=20, stop=30)
    assert frames == [] and reader.truncated_at == 20 and "ends at frame 20" in reader.problems[0]


def test_frames_read_by_hand_count(clip, tmp_path):
    """How `ferkit live` reads a file: frame 0 read by hand, the rest by the reader from index 1."""
    cap, info = open_video(_damaged(clip, tmp_path, [12]))
    assert cap.read()[0]
    reader = FrameReader(cap, info, start=1, frames_read=1)
    indices = [f.index for f in reader if f.image is not None]
    cap.release()
    assert indices == [i for i in range(1, N) if i != 12] and reader.frames_read == N - 1
