"""The Ray engine: the same chunks through a Ray Data pipeline, on a local Ray instance or a cluster.

from_items (one chunk an item and a block) -> map_batches over an actor pool (one Recognizer per actor, one chunk
a call, so the classifier sees the same batches as in the local engine) -> rows back to the driver, which writes
them exactly as the local engine's are written. An actor that dies is restarted and its chunk retried once; a
chunk that kills it again stops the pipeline, and the tasks not yet done are run one by one as plain Ray tasks, a
task that kills its worker again becoming an error row. Actors ask for ACTOR_CPUS of a CPU, not a whole one: on a
small machine, actors holding every CPU would starve Ray Data's own tasks (a known deadlock).
"""
from __future__ import annotations

import json
import pickle
import warnings
from typing import Iterator

from .inputs import Chunk
from .work import RecognizerSpec, error_row, process_chunk, stand_in

ACTOR_CPUS = 0.8
INSTALL = 'the ray engine needs Ray: pip install "ferkit[ray]"'


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401
    except ImportError:
        raise ImportError(INSTALL) from None
    return ray


class ChunkWorker:
    """A Ray Data actor: one Recognizer, built once."""

    def __init__(self, spec: RecognizerSpec, fps: float):
        self.rec, self.fps = spec.load(), fps

    def __call__(self, batch: dict) -> dict:
        chunks = [pickle.loads(blob) for blob in batch["chunk"]]
        return {"id": [c.id for c in chunks],
                "results": [json.dumps(process_chunk(self.rec, c, self.fps)) for c in chunks]}


def ray_engine(todo: list[Chunk], spec: RecognizerSpec, fps: float, workers: int | None = None,
               address: str | None = None) -> Iterator[tuple[Chunk, list]]:
    """Yield (chunk, [(task key, rows)]) as chunks finish. Connects to `address` (or RAY_ADDRESS, or starts a local
    instance); `workers`: actors in the pool (default: the cluster's CPUs). A driver already connected is reused."""
    ray = import_ray()
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR", configure_logging=False)
    try:
        ctx = ray.data.DataContext.get_current()
        ctx.enable_progress_bars = False  # ferkit's own bar counts images and frames
        ctx.print_on_execution_start = False
        by_id = {c.id: c for c in todo}
        if not todo:
            return
        actors = workers or max(1, int(ray.cluster_resources().get("CPU", 1)))
        actors = min(actors, len(todo))
        ds = ray.data.from_items([{"chunk": pickle.dumps(c)} for c in todo], override_num_blocks=len(todo))
        with warnings.catch_warnings():  # extra remote args are Ray 2.60's documented way to bound retries
            warnings.simplefilter("ignore", DeprecationWarning)
            # an actor that dies is restarted; its chunk is retried once, then the pipeline fails (kept parts remain)
            ds = ds.map_batches(ChunkWorker, fn_constructor_args=(spec, fps), batch_size=1, batch_format="numpy",
                                compute=ray.data.ActorPoolStrategy(size=actors), num_cpus=ACTOR_CPUS,
                                max_restarts=-1, max_task_retries=1)
        seen: set[int] = set()
        try:
            for row in ds.iter_rows():
                chunk = by_id[int(row["id"])]
                seen.add(chunk.id)
                yield chunk, [(key, rows) for key, rows in json.loads(row["results"])]
        except Exception as e:  # noqa: BLE001 -- only a dead worker is handled here; anything else is raised again
            if not _worker_died(ray, e):
                raise
            left = [Chunk(t.index, (t,), 1) for c in todo if c.id not in seen for t in c.tasks]
            yield from _one_by_one(ray, left, spec, fps)
    finally:
        if started:
            ray.shutdown()


def _worker_died(ray, e: BaseException) -> bool:
    """Whether `e` (or what it wraps) says a Ray worker process or actor died, rather than code raising."""
    died = (ray.exceptions.ActorDiedError, ray.exceptions.WorkerCrashedError, ray.exceptions.NodeDiedError,
            ray.exceptions.RayActorError)
    seen = set()
    while e is not None and id(e) not in seen:
        if isinstance(e, died):
            return True
        seen.add(id(e))
        e = e.__cause__ or e.__context__
    return False


def _run_one(spec: RecognizerSpec, chunk: Chunk, fps: float) -> str:
    return json.dumps(process_chunk(spec.load(), chunk, fps))


def _one_by_one(ray, left: list[Chunk], spec: RecognizerSpec, fps: float) -> Iterator[tuple[Chunk, list]]:
    """After a chunk killed its actor twice (the pipeline stops there): every task not yet done, alone, as a Ray task
    of its own, once; one whose worker dies again becomes an error row."""
    stub = stand_in(*spec.describe(), features=spec.features)
    run_one = ray.remote(num_cpus=ACTOR_CPUS, max_retries=0)(_run_one)
    pending = {run_one.remote(spec, c, fps): c for c in left}
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        chunk = pending.pop(ready[0])
        try:
            yield chunk, [(key, rows) for key, rows in json.loads(ray.get(ready[0]))]
        except Exception as e:  # noqa: BLE001 -- as above
            if not _worker_died(ray, e):
                raise
            yield chunk, [(t.key, [error_row(stub, t, f"{t.source}: a Ray worker died on this input, again when "
                                                      f"it was retried alone")]) for t in chunk.tasks]
