"""The Ray engine: the same chunks over a pool of Ray actors, on a local Ray instance or a cluster.

Each actor holds one Recognizer, built once, and is fed like a local worker: one chunk it works on and the next
already waiting (IN_FLIGHT), so the classifier sees the local engine's batches and the driver writes the rows
exactly as the local engine's are written. Actors are spread over the nodes and ask for ACTOR_CPUS each.

When an actor dies:
- its node is gone (killed, lost from the network): the chunks it held go back to the queue as they were, and a
  new actor is asked for, which Ray places where resources are left; the run goes on on the nodes left. When no
  actor at all has been able to run for `node_timeout` seconds (LOST_TIMEOUT_S by default; every node lost, or
  none with room), the run stops with
  ClusterError naming the lost nodes; finished chunks are kept for the rerun.
- its node is alive (a crash on an input, out of memory): as in the local engine, the tasks of the chunk it was
  working on are retried once, one task per chunk, on the actors (no Recognizer reloaded per task); a task that
  kills an actor again becomes an error row; the chunks waiting behind it go back to the queue as they were.

Before any work, `address` (or RAY_ADDRESS) must answer within CONNECT_TIMEOUT_S, else ClusterError naming it.
Every node must see the inputs at the same paths: the first chunk whose files an actor finds missing, where the
driver sees them, stops the run (ClusterError) rather than becoming error rows.
"""
from __future__ import annotations

import os
import socket
import threading
import time
from collections import deque
from typing import Collection, Iterator

from .errors import ClusterError
from .inputs import Chunk, Pending
from .work import RecognizerSpec, error_row, process_chunk, stand_in

ACTOR_CPUS = 1.0
IN_FLIGHT = 2            # chunks sent to an actor and not yet returned: the one it works on and the next
POLL_S = 1.0
CONNECT_TIMEOUT_S = 15   # for `address` to answer (with the command's start-up, it fails within 30 s)
NODE_DEATH_WAIT_S = 3.0  # before a task that an actor died on twice becomes an error row: was it its node?
HEAD_TIMEOUT_S = 20      # the head's GCS refusing connections this long: the cluster is lost (Ray itself ends the
                         # driver, with exit 1 and no word on the terminal, after 60 s)
LOST_TIMEOUT_S = 120     # with no actor able to run for this long (nodes lost, no room elsewhere), the run stops
RESUME = "finished chunks are kept: rerun the same command to resume"
INSTALL = 'the ray engine needs Ray: pip install "ferkit[ray]"'


def import_ray():
    try:
        import ray
    except ImportError:
        raise ImportError(INSTALL) from None
    return ray


class ChunkWorker:
    """A Ray actor: one Recognizer, built once, for every chunk sent to it."""

    def __init__(self, spec: RecognizerSpec, fps: float):
        self.rec, self.fps = spec.load(), fps
        self.schema = spec.schema(self.rec)

    def node(self) -> str:
        """Its node's id: answered once the Recognizer is loaded."""
        import ray

        return ray.get_runtime_context().get_node_id()

    def run(self, chunk: Chunk) -> tuple[list, bool]:
        """(the chunk's (task key, rows), whether none of its files exists here)."""
        unseen = not any(os.path.exists(t.file) for t in chunk.tasks)
        return process_chunk(self.rec, chunk, self.fps, self.schema), unseen


# ---------------------------------------------------------------- connecting
def _host_port(address: str) -> tuple[str, int]:
    rest = address.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    if not host:
        return rest, 6379
    try:
        return host.strip("[]"), int(port)
    except ValueError:
        raise ClusterError(f"--address {address!r}: expected HOST:PORT") from None


def check_reachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """ClusterError unless a TCP connection to `address` (HOST:PORT) opens within `timeout` seconds, the name look-up
    included (run in a thread: a resolver can hang far longer)."""
    host, port = _host_port(address)
    deadline = time.monotonic() + timeout
    found: list = []

    def resolve():
        try:
            found.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as e:
            found.append(e)

    t = threading.Thread(target=resolve, daemon=True)
    t.start()
    t.join(timeout)
    if not found:
        raise ClusterError(f"cannot reach the Ray cluster at {address}: the name {host!r} did not resolve within "
                           f"{timeout:g} s")
    if isinstance(found[0], OSError):
        raise ClusterError(f"cannot reach the Ray cluster at {address}: unknown host {host!r} ({found[0]})")
    error: OSError | None = None
    for family, kind, proto, _, sockaddr in found[0]:
        left = deadline - time.monotonic()
        if left <= 0:
            break
        try:
            with socket.socket(family, kind, proto) as s:
                s.settimeout(left)
                s.connect(sockaddr)
                return
        except OSError as e:
            error = e
    why = "no answer" if error is None or isinstance(error, TimeoutError) else (error.strerror or str(error))
    raise ClusterError(f"cannot reach the Ray cluster at {address}: {why} (waited up to {timeout:g} s)")


