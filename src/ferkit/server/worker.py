"""An analysis worker process of the web server: decode + detect + classify + face features, one job at a time.

The server's event loop only speaks HTTP and WebSocket; every upload and live frame is analysed in one of these
processes (server.pool.AnalysisPool starts them, one per core by default). A worker loads its own Recognizer once,
then for each job reads the encoded image from its stdin and writes back only the result, as JSON: the pixels never
travel between processes and no decoder or network runs under the event loop's GIL.

Limits, as ferkit.safe_decode's decoder processes have them, for the whole job:
- memory: the address space is capped (RLIMIT_AS) at what the worker had after loading and warming its models plus
  `memory_bytes`; an allocation past it fails in the worker (MemoryError), which answers and exits;
- CPU: a user-time timer for decoding (`decode_cpu_seconds`, ITIMER_VIRTUAL: SIGVTALRM; system time there is page
  faults, bounded by the memory cap and erratic on a VM) and a user + system timer for the analysis
  (`analysis_cpu_seconds`, ITIMER_PROF: SIGPROF, so the parent tells the phase from the signal); past either the
  kernel ends the worker, and the pool starts a fresh one;
- growth: after a large job (an upload over TRIM_UPLOAD_BYTES or an image over TRIM_PIXELS, refused or not) or one
  that left the worker TRIM_GROWTH_BYTES over its warm size, its freed heap is handed back to the OS (malloc_trim);
  a worker still RETIRE_GROWTH_BYTES over its warm size then answers, exits and is replaced.
- faces: at most `max_faces` per image or frame, the largest; the answer says how many were left out.

Live frames carry a session id: the worker keeps one FaceTracker per session (a session always goes to the same
worker), dropped when the parent says the session ended or after TRACKER_IDLE_SECONDS without a frame.

Protocol on stdin/stdout, integers big-endian:
    request:  u32 header length, u64 data length, header (JSON: op, name, ...), data (the encoded image)
    answer:   u8 status, u8 retiring, u32 payload length, payload (JSON, UTF-8)
              status READY (once, after loading: the model's description), OK (the result), REFUSED ({"status":
              413|415|422, "detail"}), FAILED (a bug: {"detail": the traceback, for the server's log}), NO_MEMORY
              ({"phase": "decode" | "analysis"})
"""
from __future__ import annotations

import json
import os
import struct
import sys
import time
import traceback

import numpy as np

READY, OK, REFUSED, FAILED, NO_MEMORY = range(5)
REQUEST = struct.Struct(">IQ")
ANSWER = struct.Struct(">BBI")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
TRIM_GROWTH_BYTES = 64_000_000     # resident growth after a job past which freed heap memory goes back to the OS
TRIM_UPLOAD_BYTES = 1_000_000      # uploads and images past which it goes back after the job whatever the growth:
TRIM_PIXELS = 4_000_000            # glibc keeps up to 64 MB free atop its heap once it has freed buffers of up to
                                   # 32 MB (its dynamic thresholds), +13-38 MB a worker over the cost campaign; the
                                   # trim costs 0.5-6 ms, such a job tens to hundreds of ms; small photos and
                                   # live frames never pay it
RETIRE_GROWTH_BYTES = 200_000_000  # resident growth over the warm size (after that) past which a worker is replaced
TRACKER_IDLE_SECONDS = 900         # a live session's tracker without a frame this long is dropped (backstop: the
                                   # parent says when a session ends)
NO_FACE = ("No face found. Try a brighter, sharper photo where the face is at least about a thirtieth of the "
           "photo's longer side (20 pixels in a 640-pixel photo, 40 in a 1280-pixel one).")


class LargestFaces:
    """A detector that keeps the `max_faces` largest faces another detector finds. `left_out`: how many its last
    call dropped. Everything else (name, needs_color, long_side ...) is the wrapped detector's."""

    def __init__(self, detector, max_faces: int):
        self._detector, self.max_faces, self.left_out = detector, max_faces, 0

    def __getattr__(self, name):
        return getattr(self._detector, name)

    def detect_faces(self, image, **kwargs):
        from ..detect import find_faces

        inner = self._detector
        d = inner.detect_faces(image, **kwargs) if hasattr(inner, "detect_faces") else find_faces(inner, image)
        d, self.left_out = largest(d, self.max_faces)
        return d

    def detect(self, image):
        d = self.detect_faces(image)
        return d.boxes, d.scores


