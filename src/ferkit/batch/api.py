"""run(): inputs -> tasks -> an engine -> parts -> OUT, resumably; iter_rows(): the same rows, without files."""
from __future__ import annotations

import dataclasses
import os
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

from ..mesh import parse_features
from ..records import mesh_named, output_format, run_meta, write_meta
from .inputs import BATCH_SIZE, DEFAULT_FPS, SEGMENT_SAMPLES, expand_inputs, plan
from .ledger import Ledger, Todo
from .output import (OutputLock, Parts, check_finished, check_output, settings_path, stream_rows, write_rows,
                     write_settings)
from .work import RecognizerSpec, effective_detect_side

ENGINES = ("local", "ray")


@dataclass
class Summary:
    """What a run left in its output. `inputs`: per status, an input (image or video) counting as "ok" when it has a
    face, "error" when nothing of it could be analysed, else "no_face"; `errors`: error rows (a video may have some
    and still be "ok"); `tasks_done`: tasks analysed by this run, `tasks_skipped`: found done already."""
    out: str | None
    inputs: dict[str, int] = field(default_factory=dict)
    rows: int = 0
    faces: int = 0
    emotions: dict[str, int] = field(default_factory=dict)
    errors: int = 0
    first_errors: list[str] = field(default_factory=list)
    tasks_done: int = 0
    tasks_skipped: int = 0
    units: int = 0            # images and video frames analysed by this run
    seconds: float = 0.0

    def format(self) -> str:
        by = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sorted(self.inputs.items()))
        emo = ", ".join(f"{k} {n}" for k, n in sorted(self.emotions.items(), key=lambda kv: -kv[1])) or "none"
        rate = f" ({self.units / self.seconds:.1f} images+frames/s)" if self.seconds > 0 and self.units else ""
        lines = [f"inputs: {sum(self.inputs.values())} ({by or 'none'})",
                 f"faces: {self.faces} ({emo})",
                 f"this run: {self.tasks_done} tasks, {self.units} images+frames in {self.seconds:.1f} s{rate}"
                 + (f"; {self.tasks_skipped} tasks already done" if self.tasks_skipped else "")]
        if self.errors:
            lines.append(f"errors: {self.errors} rows; first: " + " | ".join(self.first_errors))
        if self.out:
            lines.append(f"wrote {self.rows} rows to {self.out}")
        return "\n".join(lines)


_STATUS_BITS = {"ok": 1, "no_face": 2, "error": 4}


def _counted(rows, s: Summary):
    """The rows, passed through, counted into `s` (filled in once they are all through). An input's rows come
    together (Ledger.combined), so its status is known when the next input's first row comes: no per-input memory."""
    inputs: Counter = Counter()
    emotions: Counter = Counter()
    source, bits = None, 0
    for r in rows:
        s.rows += 1
        if r["source"] != source:
            if source is not None:
                inputs[_input_status(bits)] += 1
            source, bits = r["source"], 0
        bits |= _STATUS_BITS.get(r["status"], 0)
        if r["status"] == "ok":
            s.faces += 1
            emotions[r["emotion"]] += 1
        elif r["status"] == "error":
            s.errors += 1
            if len(s.first_errors) < 3:
                s.first_errors.append(r["message"])
        yield r
    if source is not None:
        inputs[_input_status(bits)] += 1
    s.emotions = dict(emotions)
    s.inputs = dict(inputs)


def _input_status(bits: int) -> str:
    return "ok" if bits & 1 else "no_face" if bits & 2 else "error"


def _engine(name: str, todo: Todo, spec: RecognizerSpec, fps: float, workers, address, describe,
            node_timeout: float | None = None):
    if name == "local":
        if address:
            raise ValueError("--address is for the ray engine")
        if node_timeout is not None:
            raise ValueError("--node-timeout is for the ray engine")
        from .local import local_engine

        return local_engine(todo, spec, fps, workers, describe)
    if name == "ray":
        from .ray_engine import import_ray, ray_engine

        if node_timeout is not None and not node_timeout > 0:
            raise ValueError(f"--node-timeout must be > 0 seconds, got {node_timeout:g}")

        import_ray()  # the install hint before any work
        return ray_engine(todo, spec, fps, workers, address, describe,
                          **({} if node_timeout is None else {"node_timeout": node_timeout}))
    raise ValueError(f"unknown engine {name!r}; valid: {', '.join(ENGINES)}")