def connect(ray, address: str | None, timeout: float = CONNECT_TIMEOUT_S) -> None:
    """ray.init for the run: `address`, else RAY_ADDRESS, else a Ray running here, else a local instance. An
    address that does not answer within `timeout` seconds (a TCP connection, then Ray's own handshake, which retries
    for ever against something that is not a Ray head) raises ClusterError naming it."""
    target = address or os.environ.get("RAY_ADDRESS")
    deadline = time.monotonic() + timeout
    remote = bool(target) and target not in ("auto", "local")
    if remote:
        check_reachable(target, timeout)
    outcome: list = []

    def init():
        try:
            ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False)
            outcome.append(None)
        except BaseException as e:  # noqa: BLE001 -- handed to the caller's thread
            outcome.append(e)

    if remote:  # in a thread, to bound the wait
        thread = threading.Thread(target=init, daemon=True, name="ferkit-ray-init")
        thread.start()
        thread.join(max(1.0, deadline - time.monotonic()))
    else:  # here: the processes of a local instance die with the thread that started them (PR_SET_PDEATHSIG)
        init()
    if not outcome:
        raise ClusterError(f"cannot reach the Ray cluster at {target}: it accepts connections but no Ray head answered "
                           f"within {timeout:g} s: {token_hint()}; else a wrong port, or a proxy in between")
    if outcome[0] is not None:
        e = outcome[0]
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        hint = ("; a cluster with token authentication needs RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN, "
                "RAY_AUTH_TOKEN_PATH or ~/.ray/auth_token) on the driver too" if "auth" in str(e).lower() else "")
        raise ClusterError(f"cannot connect to the Ray cluster at {target or 'this machine'}: {first}{hint}") from e


TOKEN_HOWTO = ("pass the cluster's token: RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=..., or RAY_AUTH_TOKEN_PATH=FILE, "
               "or the file ~/.ray/auth_token (`ray get-auth-token` on the head prints it; docs/batch.md)")
AUTH_REFUSED = "InvalidAuthToken"  # what Ray's core logs when the head refuses a driver's token (or its lack of one)


def driver_token() -> str | None:
    """Where this driver's Ray token comes from ("RAY_AUTH_TOKEN", a file), or None when it sends none
    (RAY_AUTH_MODE is not "token", or no token is set)."""
    if os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
        return None
    if os.environ.get("RAY_AUTH_TOKEN"):
        return "RAY_AUTH_TOKEN"
    for path in (os.environ.get("RAY_AUTH_TOKEN_PATH"), os.path.expanduser("~/.ray/auth_token")):
        if path and os.path.isfile(path):
            return path
    return None


def token_hint() -> str:
    """Why a head that accepts connections may not answer, as far as the driver's own token settings tell."""
    source = driver_token()
    if source is None:
        return f"a cluster with token authentication ignores a driver without its token, and this one has none: " \
               f"{TOKEN_HOWTO}"
    return f"this driver's token (from {source}) may not be the cluster's: {TOKEN_HOWTO}"


def token_refused(target: str) -> str:
    """The message for a head that refused the driver's token (Ray logged AUTH_REFUSED)."""
    source = driver_token()
    given = "this driver sent none" if source is None else f"the one this driver sent (from {source}) is not the cluster's"
    return f"the Ray cluster at {target} refused this driver: it needs the cluster's token, and {given}; {TOKEN_HOWTO}"


