"""INT8 models on this CPU: accuracy and latency under the three ways ONNX Runtime can run their weights.

    python benchmarks/int8_kernels.py [--data ../shared/data/fer2013] [--threads 2] [--repeat 200] [--model NAME...]

- `ort int8`: the file as shipped, ONNX Runtime's own fused kernels (uint8 activations x int8 weights). On x86
  CPUs without VNNI these add pairs of products into 16 bits with saturation, so accuracy drops there.
- `uint8 weights`: what ferkit's Recognizer runs on such CPUs (`recognizer.uint8_weights`): the same numbers
  stored as uint8, run by the exact u8u8 kernels.
- `float q/dq`: the fusion turned off (`session.disable_quant_qdq`): the quantized weights run in float32, exact
  and slow; the reference the other two should match.

Accuracy is on FER-2013 PublicTest and PrivateTest (FER-2013 models) or the FER+ majority labels (FER+ models),
through raw ONNX Runtime sessions on the shared preprocessing; latency is one face per call (median).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import onnxruntime as ort

from ferkit import EMOTIONS
from ferkit.data import load_dataset, read_ferplus_votes
from _data import fer2013  # --data, $FERKIT_DATA or ../shared/data/fer2013 (benchmarks/_data.py)
from ferkit.evaluate import fer2013_set, ferplus_set, machine_description
from ferkit.preprocess import to_model_input
from ferkit.recognizer import int8_saturates, read_metadata, resolve_model, shipped_member_files, uint8_weights

WAYS = ("ort int8", "uint8 weights", "float q/dq")


def session(path, way: str, threads: int) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")  # as the Recognizer runs
    if way == "float q/dq":
        opts.add_session_config_entry("session.disable_quant_qdq", "1")
    model = uint8_weights(path) if way == "uint8 weights" else str(path)
    return ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])


class Model:
    """A model file's sessions run one way: its own graph, plus the shipped models an ensemble adds beside it
    (`fer2013-accurate` runs `fer2013` and `fer2013-robust` from their own files, weighted, as the Recognizer does)."""

    def __init__(self, path, way: str, threads: int):
        added = shipped_member_files(path, read_metadata(path))
        self.parts = [(session(path, way, threads), None)] + \
                     [(session(f, way, threads), np.float32(entry["weight"])) for f, entry in added]

    def probs(self, x: np.ndarray) -> np.ndarray:
        out = None
        for sess, weight in self.parts:
            p = sess.run(["probs"], {"input": x})[0]
            out = p if weight is None else out + weight * p
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=None, help="the FER-2013 folder (default: $FERKIT_DATA or ../shared/data/fer2013)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--repeat", type=int, default=200)
    ap.add_argument("--model", nargs="+", default=["fer2013", "fer2013-robust", "fer2013-accurate", "ferplus",
                                                   "ferplus-robust"])
    args = ap.parse_args()
    data = fer2013(args.data)
    ds = load_dataset(data)
    votes = read_ferplus_votes(data.parent / "fer2013new.csv", len(ds))
    print(f"{machine_description()}; ONNX Runtime {ort.__version__}, {args.threads} threads; "
          f"ferkit judges this CPU's int8 kernels {'saturating' if int8_saturates() else 'exact'}")
    print(f"{'model':<18} {'weights run as':<14} {'PublicTest':>10} {'PrivateTest':>11} {'ms per face':>11}")
    for name in args.model:
        path = resolve_model(name)
        labels = tuple(read_metadata(path)["labels"])
        sets = [fer2013_set(ds, split) if labels == EMOTIONS else ferplus_set(ds, votes, split, labels)
                for split in ("PublicTest", "PrivateTest")]
        for way in WAYS:
            model = Model(path, way, args.threads)
            acc = [float((model.probs(to_model_input(s.pixels)).argmax(1) == s.labels).mean()) for s in sets]
            one = to_model_input(sets[0].pixels[:1])
            model.probs(one)  # warm-up
            times = []
            for _ in range(args.repeat):
                t = time.perf_counter()
                model.probs(one)
                times.append((time.perf_counter() - t) * 1000)
            print(f"{name:<18} {way:<14} {acc[0]:>10.2%} {acc[1]:>11.2%} {statistics.median(times):>11.2f}", flush=True)


if __name__ == "__main__":
    main()