def largest(d, max_faces: int):
    """(Detections of at most `max_faces` faces, the largest by box area, left to right; how many were dropped)."""
    from ..detect import Detections

    n = len(d)
    if n <= max_faces:
        return d, 0
    area = d.boxes[:, 2].astype(np.int64) * d.boxes[:, 3]
    keep = np.sort(np.argsort(-area, kind="stable")[:max_faces])  # sorted indices: the left-to-right order stays
    return Detections(d.boxes[keep], d.scores[keep], None if d.landmarks is None else d.landmarks[keep],
                      tuple(d.sources[i] for i in keep)), n - max_faces


class _Worker:
    def __init__(self, config: dict):
        import cv2

        from ..detect import create_detector
        from ..recognizer import load_recognizer

        cv2.setNumThreads(1)  # one core a worker: the pool has one worker per core
        self.config = config
        self.rec = load_recognizer(config["model"], config["detector"], threads=config["threads"],
                                   detect_side=config["detect_side"], adapter=config["adapter"],
                                   features=config["features"] or None)
        live = config["live_detector"]
        self.live_detector = self.rec.detector if live == config["detector"] else \
            create_detector(live, threads=config["threads"])
        self.max_faces = config["max_faces"]
        # uploads go through the Recognizer's own analyze (one grey conversion for detector and classifier, as the
        # library does), with its detector capped at max_faces
        self.rec.detector = self.uploads_detector = LargestFaces(self.rec.detector, self.max_faces)
        self.trackers: dict[str, tuple[object, LargestFaces, float]] = {}

    def describe(self) -> dict:
        rec = self.rec
        return {"name": rec.name, "labels": list(rec.labels), "file": rec.model_path.name,
                "version": str(rec.metadata.get("ferkit_version", "unknown")), "note": rec.metadata.get("note"),
                "metrics": rec.metrics, "detector": rec.detector.name, "features": list(rec.features)}

    def warm_up(self) -> None:
        """Run every stage once (the example photo ships with the page), so arenas and code are warm before the
        address-space limit is set and before the first job's CPU timer runs."""
        from pathlib import Path

        from .. import images

        example = Path(__file__).parent / "static" / "examples" / "astronaut.jpg"
        image = images.decode_image(example.read_bytes(), "warm-up") if example.is_file() else \
            np.full((480, 640, 3), 128, np.uint8)
        self.analyze(image, explain=False)
        self.frame(image, "warm-up", 1)
        self.trackers.clear()

    def analyze(self, image: np.ndarray, explain: bool) -> dict:
        from ..explain import cam_to_data_url

        faces = self.rec.analyze(image, explain=explain)
        results = []
        for face in faces:
            f = face.to_dict()
            f["heatmap"] = cam_to_data_url(face.cam) if explain else None
            results.append(f)
        h, w = image.shape[:2]
        return {"image": {"width": w, "height": h}, "faces": results, "faces_left_out": self.uploads_detector.left_out,
                "message": None if faces else NO_FACE}

    def frame(self, image: np.ndarray, session: str, frame: int) -> dict:
        from ..track import FaceTracker

        now = time.monotonic()
        for sid, (_, _, used) in list(self.trackers.items()):
            if now - used > TRACKER_IDLE_SECONDS:
                del self.trackers[sid]
        entry = self.trackers.get(session)
        if entry is None:
            capped = LargestFaces(self.live_detector, self.max_faces)
            tracker = FaceTracker(self.rec, detector=capped, detect_every=self.config["live_detect_every"],
                                  detect_side=self.config["live_detect_side"])
        else:
            tracker, capped, _ = entry
        faces = tracker.process(image)
        self.trackers[session] = (tracker, capped, now)
        h, w = image.shape[:2]
        return {"type": "result", "frame": frame, "image": {"width": w, "height": h},
                "faces": [f.to_dict() for f in faces], "faces_left_out": capped.left_out}


def resident_bytes() -> int:
    """This process's resident memory, from /proc/self/statm (a fifth of the cost of /proc/self/status); 0 where
    there is no /proc."""
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * PAGE_BYTES
    except OSError:
        return 0


