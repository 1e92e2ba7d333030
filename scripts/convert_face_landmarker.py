"""Convert Google's MediaPipe Face Landmarker bundle (Face Mesh V2 + Blendshape V2, Apache-2.0) into the ONNX files
and the canonical-face table ferkit ships in src/ferkit/weights/face/. Run once, by hand, when the bundle changes:

    python -m venv /tmp/conv && /tmp/conv/bin/pip install tensorflow-cpu tf2onnx onnx
    /tmp/conv/bin/python scripts/convert_face_landmarker.py ../shared/models/mediapipe/face_landmarker.task

tf2onnx reads the .tflite files (it needs TensorFlow, which ferkit never does at run time). The bundle's weights are
float16; tf2onnx writes them as float32, so each is stored back as float16 with a Cast (the same numbers, half the
bytes). tests/test_face_features.py checks the result against the .tflite files with ai-edge-litert. The mesh model is
also rewritten for ONNX Runtime's CPU kernels first (nchwc_friendly; --keep-prelu skips that).
"""
from __future__ import annotations

import argparse
import hashlib
import json
import struct
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

OUT = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "weights" / "face"
FILES = {"face_landmarks_detector.tflite": "face_mesh_v2.onnx", "face_blendshapes.tflite": "face_blendshapes_v2.onnx"}


