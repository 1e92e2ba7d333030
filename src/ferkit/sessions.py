"""ONNX Runtime sessions, made one way for every model ferkit runs (classifier, detectors, face mesh), and the
INT8 rewrite that keeps quantized classifiers exact on CPUs whose INT8 kernels saturate."""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import numpy as np
import onnxruntime as ort


def open_session(model: str | Path | bytes, *, threads: int | None = None, providers: list | None = None,
                 run: bool = True, optimize: bool = True) -> ort.InferenceSession:
    """An ONNX Runtime session: `threads` intra-op threads (None: ONNX Runtime's default, one per core), worker
    threads that sleep rather than spin after a run (spinning threads steal the CPU from the stage that runs next:
    measured +11 ms per 640x480 frame on 2 cores), `providers` (default CPU). `run`: a session that will compute, so
    an INT8 model gets exact kernels on CPUs whose own would saturate (int8_saturates); `optimize=False` for reading
    metadata only. A file that is not ONNX raises ValueError naming it."""
    opts = ort.SessionOptions()
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    if threads:
        opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    if not optimize:
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    name = "model bytes" if isinstance(model, bytes) else str(model)
    try:
        data = uint8_weights(model) if run and not isinstance(model, bytes) and int8_saturates() else None
        source = data or (model if isinstance(model, bytes) else str(model))
        return ort.InferenceSession(source, opts, providers=list(providers) if providers else ["CPUExecutionProvider"])
    except Exception as e:  # ORT and protobuf raise their own exception types for files that are not ONNX
        raise ValueError(f"{name}: not a readable ONNX model ({e})") from e


@functools.lru_cache(maxsize=1)
def int8_saturates() -> bool:
    """Whether ONNX Runtime's INT8 convolutions lose accuracy on this CPU. On x86 without VNNI (AVX512-VNNI, AVX-VNNI,
    AMX) they multiply uint8 activations by int8 weights with an instruction that adds pairs of products into 16 bits
    and clips them: on an AVX2 EPYC the shipped `fer2013` scored 69.88 % on PublicTest instead of the 70.91 % it
    scores where the products are exact, `fer2013-accurate` 70.94 % instead of 72.39 %. ARM and VNNI CPUs are exact."""
    if platform.machine().lower() not in ("x86_64", "amd64", "x86", "i386", "i686"):
        return False
    try:  # numpy's own CPUID probe, on every OS
        from numpy._core._multiarray_umath import __cpu_features__ as features
    except ImportError:
        try:
            from numpy.core._multiarray_umath import __cpu_features__ as features  # numpy < 2
        except ImportError:
            features = {}
    if features.get("AVX512VNNI"):
        return False
    try:  # AVX-VNNI (no AVX-512) and AMX are not in numpy's list; Linux names them
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        flags = set()
    return not flags & {"avx_vnni", "avx512_vnni", "amx_int8"}


def uint8_weights(path: str | Path) -> bytes | None:
    """The model with each int8 weight tensor stored as uint8 (w + 128, its zero point + 128): the same numbers
    exactly, which ONNX Runtime multiplies with its u8u8 kernels, widening to 32 bits, so nothing saturates (and,
    measured on the AVX2 EPYC, faster than running the weights in float). None for a model without int8 weights.

    Done on the protobuf bytes with a small reader of the wire format, not the onnx package (importing it took
    seconds of load_recognizer's time): only initializers read by DequantizeLinear alone, and their explicit zero
    points, are re-encoded; every other byte of the file is copied as it is."""
    buf = Path(path).read_bytes()
    try:
        (graph_start, graph_end, graph_span), tensors, users, zero_points = _int8_initializers(buf)
        convert = set()
        for name in tensors:
            if users.get(name) == {"DequantizeLinear"} and zero_points.get(name) in tensors:
                convert |= {name, zero_points[name]}
        if not convert:
            return None
        graph = bytearray()
        for number, wire, value, start, end in _fields(buf, *graph_span):
            if number == 5 and wire == 2 and _tensor_name(buf, value) in convert:
                graph += _field_bytes(5, _tensor_as_uint8(buf, value))
            else:
                graph += buf[start:end]
        return bytes(buf[:graph_start] + _field_bytes(7, bytes(graph)) + buf[graph_end:])
    except (IndexError, ValueError):  # not a protobuf we can walk: ONNX Runtime reports it when it loads the file
        return None