# ---------------------------------------------------------------- the pool
def ray_engine(todo: Collection[Chunk], spec: RecognizerSpec, fps: float, workers: int | None = None,
               address: str | None = None, describe=None,
               node_timeout: float = LOST_TIMEOUT_S) -> Iterator[tuple[Chunk, list]]:
    """Yield (chunk, [(task key, rows)]) as chunks finish; `todo`: a list, or ledger.Todo (read as the actors take
    its chunks). Connects to `address` (or RAY_ADDRESS, or starts a local
    instance); `workers`: actors in the pool (default: the cluster's CPUs). A driver already connected is reused.
    `node_timeout`: seconds with no actor able to run (nodes lost) before ClusterError."""
    ray = import_ray()
    if not todo:
        return
    # the address as the user gave it, read before ray.init, which rewrites RAY_ADDRESS to the address it resolved
    where = address or os.environ.get("RAY_ADDRESS") or "this machine"
    started = not ray.is_initialized()
    if started:
        connect(ray, address)
    pool = None
    head_lost = False
    try:
        n = workers or max(1, int(ray.cluster_resources().get("CPU", 1) // ACTOR_CPUS))
        pool = _Pool(ray, spec, fps, min(n, len(todo)), stand_in(describe or spec.describe(), features=spec.features),
                     where, node_timeout)
        yield from pool.run(Pending(todo))
    except HeadLostError:
        head_lost = True
        raise
    finally:
        if pool is not None and not head_lost:  # with the head gone, these calls would wait on it
            pool.stop()
        if started and not head_lost:
            ray.shutdown()


class HeadLostError(ClusterError):
    """The head node's GCS stopped answering."""


def _answers(address: str) -> bool:
    host, port = _host_port(address)
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


class _Slot:
    def __init__(self, actor):
        self.actor = actor
        self.started = actor.node.remote()             # answers once the Recognizer is loaded
        self.node: tuple[str, str] | None = None   # (id, address), once loaded
        self.sent: deque = deque()                  # (ref, chunk), in the order the actor takes them
        self.dead = False


class _Pool:
    def __init__(self, ray, spec, fps, size, stub, where, node_timeout):
        self.ray, self.stub, self.where, self.node_timeout = ray, stub, where, node_timeout
        self.stub_schema = spec.schema(stub)
        # restarts are the pool's to make (a new actor, placed where there is room), not Ray's
        self.actor_class = ray.remote(num_cpus=ACTOR_CPUS, max_restarts=0, max_task_retries=0)(ChunkWorker)
        self.spec, self.fps = spec, fps
        self.slots = [self._new() for _ in range(size)]
        self.lost: dict[str, str] = {}   # node id -> address, of the nodes that went away
        self.died = (ray.exceptions.RayActorError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
                     ray.exceptions.ObjectLostError, ray.exceptions.OwnerDiedError)
        self.used: dict[str, str] = {}   # node id -> address, of every node an actor of the pool ran on
        self.lost_workers: dict[str, str] = {}   # node id -> address, of the nodes where a ready actor died
        self.extra: list[tuple[Chunk, list]] = []   # results to yield found by _died: finished, or error rows
        try:
            self.gcs = ray.get_runtime_context().gcs_address
        except Exception:  # noqa: BLE001 -- no health check then
            self.gcs = None
        self.gcs_checked, self.gcs_silent_since = time.monotonic(), None

    def _new(self) -> _Slot:
        return _Slot(self.actor_class.options(scheduling_strategy="SPREAD").remote(self.spec, self.fps))

    def stop(self) -> None:
        for s in self.slots:
            try:
                self.ray.kill(s.actor, no_restart=True)
            except Exception:  # noqa: BLE001 -- the cluster may be gone already: nothing left to stop
                pass

    def run(self, pending: Pending) -> Iterator[tuple[Chunk, list]]:
        ray = self.ray
        died = self.died
        last_alive = time.monotonic()
        while pending or any(s.sent for s in self.slots):
            for s in self.slots:
                while s.node is not None and len(s.sent) < IN_FLIGHT and pending:
                    if s.sent and (s.sent[-1][1].attempt or pending.first().attempt):
                        break  # a retried task travels alone: when its actor dies, it is the one at fault (an actor
                        # that dies may take the answer of the task it finished just before with it)
                    chunk = pending.popleft()
                    s.sent.append((s.actor.run.remote(chunk), chunk))
            waiting = {}
            for s in self.slots:
                if s.node is None:
                    waiting[s.started] = s
                for ref, _ in s.sent:
                    waiting[ref] = s
            try:
                ready, _ = ray.wait(list(waiting), num_returns=1, timeout=POLL_S)
            except (ray.exceptions.RaySystemError, ConnectionError) as e:
                raise ClusterError(f"lost the Ray cluster at {self.where}: {e}; {RESUME}") from e
            for ref in ready:
                s = waiting[ref]
                if s.dead:
                    continue
                if s.node is None and ref == s.started:
                    try:
                        node_id = ray.get(ref)
                        s.node = (node_id, self._address(node_id))
                        self.used[node_id] = s.node[1]
                    except died as e:
                        self._died(s, e, pending)
                    except ray.exceptions.RayTaskError as e:  # the Recognizer could not be loaded: a bug or a setup
                        raise RuntimeError(f"a Ray worker could not load the recognizer: {e}") from None
                    continue
                i = next(i for i, (r, _) in enumerate(s.sent) if r == ref)
                chunk = s.sent[i][1]
                try:
                    results, unseen = ray.get(ref)
                except died as e:
                    self._died(s, e, pending)
                    continue
                del s.sent[i]
                if unseen:
                    self._check_seen(chunk, s)
                yield chunk, results
            while self.extra:
                yield self.extra.pop(0)
            now = time.monotonic()
            self._check_head(now)
            if any(s.node is not None and not s.dead for s in self.slots):
                last_alive = now
            elif now - last_alive > self.node_timeout:
                alive = {n["NodeID"]: n["Alive"] for n in self._nodes()}
                self.lost.update((k, v) for k, v in self.used.items() if not alive.get(k, False))
                where = {**self.lost_workers, **self.lost}  # Ray may not have declared a node dead yet
                lost = ", ".join(sorted(set(where.values()))) or "none"
                raise ClusterError(f"no Ray worker could run for {self.node_timeout:g} s on the cluster at {self.where} "
                                   f"(workers lost on node {lost}; a worker needs {ACTOR_CPUS:g} CPU free on a "
                                   f"node); {RESUME} once the cluster has room")

    def _nodes(self) -> list[dict]:
        """ray.nodes(), which waits on the GCS: HeadLostError rather than a wait when the GCS refuses connections."""
        if self.gcs is not None and not _answers(self.gcs):
            raise HeadLostError(f"lost the Ray cluster at {self.where}: its head (GCS at {self.gcs}) does not answer; "
                                f"{RESUME} once the cluster is back")
        return self.ray.nodes()

    def _check_head(self, now: float) -> None:
        """HeadLostError once the GCS has refused connections for HEAD_TIMEOUT_S (checked every 2 s)."""
        if self.gcs is None or now - self.gcs_checked < 2:
            return
        self.gcs_checked = now
        if _answers(self.gcs):
            self.gcs_silent_since = None
        elif self.gcs_silent_since is None:
            self.gcs_silent_since = now
        elif now - self.gcs_silent_since > HEAD_TIMEOUT_S:
            raise HeadLostError(f"lost the Ray cluster at {self.where}: its head (GCS at {self.gcs}) has not "
                                f"answered for {HEAD_TIMEOUT_S} s; {RESUME} once the cluster is back")

    def _address(self, node_id: str) -> str:
        """The node's address as the cluster knows it (the one `ray start --node-ip-address` gave)."""
        for n in self._nodes():
            if n["NodeID"] == node_id:
                return n.get("NodeManagerAddress") or node_id[:8]
        return node_id[:8]

    def _check_seen(self, chunk: Chunk, s: _Slot) -> None:
        here = [t for t in chunk.tasks if os.path.exists(t.file)]
        if here:
            t = here[0]
            raise ClusterError(f"the Ray node at {s.node[1]} cannot open the inputs: {t.source} ({t.file}) exists "
                               f"on this machine, not there. Every node must see the inputs at the same paths "
                               f"(shared storage): docs/batch.md; {RESUME} once they do")

    def _node_alive(self, node_id: str | None, wait: float = 0.0) -> bool:
        """Whether the node is alive still, asked again for `wait` seconds (an actor's death can be reported just
        before its node's)."""
        if node_id is None:
            return True
        deadline = time.monotonic() + wait
        while True:
            alive = {n["NodeID"]: n["Alive"] for n in self._nodes()}
            if not alive.get(node_id, False):
                return False
            if time.monotonic() >= deadline:
                return True
            time.sleep(0.5)

    def _died(self, s: _Slot, e: BaseException, pending: Pending) -> None:
        """Its chunks: back to the queue as they were if its node is gone; else the one it was working on retried
        task by task (or, on a retry already, error rows), the rest back to the queue. A new actor takes its place."""
        s.dead = True
        self.slots[self.slots.index(s)] = self._new()
        still = deque()
        for ref, chunk in s.sent:  # chunks it finished before it died, not collected yet
            if self.ray.wait([ref], timeout=0)[0]:
                try:
                    results, _ = self.ray.get(ref)
                except self.died:
                    pass
                else:
                    self.extra.append((chunk, results))
                    continue
            still.append((ref, chunk))
        s.sent = still
        node_id, addr = s.node or (None, None)
        retried = bool(s.sent) and s.sent[0][1].attempt > 0  # about to become an error row: make sure
        if not self._node_alive(node_id, NODE_DEATH_WAIT_S if retried else 0.0):
            self.lost[node_id] = addr
            pending.extendleft(c for _, c in reversed(s.sent))
            return
        if s.node is None:
            if getattr(e, "actor_init_failed", False):  # the Recognizer could not be loaded: a bug or a setup
                raise RuntimeError(f"a Ray worker could not load the recognizer: {e}") from None
            # placed on a node that has just gone (Ray reports nodes lost after its health checks, up to ~30 s):
            # try again, a little later; with no actor running for node_timeout, the run stops
            time.sleep(0.5)
            return
        self.lost_workers[node_id] = addr
        if not s.sent:
            return
        held = [c for _, c in s.sent]
        chunk = held.pop(0)  # the one it was working on; those behind it never started
        pending.extendleft(reversed(held))
        if chunk.attempt == 0:
            pending.extendleft(Chunk(t.index, (t,), 1) for t in reversed(chunk.tasks))
        else:
            self.extra.append((chunk, [(t.key, [error_row(self.stub, self.stub_schema, t, f"{t.source}: a Ray worker died on this "
                                                                          f"input, again when it was retried alone")])
                                        for t in chunk.tasks]))
