"""`ferkit batch --engine ray` against a real two-node Ray cluster on loopback (`ray start --head` plus a second
`ray start --address` node, one CPU each), started once for the module and stopped by process id afterwards: it
gives the rows the local engine gives, from relative paths too; a wrong address fails fast; inputs the nodes cannot
see stop the run; losing the second node mid-run (the module's last test) loses nothing."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from tests.test_batch import FACES, folder, local_run  # noqa: F401  (fixtures: the test folder and the local engine's run)

from ferkit import batch
from ferkit.batch.output import read_rows
from ferkit.batch.ray_engine import _answers

ROOT = Path(__file__).resolve().parents[1]
FACE = FACES[0]

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
    for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


SUMMARY = ("inputs: ", "faces: ", "this run: ", "wrote ", "errors: ")


def _cli(*args, cwd=ROOT, env=None, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "ferkit.batch", *map(str, args), "--no-progress"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, **kw)


def test_a_local_ray_instance_on_this_machine_runs_with_nothing_but_ferkit_on_screen(folder, tmp_path):  # noqa: F811
    """No address: Ray starts on this machine with its CPUs (2 here), one actor per CPU. The terminal gets ferkit's
    summary alone: Ray's own lines (its C++ core's, the raylet's) go to a log file. A process of its own, before the
    module's cluster exists to be found (and so that this driver's Ray settings do not outlive it)."""
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env["TMPDIR"] = logs = tempfile.mkdtemp(prefix="fk", dir="/tmp")  # short: Ray keeps its sockets under it too
    try:
        proc = subprocess.run([sys.executable, "-m", "ferkit.batch", str(folder / "faces"), str(folder / "clip.mp4"),
                               "--out", str(tmp_path / "r.csv"), "--engine", "ray", "--no-progress"], cwd=ROOT,
                              env=env, capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stderr
        lines = proc.stderr.splitlines()
        assert lines and all(ln.startswith(SUMMARY) for ln in lines), proc.stderr  # no log named: nothing went wrong
        assert not list(Path(logs).glob("ferkit-batch-ray-*.log"))  # and none kept
    finally:
        shutil.rmtree(logs, ignore_errors=True)
    assert "inputs: 4 (4 ok)" in proc.stderr and "this run: 4 tasks" in proc.stderr


def test_a_driver_without_the_clusters_token_or_with_a_wrong_one_is_told_it_is_the_token(folder, tmp_path):  # noqa: F811
    """A one-node head with token authentication: a driver with no token, and one with a wrong token, exit 5 saying
    the cluster refused its token and how to pass it (not "a wrong port, or a proxy"), keeping Ray's log and naming
    it; the right token runs, leaving no log."""
    port, token = _free_port(), "0123456789abcdef0123456789abcdef"
    temp = tempfile.mkdtemp(prefix="raytk", dir="/tmp")
    logs = Path(tempfile.mkdtemp(prefix="fk", dir="/tmp"))  # short: a driver's Ray keeps sockets under TMPDIR
    ray_cli = Path(sys.executable).with_name("ray")
    with open(Path(temp) / "head.log", "w") as fh:
        head = subprocess.Popen([str(ray_cli), "start", "--head", "--block", "--port", str(port), "--num-cpus", "1",
                                 "--node-ip-address", "127.0.0.1", "--temp-dir", temp, "--include-dashboard", "false",
                                 "--disable-usage-stats"], stdout=fh, stderr=subprocess.STDOUT, start_new_session=True,
                                env={**os.environ, "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token})
    try:
        address = f"127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while not _answers(address) and time.monotonic() < deadline:
            time.sleep(1)
        base = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")} | {"TMPDIR": str(logs)}
        runs = {"none": {}, "wrong": {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": "f" * 32}}
        for name, extra in runs.items():
            t0 = time.monotonic()
            proc = subprocess.run([sys.executable, "-m", "ferkit.batch", str(folder / FACE), "--out",
                                   str(tmp_path / f"{name}.csv"), "--engine", "ray", "--address", address,
                                   "--no-progress"], cwd=ROOT, env=base | extra, capture_output=True, text=True,
                                  timeout=120)
            err = proc.stderr
            assert proc.returncode == 5 and time.monotonic() - t0 < 45, (name, err)
            assert err.startswith(f"ferkit: the Ray cluster at {address} refused this driver: it needs the cluster's "
                                  f"token, and {'this driver sent none' if name == 'none' else 'the one this driver'}"), err
            assert "RAY_AUTH_MODE=token and RAY_AUTH_TOKEN=" in err and "proxy" not in err, err
            log = err.split("Ray's own messages: ")[1].strip()
            assert Path(log).is_file() and "InvalidAuthToken" in Path(log).read_text()
        for log in logs.glob("ferkit-batch-ray-*.log"):
            log.unlink()
        proc = subprocess.run([sys.executable, "-m", "ferkit.batch", str(folder / FACE), "--out",
                               str(tmp_path / "ok.csv"), "--engine", "ray", "--address", address, "--no-progress"],
                              cwd=ROOT, env=base | {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": token},
                              capture_output=True, text=True, timeout=180)
        assert proc.returncode == 0 and "Ray's own messages" not in proc.stderr, proc.stderr
        assert not list(logs.glob("ferkit-batch-ray-*.log"))
    finally:
        _stop(head)
        shutil.rmtree(temp, ignore_errors=True)
        shutil.rmtree(logs, ignore_errors=True)


@pytest.fixture(scope="module")
def cluster():
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="rayfk", dir="/tmp")  # short: Ray's socket paths must stay under 108 bytes
    address = f"127.0.0.1:{port}"
    head = _start("--head", "--port", str(port), "--temp-dir", temp, "--include-dashboard", "false",
                  "--resources", '{"head": 1}', temp=temp, log="head.log")
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
        state = SimpleNamespace(address=address, node=node, temp=temp, head=head)
        yield state   # a test may start the second node again: state.node
        if state.node is not node:
            _stop(state.node)
    finally:
        for proc in (node, head):
            if proc is not None:
                _stop(proc)



def test_ray_engine_on_two_nodes_gives_the_local_engine_rows(cluster, folder, local_run, tmp_path):  # noqa: F811
    out = tmp_path / "ray.jsonl"
    summary = batch.run([folder], out=out, engine="ray", address=cluster.address, segment_samples=4)
    assert read_rows(out)[1] == local_run[2]
    assert summary.inputs == local_run[1].inputs and summary.faces == local_run[1].faces
    assert not Path(str(out) + ".parts").exists()


def test_iter_rows_on_ray_streams_the_same_rows(cluster, folder, local_run):  # noqa: F811
    rows = list(batch.iter_rows([folder], engine="ray", address=cluster.address, segment_samples=4))
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
        for _, results in ray_engine(list(chunks(plan(sources), 4)), helpers.CrashingSpec(), 5.0, address=cluster.address):
            got.update(results)
    finally:
        cloudpickle.unregister_pickle_by_value(helpers)
    assert [r["status"] for r in got[sources[0]]] == ["ok"] and [r["status"] for r in got[sources[2]]] == ["ok"]
    assert [r["status"] for r in got[sources[3]]] == ["no_face"]
    (bad,) = got[sources[1]]
    assert bad["status"] == "error" and "a Ray worker died on this input" in bad["message"]


def test_relative_paths_from_another_directory_give_the_local_rows(cluster, folder, local_run, tmp_path,  # noqa: F811
                                                                   monkeypatch):
    """The nodes were started in the repository; the driver runs in the inputs' parent folder and names them
    relatively: the workers open the absolute paths made on the driver, the rows keep the paths as given."""
    monkeypatch.chdir(folder.parent)
    out = tmp_path / "relative.jsonl"
    batch.run([folder.name], out=out, engine="ray", address=cluster.address, segment_samples=4)
    rows = read_rows(out)[1]
    assert all(r["source"].startswith(f"{folder.name}/") for r in rows)
    for r in rows:
        r["source"] = str(folder.parent / r["source"])
        r["message"] = r["message"] and r["message"].replace(f"{folder.name}/", f"{folder}/")
    assert rows == read_rows(local_run[0])[1]


def test_a_wrong_address_fails_within_30_s_naming_it(folder, tmp_path):  # noqa: F811
    """A closed port, a name that does not resolve, and an address that takes connections but where no Ray head
    answers (TEST-NET-3: silent, or answered by a proxy): each fails within 30 s, exit 5, naming the address as
    typed, and leaves nothing behind. Run side by side: the last waits the whole bound."""
    addresses = (f"127.0.0.1:{_free_port()}", "no-such-host.invalid:6379", "203.0.113.1:6379")
    t0 = time.monotonic()
    runs = [_cli(folder / "faces", "--out", tmp_path / f"r{i}.csv", "--engine", "ray", "--address", address)
            for i, address in enumerate(addresses)]
    for address, proc in zip(addresses, runs):
        _, err = proc.communicate(timeout=120)
        assert time.monotonic() - t0 < 30 and proc.returncode == 5, (address, err)
        assert err.startswith(f"ferkit: cannot reach the Ray cluster at {address}: "), err
    assert sorted(tmp_path.iterdir()) == []   # a failed start leaves no OUT.parts/, no lock, no log


def test_inputs_the_nodes_cannot_see_stop_the_run(cluster, folder, tmp_path):  # noqa: F811
    """The driver alone sees the inputs (a file system mounted in its own mount namespace, as on a laptop driving a
    remote cluster): the first chunk stops the run with one message (exit 5), not an error row per input."""
    hidden = tmp_path / "private"
    hidden.mkdir()
    script = (f"mount -t tmpfs none {hidden} && cp -r {folder}/faces {hidden}/ && "
              f"exec {sys.executable} -m ferkit.batch {hidden}/faces --out {tmp_path}/r.csv --engine ray "
              f"--address {cluster.address} --no-progress")
    probe = subprocess.run(["unshare", "--mount", "--propagation", "private", "true"], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"unshare --mount is not allowed here: {probe.stderr.decode().strip()}")
    proc = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script], cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 5, proc.stderr
    assert "cannot open the inputs" in proc.stderr and "same paths (shared storage)" in proc.stderr, proc.stderr
    assert not (tmp_path / "r.csv").exists() and not list(tmp_path.glob("r.csv.parts/part-*"))


def _raylet(node: subprocess.Popen, program: str = "raylet/raylet") -> int:
    """The process id of the raylet (or another `program`) that `ray start --block` (process `node`) runs."""
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1]) == node.pid \
                    and program in (entry / "cmdline").read_text():
                return int(entry.name)
        except (OSError, ValueError, IndexError):
            continue
    raise AssertionError(f"{program} of process {node.pid} was not found")


def _wait_for_parts(proc, out: Path, n: int) -> None:
    parts = Path(str(out) + ".parts")
    deadline = time.monotonic() + 120
    while len(list(parts.glob("part-*"))) < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before the node could be lost"


def _rows_once(out: Path, photos: Path) -> None:
    rows = read_rows(out)[1]
    keys = [(r["source"], r["face"]) for r in rows]
    assert len(keys) == len(set(keys)) and {r["source"] for r in rows} == {str(p) for p in photos.iterdir()}
    assert all(r["status"] == "ok" for r in rows)


def test_losing_a_node_mid_run_loses_nothing(cluster, tmp_path):
    """kill -9 of the second node's raylet mid-run, twice (the node started again between):
    1. the head's CPU taken by another job: no worker can run; the run stops after --node-timeout (exit 5), naming
       the lost node and how to resume, and the rerun, once the head has room, leaves every input's rows once;
    2. the head free: the run goes on there (a new actor in the lost one's place) and finishes, every row once.
    Last in the module: the node stays dead."""
    import cv2

    from tests.test_batch import astronaut_frame

    photos = tmp_path / "photos"
    photos.mkdir()
    frame = astronaut_frame()
    for i in range(200):   # enough that a quiet machine is still at it when the node goes
        cv2.imwrite(str(photos / f"p{i:03d}.jpg"), np.roll(frame, i, axis=1))

    def run(out):
        return _cli(photos, "--out", out, "--engine", "ray", "--address", cluster.address, "--workers", "2",
                    "--batch-size", "1", "--node-timeout", "10")

    ray.init(address=cluster.address, log_to_driver=False, logging_level="ERROR")
    try:
        blocker = ray.remote(num_cpus=1, resources={"head": 1})(_Blocker).remote()
        ray.get(blocker.ready.remote())   # the head's one CPU is taken: the run's workers all go to the second node
        (second,) = [n["NodeManagerAddress"] for n in ray.nodes() if n["Alive"] and "head" not in n["Resources"]]
        out = tmp_path / "blocked.csv"
        code, err, seconds = _kill_second_node_mid_run(cluster, run(out), out, 2)
        assert code == 5 and seconds < 10 + 50, err
        assert "no Ray worker could run for 10 s" in err and f"workers lost on node {second};" in err, err
        assert "rerun the same command to resume" in err and Path(str(out) + ".parts").is_dir(), err
        ray.kill(blocker)
    finally:
        ray.shutdown()
    rerun = run(out)
    _, err = rerun.communicate(timeout=300)
    assert rerun.returncode == 0 and "tasks already done" in err, err
    _rows_once(out, photos)

    cluster.node = _start("--address", cluster.address, temp=cluster.temp, log="node2.log")
    _wait_for_nodes(cluster.address, 2)
    out = tmp_path / "r.csv"
    code, err, seconds = _kill_second_node_mid_run(cluster, run(out), out, 4)
    assert code == 0 and seconds < 60, err
    _rows_once(out, photos)


def _kill_second_node_mid_run(cluster, proc, out, parts: int) -> tuple[int, str, float]:
    """Once the run `proc` has written `parts` parts, kill -9 the second node's raylet -> the run's exit status,
    its stderr and the seconds it took to end after the kill."""
    _wait_for_parts(proc, out, parts)
    os.kill(_raylet(cluster.node), signal.SIGKILL)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=180)
    return proc.returncode, err, time.monotonic() - t0


class _Blocker:
    def ready(self):
        return True


def _wait_for_nodes(address: str, n: int) -> None:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        ray.init(address=address, log_to_driver=False, logging_level="ERROR")
        alive = sum(node["Alive"] for node in ray.nodes())
        ray.shutdown()
        if alive == n:
            return
        time.sleep(1)
    raise AssertionError(f"{n} nodes did not come up")


def test_losing_the_head_mid_run_exits_5_with_a_message(cluster, tmp_path):
    """kill -9 of the head's GCS mid-run: the run stops with exit 5 and a message saying how to resume, before Ray
    would end the driver itself (60 s, exit 1, nothing on the terminal); or, where the actors finish the work
    before the head's raylet follows its GCS, exit 0 with every row. Last: it ends the module's cluster."""
    import cv2

    from tests.test_batch import astronaut_frame

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(200):
        cv2.imwrite(str(photos / f"p{i:03d}.jpg"), np.roll(astronaut_frame(), i, axis=1))
    out = tmp_path / "r.csv"
    proc = _cli(photos, "--out", out, "--engine", "ray", "--address", cluster.address, "--batch-size", "1")
    _wait_for_parts(proc, out, 3)
    os.kill(_raylet(cluster.head, "gcs_server"), signal.SIGKILL)
    t0 = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert proc.returncode in (0, 5) and time.monotonic() - t0 < 45, err
    if proc.returncode == 5:
        assert err.startswith(f"ferkit: lost the Ray cluster at {cluster.address}: its head") and \
            "rerun the same command to resume" in err, err
        assert list(Path(str(out) + ".parts").glob("part-*")) and not out.exists()
    else:
        _rows_once(out, photos)
