"""The local engine: a pool of worker processes, each holding one Recognizer (ONNX Runtime on one thread) and
working through the chunks sent over its own pipe, one at a time, with the next one already waiting in the pipe
(IN_FLIGHT): a worker never idles while the parent writes what it just finished. A worker that dies (killed, out
of memory, a crash in native code) is replaced; the tasks of the chunk it was working on are retried once, one
task per chunk, and a task that kills a worker again becomes an error row; the chunks still waiting behind it go
back to the queue as they were.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import signal
import traceback
from collections import deque
from multiprocessing.connection import wait
from typing import Collection, Iterator

from .inputs import Chunk, Pending
from .work import RecognizerSpec, error_row, process_chunk, stand_in

POLL_S = 1.0
IN_FLIGHT = 2  # chunks sent to a worker and not yet returned: the one it works on and the next


def default_workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _worker(conn, spec: RecognizerSpec, fps: float) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle: it stops the workers
    try:
        _work(conn, spec, fps)
    except (BrokenPipeError, ConnectionResetError, EOFError):  # the parent is gone (kill -9): nothing to say
        return


def _work(conn, spec: RecognizerSpec, fps: float) -> None:
    try:
        rec = spec.load()
    except Exception as e:  # noqa: BLE001 -- sent to the parent, which raises it
        conn.send(("failed", str(e)))
        return
    conn.send(("ready", None))
    schema = spec.schema(rec)
    while True:
        chunk = conn.recv()
        if chunk is None:
            return
        try:
            results = process_chunk(rec, chunk, fps, schema)
        except Exception:  # noqa: BLE001 -- bad inputs are rows already: this is a bug, for the parent to raise
            conn.send(("bug", traceback.format_exc()))
            return
        conn.send(("done", (chunk.id, results)))


class _Slot:
    def __init__(self, ctx, spec, fps):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, spec, fps), daemon=True)
        self.process.start()
        child.close()
        self.chunks: deque[Chunk] = deque()  # sent and not yet returned, in the order the worker takes them
        self.ready = False
        self.broken = False  # a send found its pipe closed: the worker is gone


def local_engine(todo: Collection[Chunk], spec: RecognizerSpec, fps: float, workers: int | None = None,
                 describe=None) -> Iterator[tuple[Chunk, list]]:
    """Yield (chunk, [(task key, rows)]) as chunks finish, in any order. `todo`: a list, or ledger.Todo (read as
    the workers take its chunks)."""
    if not todo:
        return
    workers = max(1, min(workers or default_workers(), len(todo) or 1))
    stub = stand_in(describe or spec.describe(), features=spec.features)
    stub_schema = spec.schema(stub)
    ctx = mp.get_context("spawn")  # no inherited ONNX Runtime threads or locks
    pending = Pending(todo)
    slots = [_Slot(ctx, spec, fps) for _ in range(workers)]
    early_deaths = 0
    try:
        while pending or any(s.chunks for s in slots):
            for s in slots:
                while s.ready and not s.broken and len(s.chunks) < IN_FLIGHT and pending:
                    try:
                        s.conn.send(pending.first())
                    except OSError:  # BrokenPipeError: it died after its last answer; handled as a death below
                        s.broken = True
                    else:
                        s.chunks.append(pending.popleft())
            ready = wait([s.conn for s in slots] + [s.process.sentinel for s in slots], POLL_S)
            for i, s in enumerate(slots):
                died = False
                if s.conn in ready:
                    try:
                        kind, payload = s.conn.recv()
                    except (EOFError, OSError):
                        died = True
                    else:
                        if kind == "failed":
                            raise RuntimeError(f"a worker could not load the recognizer: {payload}")
                        if kind == "bug":
                            raise RuntimeError(f"a worker failed on chunk {s.chunks[0].id} (finished chunks are kept):\n{payload}")
                        if kind == "ready":
                            s.ready = True
                        else:
                            yield s.chunks.popleft(), payload[1]
                if died or s.broken or (not s.process.is_alive() and not s.conn.poll()):
                    s.process.join(1)
                    code, held = s.process.exitcode, s.chunks
                    if not s.ready:
                        early_deaths += 1
                        if early_deaths > 3 * workers:
                            raise RuntimeError(f"worker processes keep dying while loading the recognizer (exit code {code})")
                    s.conn.close()
                    slots[i] = _Slot(ctx, spec, fps)
                    if not held:
                        continue
                    chunk = held.popleft()  # the one it was working on; those behind it never started
                    pending.extendleft(reversed(held))
                    if chunk.attempt == 0:
                        pending.extendleft(Chunk(t.index, (t,), 1) for t in reversed(chunk.tasks))
                    else:
                        msg = f"a worker process died twice on this input (exit code {'unknown' if code is None else code})"
                        yield chunk, [(t.key, [error_row(stub, stub_schema, t, f"{t.source}: {msg}")]) for t in chunk.tasks]
    finally:
        for s in slots:
            try:
                s.conn.send(None)
            except (OSError, ValueError):
                pass
        for s in slots:
            s.process.join(timeout=2)
            if s.process.is_alive():
                s.process.terminate()
                s.process.join(timeout=2)
            s.conn.close()
