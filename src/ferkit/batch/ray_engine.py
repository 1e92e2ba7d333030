"""The Ray engine: the same chunks through a Ray Data pipeline, on a local Ray instance or a cluster.

from_items (one chunk an item and a block) -> map_batches over an actor pool (one Recognizer per actor, one chunk
a call, so the classifier sees the same batches as in the local engine) -> rows back to the driver, which writes
them exactly as the local engine's are written. Actors ask for ACTOR_CPUS of a CPU, not a whole one: on a small
machine, actors holding every CPU would starve Ray Data's own tasks (a known deadlock).
"""
from __future__ import annotations

import json
import pickle
import warnings
from typing import Iterator

from .inputs import Chunk
from .work import RecognizerSpec, process_chunk

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
        for row in ds.iter_rows():
            chunk = by_id[int(row["id"])]
            yield chunk, [(key, rows) for key, rows in json.loads(row["results"])]
    finally:
        if started:
            ray.shutdown()