_INT8, _UINT8 = 3, 2  # onnx.TensorProto.INT8, UINT8


def _varint(buf, i: int) -> tuple[int, int]:
    shift = value = 0
    while True:
        b = buf[i]
        value |= (b & 0x7F) << shift
        i += 1
        if b < 0x80:
            return value, i
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _encode_varint(value: int) -> bytes:
    value &= (1 << 64) - 1  # negative int32s are sign-extended to 64 bits, as protobuf does
    out = bytearray()
    while True:
        b = value & 0x7F
        value >>= 7
        out.append(b | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _encode_varint(number << 3 | 2) + _encode_varint(len(payload)) + payload


def _fields(buf, start: int, end: int):
    """Protobuf wire format: (field number, wire type, value, field start, field end) for each field in
    buf[start:end]; the value is the varint for wire type 0, the payload's (start, end) for wire type 2."""
    i = start
    while i < end:
        field_start = i
        key, i = _varint(buf, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 1:
            value, i = None, i + 8
        elif wire == 5:
            value, i = None, i + 4
        elif wire == 2:
            n, i = _varint(buf, i)
            value, i = (i, i + n), i + n
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if i > end:
            raise ValueError("field runs past its message")
        yield number, wire, value, field_start, i


def _tensor_name(buf, span) -> str:
    return next((bytes(buf[v[0]:v[1]]).decode() for n, w, v, _, _ in _fields(buf, *span) if n == 8 and w == 2), "")


def _tensor_as_uint8(buf, span) -> bytes:
    """A TensorProto (data_type = 2, int32_data = 5, raw_data = 9) of int8 values re-encoded as uint8, v + 128."""
    out = bytearray()
    for number, wire, value, start, end in _fields(buf, *span):
        if number == 2 and wire == 0:
            out += _encode_varint(2 << 3) + _encode_varint(_UINT8)
        elif number == 9 and wire == 2:
            out += _field_bytes(9, bytes(np.frombuffer(buf[value[0]:value[1]], np.uint8) ^ 0x80))  # int8 + 128
        elif number == 5:  # int32_data, packed (wire 2) or one varint per value (wire 0)
            values = [value] if wire == 0 else _packed(buf, value)
            out += _field_bytes(5, b"".join(_encode_varint(((v + 2 ** 31) % 2 ** 32 - 2 ** 31) + 128) for v in values))
        else:
            out += buf[start:end]
    return bytes(out)


def _packed(buf, span) -> list[int]:
    values, i = [], span[0]
    while i < span[1]:
        v, i = _varint(buf, i)
        values.append(v)
    return values


def _int8_initializers(buf):
    """From a serialized ModelProto: its graph field as (field start, field end, payload (start, end)), the names of
    the graph's int8 initializers, {tensor name: op types of the nodes that read it} and {DequantizeLinear weight:
    its zero point}."""
    graph_field = next((start, end, value) for number, wire, value, start, end in _fields(buf, 0, len(buf))
                       if number == 7 and wire == 2)  # ModelProto.graph
    tensors, users, zero_points = set(), {}, {}
    for number, wire, span, _, _ in _fields(buf, *graph_field[2]):
        if wire != 2:
            continue
        if number == 1:  # NodeProto: input = 1, op_type = 4
            inputs, op = [], ""
            for n, w, v, _, _ in _fields(buf, *span):
                if n == 1 and w == 2:
                    inputs.append(bytes(buf[v[0]:v[1]]).decode())
                elif n == 4 and w == 2:
                    op = bytes(buf[v[0]:v[1]]).decode()
            for name in inputs:
                users.setdefault(name, set()).add(op)
            if op == "DequantizeLinear" and len(inputs) > 2 and inputs[2]:
                zero_points[inputs[0]] = inputs[2]
        elif number == 5:  # TensorProto: data_type = 2
            if any(n == 2 and w == 0 and v == _INT8 for n, w, v, _, _ in _fields(buf, *span)):
                tensors.add(_tensor_name(buf, span))
    return graph_field, tensors, users, zero_points