def _main(config: dict) -> None:
    import logging
    import warnings

    warnings.simplefilter("ignore")  # what Pillow or ONNX Runtime say about a client's file is not the log's business
    logging.disable(logging.CRITICAL)
    from .. import images
    # glibc's own allocation thresholds stay: serving every large buffer with its own mmap (as the event loop's
    # process does, for upload bodies) made each frame's images and tensors fault their pages in afresh, +3 ms a
    # photo; a worker that grew is replaced instead (RETIRE_GROWTH_BYTES)
    from ..safe_decode import cpu_timer, give_back_freed_memory, read_exact, status_kb, write_all

    try:  # behind the event loop when the CPU is short: it answers /healthz and hands out work first
        os.nice(5)
    except OSError:
        pass
    stdin = open(0, "rb", buffering=0, closefd=False)
    stdout = open(os.dup(1), "wb", buffering=0)  # the answers' own copy; fd 1 goes to /dev/null (below)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)

    def answer(status: int, payload: dict | None = None, retiring: bool = False) -> None:
        body = b"" if payload is None else json.dumps(payload, separators=(",", ":")).encode()
        write_all(stdout, ANSWER.pack(status, retiring, len(body)) + body)

    try:
        worker = _Worker(config)
        worker.warm_up()
    except Exception:  # noqa: BLE001  (reported to the parent, which stops the server with it)
        answer(FAILED, {"detail": traceback.format_exc(limit=8)})
        return
    base_rss = resident_bytes()
    try:
        import resource

        address_space = status_kb("VmSize") * 1024 + config["memory_bytes"]
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    except (ImportError, ValueError, OSError):  # not POSIX: the CPU timers and the parent's wall time remain
        pass
    answer(READY, worker.describe())
    while True:
        head = read_exact(stdin, REQUEST.size)
        if head is None:
            return  # the server closed the pipe (or died)
        header_len, data_len = REQUEST.unpack(head)
        header = json.loads(bytes(read_exact(stdin, header_len) or b"{}"))
        data = read_exact(stdin, data_len, into=bytearray(data_len))
        if data is None:
            return
        for sid in header.get("ended", ()):
            worker.trackers.pop(sid, None)
        t0 = time.perf_counter()
        # user time only (SIGVTALRM ends this process): a bomb burns user time, while the system time of faulting in
        # a large photo's pixels varied 0.05-1.3 s on a VM (safe_decode's docstring)
        cpu_timer(config["decode_cpu_seconds"], user_only=True)
        refusal = None
        try:
            image = images.decode_image(data, header["name"], header["max_pixels"])
        except images.ImageTooLargeError as e:
            refusal = {"status": 413, "detail": str(e)}
        except images.UnsupportedImageFormatError as e:
            refusal = {"status": 415, "detail": str(e)}
        except images.UnreadableImageError as e:
            refusal = {"status": 422, "detail": str(e)}
        except MemoryError:
            cpu_timer(0, user_only=True)
            answer(NO_MEMORY, {"phase": "decode"}, retiring=True)
            return
        finally:
            cpu_timer(0, user_only=True)
        del data
        if refusal is not None:
            if data_len > TRIM_UPLOAD_BYTES:
                give_back_freed_memory()
            answer(REFUSED, refusal)
            continue
        large = data_len > TRIM_UPLOAD_BYTES or image.shape[0] * image.shape[1] > TRIM_PIXELS
        cpu_timer(config["analysis_cpu_seconds"])  # user + system time (SIGPROF): the other signal names this phase
        try:
            if header["op"] == "frame":
                result = worker.frame(image, header["session"], header["frame"])
            else:
                result = worker.analyze(image, bool(header.get("explain")))
            status = OK
        except MemoryError:
            cpu_timer(0)
            answer(NO_MEMORY, {"phase": "analysis"}, retiring=True)
            return
        except Exception:  # noqa: BLE001  (a bug: the parent logs it and answers the client in words)
            result, status = {"detail": traceback.format_exc(limit=8)}, FAILED
        finally:
            cpu_timer(0)
        del image
        result["elapsed_ms"] = round((time.perf_counter() - t0) * 1000, 2)
        rss = resident_bytes()
        if large or rss > base_rss + TRIM_GROWTH_BYTES:  # hand the freed heap back
            give_back_freed_memory()
            rss = resident_bytes()
        retiring = rss > base_rss + RETIRE_GROWTH_BYTES
        answer(status, result, retiring)
        if retiring:
            return


if __name__ == "__main__":
    _main(json.loads(sys.argv[1]))
