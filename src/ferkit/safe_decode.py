"""Decoding untrusted image bytes where a bomb cannot hurt the caller: a small pool of decoder processes.

`images.decode_image` checks every header before a decoder runs, but a decoder is large C code and a crafted file
can still make one allocate or loop far more than its size suggests. So a server (uploads, live frames) or a batch
of files from strangers decodes in a child process with hard limits per job:

- memory: the child's address space is capped (RLIMIT_AS) at what it had after importing plus `memory_bytes`; an
  allocation past it fails inside the child (MemoryError), never in the server;
- CPU: a user CPU-time timer (ITIMER_VIRTUAL) runs for each job; past `cpu_seconds` the kernel ends the child
  (SIGVTALRM's default action). A decoding bomb burns user time; system time is page faults on the memory the job
  may touch (bounded by the memory cap), and on a virtual machine faulting in one 36-megapixel image's 108 MB took
  0.05-1.3 s of it from run to run (the same bytes), which would refuse the largest valid photo at random;
- wall time: the parent gives up on a child that has not answered in `wall_seconds` (a backstop; the CPU timer
  fires first) and kills it.

A child that hit a limit, died, or grew (heap fragmentation after a large image) is replaced by a fresh one, and
the caller gets `DecodeLimitError` (an `ImageTooLargeError`: a 413 for the server) naming the limit. The child's
stderr goes to /dev/null and its warnings are off, so what libjpeg, libpng or Pillow print about a malformed file
never reaches the server's log.

    with DecoderPool(workers=2) as pool:
        image = pool.decode(data, "photo.jpg")          # (H, W, 3) BGR uint8, or one of images' errors

Protocol on the child's stdin/stdout, all integers big-endian:
    request:  u32 name length, u64 data length, u64 max_pixels, name (UTF-8), data
    answer:   u8 status, u8 retiring (1: the child exits after this answer), then
              status 0 (image): u32 height, u32 width, then height * width * 3 bytes (BGR)
              status 1-3 (refusal): u32 length + UTF-8 message, u32 length + UTF-8 `kind` (status 1 only)
"""
from __future__ import annotations

import os
import select
import struct
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np

from .images import ImageTooLargeError, MAX_PIXELS, UnreadableImageError, UnsupportedImageFormatError

MB = 1_000_000
DECODE_WORKERS = 2           # children; each idles at about 80 MB (Python, NumPy, OpenCV, Pillow)
DECODE_MEMORY_BYTES = 512 * MB  # address space a job may add: a 40 Mpx photo needs about 300 MB (Pillow's 4-byte
                                # RGB copy, the 3-byte result, the input)
DECODE_CPU_SECONDS = 1.0     # a 36 Mpx PNG takes 0.9 s on a 2.8 GHz Xeon, a 36 Mpx JPEG 0.4-0.5 s
WALL_SECONDS = 60.0          # backstop only: the CPU timer ends a busy child long before
RETIRE_GROWTH_BYTES = 100 * MB  # a child whose resident memory grew this much over its idle size is replaced

_CAN_SELECT_PIPES = os.name == "posix"  # elsewhere (Windows) no wall-time backstop, and no rlimits or CPU timer
_OK, _UNSUPPORTED, _TOO_LARGE, _UNREADABLE, _NO_MEMORY = range(5)
_REQUEST = struct.Struct(">IQQ")
_ANSWER = struct.Struct(">BB")


class DecodeLimitError(ImageTooLargeError):
    """Decoding needed more CPU time or memory than a decoder process may use; the file was not decoded."""