def as_float16(model: onnx.ModelProto) -> onnx.ModelProto:
    """Each float32 initializer whose values are exactly float16 -> a float16 initializer and a Cast to float32."""
    graph, casts = model.graph, []
    for init in list(graph.initializer):
        if init.data_type != onnx.TensorProto.FLOAT:
            continue
        a = numpy_helper.to_array(init)
        if a.size < 16 or not np.array_equal(a.astype(np.float16).astype(np.float32), a):
            continue
        name = init.name
        init.CopyFrom(numpy_helper.from_array(a.astype(np.float16), name + "_fp16"))
        casts.append(onnx.helper.make_node("Cast", [name + "_fp16"], [name], to=onnx.TensorProto.FLOAT))
    nodes = casts + list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def nchwc_friendly(model: onnx.ModelProto) -> onnx.ModelProto:
    """Rewrite the Face Mesh V2 graph so ONNX Runtime's CPU provider runs all of it in its blocked NCHWc layout.

    Why: the graph is Conv + PRelu blocks (69 PRelus, per-channel slopes s from -5.4 to 19.8, so max(x, s*x) is not
    PRelu), and ORT has no NCHWc PRelu: each ran in NCHW between a ReorderOutput and a ReorderInput, with a slow
    broadcast kernel. Profiled, 1 thread, Intel Xeon @ 2.80GHz (Ice Lake): PRelu 10.6 ms + Reorder ~3 ms of 16-18 ms
    per run; TFLite/XNNPACK runs the same model in ~6 ms. The rewrites, all only Conv/Relu/Add that NCHWc fuses:

    1. PRelu(x) = x + (1-s)*Relu(-x): Relu(depthwise 1x1 Conv of weight -1), then depthwise 1x1 Conv (group=C) of
       weight 1-s with the Add fused in: two passes over the tensor instead of PRelu and two reorders. Exact for
       x >= 0; for x < 0 it is s*x up to a rounding or two. Tried instead: Relu(x) + DWConv_{-s}(Relu(-x)), which
       is bit-exact PRelu but needs a third pass (a standalone Relu); Relu(x) + s*Min(x, 0) in plain ONNX ops; grouped
       or dense 1x1 Convs in place of the depthwise ones; Min(x, 0) as Clip (NCHWc does not run Clip): all slower;
       negating the producing Conv so that a plain Relu makes Relu(-x): no measurable gain.
    2. The four 8-channel bottlenecks at 128x128 (Conv 16->8, PRelu, depthwise 3x3, Conv 8->16) get 8 channels of
       zero weights: NCHWc needs channel counts that are multiples of its block (16 with AVX-512, 8 with AVX2); the
       extra channels add exact zeros.
    3. Pad (zero channels appended to the residual after a MaxPool) -> a 1x1 Conv of weights [I; 0], which NCHWc runs.

    Measured on that machine (2 cores shared with other jobs), 1 thread, ORT 1.32, the graphs interleaved in one run:
    original 17.6 ms median, rewritten 7.3 ms (a quiet spell); in a busier run, medians (fastest run) original 35.8
    (15.2) ms, rewritten 14.8 (6.3), bit-exact 3-pass variant of 1 15.8 (6.8), Relu + s*Min 27.4 (11.6).
    session.set_denormal_as_zero changed nothing (no denormals). On 24 crops of the face in examples/astronaut.png
    the landmarks move by at most 5.8e-5 px and the presence logit by 2.1e-5 from the original graph's (ORT's own
    graph optimizations move the original's landmarks by 7.6e-5 px). Where ORT does no NCHWc (graph optimization
    level below ALL; ARM64 builds without NEON NCHWc kernels) the depthwise 1x1 Convs are slow: 32 ms instead of the
    original's 18 ms with level EXTENDED here; --keep-prelu writes the plain graph."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    g = m.graph
    inits = {i.name: i for i in g.initializer}

    def arr(name):
        return numpy_helper.to_array(inits[name])

    def add(name, a):
        g.initializer.append(numpy_helper.from_array(np.ascontiguousarray(a, np.float32), name))
        inits[name] = g.initializer[-1]
        return name

    def attr(node, name, default=None):
        return next((onnx.helper.get_attribute_value(a) for a in node.attribute if a.name == name), default)

    consumers: dict[str, list] = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)

    def only(node, op):
        c = consumers.get(node.output[0], [])
        return c[0] if len(c) == 1 and c[0].op_type == op else None

    # 2. pad Conv (out C) -> PRelu -> depthwise Conv -> Conv (in C) to a multiple of 16 channels
    for k, n in enumerate([n for n in g.node if n.op_type == "Conv"]):
        c = arr(n.input[1]).shape[0]
        pr = only(n, "PRelu")
        dw = pr and only(pr, "Conv")
        pw = dw and only(dw, "Conv")
        if c % 16 == 0 or not pw or attr(dw, "group", 1) != c or attr(pw, "group", 1) != 1 or len(n.input) < 3:
            continue
        extra = 16 - c % 16

        def grow(node, i, axis, tag):  # a copy of the initializer (several nodes share some) with zeros appended
            a = arr(node.input[i])
            shape = list(a.shape)
            shape[axis] = extra
            node.input[i] = add(f"{node.input[i]}_pad{k}{tag}", np.concatenate([a, np.zeros(shape, a.dtype)], axis))

        for node, i, axis, tag in ((n, 1, 0, "w"), (n, 2, 0, "b"), (pr, 1, arr(pr.input[1]).ndim - 3, "s"),
                                   (dw, 1, 0, "w"), (dw, 2, 0, "b"), (pw, 1, 1, "w")):
            grow(node, i, axis, tag)
        next(a for a in dw.attribute if a.name == "group").i = c + extra

    # 3. Pad appending zero channels -> 1x1 Conv; 1. PRelu -> two depthwise 1x1 Convs
    shapes = {v.name: [d.dim_value for d in v.type.tensor_type.shape.dim]
              for v in onnx.shape_inference.infer_shapes(m).graph.value_info}
    nodes = []
    for i, n in enumerate(g.node):
        tag = f"nchwc{i}"
        constant_pad = n.op_type == "Pad" and len(n.input) == 2 and attr(n, "mode", b"constant") == b"constant"
        if constant_pad and n.input[1] in inits:
            pads = arr(n.input[1]).tolist()
            cin = shapes.get(n.input[0], [0, 0])[1]
            if cin and len(pads) == 8 and pads[1] == 0 and not any(pads[j] for j in (0, 2, 3, 4, 6, 7)):
                w = np.zeros((cin + pads[5], cin, 1, 1), np.float32)
                w[np.arange(cin), np.arange(cin)] = 1
                nodes.append(onnx.helper.make_node("Conv", [n.input[0], add(tag + "_w", w)], list(n.output), name=tag,
                                                   kernel_shape=[1, 1]))
                continue
        if n.op_type == "PRelu":
            (x, slope), y = n.input, n.output[0]
            s = arr(slope).reshape(-1).astype(np.float32)
            c = s.size

            def dw(inp, w, out, name):
                return onnx.helper.make_node("Conv", [inp, add(name + "_w", w.reshape(c, 1, 1, 1))], [out], name=name,
                                             group=c, kernel_shape=[1, 1])
            nodes += [dw(x, -np.ones(c), tag + "_negx", tag + "_neg"),
                      onnx.helper.make_node("Relu", [tag + "_negx"], [tag + "_relu_negx"], name=tag + "_relu"),
                      dw(tag + "_relu_negx", 1 - s, tag + "_scaled", tag + "_scale"),
                      onnx.helper.make_node("Add", [tag + "_scaled", x], [y], name=tag + "_add")]
            continue
        nodes.append(n)
    del g.node[:]
    g.node.extend(nodes)
    used = {i for n in g.node for i in n.input}
    kept = [i for i in g.initializer if i.name in used]
    del g.initializer[:]
    g.initializer.extend(kept)
    return m


def compare_mesh(original: onnx.ModelProto, rewritten: onnx.ModelProto) -> None:
    """Print how far the rewritten mesh's outputs are from the original's under ONNX Runtime (CPU, 1 thread), next to
    how far ORT's own graph optimizations move the original's, on seeded images of blocky noise (tf2onnx's venv has
    onnxruntime but no image reader). On such non-faces both are ~3e-4 px; the figures for real faces (<= 6e-5 px)
    are in nchwc_friendly's docstring."""
    try:
        import onnxruntime as ort
    except ImportError:
        print("onnxruntime not installed: mesh rewrite not compared")
        return

    def session(model, optimize=True):
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = 1
        if not optimize:
            opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        return ort.InferenceSession(model.SerializeToString(), opts, providers=["CPUExecutionProvider"])

    ref, new, plain = session(original), session(rewritten), session(original, optimize=False)
    name = ref.get_inputs()[0].name
    rng = np.random.default_rng(0)
    d = np.zeros((2, 2))  # rows: rewritten, original without ORT optimizations; columns: landmarks, presence
    for _ in range(4):
        image = np.ascontiguousarray(rng.random((1, 16, 16, 3), dtype=np.float32).repeat(16, 1).repeat(16, 2))
        want = ref.run(None, {name: image})
        for row, s in enumerate((new, plain)):
            got = s.run(None, {name: image})
            d[row] = np.maximum(d[row], [np.abs(got[0] - want[0]).max(), np.abs(got[1] - want[1]).max()])
    print(f"mesh rewrite vs original: max |landmark difference| {d[0, 0]:.2g} px, presence logit {d[0, 1]:.2g} "
          f"(original with ORT's graph optimizations off vs on: {d[1, 0]:.2g} px, {d[1, 1]:.2g})")


