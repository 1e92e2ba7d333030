"""Checkpoint -> ONNX with the model's facts in its metadata, then a self-check against torch.

The ONNX graph takes (N, 1, 48, 48) float32 in [-1, 1] (see preprocess.to_model_input) and returns
`probs` (N, K) and `cams` (N, K, 6, 6), the class activation maps whose mean plus bias is the logits.
Needs torch and onnx (the [train] extra).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from . import __version__
from .model import FERNet
from .preprocess import PREPROCESS_SPEC
from .recognizer import METADATA_KEY, metadata_from_map  # one JSON blob in the ONNX metadata_props


class _ExportWrapper(torch.nn.Module):
    def __init__(self, model: FERNet, temperature: float = 1.0):
        super().__init__()
        self.model, self.temperature = model, temperature

    def forward(self, x):
        return self.model.forward_with_cams(x, self.temperature)


@torch.no_grad()
def fit_temperature(logits: np.ndarray, labels) -> float:
    """Temperature T minimising the negative log-likelihood of softmax(logits / T) on held-out faces' (N, K) logits.

    Fit on PublicTest (the selection split), never on PrivateTest: it only rescales confidence, the argmax
    (and so the accuracy) does not change.
    """
    logits = torch.from_numpy(np.asarray(logits, np.float64))
    y = torch.as_tensor(labels)
    log_t = torch.zeros(1, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure():
        opt.zero_grad()
        with torch.enable_grad():
            loss = torch.nn.functional.cross_entropy(logits / log_t.exp(), y)
            loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.exp())


def export_onnx(model: FERNet, path: str | Path, *, name: str, labels, extra: dict | None = None,
                check: bool = True, tolerance: float = 1e-4, temperature: float = 1.0) -> dict:
    """Write `model` to `path` as ONNX; with `check`, verify ONNX Runtime matches torch.

    Returns the metadata written, plus `max_abs_diff` when checked. Raises RuntimeError when the
    probabilities differ by `tolerance` or more.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    model = model.float().eval()
    dummy = torch.zeros(1, 1, PREPROCESS_SPEC["image_size"], PREPROCESS_SPEC["image_size"])
    wrapper = _ExportWrapper(model, temperature).eval()  # a new Module starts in training mode; export restores it after
    # dynamo=False: the TorchScript exporter, which made every shipped file; the check below guards either way
    torch.onnx.export(
        wrapper, (dummy,), str(path), input_names=["input"], output_names=["probs", "cams"],
        dynamic_axes={"input": {0: "batch"}, "probs": {0: "batch"}, "cams": {0: "batch"}},
        opset_version=17, dynamo=False,
    )
    model.eval()
    meta = {
        "name": name,
        "labels": list(labels),
        "preprocess": PREPROCESS_SPEC,
        "config": model.config.to_dict(),
        "temperature": temperature,
        "ferkit_version": __version__,
        **(extra or {}),
    }
    write_metadata(path, meta)
    if check:
        meta["max_abs_diff"] = check_against_torch(model, path, tolerance, temperature=temperature)
    return meta


def write_metadata(path: str | Path, meta: dict) -> None:
    """Store `meta` as the file's one ferkit metadata entry (what Recognizer reads), then check the model."""
    import onnx

    proto = onnx.load(str(path))
    _save_with_metadata(proto, meta, path)


def _save_with_metadata(proto, meta: dict, path: str | Path) -> None:
    import onnx

    del proto.metadata_props[:]
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(meta)
    proto.producer_name = "ferkit"
    onnx.checker.check_model(proto)
    onnx.save(proto, str(path))