class DecoderPool:
    """Up to `workers` decoder processes, started when first needed and replaced after any limit hit.

    `decode` may be called from many threads at once: at most `workers` decode at a time, the rest wait.
    Close the pool (or use it as a context manager) to end the children; they also end when this process does
    (their stdin closes)."""

    def __init__(self, workers: int = DECODE_WORKERS, memory_bytes: int = DECODE_MEMORY_BYTES,
                 cpu_seconds: float = DECODE_CPU_SECONDS, wall_seconds: float = WALL_SECONDS):
        if workers < 1:
            raise ValueError(f"a decoder pool needs at least 1 worker, got {workers}")
        if cpu_seconds <= 0 or memory_bytes <= 0 or wall_seconds <= 0:
            raise ValueError("cpu_seconds, memory_bytes and wall_seconds must be positive")
        self.workers, self.memory_bytes, self.cpu_seconds = workers, memory_bytes, cpu_seconds
        self.wall_seconds = wall_seconds
        self._slots = threading.BoundedSemaphore(workers)
        self._lock = threading.Lock()
        self._idle: list[_Child] = []
        self._all: set[_Child] = set()
        self._closed = False
        self.replaced = 0  # children replaced after a limit hit or death (for tests and benchmarks)

    def __enter__(self) -> "DecoderPool":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> None:
        """Start every child now (they import in the background), so the first requests do not wait for them."""
        with self._lock:
            while len(self._all) < self.workers:
                child = self._spawn()
                self._idle.append(child)

    def decode(self, data: bytes, name: str = "image", max_pixels: int = MAX_PIXELS) -> np.ndarray:
        """Encoded bytes -> (H, W, 3) BGR uint8, decoded by `images.decode_image` in a child process.

        Raises what decode_image raises (UnsupportedImageFormatError, ImageTooLargeError, UnreadableImageError),
        or DecodeLimitError when the child ran past its CPU time or memory limit or died."""
        with self._slots:
            child = self._take()
            try:
                image, retiring = child.run(data, name, max_pixels, self.wall_seconds)
            except _ChildLost as lost:
                self._discard(child)
                raise DecodeLimitError(self._limit_message(name, lost)) from None
            except BaseException:  # an exception in this thread mid-job: the child's state is unknown
                self._discard(child)
                raise
            if retiring:
                self._discard(child, replaced=False)
            else:
                with self._lock:
                    self._idle.append(child)
            if isinstance(image, Exception):
                # raised with no local naming it: a frame that held the exception whose traceback holds the frame
                # is a reference cycle, and it would keep `data` (up to 10 MB) until the next full collection
                error, image = image, None
                try:
                    raise error
                finally:
                    del error
            return image

    def close(self) -> None:
        with self._lock:
            self._closed = True
            children, self._all, self._idle = list(self._all), set(), []
        for child in children:
            child.kill()

    # ------------------------------------------------------------ internals
    def _spawn(self) -> "_Child":
        if self._closed:
            raise RuntimeError("the decoder pool is closed")
        child = _Child(self.memory_bytes, self.cpu_seconds)
        self._all.add(child)
        return child

    def _take(self) -> "_Child":
        with self._lock:
            while self._idle:
                child = self._idle.pop()
                if child.alive():
                    return child
                self._all.discard(child)
            return self._spawn()

    def _discard(self, child: "_Child", replaced: bool = True) -> None:
        child.kill()
        with self._lock:
            self._all.discard(child)
            self.replaced += replaced

    def _limit_message(self, name: str, lost: "_ChildLost") -> str:
        if lost.reason == "cpu":
            return (f"{name}: decoding took more than {self.cpu_seconds:g} s of CPU time, the limit for one image; "
                    "the file is built to be slow to decode, or far larger than a photo")
        if lost.reason == "memory":
            return (f"{name}: decoding needed more than {self.memory_bytes // MB:,} MB of memory, the limit for one "
                    "image; the file is built to expand, or is far larger than a photo")
        if lost.reason == "wall":
            return f"{name}: decoding did not finish in {self.wall_seconds:g} s; the image was not decoded"
        return f"{name}: the decoder stopped on this file ({lost.reason}); the image was not decoded"