def _progress(total: int, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, unit="img", desc="ferkit batch", file=sys.stderr, disable=not enabled,
                dynamic_ncols=True, smoothing=0.1)


def run_settings(spec: RecognizerSpec, describe, fps: float, batch_size: int, segment_samples: int) -> dict:
    """What the rows depend on: every field of the spec (so a field added to RecognizerSpec is recorded too), with
    detect_side as the detector uses it (640 given or left out are one setting), the model, labels and detector it
    resolves to, and the run's options. Recorded with the parts and with OUT."""
    name, labels, detector = describe[:3]
    return {**dataclasses.asdict(spec), "detect_side": effective_detect_side(detector, spec.detect_side),
            "model": name, "labels": list(labels), "detector": detector, "fps": fps,
            "batch_size": batch_size, "segment_samples": segment_samples}


def run(inputs, out: str | os.PathLike, *, engine: str = "local", workers: int | None = None,
        address: str | None = None, model: str | None = None, detector: str | None = None,
        provider: str | None = None, fps: float = DEFAULT_FPS, glob: str | None = None, column: str | None = None,
        batch_size: int = BATCH_SIZE, segment_samples: int = SEGMENT_SAMPLES, progress: bool = False,
        detect_side: int | None = None, adapter: str | None = None, features=None, mesh: bool | None = None,
        overwrite: bool = False, retry_errors: bool = False, node_timeout: float | None = None) -> Summary:
    """Analyse images, videos, folders and manifests into one results file, resumably.

    `inputs`: paths (image or video files, folders walked recursively and filtered by `glob`, .txt/.csv manifests
    whose `column` holds the paths). `out`: a .parquet, .csv or .jsonl file in an existing folder: one row per face,
    and one per image or analysed video frame with no face or an error (docs/batch.md has the columns). `engine`:
    "local" (a pool of `workers` processes, default one per core) or "ray" (a pool of `workers` actors on the Ray
    cluster at `address`). `model`, `detector`, `provider`: as load_recognizer's (None: its defaults);
    `detect_side`: yunet's working size (None: 640; 1280 finds the small faces of large photos at about 5x the
    detector's time); `adapter`: a head from `ferkit adapt`; `features`: face features whose columns join
    every row (load_recognizer's features); `mesh`: the mesh's column (None: when `mesh` is named in `features`, not
    with "all": 1,434 numbers a face are asked for, never a default). Videos
    are sampled at `fps`. OUT.meta.json beside OUT records the run's metadata (ferkit.records.read_meta).
    Rerunning after an interruption skips the tasks already done (kept in OUT.parts/ until OUT is written) and the
    inputs already in OUT; OUT remembers its settings (OUT.settings.json) and a rerun with others raises
    SettingsChangedError, unless `overwrite` (everything analysed again). `retry_errors`: the inputs with error
    rows in OUT are analysed again. `node_timeout` (ray): seconds with no actor able to run (its nodes lost, no room
    elsewhere) before the run stops with ClusterError (None: 120). `progress`: a bar on stderr. Returns the Summary
    of the whole output.
    Raises OutputError (OUT cannot be written, or another run holds it), ClusterError (Ray), ValueError (settings).
    """
    t0 = time.monotonic()
    if workers is not None and workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    out = Path(out)
    output_format(out)
    check_output(out)
    spec = RecognizerSpec(model, detector, provider, detect_side=detect_side, adapter=adapter,
                          features=parse_features(features),
                          mesh_column=mesh_named(features) if mesh is None else mesh)
    describe = spec.describe()
    settings = run_settings(spec, describe, fps, batch_size, segment_samples)
    lock = OutputLock(out)
    lock.acquire()
    try:
        return _run_locked(inputs, out, spec, describe, settings, engine=engine, workers=workers, address=address,
                           fps=fps, glob=glob, column=column, batch_size=batch_size, segment_samples=segment_samples,
                           progress=progress, overwrite=overwrite, retry_errors=retry_errors, t0=t0,
                           node_timeout=node_timeout)
    finally:
        lock.release()


