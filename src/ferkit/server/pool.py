"""The server's analysis pool: worker processes (server.worker) that decode and analyse, and the queue in front.

The event loop hands each upload or live frame to a worker and awaits its JSON answer over the worker's pipes, which
the loop reads and writes itself (non-blocking, woken by the selector like a socket): no thread per job, whose
hand-off cost about 0.1-0.2 ms of the loop's CPU a request and contended for the GIL under load. This is the pre-fork
pattern of gunicorn or uvicorn's own --workers, with the analysis, not the HTTP, in the children: one process owns
the sockets and its limits (header sizes, timeouts, ping floods), the workers own the models and the decoder limits.

Queue: at most `max_queue` jobs wait; more are refused at once (PoolBusy: a 503 with Retry-After). A free worker
takes the waiting job with the best (size class, arrival): uploads under LARGE_UPLOAD_BYTES and live frames before
large uploads, which may hold at most `workers - 1` workers at once (all of them with one worker), so a phone photo
does not wait behind a queue of 36-megapixel ones. A live session is tied to one worker (its tracker lives there).

A worker that dies or passes a limit is replaced at once; the job it was running gets a WorkerLost naming what
happened (the route turns it into a 413 or a 503 with words), never a hang: the parent gives up on a worker that
has not answered in `wall_seconds` and kills it.
"""
from __future__ import annotations

import asyncio
import itertools
import json
import os
import signal
import subprocess
import time
import dataclasses
import functools
from dataclasses import dataclass, field

import anyio

from ..safe_decode import start_child, stop_child
from . import worker as proto

LARGE_UPLOAD_BYTES = 1_000_000   # uploads over this are "large": a 12-megapixel phone JPEG is 3-5 MB
START_SECONDS = 180.0            # a worker must load its models within this (slow disks, many features)


class PoolBusy(Exception):
    """Every worker is busy and `max_queue` jobs are waiting: come back later."""


class WorkerLost(Exception):
    """The worker running the job died or passed a limit. `kind`: "cpu", "memory", "wall" or "stopped"; `phase`:
    "decode" or "analysis"."""

    def __init__(self, kind: str, phase: str, detail: str):
        super().__init__(detail)
        self.kind, self.phase = kind, phase


class AnalysisFailed(Exception):
    """The worker raised while analysing (a bug in ferkit, not the client's fault): the traceback is for the log."""


@dataclass
class PoolConfig:
    """What every worker loads and the limits it keeps (from the server's Settings)."""
    model: str | None
    detector: str
    detect_side: int | None
    adapter: str | None
    features: str
    threads: int
    live_detector: str
    live_detect_every: int
    live_detect_side: int | None
    max_faces: int
    memory_bytes: int
    decode_cpu_seconds: float
    analysis_cpu_seconds: float

    @property
    def wall_seconds(self) -> float:  # a backstop only: the CPU timers end a busy worker long before
        return 30 + 10 * (self.decode_cpu_seconds + self.analysis_cpu_seconds)


@dataclass(order=True)
class _Waiter:
    large: bool
    seq: int
    slot: int | None = field(compare=False)        # None: any worker; else the live session's worker
    future: asyncio.Future = field(compare=False)