def check_against_torch(model: FERNet, path: str | Path, tolerance: float = 1e-4, n: int = 64, seed: int = 0,
                        temperature: float = 1.0) -> float:
    """Max |p_onnx - p_torch| over random and structured inputs; raises if >= tolerance."""
    import onnxruntime as ort

    rng = np.random.default_rng(seed)
    size = PREPROCESS_SPEC["image_size"]
    x = rng.uniform(-1, 1, (n, 1, size, size)).astype(np.float32)
    x[: n // 2] = np.clip(x[: n // 2] * 0.2 + np.linspace(-1, 1, size, dtype=np.float32), -1, 1)  # smoother inputs
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    p_onnx, cams_onnx = sess.run(None, {"input": x})
    with torch.no_grad():
        p_torch, cams_torch = model.forward_with_cams(torch.from_numpy(x), temperature)
    diff = float(np.abs(p_onnx - p_torch.numpy()).max())
    if diff >= tolerance or not np.allclose(cams_onnx, cams_torch.numpy(), atol=1e-3):
        raise RuntimeError(f"{path}: ONNX Runtime and torch disagree (max abs probability difference {diff:.2e})")
    return diff


def quantize_int8(fp32_path: str | Path, out_path: str | Path, calibration_faces, *, name: str | None = None) -> dict:
    """Static INT8 quantization (QDQ, per-channel weights, uint8 activations) of an exported model.

    `calibration_faces`: (N, 48, 48) uint8 faces from the Training split that set the activation ranges.
    ONNX Runtime runs the result with VNNI/AMX int8 kernels where the CPU has them. The ferkit metadata is
    carried over, with `quantized` describing how. Returns the metadata written.
    """
    import tempfile

    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from .preprocess import to_model_input
    from .recognizer import read_metadata

    meta = read_metadata(fp32_path)
    faces = np.asarray(calibration_faces)

    class _Reader(CalibrationDataReader):
        def __init__(self):
            self._batches = iter([{"input": to_model_input(faces[i:i + 64])} for i in range(0, len(faces), 64)])

        def get_next(self):
            return next(self._batches, None)

    with tempfile.TemporaryDirectory() as tmp:
        pre = Path(tmp) / "pre.onnx"
        quant_pre_process(str(fp32_path), str(pre))
        quantize_static(str(pre), str(out_path), _Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        op_types_to_quantize=["Conv", "MaxPool"])  # the head, mean and softmax stay float
    meta.update(name=name or Path(out_path).stem, quantized={
        "from": Path(fp32_path).name, "method": "ONNX Runtime static quantization, QDQ, int8 per-channel weights, "
                                                "uint8 activations", "calibration_faces": int(len(faces))})
    write_metadata(out_path, meta)
    return meta


def ensemble_onnx(member_paths, out_path: str | Path, *, name: str | None = None, weights=None) -> dict:
    """Several exported models (same labels and preprocessing) -> one ONNX file whose `probs` and `cams` are
    the weighted means of the members'. The members' graphs are copied side by side under prefixes `m0/`,
    `m1/`, ... and share the one `input`, so the Recognizer runs an ensemble like any other model.
    `weights` default to equal; they are normalised to sum to 1. Returns the metadata written.
    """
    import onnx
    from onnx import compose, helper

    paths = [Path(p) for p in member_paths]
    if len(paths) < 2:
        raise ValueError(f"an ensemble needs at least 2 member models, got {len(paths)}")
    models = [_load_onnx(p) for p in paths]  # each member file is read once: graph and metadata
    metas = [_proto_metadata(m, p) for m, p in zip(models, paths)]
    for p, m in zip(paths[1:], metas[1:]):
        for key in ("labels", "preprocess"):
            if m[key] != metas[0][key]:
                raise ValueError(f"{p}: its {key} {m[key]} differ from {paths[0]}'s {metas[0][key]}")
    w = np.ones(len(paths)) if weights is None else np.asarray(weights, np.float64)
    if len(w) != len(paths) or (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"need one non-negative weight per member ({len(paths)}), got {list(w)}")
    w = w / w.sum()

    first = models[0].graph
    nodes, inits, outs = [], [], {"probs": [], "cams": []}
    for i, model in enumerate(models):
        g = compose.add_prefix(model, f"m{i}/").graph
        for node in g.node:  # the members read the shared input
            for j, name_in in enumerate(node.input):
                if name_in == f"m{i}/input":
                    node.input[j] = "input"
        nodes += g.node
        inits += g.initializer
        inits.append(onnx.numpy_helper.from_array(np.array(w[i], np.float32), f"m{i}/weight"))
        for key in outs:
            nodes.append(helper.make_node("Mul", [f"m{i}/{key}", f"m{i}/weight"], [f"m{i}/{key}_weighted"]))
            outs[key].append(f"m{i}/{key}_weighted")
    nodes += [helper.make_node("Sum", outs[key], [key]) for key in outs]
    graph = helper.make_graph(nodes, "ferkit_ensemble", list(first.input), list(first.output), inits)
    opsets = {o.domain: o.version for m in models for o in m.opset_import}
    merged = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets.items()])
    merged.ir_version = max(m.ir_version for m in models)
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    # the top level describes the ensemble; each member's architecture (members may differ in width), size,
    # training and calibration stay with the member
    member_keys = ("config", "parameters", "trained", "training_run", "calibration", "quantized", "temperature")
    meta = {k: v for k, v in metas[0].items() if k not in member_keys}
    meta.update(name=name or out_path.stem, ferkit_version=__version__, ensemble=[
        {"name": m.get("name", p.stem), "file": p.name, "weight": round(float(wi), 4),
         **{k: m[k] for k in member_keys if k in m}} for p, m, wi in zip(paths, metas, w)])
    if all("parameters" in m for m in metas):
        meta["parameters"] = sum(m["parameters"] for m in metas)
    _save_with_metadata(merged, meta, out_path)
    return meta