def _protobuf_fields():
    """ferkit's own reader of the protobuf wire format (sessions._fields), loaded by its path: this script runs in
    a TensorFlow environment where ferkit's other dependencies may be missing."""
    import importlib.util

    path = Path(__file__).resolve().parents[1] / "src" / "ferkit" / "sessions.py"
    spec = importlib.util.spec_from_file_location("ferkit_sessions", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._fields


def _values(buf: bytes, start: int, end: int):
    """(field number, value): varints as ints, 32-bit fields as floats, length-delimited ones as their span."""
    for number, wire, value, _, field_end in _protobuf_fields()(buf, start, end):
        yield number, struct.unpack("<f", buf[field_end - 4:field_end])[0] if wire == 5 else value


def canonical_face(binarypb: bytes) -> dict:
    """geometry_pipeline_metadata_landmarks.binarypb (GeometryPipelineMetadata: canonical_mesh = 1 with its
    vertex_buffer = 3 of x, y, z, u, v per vertex; procrustes_landmark_basis = 2 of landmark_id = 1, weight = 2)
    -> the 468 canonical vertices (cm; x to the image's right, y up, z towards the camera) and the landmark weights
    MediaPipe's pose solver uses."""
    vertices, basis = [], []
    for number, value in _values(binarypb, 0, len(binarypb)):
        if number == 1:
            vertices = [v for n, v in _values(binarypb, *value) if n == 3]
        elif number == 2:
            entry = dict(_values(binarypb, *value))
            basis.append((entry.get(1, 0), entry[2]))
    v = np.asarray(vertices, np.float32).reshape(-1, 5)[:, :3]
    return {"vertices": np.round(v, 6).tolist(), "pose_landmarks": [i for i, _ in basis],
            "pose_weights": [round(w, 8) for _, w in basis]}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("task", type=Path, help="face_landmarker.task")
    p.add_argument("--keep-prelu", action="store_true", help="no nchwc_friendly rewrite of the mesh model")
    args = p.parse_args()
    data = args.task.read_bytes()
    sha = hashlib.sha256(data).hexdigest()
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, zipfile.ZipFile(args.task) as z:
        z.extractall(tmp)
        for tflite, name in FILES.items():
            onnx_path = Path(tmp) / name
            subprocess.run([sys.executable, "-m", "tf2onnx.convert", "--tflite", str(Path(tmp) / tflite),
                            "--output", str(onnx_path), "--opset", "17"], check=True, capture_output=True)
            model = onnx.load(str(onnx_path))
            if tflite == "face_landmarks_detector.tflite" and not args.keep_prelu:
                original, model = model, nchwc_friendly(model)
                compare_mesh(original, model)
            model = as_float16(model)
            meta = {"source": f"MediaPipe face_landmarker.task (float16, v1), {tflite}", "bundle_sha256": sha,
                    "licence": "Apache-2.0, Copyright Google LLC", "converted_with": "tf2onnx 1.17 (opset 17)"}
            model.metadata_props.add(key="ferkit", value=json.dumps(meta))
            onnx.checker.check_model(model)
            onnx.save(model, str(OUT / name))
        geometry = canonical_face((Path(tmp) / "geometry_pipeline_metadata_landmarks.binarypb").read_bytes())
    geometry["source"] = f"MediaPipe face_landmarker.task, geometry_pipeline_metadata_landmarks.binarypb (sha256 {sha})"
    (OUT / "canonical_face.json").write_text(json.dumps(geometry, separators=(",", ":")))
    for f in sorted(OUT.iterdir()):
        print(f"{f.name}: {f.stat().st_size:,} bytes")


if __name__ == "__main__":
    main()