class AnalysisPool:
    """`workers` analysis processes and the queue in front of them. Use from the event loop:

        pool = AnalysisPool(config, workers=2, max_queue=64)
        description = await pool.start()               # the model's name, labels ... once a worker has loaded
        answer = await pool.analyze(data, "photo.jpg", max_pixels, explain=False)   # bytes: a JSON object
        await pool.close()
    """

    def __init__(self, config: PoolConfig, workers: int, max_queue: int):
        if workers < 1:
            raise ValueError(f"the analysis pool needs at least 1 worker, got {workers}")
        self.config, self.size, self.max_queue = config, workers, max_queue
        self._children: list[_Child | None] = [None] * workers
        self._busy = [False] * workers
        self._sessions = [0] * workers               # live sessions tied to each worker
        self._ended: list[list[str]] = [[] for _ in range(workers)]  # sessions to drop, sent with the next job
        self._waiting: list[_Waiter] = []
        self._large_running = 0
        self._large_cap = max(1, workers - 1)
        self._seq = itertools.count()
        self.replaced = 0                            # workers replaced after a death or a limit (tests, benchmarks)
        self.description: dict = {}

    # ------------------------------------------------------------ life
    async def start(self) -> dict:
        """Start every worker; return once the first has loaded its models (its description of them)."""
        self._children = [_Child(self.config) for _ in range(self.size)]
        try:
            self.description = await self._children[0].wait_ready()
        except WorkerLost as e:
            await self.close()
            raise RuntimeError(f"the analysis worker could not start: {e}") from None
        return self.description

    async def close(self) -> None:
        children, self._children = self._children, [None] * self.size
        for child in children:
            if child is not None:
                child.kill()
        for w in self._waiting:
            if not w.future.done():
                w.future.set_exception(PoolBusy())
        self._waiting.clear()

    def pids(self) -> list[int]:
        return [c.proc.pid for c in self._children if c is not None]

    # ------------------------------------------------------------ jobs
    async def analyze(self, data, name: str, max_pixels: int, explain: bool) -> bytes:
        header = {"op": "analyze", "name": name, "max_pixels": max_pixels, "explain": explain}
        return await self._run(header, data, large=len(data) > LARGE_UPLOAD_BYTES, slot=None)

    def open_session(self) -> int:
        """The worker a new live session will use: the one with the fewest sessions."""
        slot = min(range(self.size), key=lambda i: (self._sessions[i], self._busy[i]))
        self._sessions[slot] += 1
        return slot

    def close_session(self, slot: int, session: str) -> None:
        self._sessions[slot] -= 1
        self._ended[slot].append(session)

    async def frame(self, slot: int, session: str, data, frame: int, max_pixels: int) -> bytes:
        header = {"op": "frame", "name": f"frame {frame}", "max_pixels": max_pixels, "session": session, "frame": frame}
        return await self._run(header, data, large=False, slot=slot)

    async def _run(self, header: dict, data, *, large: bool, slot: int | None) -> bytes:
        slot = await self._acquire(slot, large)
        try:
            header["ended"], self._ended[slot] = self._ended[slot], []
            child = self._children[slot]
            if child is None:  # closed meanwhile
                raise PoolBusy()
            job = asyncio.ensure_future(self._job(slot, child, header, data, large))
        except BaseException:
            self._release(slot, large)
            raise
        del data
        # shielded: a caller cancelled mid-job (a live session that ends) leaves the job to finish, so the worker's
        # pipes stay in step and its slot is released only when it is free again (_job)
        outcome = await asyncio.shield(job)
        del job  # the task holds the outcome: raised below, it must not be reachable from this frame
        if isinstance(outcome, Exception):
            try:
                raise outcome
            finally:  # this frame, in the exception's traceback, must not hold the exception: that cycle kept the
                del outcome  # upload (the caller's frames hold it) until a full collection, +60-117 MB over the
                             # cost campaign's refused bombs
        return outcome

    async def _job(self, slot: int, child: "_Child", header: dict, data, large: bool) -> "bytes | Exception":
        try:
            outcome = await child.run(header, data)
            del data
            if isinstance(outcome, WorkerLost):
                self._replace(slot, child)
            elif child.retiring:
                self._replace(slot, child, counted=False)
            return outcome
        finally:
            self._release(slot, large)

    def _replace(self, slot: int, child: "_Child", counted: bool = True) -> None:
        child.kill()
        if self._children[slot] is child:
            self._children[slot] = _Child(self.config)  # loads in the background; the next job waits for it
            self.replaced += counted

    # ------------------------------------------------------------ the queue
    def _eligible(self, slot: int, large: bool, wanted: int | None) -> bool:
        return (wanted is None or wanted == slot) and not (large and self._large_running >= self._large_cap)

    async def _acquire(self, wanted: int | None, large: bool) -> int:
        if not self._waiting:
            for i in ([wanted] if wanted is not None else range(self.size)):
                if not self._busy[i] and self._eligible(i, large, wanted):
                    self._take(i, large)
                    return i
        if len(self._waiting) >= self.max_queue:
            raise PoolBusy()
        waiter = _Waiter(large, next(self._seq), wanted, asyncio.get_running_loop().create_future())
        self._waiting.append(waiter)
        self._dispatch()  # a free worker this waiter may use, though others wait for theirs
        try:
            return await waiter.future
        except asyncio.CancelledError:  # the client went away while waiting
            if waiter in self._waiting:
                self._waiting.remove(waiter)
            elif waiter.future.done() and not waiter.future.cancelled() and waiter.future.exception() is None:
                self._release(waiter.future.result(), large)  # it had just been given a worker: give it back
            raise

    def _take(self, slot: int, large: bool) -> None:
        self._busy[slot] = True
        self._large_running += large

    def _release(self, slot: int, large: bool) -> None:
        self._busy[slot] = False
        self._large_running -= large
        self._dispatch()

    def _dispatch(self) -> None:
        """Give every free worker the best waiting job it may take (small before large, then first come)."""
        for slot in range(self.size):
            if self._busy[slot]:
                continue
            candidates = [w for w in self._waiting if self._eligible(slot, w.large, w.slot)]
            if not candidates:
                continue
            best = min(candidates)
            self._waiting.remove(best)
            self._take(slot, best.large)
            best.future.set_result(slot)