def add_class_offsets(in_path: str | Path, out_path: str | Path, offsets, *, fitted: dict | None = None,
                      name: str | None = None) -> dict:
    """A model file whose `probs` become softmax(log probs + offsets) (Log, Add, Softmax appended to the graph; the
    class maps are untouched), with the offsets and how they were `fitted` in its metadata (`class_offsets`).
    Docs/quality.md, round 11. Returns the metadata written."""
    from onnx import helper, numpy_helper

    in_path = Path(in_path)
    proto = _load_onnx(in_path)
    meta = _proto_metadata(proto, in_path)
    if "class_offsets" in meta:
        raise ValueError(f"{in_path}: already has class offsets {meta['class_offsets']['values']}")
    b = np.asarray(offsets, np.float32)
    if b.shape != (len(meta["labels"]),):
        raise ValueError(f"need one offset per class ({len(meta['labels'])}: {', '.join(meta['labels'])}), got {list(b)}")
    g = proto.graph
    for node in g.node:  # what computed `probs` now feeds the offsets
        node.input[:] = ["offsets/input" if n == "probs" else n for n in node.input]
        node.output[:] = ["offsets/input" if n == "probs" else n for n in node.output]
    g.initializer.append(numpy_helper.from_array(b, "offsets/values"))
    g.node.extend([helper.make_node("Log", ["offsets/input"], ["offsets/log"]),
                   helper.make_node("Add", ["offsets/log", "offsets/values"], ["offsets/logits"]),
                   helper.make_node("Softmax", ["offsets/logits"], ["probs"], axis=-1)])
    meta = {**meta, "name": name or Path(out_path).stem, "ferkit_version": __version__,
            "class_offsets": {"values": [round(float(v), 6) for v in b], **(fitted or {})}}
    Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    _save_with_metadata(proto, meta, out_path)
    return meta


def split_ensemble(path: str | Path, out_dir: str | Path) -> list[Path]:
    """An ensemble file (ensemble_onnx) -> one .onnx file per member in `out_dir`, named after the member: its graph
    as it was before the merge (the `m<i>/` prefix taken off, the weighting left out) and its metadata (labels and
    preprocessing from the ensemble, its own name, training and calibration; where the ensemble recorded them, its
    config and size). Lets each member be evaluated, timed or put in a new ensemble without the files it was made
    from. Returns the paths written."""
    from onnx import helper

    path = Path(path)
    proto = _load_onnx(path)
    meta = _proto_metadata(proto, path)
    members = meta.get("ensemble")
    if not members:
        raise ValueError(f"{path}: not an ensemble (its metadata lists no members)")
    g = proto.graph
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shared = {k: v for k, v in meta.items() if k not in ("ensemble", "parameters", "name", "class_offsets")}
    written = []
    for i, member in enumerate(members):
        prefix = f"m{i}/"
        weighting = {f"{prefix}probs_weighted", f"{prefix}cams_weighted", f"{prefix}weight"}

        def own(name: str) -> str:  # this member's tensor names without the prefix; the shared input as it is
            return name[len(prefix):] if name.startswith(prefix) else name

        nodes = []
        for node in g.node:
            if not any(o.startswith(prefix) for o in node.output) or set(node.output) & weighting:
                continue
            copy = helper.make_node(node.op_type, [own(n) for n in node.input], [own(n) for n in node.output],
                                    name=own(node.name), domain=node.domain)
            copy.attribute.extend(node.attribute)
            nodes.append(copy)
        inits = []
        for t in g.initializer:
            if t.name.startswith(prefix) and t.name not in weighting:
                inits.append(type(t)())
                inits[-1].CopyFrom(t)
                inits[-1].name = own(t.name)
        if not nodes:
            raise ValueError(f"{path}: no graph found for member {i} ({member.get('name')})")
        graph = helper.make_graph(nodes, "ferkit", list(g.input), list(g.output), inits)
        model = helper.make_model(graph, opset_imports=list(proto.opset_import))
        model.ir_version = proto.ir_version
        name = member.get("name", f"member{i}")
        own_meta = {**shared, **{k: v for k, v in member.items() if k not in ("weight", "file")}, "name": name,
                    "split_from": {"file": path.name, "weight": member.get("weight")}}
        out = out_dir / f"{name}.onnx"
        _save_with_metadata(model, own_meta, out)
        written.append(out)
    return written


def _load_onnx(path: Path):
    import onnx

    try:
        return onnx.load(str(path))
    except Exception as e:  # protobuf raises DecodeError and friends for files that are not ONNX
        raise ValueError(f"{path}: not a readable ONNX model ({e})") from e


def _proto_metadata(proto, path: Path) -> dict:
    """What `recognizer.read_metadata` returns, from an already loaded model."""
    return metadata_from_map({e.key: e.value for e in proto.metadata_props}, path)
