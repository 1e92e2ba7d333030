"""Checkpoint -> ONNX with the model's facts in its metadata, then a self-check against torch.

The ONNX graph takes (N, 1, 48, 48) float32 in [-1, 1] (see preprocess.to_model_input) and returns
`probs` (N, K) and `cams` (N, K, 6, 6), the class activation maps whose mean plus bias is the logits.
Needs torch and onnx (the [train] extra).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .version import __version__
from .model import FERNet
from .preprocess import PREPROCESS_SPEC
from .modelfile import save_with_metadata


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
    save_with_metadata(proto, meta, path)


def check_against_torch(model: FERNet, path: str | Path, tolerance: float = 1e-4, n: int = 64, seed: int = 0,
                        temperature: float = 1.0) -> float:
    """Max |p_onnx - p_torch| over random and structured inputs; raises if >= tolerance."""
    from .sessions import open_session

    rng = np.random.default_rng(seed)
    size = PREPROCESS_SPEC["image_size"]
    x = rng.uniform(-1, 1, (n, 1, size, size)).astype(np.float32)
    x[: n // 2] = np.clip(x[: n // 2] * 0.2 + np.linspace(-1, 1, size, dtype=np.float32), -1, 1)  # smoother inputs
    sess = open_session(path)  # as the Recognizer opens it
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