class _ChildLost(Exception):
    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class _Child:
    """One decoder process and its pipes (the parent's side)."""

    def __init__(self, memory_bytes: int, cpu_seconds: float):
        self.proc = start_child("ferkit.safe_decode", str(memory_bytes), repr(cpu_seconds))

    def alive(self) -> bool:
        return self.proc.poll() is None

    def kill(self) -> None:
        stop_child(self.proc)

    def run(self, data, name: str, max_pixels: int, wall_seconds: float):
        """-> (the image or the refusal to raise, whether the child retires); _ChildLost when it died or hung."""
        deadline = time.monotonic() + wall_seconds
        label = name.encode("utf-8", "replace")[:1000]
        try:
            self.proc.stdin.write(_REQUEST.pack(len(label), len(data), max_pixels) + label)
            self.proc.stdin.write(data)
        except (BrokenPipeError, OSError):
            raise _ChildLost(self._why()) from None
        status, retiring = _ANSWER.unpack(self._read(_ANSWER.size, deadline))
        if status == _OK:
            h, w = struct.unpack(">II", self._read(8, deadline))
            out = bytearray(h * w * 3)  # the one full-size buffer in this process; the array is a view of it
            self._read_into(memoryview(out), deadline)
            return np.frombuffer(out, np.uint8).reshape(h, w, 3), bool(retiring)
        if status == _NO_MEMORY:
            raise _ChildLost("memory")
        message = self._read(struct.unpack(">I", self._read(4, deadline))[0], deadline).decode("utf-8", "replace")
        if status == _UNSUPPORTED:
            kind = self._read(struct.unpack(">I", self._read(4, deadline))[0], deadline).decode("utf-8", "replace")
            return UnsupportedImageFormatError(message, kind), bool(retiring)
        error = ImageTooLargeError if status == _TOO_LARGE else UnreadableImageError
        return error(message), bool(retiring)

    def _read(self, n: int, deadline: float) -> bytes:
        buf = bytearray(n)
        self._read_into(memoryview(buf), deadline)
        return bytes(buf)

    def _read_into(self, view: memoryview, deadline: float) -> None:
        fd, pos = self.proc.stdout.fileno(), 0
        while pos < len(view):
            left = deadline - time.monotonic()
            if left <= 0 or (_CAN_SELECT_PIPES and not select.select([fd], [], [], left)[0]):
                raise _ChildLost("wall")
            got = self.proc.stdout.readinto(view[pos:])
            if not got:
                raise _ChildLost(self._why())
            pos += got

    def _why(self) -> str:
        """Why the child is gone, from how it ended: SIGVTALRM is the CPU timer, SIGKILL/SIGSEGV mostly memory."""
        try:
            code = self.proc.wait(2)
        except subprocess.TimeoutExpired:
            return "no answer"
        import signal

        if code == -getattr(signal, "SIGVTALRM", 26) or code == -getattr(signal, "SIGXCPU", 24):
            return "cpu"
        if code in {-getattr(signal, n, 0) for n in ("SIGKILL", "SIGSEGV", "SIGABRT", "SIGBUS")} - {0}:
            return "memory"
        return f"exit status {code}"


def start_child(module: str, *args: str) -> subprocess.Popen:
    """`python -m module args...` of this ferkit (however the parent found it) with unbuffered pipes on stdin and
    stdout, stderr discarded, and one thread everywhere: extra threads would each reserve address space (malloc
    arenas, stacks) against the child's limit, and a limited child (a decoder, an analysis worker) needs none."""
    env = dict(os.environ)
    package_root = str(Path(__file__).resolve().parents[1])
    env["PYTHONPATH"] = package_root + os.pathsep + env.get("PYTHONPATH", "")
    env.update(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1", MALLOC_ARENA_MAX="1")
    return subprocess.Popen([sys.executable, "-m", module, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, env=env, bufsize=0, close_fds=True)


def stop_child(proc: subprocess.Popen) -> None:
    """Kill a child of start_child (if it still runs), reap it and close its pipes."""
    if proc.poll() is None:
        proc.kill()
    proc.wait()
    for pipe in (proc.stdin, proc.stdout):
        pipe.close()


def return_large_buffers_to_the_os(threshold: int = 128 << 10) -> bool:
    """Make glibc serve every allocation of `threshold` bytes or more with its own mmap, given back when freed.

    By default glibc raises that threshold to the size of the last large buffer freed (up to 32 MB), so that the
    next 10 MB upload body comes from a thread's heap arena, where freed memory stays with the process: a server
    that took four 10 MB uploads at once kept over 400 MB. A fixed threshold keeps every large buffer out of the
    arenas. Returns False where this is not glibc (nothing to do there)."""
    try:
        import ctypes

        libc = ctypes.CDLL(None)
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, threshold)) and bool(libc.mallopt(m_trim_threshold, threshold))
    except (OSError, AttributeError):
        return False


def give_back_freed_memory() -> None:
    """glibc's malloc_trim(0): free pages in every heap arena go back to the OS (a no-op where this is not glibc).
    Costs a walk over the heaps (milliseconds): for after a large job, not after every one."""
    try:
        import ctypes

        ctypes.CDLL(None).malloc_trim(0)
    except (OSError, AttributeError):
        pass