def _run_locked(inputs, out: Path, spec, describe, settings, *, engine, workers, address, fps, glob, column,
                batch_size, segment_samples, progress, overwrite, retry_errors, t0, node_timeout) -> Summary:
    cols = spec.schema(describe).columns
    parts = Parts(out, settings)
    if overwrite:
        parts.remove()
        settings_path(out).unlink(missing_ok=True)
    else:
        check_finished(out, settings)
    with Ledger() as ledger:
        ledger.add(plan(expand_inputs(inputs, glob, column), fps, segment_samples))
        if out.exists() and not overwrite:
            before_cols, previous = stream_rows(out)
            if before_cols and before_cols != cols:
                raise ValueError(f"{out} has other columns (another model?); name a new output file, "
                                 "or add --overwrite")
            ledger.previous(previous)
        created = parts.open()
        try:
            ledger.finished(parts.index())
            if retry_errors:
                ledger.retry_errors()
            todo = ledger.todo(batch_size)
            bar = _progress(todo.units, progress)
            units = 0
            work = _engine(engine, todo, spec, fps, workers, address, describe, node_timeout)
            try:
                for chunk, results in work:
                    part = parts.write(chunk.id, results)
                    ledger.finished((t.key, part) for t in chunk.tasks)
                    units += chunk.units
                    bar.update(chunk.units)
            finally:  # on Ctrl-C too: the engine stops its workers (or leaves Ray) now, not at garbage collection
                work.close()
                bar.close()
        except BaseException:
            if created and not parts.written():  # a failed start leaves nothing behind
                parts.remove()
            raise

        summary = Summary(str(out))
        write_rows(out, _counted(ledger.combined(), summary), cols, parts.dir)
        summary.tasks_done, summary.tasks_skipped = todo.tasks, ledger.count() - todo.tasks
    write_settings(out, settings, parts.dir)
    found = {"model": describe.name, "labels": list(describe.labels), "base_labels": describe.base_labels,
             "adapter": describe.adapter, "detector": describe.detector, "features": list(spec.features)}
    write_meta(out, run_meta(found, command="ferkit batch", cols=cols, settings=settings), tmp_dir=parts.dir)
    parts.remove()
    summary.units, summary.seconds = units, time.monotonic() - t0
    return summary


def iter_rows(inputs, *, engine: str = "local", workers: int | None = None, address: str | None = None,
              model: str | None = None, detector: str | None = None, provider: str | None = None,
              fps: float = DEFAULT_FPS, glob: str | None = None, column: str | None = None,
              batch_size: int = BATCH_SIZE, segment_samples: int = SEGMENT_SAMPLES,
              detect_side: int | None = None, adapter: str | None = None, features=None,
              mesh: bool | None = None) -> Iterator[dict]:
    """The rows run() would write (same columns), as chunks finish (not in input order), with no output files."""
    spec = RecognizerSpec(model, detector, provider, detect_side=detect_side, adapter=adapter,
                          features=parse_features(features),
                          mesh_column=mesh_named(features) if mesh is None else mesh)
    describe = spec.describe()
    cols = spec.schema(describe).columns
    with Ledger() as ledger:
        ledger.add(plan(expand_inputs(inputs, glob, column), fps, segment_samples))
        work = _engine(engine, ledger.todo(batch_size), spec, fps, workers, address, describe)
        try:
            for _, results in work:
                for _, rows in results:
                    for row in rows:
                        yield {c: row.get(c) for c in cols}
        finally:
            work.close()
