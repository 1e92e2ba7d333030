"""Each network stored once in the wheel: an ensemble whose members also ship as models of their own
(`fer2013-accurate` holds `fer2013` and `fer2013-robust`) is written into the wheel without those members' graphs;
the Recognizer runs their shipped files beside its own graph and adds their weighted outputs (recognizer.py,
shipped_member_files): the same probabilities and maps, 4 MB less to download.

The files in git stay as they shipped (weights in git change only when a model ships, CONTRIBUTING.md); setup.py
calls store_wheel_weights on the copy in the wheel's build folder. research/ensemble.py's `dedupe` uses the same
functions. Needs only onnx and numpy (the wheel's build requirements, pyproject.toml) and ferkit's own
src/ferkit/modelfile.py, loaded by its path, never the ferkit package.
"""
from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path

import numpy as np


def _modelfile():
    """ferkit's own reader and writer of a model file's metadata (src/ferkit/modelfile.py), loaded by its path:
    importing the package would need its dependencies, which the build environment lacks."""
    path = Path(__file__).resolve().parent / "src" / "ferkit" / "modelfile.py"
    spec = importlib.util.spec_from_file_location("_ferkit_modelfile", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_mf = _modelfile()
proto_metadata, save_with_metadata = _mf.proto_metadata, _mf.save_with_metadata


def store_wheel_weights(weights_dir: str | Path) -> list[dict]:
    """Rewrite, in place, every ensemble in `weights_dir` whose members are also model files there, so each
    network is stored once. Members are matched by their network (the same initializers, bit for bit, and nodes),
    not by name. Returns one summary per file rewritten: name, bytes before and after, the shipped members."""
    import onnx

    weights_dir = Path(weights_dir)
    protos = {p: onnx.load(str(p)) for p in sorted(weights_dir.glob("*.onnx"))}  # each file read once
    metas = {p: proto_metadata(proto, p) for p, proto in protos.items()}
    singles = [p for p in protos if not metas[p].get("ensemble")]
    done = []
    for path, proto in protos.items():
        meta = metas[path]
        if not meta.get("ensemble") or meta.get("shipped_members"):
            continue
        shipped = {}
        for i, member in enumerate(meta["ensemble"]):
            graph = member_model(proto, i)
            for single in singles:
                if metas[single].get("labels") == meta.get("labels") and same_network(graph, protos[single]):
                    shipped[member["name"]] = single.stem
                    break
        if not shipped or len(shipped) == len(meta["ensemble"]):
            continue  # nothing stored twice; or every member ships alone: then the file is all weighting, keep it
        before = path.stat().st_size
        new_meta = strip_shipped(proto, meta, path.parent, shipped, path)
        save_with_metadata(proto, new_meta, path)
        done.append({"name": path.stem, "bytes_before": before, "bytes_after": path.stat().st_size,
                     "shipped_members": new_meta["shipped_members"]})
    return done


def strip_shipped(proto, meta: dict, out_dir: Path, shipped: dict[str, str], source: str | Path) -> dict:
    """Take the members named in `shipped` (member name -> name of the shipped model that is that network, a file
    NAME.onnx in `out_dir`) out of the ensemble graph `proto`, in place. Their nodes, initializers and weighting
    leave; the final Sum nodes lose their inputs. Returns the new metadata: `shipped_members` names each (name,
    member, weight, the file's sha256); the `ensemble` list (every member, for model cards) stays as it is and the
    other members keep their weights. Refuses unknown members, shipped files that are not the member's network, an
    ensemble every member of which would be shipped, and class offsets (they act on the summed probabilities, which
    the Recognizer completes after the graph)."""
    from onnx import numpy_helper

    members = meta.get("ensemble")
    if not members:
        raise ValueError(f"{source}: not an ensemble (its metadata lists no members)")
    names = [m["name"] for m in members]
    unknown = sorted(set(shipped) - set(names))
    if unknown:
        raise ValueError(f"{source}: no member named {', '.join(unknown)}; its members: {', '.join(names)}")
    if len(shipped) >= len(members):
        raise ValueError(f"{source}: every member would be a shipped file; load that model itself instead")
    if "class_offsets" in meta:
        raise ValueError(f"{source}: has class offsets; store the ensemble without its shipped members first, then add them")
    import onnx

    g = proto.graph
    wanted = {f"m{i}/weight" for i in range(len(members))}
    weights = {t.name: float(numpy_helper.to_array(t)) for t in g.initializer if t.name in wanted}
    entries, prefixes = [], []
    for i, m in enumerate(members):
        if m["name"] not in shipped:
            continue
        target = Path(out_dir) / f"{shipped[m['name']]}.onnx"
        if not target.is_file():
            raise FileNotFoundError(f"{target}: no such model, for member {m['name']} (the Recognizer looks for the "
                                    f"shipped models beside the ensemble's file)")
        if not same_network(member_model(proto, i), onnx.load(str(target))):
            raise ValueError(f"{target} is not member {m['name']} of {source} (other weights or nodes)")
        w = weights[f"m{i}/weight"]  # what the graph multiplied by (float32); the rounded figure where it is the same
        entries.append({"name": shipped[m["name"]], "member": m["name"],
                        "weight": m["weight"] if np.float32(m["weight"]) == np.float32(w) else w,
                        "sha256": hashlib.sha256(target.read_bytes()).hexdigest()})
        prefixes.append(f"m{i}/")
    prefixes = tuple(prefixes)
    keep = [n for n in g.node if not any(o.startswith(prefixes) for o in n.output)]
    for node in keep:
        if node.op_type == "Sum":
            node.input[:] = [n for n in node.input if not n.startswith(prefixes)]
    del g.node[:]
    g.node.extend(keep)
    inits = [t for t in g.initializer if not t.name.startswith(prefixes)]
    del g.initializer[:]
    g.initializer.extend(inits)
    return {**meta, "shipped_members": entries}


def member_model(proto, i: int):
    """Member i of an ensemble graph as a model of its own: its nodes and initializers with the `m<i>/` prefix taken
    off, the weighting left out, reading the shared `input`; None where the graph holds no member i."""
    from onnx import helper

    g, prefix = proto.graph, f"m{i}/"
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
    if not nodes:
        return None
    inits = []
    for t in g.initializer:
        if t.name.startswith(prefix) and t.name not in weighting:
            inits.append(type(t)())
            inits[-1].CopyFrom(t)
            inits[-1].name = own(t.name)
    graph = helper.make_graph(nodes, "ferkit", list(g.input), list(g.output), inits)
    model = helper.make_model(graph, opset_imports=list(proto.opset_import))
    model.ir_version = proto.ir_version
    return model


def same_network(a, b) -> bool:
    """Whether two models are the same network: the same initializers, bit for bit, and the same nodes."""
    from onnx import numpy_helper

    def tensors(m):
        return {t.name: numpy_helper.to_array(t) for t in m.graph.initializer}

    def nodes(m):
        return [(n.op_type, n.domain, list(n.input), list(n.output), [x.SerializeToString() for x in n.attribute])
                for n in m.graph.node]

    if a is None:
        return False
    ta, tb = tensors(a), tensors(b)
    return (ta.keys() == tb.keys() and nodes(a) == nodes(b)
            and all(ta[k].dtype == tb[k].dtype and np.array_equal(ta[k], tb[k]) for k in ta))