class _Child:
    """One worker process and its pipes (the parent's side), read and written by the event loop without blocking:
    the pool runs one job at a time on a child."""

    def __init__(self, config: PoolConfig):
        self.config = config
        self.proc = start_child("ferkit.server.worker", json.dumps(dataclasses.asdict(config)))
        self._in, self._out = self.proc.stdin, self.proc.stdout  # unbuffered: write/readinto give None when blocked
        os.set_blocking(self._in.fileno(), False)
        os.set_blocking(self._out.fileno(), False)
        self.ready = False
        self.retiring = False
        self._watch: tuple[asyncio.Future, object] | None = None  # the pipe wait in progress: (its future, undo)

    def kill(self) -> None:
        ready = self._unwatch()  # first: the loop must never watch a descriptor that is closed (and reused)
        stop_child(self.proc)
        if ready is not None and not ready.done():
            ready.set_result(None)  # the job in progress finds the pipes closed and ends with a WorkerLost

    async def wait_ready(self) -> dict:
        """Wait until the worker has loaded its models -> their description; WorkerLost if it could not."""
        status, _, payload = await self._answer(time.monotonic() + START_SECONDS)
        if status != proto.READY:
            detail = json.loads(payload).get("detail", "") if payload else ""
            raise WorkerLost("stopped", "decode",
                             f"the analysis worker did not start: {detail or (await self._why())[0]}")
        self.ready = True
        return json.loads(payload)

    async def run(self, header: dict, data) -> "bytes | Exception":
        """Send one job -> its answer (JSON bytes), or the Refused, AnalysisFailed or WorkerLost for the caller to
        raise (returned, not raised: see AnalysisPool._run)."""
        try:
            return await self._run(header, data)
        except (Refused, AnalysisFailed, WorkerLost) as e:
            # without its traceback (these frames, which hold the upload) and the OSError it may have replaced
            # (whose traceback holds them too): the caller raises it again, and frames in a cycle with an exception
            # live until a full collection
            e.__traceback__ = e.__context__ = None
            return e

    async def _run(self, header: dict, data) -> bytes:
        if not self.ready:
            await self.wait_ready()
        deadline = time.monotonic() + self.config.wall_seconds
        head = json.dumps(header).encode()
        await self._write(proto.REQUEST.pack(len(head), len(data)) + head, deadline)
        await self._write(data, deadline)
        del data
        status, retiring, payload = await self._answer(deadline)
        self.retiring = bool(retiring)
        if status == proto.OK:
            return payload
        if status == proto.REFUSED:
            refusal = json.loads(payload)
            raise Refused(refusal["status"], refusal["detail"])
        if status == proto.FAILED:
            raise AnalysisFailed(json.loads(payload)["detail"])
        if status == proto.NO_MEMORY:
            self.retiring = True
            raise WorkerLost("memory", json.loads(payload)["phase"], "memory")
        raise WorkerLost("stopped", "analysis", f"unknown answer {status}")

    async def _answer(self, deadline: float) -> tuple[int, int, bytes]:
        status, retiring, length = proto.ANSWER.unpack(await self._read(proto.ANSWER.size, deadline))
        return status, retiring, await self._read(length, deadline) if length else b""

    async def _write(self, data, deadline: float) -> None:
        view = memoryview(data)
        while view:
            try:
                sent = self._in.write(view)
            except (OSError, ValueError):  # the worker is gone (a broken pipe), or kill() closed the pipe
                raise WorkerLost(*await self._lost()) from None
            if sent is None:  # the pipe is full (64 KB): wait until the worker has read some
                await self._wait(self._in, deadline, writing=True)
            else:
                view = view[sent:]

    async def _read(self, n: int, deadline: float) -> bytes:
        buf = bytearray(n)
        view, pos = memoryview(buf), 0
        while pos < n:
            try:
                got = self._out.readinto(view[pos:])
            except (OSError, ValueError):  # kill() closed the pipe
                got = 0
            if got is None:  # nothing yet
                await self._wait(self._out, deadline, writing=False)
            elif got == 0:  # the worker ended
                raise WorkerLost(*await self._lost())
            else:
                pos += got
        return bytes(buf)

    async def _wait(self, pipe, deadline: float, writing: bool) -> None:
        """Until `pipe` is ready to write (or read); WorkerLost("wall") past `deadline`."""
        loop = asyncio.get_running_loop()
        fd = pipe.fileno()
        ready = loop.create_future()
        (loop.add_writer if writing else loop.add_reader)(fd, _wake, ready)
        self._watch = ready, functools.partial(loop.remove_writer if writing else loop.remove_reader, fd)
        try:
            async with asyncio.timeout(max(0.0, deadline - time.monotonic())):
                await ready
        except TimeoutError:
            raise WorkerLost("wall", "analysis", "no answer in time") from None
        finally:
            self._unwatch()

    def _unwatch(self) -> asyncio.Future | None:
        """Stop watching the pipe, if a wait is in progress -> its future."""
        if self._watch is None:
            return None
        (ready, undo), self._watch = self._watch, None
        undo()
        return ready

    async def _lost(self) -> tuple[str, str, str]:
        """WorkerLost's arguments for a worker whose pipe broke or ended."""
        kind, phase = await self._why()
        return kind, phase, kind

    async def _why(self) -> tuple[str, str]:
        """(why the worker is gone, in which phase), from how it ended (waited for in a thread: up to 2 s)."""
        return await anyio.to_thread.run_sync(self._exit_reason)

    def _exit_reason(self) -> tuple[str, str]:
        """SIGVTALRM is decoding's CPU timer (user time), SIGPROF the analysis's, SIGSEGV/SIGABRT/SIGBUS mostly memory."""
        try:
            code = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            return "stopped", "analysis"
        if code == -getattr(signal, "SIGVTALRM", 26):
            return "cpu", "decode"
        if code in (-getattr(signal, "SIGPROF", 27), -getattr(signal, "SIGXCPU", 24)):
            return "cpu", "analysis"
        if code in {-getattr(signal, n, 0) for n in ("SIGSEGV", "SIGABRT", "SIGBUS")} - {0}:
            return "memory", "analysis"
        return "stopped", "analysis"