# ---------------------------------------------------------------- the child
def _child_main(memory_bytes: int, cpu_seconds: float) -> None:
    import logging
    import warnings

    warnings.simplefilter("ignore")  # Pillow's warnings about a malformed file are not the server's business
    logging.disable(logging.CRITICAL)
    import cv2

    from . import images

    cv2.setNumThreads(0)
    return_large_buffers_to_the_os()
    try:  # behind the server's own work when the CPU is short: its event loop answers first
        os.nice(5)
    except OSError:
        pass
    # first use imports Pillow's plugins and warms its code: done now, so that no job's CPU time pays for it
    tiny = np.zeros((8, 8, 3), np.uint8)
    for ext in (".png", ".jpg", ".bmp", ".webp"):
        images.decode_image(cv2.imencode(ext, tiny)[1].tobytes(), "warm-up")
    images.decode_image(b"GIF89a\x01\x00\x01\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;",
                        "warm-up")
    base_rss = status_kb("VmRSS") * 1024
    try:
        import resource

        address_space = status_kb("VmSize") * 1024 + memory_bytes
        resource.setrlimit(resource.RLIMIT_AS, (address_space, address_space))
    except (ImportError, ValueError, OSError):  # no rlimits here (not POSIX): the CPU timer and the wall time remain
        pass
    # the answers get a private copy of stdout; fd 1 itself goes to /dev/null, so that nothing a library prints
    # can corrupt the protocol
    stdin = open(0, "rb", buffering=0, closefd=False)
    stdout = open(os.dup(1), "wb", buffering=0)
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.close(devnull)
    while True:
        head = read_exact(stdin, _REQUEST.size)
        if head is None:
            return  # the parent closed the pipe (or died)
        name_len, data_len, max_pixels = _REQUEST.unpack(head)
        name = (read_exact(stdin, name_len) or b"").decode("utf-8", "replace")
        data = read_exact(stdin, data_len, into=bytearray(data_len))
        if data is None:
            return
        cpu_timer(cpu_seconds, user_only=True)  # SIGVTALRM's default action ends this process
        try:
            image = images.decode_image(data, name, max_pixels)
            answer = None
        except images.UnsupportedImageFormatError as e:
            answer = (_UNSUPPORTED, str(e), e.kind)
        except images.ImageTooLargeError as e:
            answer = (_TOO_LARGE, str(e), None)
        except images.UnreadableImageError as e:
            answer = (_UNREADABLE, str(e), None)
        except MemoryError:
            cpu_timer(0, user_only=True)
            write_all(stdout, _ANSWER.pack(_NO_MEMORY, 1))
            return  # a fresh child replaces this one
        finally:
            cpu_timer(0, user_only=True)
        del data
        if answer is None:
            image = np.ascontiguousarray(image)
            h, w = image.shape[:2]
            image_bytes = image.nbytes
        else:
            image_bytes = 0
        retiring = status_kb("VmRSS") * 1024 + image_bytes > base_rss + RETIRE_GROWTH_BYTES
        if answer is None:
            write_all(stdout, _ANSWER.pack(_OK, retiring) + struct.pack(">II", h, w))
            write_all(stdout, memoryview(image).cast("B"))
            del image
        else:
            status, message, kind = answer
            out = _ANSWER.pack(status, retiring) + _text(message)
            write_all(stdout, out + (_text(kind) if status == _UNSUPPORTED else b""))
        if retiring:
            return


def cpu_timer(seconds: float, user_only: bool = False) -> None:
    """Arm (or with 0, disarm) the process's CPU-time timer: user + system time, all threads (SIGPROF ends the
    process); `user_only`: a second timer counting user time (ITIMER_VIRTUAL: SIGVTALRM ends it), so that a caller
    with two phases can tell from the signal which one ran over."""
    import signal

    if hasattr(signal, "setitimer"):
        signal.setitimer(signal.ITIMER_VIRTUAL if user_only else signal.ITIMER_PROF, seconds)


def _text(s: str) -> bytes:
    b = s.encode("utf-8", "replace")
    return struct.pack(">I", len(b)) + b


def read_exact(f, n: int, into: bytearray | None = None):
    buf = into if into is not None else bytearray(n)
    view, pos = memoryview(buf), 0
    while pos < n:
        got = f.readinto(view[pos:])
        if not got:
            return None
        pos += got
    return buf


def write_all(f, data) -> None:
    view, pos = memoryview(data), 0
    while pos < len(view):
        pos += f.write(view[pos:])


def status_kb(field: str) -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


if __name__ == "__main__":
    _child_main(int(sys.argv[1]), float(sys.argv[2]))
