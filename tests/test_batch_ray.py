"""`ferkit batch --engine ray` against a real two-node Ray cluster on loopback (`ray start --head` plus a second
`ray start --address` node, one CPU each), started once for the module and stopped by process id afterwards: it
gives the rows the local engine gives."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from tests.test_batch import folder, local_run  # noqa: F401  (fixtures: the test folder and the local engine's run)

from ferkit import batch
from ferkit.batch.output import read_rows

pytestmark = pytest.mark.slow
ray = pytest.importorskip("ray", reason='the Ray engine needs Ray: pip install "ferkit[ray]"')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(*args, temp: str, log: str) -> subprocess.Popen:
    """`ray start --block` for one node. Token authentication off: a loopback cluster, and the driver (this
    process, whose Ray read its settings at import) connects without a token."""
    ray_cli = Path(sys.executable).with_name("ray")
    with open(Path(temp) / log, "w") as fh:
        return subprocess.Popen([str(ray_cli), "start", "--block", "--num-cpus", "1", "--node-ip-address", "127.0.0.1",
                                 "--disable-usage-stats", *args], stdout=fh, stderr=subprocess.STDOUT,
                                start_new_session=True, env={**os.environ, "RAY_AUTH_MODE": "disabled"})


def _stop(proc: subprocess.Popen) -> None:
    """The node's process group (ray start --block and the daemons it started), by its id."""
    for sig, wait in ((signal.SIGTERM, 30), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


def test_a_local_ray_instance_on_this_machine_does_not_deadlock(folder, tmp_path, monkeypatch):  # noqa: F811
    """No address: Ray starts on this machine with its CPUs (2 here), one actor per CPU, each asking 0.8 of one, so
    Ray Data's own tasks still find room. First in the file: before the module's cluster exists to be found."""
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    summary = batch.run([folder / "faces", folder / "clip.mp4"], out=tmp_path / "r.csv", engine="ray",
                        segment_samples=4)
    assert summary.inputs == {"ok": 4} and summary.tasks_done == 3 + 4


@pytest.fixture(scope="module")
def cluster():
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rayfk", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    address = f"127.0.0.1:{port}"
    head = _start("--head", "--port", str(port), "--temp-dir", temp, "--include-dashboard", "false", temp=temp,
                  log="head.log")
    node = None
    try:
        time.sleep(5)
        node = _start("--address", address, temp=temp, log="node.log")
        deadline = time.monotonic() + 180
        while True:
            try:
                ray.init(address=address, log_to_driver=False, logging_level="ERROR")
                alive = [n for n in ray.nodes() if n["Alive"]]
                cpus = ray.cluster_resources().get("CPU", 0)
                ray.shutdown()
                if len(alive) == 2 and cpus == 2:
                    break
            except (ConnectionError, RuntimeError):
                ray.shutdown()
            if time.monotonic() > deadline or head.poll() is not None or node.poll() is not None:
                logs = "\n".join(f"{n}: {(Path(temp) / n).read_text()[-1500:]}" for n in ("head.log", "node.log"))
                pytest.fail(f"the two-node Ray cluster at {address} did not come up:\n{logs}")
            time.sleep(2)
        yield address
    finally:
        for proc in (node, head):
            if proc is not None:
                _stop(proc)



def test_ray_engine_on_two_nodes_gives_the_local_engine_rows(cluster, folder, local_run, tmp_path):  # noqa: F811
    out = tmp_path / "ray.jsonl"
    summary = batch.run([folder], out=out, engine="ray", address=cluster, segment_samples=4)
    assert read_rows(out)[1] == local_run[2]
    assert summary.inputs == local_run[1].inputs and summary.faces == local_run[1].faces
    assert not Path(str(out) + ".parts").exists()


def test_iter_rows_on_ray_streams_the_same_rows(cluster, folder, local_run):  # noqa: F811
    rows = list(batch.iter_rows([folder], engine="ray", address=cluster, segment_samples=4))
    assert sorted(map(repr, rows)) == sorted(map(repr, local_run[2]))  # chunks arrive in any order


def test_a_ray_worker_that_dies_is_replaced_and_its_input_reported(cluster, folder, tmp_path):  # noqa: F811
    import cv2
    import numpy as np
    import tests.test_batch as helpers
    from ray import cloudpickle

    from ferkit.batch.inputs import chunks, plan
    from ferkit.batch.ray_engine import ray_engine

    cv2.imwrite(str(tmp_path / "poison.png"), np.zeros((100, 333, 3), np.uint8))   # kills the worker that reads it
    sources = [str(folder / "faces/a.jpg"), str(tmp_path / "poison.png"), str(folder / "faces/b.png"),
               str(folder / "blank.jpg")]
    cloudpickle.register_pickle_by_value(helpers)  # the crashing Recognizer travels to the nodes by value
    try:
        got = {}
        for _, results in ray_engine(chunks(plan(sources), 4), helpers.CrashingSpec(), 5.0, address=cluster):
            got.update(results)
    finally:
        cloudpickle.unregister_pickle_by_value(helpers)
    assert [r["status"] for r in got[sources[0]]] == ["ok"] and [r["status"] for r in got[sources[2]]] == ["ok"]
    assert [r["status"] for r in got[sources[3]]] == ["no_face"]
    (bad,) = got[sources[1]]
    assert bad["status"] == "error" and "a Ray worker died on this input" in bad["message"]