def _wake(ready: asyncio.Future) -> None:
    if not ready.done():
        ready.set_result(None)


class Refused(Exception):
    """The worker refused the image (413, 415 or 422) with words for the client."""

    def __init__(self, status: int, detail: str):
        super().__init__(detail)
        self.status, self.detail = status, detail


def lost_message(lost: WorkerLost, name: str, config: PoolConfig) -> tuple[int, str]:
    """(HTTP status, words) for a job whose worker died or passed a limit."""
    if lost.kind == "cpu" and lost.phase == "decode":
        return 413, (f"{name}: decoding took more than {config.decode_cpu_seconds:g} s of CPU time, the limit for one "
                     "image; the file is built to be slow to decode, or far larger than a photo")
    if lost.kind == "cpu":
        return 413, (f"{name}: analysing the image took more than {config.analysis_cpu_seconds:g} s of CPU time, the "
                     "limit for one image; send a smaller photo")
    if lost.kind == "memory":
        return 413, (f"{name}: {'decoding' if lost.phase == 'decode' else 'analysing'} it needed more than "
                     f"{config.memory_bytes // 1_000_000:,} MB of memory, the limit for one image")
    if lost.kind == "wall":
        return 503, f"{name}: the analysis did not finish in {config.wall_seconds:g} s; please try again"
    return 503, f"{name}: the analysis worker stopped while working on it (it is being restarted); please try again"
