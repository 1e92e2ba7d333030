"""A report to share: one self-contained HTML file from a ferkit result (`ferkit report RESULTS --out report.html`).

Self-contained means it opens offline and shows the same everywhere: no script, no stylesheet or font fetched from
elsewhere; face crops are JPEG data: URIs and the charts inline SVG drawn here.

From a video's output folder (rows with `track`, read_results), one section per person (track):
    a face crop (the frame where its box is largest, read from the video if it is still at its path),
    time on screen, the emotion timeline (each analysed frame, thin, and a centred moving average over
    SMOOTHING_S seconds, thick), its TOP_UNITS strongest action units over time, head pose over time with the
    share of its frames looking away, and a table of its shares and mean probabilities;
and above them a table of every person. Those figures come from the rows through ferkit.video.summarize, the
function that writes the video's summary.json, so the report and the summary agree.

From a batch result (no tracks): how many inputs had a face, had none or failed, the faces per emotion and their
mean probabilities, the error messages, and one row per face (its crop, emotion, strongest action units, pose).
"""
from __future__ import annotations

import base64
import html
import math
import os
from pathlib import Path

import cv2
import numpy as np

from .version import __version__
from .annotate import EMOTION_COLORS_BGR
from .face import POSE_KEYS
from .mesh import ACTION_UNITS
from .results import Results, read_results
from .video import LOOKING_AWAY_DEGREES, summarize

SMOOTHING_S = 1.0        # width in seconds of the centred moving average drawn over each probability
TOP_UNITS = 5            # action units drawn per person: the highest means
MAX_POINTS = 800         # points a line may have in a chart; longer timelines are drawn every n-th row (said)
THUMB_SIDE = 112         # pixels of a face crop's side
THUMB_MARGIN = 0.25      # the crop's margin around the box, as a share of the box's side
MAX_FACE_ROWS = 500      # faces listed in a batch report (all are counted in its summary)
MAX_ERRORS = 50          # error messages listed in a batch report
CHART_W, CHART_H = 720, 170
UNIT_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b")
OTHER_COLORS = ("#17becf", "#bcbd22", "#e377c2", "#8c564b", "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd")
POSE_COLORS = {"yaw": "#1f77b4", "pitch": "#d62728", "roll": "#7f7f7f"}


def write_report(results: str | os.PathLike | Results, out: str | os.PathLike) -> Path:
    """Write the HTML report of a result (a path read_results accepts, or its Results) to `out`; -> `out`.
    Raises what read_results raises, and OSError when `out` cannot be written."""
    if not isinstance(results, Results):
        results = read_results(results)
    out = Path(out)
    out.write_text(build_report(results), encoding="utf-8")
    return out


def build_report(results: Results) -> str:
    """The report's HTML for a Results (read_results)."""
    meta = results.attrs
    labels = list(meta.get("labels") or [c[5:] for c in results.columns if c.startswith("prob_")])
    name = Path(str(meta.get("video") or meta.get("path") or "results")).name
    body = [f"<h1>ferkit report: {_e(name)}</h1>", _facts(meta)]
    if "track" in results.columns:
        body += _people(results, labels)
    else:
        body += _batch(results, labels)
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            # nothing from elsewhere, even if a value in the rows looked like markup: images only as data: URIs
            f'<meta http-equiv="Content-Security-Policy" content="default-src \'none\'; img-src data:; '
            f'style-src \'unsafe-inline\'">'
            f"<title>ferkit report: {_e(name)}</title><style>{STYLE}</style></head>\n<body>\n"
            + "\n".join(body) + "\n</body></html>\n")


STYLE = """
body { font: 14px/1.45 system-ui, sans-serif; margin: 24px auto; max-width: 980px; color: #222; padding: 0 12px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 36px; border-top: 1px solid #ddd; padding-top: 16px; }
table { border-collapse: collapse; margin: 8px 0; } td, th { padding: 3px 8px; border-bottom: 1px solid #eee;
text-align: right; white-space: nowrap; } th { background: #f6f6f6; } td.l, th.l { text-align: left; }
img.face { width: 56px; height: 56px; border-radius: 4px; } .person img.face { width: 112px; height: 112px; }
.facts { color: #444; } .note { color: #666; font-size: 12px; } .legend span { margin-right: 12px; }
.legend i { display: inline-block; width: 14px; height: 4px; vertical-align: middle; margin-right: 4px; }
.head { display: flex; gap: 16px; align-items: center; } svg { display: block; margin: 4px 0 2px; }
.tables { display: flex; gap: 32px; align-items: flex-start; flex-wrap: wrap; }
.missing { display: inline-block; width: 112px; font-size: 11px; color: #a33; }
"""


# ---------------------------------------------------------------- the run's facts
def _facts(meta: dict) -> str:
    rows = [("model", meta.get("model")), ("classes", ", ".join(meta.get("labels") or []) or None),
            ("detector", meta.get("detector")), ("adapter", meta.get("adapter")),
            ("face features", ", ".join(meta.get("features") or []) or None),
            ("made with ferkit", meta.get("ferkit_version")), ("results", meta.get("path"))]
    if meta.get("kind") == "video":
        every = meta.get("every") or 1
        rows[1:1] = [("video", meta.get("video")),
                     ("analysed", f"{'every frame' if every == 1 else f'every {every}th frame'} of {meta.get('fps'):g} fps")]
    cells = "".join(f'<tr><th class="l">{_e(k)}</th><td class="l">{_e("not recorded" if v is None else v)}</td></tr>'
                    for k, v in rows)
    return f'<table class="facts">{cells}</table><p class="note">Report by ferkit {__version__}.</p>'


# ---------------------------------------------------------------- a video: one section per person
def _people(results: Results, labels: list[str]) -> list[str]:
    faces = results[results["track"].notna()].sort_values(["track", "frame"], kind="stable")
    step = _seconds_per_row(results)
    by_track = {int(k): rows for k, rows in faces.groupby("track", sort=True)}
    probs = {k: rows[[f"prob_{c}" for c in labels]].to_numpy(np.float64) for k, rows in by_track.items()}
    units = [c for c in results.columns if c.startswith("au_")]
    pose = [c for c in POSE_KEYS if c in results.columns]
    rows_by_face = {k: list(zip(rows["time"].to_numpy(np.float64), probs[k])) for k, rows in by_track.items()}
    features_by_face = {k: [{"action_units": _present({c[3:]: r[c] for c in units}),
                             "head_pose": _present({c: r[c] for c in pose})}
                            for r in rows[units + pose].to_dict("records")] for k, rows in by_track.items()}
    summary = summarize(rows_by_face, labels, step, features_by_face)
    crops = _crops(results, by_track)
    frames = results.drop_duplicates("frame")["status"].value_counts()   # one status per analysed frame, no_face
    analysed = f"{len(results['frame'].dropna().unique())} analysed frames: {frames.get('no_face', 0)} with no face, " \
               f"{frames.get('error', 0)} that could not be decoded."
    out = [f"<h2>People: {len(by_track)}</h2>", f'<p data-field="frames">{analysed}</p>']
    out.append(_people_table(summary, labels, crops) if by_track else "<p>No face was found in the analysed frames.</p>")
    smoothed = (results.attrs.get("meta") or {}).get("smoothing")
    if smoothed:
        out.append(f'<p class="note">The rows were smoothed over time already by the tracker (ferkit video '
                   f"--smoothing {smoothed:g}): each frame's probabilities mix in the earlier frames'.</p>")
    for k, rows in by_track.items():
        out.append(_person(k, rows, summary[str(k)], labels, crops[k]))
    return out


def _present(values: dict) -> dict | None:
    """The row's feature values, or None when the run did not read them (all missing)."""
    return None if not values or all(v is None or v != v for v in values.values()) else values


def _seconds_per_row(results: Results) -> float:
    """Seconds of video per analysed frame: `every / fps` for a video's output; else the median step between the
    analysed frames' times."""
    meta = results.attrs
    if meta.get("fps") and meta.get("every"):
        return meta["every"] / meta["fps"]
    times = np.unique(results["time"].dropna().to_numpy(np.float64))
    return float(np.median(np.diff(times))) if len(times) > 1 else 0.0


def _people_table(summary: dict, labels: list[str], crops: dict) -> str:
    head = ('<tr><th></th><th class="l">person</th><th>time on screen</th><th>from-to</th><th class="l">dominant</th>'
            + "".join(f"<th>{_e(k)}</th>" for k in labels) + "<th>looking away</th></tr>")
    lines = []
    for key, s in summary.items():
        away, seconds = s.get("looking_away"), s["seconds"]
        lines.append(
            f'<tr data-track="{key}"><td>{crops[int(key)]}</td><td class="l"><a href="#person-{key}">#{key}</a></td>'
            + _cell("seconds", seconds, f"{seconds:.1f} s") +
            f'<td data-field="first-last" data-value="{s["first"]}-{s["last"]}">{s["first"]:.1f}-{s["last"]:.1f} s</td>'
            f'<td class="l" data-field="dominant" data-value="{_e(s["dominant"])}">{_e(s["dominant"])}</td>'
            + "".join(_cell(f"share-{k}", s["share"][k], _pct(s["share"][k])) for k in labels)
            + (_cell("looking_away", away, _pct(away)) if away is not None else "<td>-</td>") + "</tr>")
    return (f"<table class=\"people\">{head}{''.join(lines)}</table>"
            f'<p class="note">Shares: the part of a person\'s analysed frames on which each emotion was the most '
            f"probable. Looking away: head turned more than {LOOKING_AWAY_DEGREES:g}° in yaw or pitch.</p>")


def _pct(value: float) -> str:
    return f"{value:.1%}"


def _cell(field: str, value, text: str) -> str:
    """A table cell showing `text`, with the figure itself in data-value (for readers that check it)."""
    return f'<td data-field="{field}" data-value="{value}">{_e(text)}</td>'


def _person(key: int, rows, s: dict, labels: list[str], crop: str) -> str:
    t = rows["time"].to_numpy(np.float64)
    step = s["seconds"] / s["rows"] if s["rows"] else 0.0
    parts = [f'<section class="person" id="person-{key}" data-track="{key}"><h2>Person #{key}</h2>',
             f'<div class="head">{crop}<div class="facts">On screen {s["seconds"]:.1f} s ({s["rows"]} analysed '
             f'frames, {s["first"]:.1f}-{s["last"]:.1f} s); mostly <b>{_e(s["dominant"])}</b>'
             + (f"; looking away {s['looking_away']:.1%} of its frames" if "looking_away" in s else "")
             + ".</div></div>"]
    probs = {k: rows[f"prob_{k}"].to_numpy(np.float64) for k in labels}
    lines = [(k, v, _color(k), 1.0, 0.35) for k, v in probs.items()]
    lines += [(k, _smooth(t, v, SMOOTHING_S), _color(k), 2.2, 1.0) for k, v in probs.items()]
    stride = _stride(len(t))
    parts.append("<h3>Emotions</h3>" + _chart(t, lines, step, 0.0, 1.0, "probability")
                 + _legend([(k, _color(k)) for k in labels])
                 + f'<p class="note">Thin: each analysed frame{_stride_note(stride)}; thick: a centred moving average '
                   f"over {SMOOTHING_S:g} s (each point the mean of the frames within ±{SMOOTHING_S / 2:g} s).</p>")
    means = s.get("mean_action_units") or {}
    if means:
        top = sorted(means, key=lambda u: -means[u])[:TOP_UNITS]
        lines = [(u, rows[f"au_{u}"].to_numpy(np.float64), c, 1.6, 1.0) for u, c in zip(top, UNIT_COLORS)]
        parts.append("<h3>Strongest action units</h3>" + _chart(t, lines, step, 0.0, 1.0, "estimate")
                     + _legend([(f"{u} (mean {means[u]:.2f})", c) for u, c in zip(top, UNIT_COLORS)])
                     + f'<p class="note">The {len(top)} action units with the highest mean estimate for this person, '
                       f"each analysed frame{_stride_note(stride)}.</p>")
    if "looking_away" in s:
        pose = {k: rows[k].to_numpy(np.float64) for k in POSE_KEYS if k in rows}
        span = max(45.0, float(np.nanmax(np.abs(np.concatenate(list(pose.values()))))) if len(t) else 45.0)
        lines = [(k, v, POSE_COLORS[k], 1.6, 1.0) for k, v in pose.items()]
        parts.append("<h3>Head pose</h3>"
                     + _chart(t, lines, step, -span, span, "degrees", guides=(-LOOKING_AWAY_DEGREES, LOOKING_AWAY_DEGREES))
                     + _legend([(k, POSE_COLORS[k]) for k in pose])
                     + f'<p class="note">Dashed: ±{LOOKING_AWAY_DEGREES:g}°. Looking away (yaw or pitch beyond it) '
                       f"{s['looking_away']:.1%} of its analysed frames.</p>")
    head = "<tr><th class=\"l\">emotion</th><th>share of frames</th><th>mean probability</th></tr>"
    body = "".join(f'<tr><td class="l">{_e(k)}</td>' + _cell(f"share-{k}", s["share"][k], _pct(s["share"][k]))
                   + _cell(f"mean-{k}", s["mean_probabilities"][k], f"{s['mean_probabilities'][k]:.3f}") + "</tr>"
                   for k in labels)
    tables = f'<table class="summary">{head}{body}</table>'
    if means:
        body = "".join(f'<tr><td class="l">{_e(u)}</td><td class="l">{_e(ACTION_UNITS[u][0] if u in ACTION_UNITS else "")}'
                       f"</td>" + _cell(f"mean-{u}", v, f"{v:.3f}") + "</tr>"
                       for u, v in sorted(means.items(), key=lambda kv: -kv[1]))
        tables += ('<table class="units"><tr><th class="l">action unit</th><th></th><th>mean estimate</th></tr>'
                   f"{body}</table>")
    parts.append(f'<h3>Summary</h3><div class="tables">{tables}</div>')
    return "\n".join(parts) + "</section>"


# ---------------------------------------------------------------- a batch result: photos and faces
def _batch(results: Results, labels: list[str]) -> list[str]:
    status = results["status"].fillna("")
    by_source = status.groupby(results["source"], sort=False)
    inputs = {"ok": 0, "no_face": 0, "error": 0}
    for _, s in by_source:  # as batch's summary counts inputs: ok with a face, error when nothing was analysed
        inputs["ok" if (s == "ok").any() else "error" if (s == "error").all() else "no_face"] += 1
    faces = results[status == "ok"]
    probs = faces[[f"prob_{k}" for k in labels]].to_numpy(np.float64)
    counts = {k: int((faces["emotion"] == k).sum()) for k in labels}
    out = ["<h2>Summary</h2>",
           f'<p data-field="inputs">{len(by_source)} inputs: {inputs["ok"]} with a face, {inputs["no_face"]} without, '
           f'{inputs["error"]} that could not be analysed; {len(faces)} faces. Faces are not followed across a '
           f"video's frames here: run <code>ferkit video</code> for one timeline per person.</p>"]
    head = "<tr><th class=\"l\">emotion</th><th>faces</th><th>share</th><th>mean probability</th></tr>"
    shares = {k: counts[k] / len(faces) if len(faces) else 0.0 for k in labels}
    means = dict(zip(labels, probs.mean(0) if len(faces) else np.zeros(len(labels))))
    body = "".join(f'<tr><td class="l">{_e(k)}</td>' + _cell(f"faces-{k}", counts[k], str(counts[k]))
                   + _cell(f"share-{k}", shares[k], _pct(shares[k])) + _cell(f"mean-{k}", means[k], f"{means[k]:.3f}")
                   + "</tr>" for k in labels)
    out.append(f'<table class="summary">{head}{body}</table>')
    errors = results[status == "error"]
    if len(errors):
        items = "".join(f"<li>{_e(m)}</li>" for m in errors["message"].fillna("").head(MAX_ERRORS))
        more = f" (the first {MAX_ERRORS})" if len(errors) > MAX_ERRORS else ""
        out.append(f"<h2>Errors: {len(errors)}{more}</h2><ul>{items}</ul>")
    shown = faces.head(MAX_FACE_ROWS)
    crops = _crops(results, {i: shown.loc[[i]] for i in shown.index})
    units = [c for c in results.columns if c.startswith("au_")]
    pose = [c for c in POSE_KEYS if c in results.columns]
    head = ('<tr><th></th><th class="l">source</th><th>time</th><th>face</th><th class="l">emotion</th><th>probability</th>'
            + ('<th class="l">strongest action units</th>' if units else "")
            + "".join(f"<th>{k}</th>" for k in pose) + "</tr>")
    lines = []
    for i, r in zip(shown.index, shown.to_dict("records")):
        when = "" if r.get("time") is None or r["time"] != r["time"] else f"{r['time']:.2f} s"
        top = sorted(((c[3:], r[c]) for c in units if r[c] == r[c]), key=lambda kv: -kv[1])[:3]
        lines.append(f'<tr data-row="{i}"><td>{crops[i]}</td><td class="l">{_e(r["source"])}</td><td>{when}</td>'
                     f'<td>{r["face"]}</td><td class="l">{_e(r["emotion"])}</td><td>{r["prob_" + r["emotion"]]:.3f}</td>'
                     + (f'<td class="l">{_e(", ".join(f"{u} {v:.2f}" for u, v in top))}</td>' if units else "")
                     + "".join(f"<td>{round(r[k])}°</td>" if r[k] == r[k] else "<td>-</td>" for k in pose) + "</tr>")
    more = f" (the first {MAX_FACE_ROWS} of {len(faces)})" if len(faces) > MAX_FACE_ROWS else ""
    out.append(f'<h2>Faces{more}</h2><table class="faces">{head}{"".join(lines)}</table>')
    return out


# ---------------------------------------------------------------- face crops
def _crops(results: Results, groups: dict) -> dict:
    """An <img> (a data: URI) per group of rows: the face whose box is largest, cut from its photo or video frame;
    or a note saying why there is none (the file is no longer at its path, or cannot be read)."""
    base = Path(str(results.attrs.get("path") or "."))
    base = base if base.is_dir() else base.parent
    out, images = {}, {}
    for key, rows in groups.items():
        rows = rows[rows["w"].notna()]
        if rows.empty:
            out[key] = '<span class="missing">no box</span>'
            continue
        best = rows.iloc[int((rows["w"] * rows["h"]).to_numpy(np.float64).argmax())]
        source = str(best["source"])
        frame = None if _missing(best.get("frame")) else int(best["frame"])
        where = (source, frame)
        if where not in images:
            images[where] = _read_picture(_find(source, base), frame)
        image = images[where]
        if isinstance(image, str):
            out[key] = f'<span class="missing">{_e(image)}</span>'
            continue
        picture, scale = image
        out[key] = _thumbnail(picture, [int(best[c]) / scale for c in "xywh"], f"{source} frame {frame}")
    return out


def _missing(value) -> bool:
    try:
        return bool(value != value) or value is None
    except TypeError:  # pandas' NA
        return True


def _find(source: str, base: Path) -> Path | None:
    """The file a row's `source` names: as given (from this folder), else beside the results or one folder up
    (ferkit video writes <name>_ferkit/ beside the video)."""
    path = Path(source)
    for candidate in ([path] if path.is_absolute() else [path, base / path, base.parent / path]):
        if candidate.is_file():
            return candidate
    return None


def _read_picture(path: Path | None, frame: int | None):
    """(BGR image, k: its pixels per the rows' pixel) of a photo or a video's frame, or why there is none."""
    if path is None:
        return "the file is no longer at its path: no crop"
    if frame is None:
        from .images import read_photo

        try:
            image, k = read_photo(path)
        except (ValueError, OSError) as e:
            return f"cannot read it ({e})"
        return image, k
    cap = cv2.VideoCapture(str(path))
    try:
        cap.set(cv2.CAP_PROP_POS_FRAMES, frame)
        ok, image = cap.read()
    finally:
        cap.release()
    return (image, 1) if ok else f"frame {frame} cannot be read"


def _thumbnail(image: np.ndarray, box, alt: str) -> str:
    x, y, w, h = box
    side = max(w, h) * (1 + 2 * THUMB_MARGIN)
    cx, cy = x + w / 2, y + h / 2
    x0, y0 = int(max(0, cx - side / 2)), int(max(0, cy - side / 2))
    x1, y1 = int(min(image.shape[1], cx + side / 2)), int(min(image.shape[0], cy + side / 2))
    crop = image[y0:y1, x0:x1]
    if crop.size == 0:
        return '<span class="missing">the box lies outside the picture</span>'
    crop = cv2.resize(crop, (THUMB_SIDE, THUMB_SIDE), interpolation=cv2.INTER_AREA)
    ok, jpeg = cv2.imencode(".jpg", crop, [cv2.IMWRITE_JPEG_QUALITY, 85])
    uri = "data:image/jpeg;base64," + base64.b64encode(jpeg.tobytes()).decode("ascii")
    return f'<img class="face" src="{uri}" alt="{_e(alt)}">'


# ---------------------------------------------------------------- charts: inline SVG
def _smooth(t: np.ndarray, v: np.ndarray, width: float) -> np.ndarray:
    """Centred moving average over `width` seconds: each point the mean of the values within ±width/2 of its time
    (missing values left out). (T,) -> (T,)."""
    ok = ~np.isnan(v)
    sums = np.concatenate([[0.0], np.cumsum(np.where(ok, v, 0.0))])
    counts = np.concatenate([[0], np.cumsum(ok)])
    lo = np.searchsorted(t, t - width / 2, "left")
    hi = np.searchsorted(t, t + width / 2, "right")
    n = counts[hi] - counts[lo]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(n > 0, (sums[hi] - sums[lo]) / n, np.nan)


def _stride(n: int) -> int:
    return max(1, math.ceil(n / MAX_POINTS))


def _stride_note(stride: int) -> str:
    return "" if stride == 1 else f" (drawn every {stride}th, to keep the file small)"


def _chart(t: np.ndarray, lines, step: float, y_min: float, y_max: float, y_label: str, guides=()) -> str:
    """A line chart: `lines` [(name, values (T,), color, stroke width, opacity)] over times `t` (T,), seconds.
    A line breaks where the person was not seen for more than 2.5 analysed frames."""
    left, right, top, bottom = 44, 10, 8, 24
    w, h = CHART_W - left - right, CHART_H - top - bottom
    t0, t1 = (float(t.min()), float(t.max())) if len(t) else (0.0, 1.0)
    t1 = t1 if t1 > t0 else t0 + 1.0

    def x(v):
        return left + (v - t0) / (t1 - t0) * w

    def y(v):
        return top + (1 - (v - y_min) / (y_max - y_min)) * h

    svg = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{CHART_W}" height="{CHART_H}" '
           f'viewBox="0 0 {CHART_W} {CHART_H}" role="img" aria-label="{_e(y_label)} over time">',
           f'<rect x="{left}" y="{top}" width="{w}" height="{h}" fill="#fff" stroke="#ccc"/>']
    for v in _ticks(y_min, y_max, 4):
        svg.append(f'<line x1="{left}" x2="{left + w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" font-size="10">{v:g}</text>')
    for v in _ticks(t0, t1, 8):
        svg.append(f'<text x="{x(v):.1f}" y="{top + h + 14}" text-anchor="middle" font-size="10">{v:g}</text>')
    svg.append(f'<text x="{left + w}" y="{CHART_H - 1}" text-anchor="end" font-size="10">seconds</text>'
               f'<text x="10" y="{top + h / 2:.0f}" font-size="10" transform="rotate(-90 10 {top + h / 2:.0f})" '
               f'text-anchor="middle">{_e(y_label)}</text>')
    for g in guides:
        svg.append(f'<line x1="{left}" x2="{left + w}" y1="{y(g):.1f}" y2="{y(g):.1f}" stroke="#888" '
                   f'stroke-dasharray="4 3"/>')
    stride = _stride(len(t))
    gap = 2.5 * step * stride if step else np.inf
    for name, values, color, width, opacity in lines:
        ts, vs = t[::stride], np.clip(values[::stride], y_min, y_max)
        path, pen_down, last = [], False, None
        for a, b in zip(ts, vs):
            if b != b:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down and a - last <= gap else 'M'}{x(a):.1f} {y(b):.1f}")
            pen_down, last = True, a
        svg.append(f'<path d="{" ".join(path)}" fill="none" stroke="{color}" stroke-width="{width}" '
                   f'stroke-opacity="{opacity}"><title>{_e(name)}</title></path>')
    return "".join(svg) + "</svg>"


def _ticks(lo: float, hi: float, n: int) -> list[float]:
    """Round values between lo and hi, about n of them."""
    raw = (hi - lo) / max(1, n)
    mag = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step) * step
    return [round(first + i * step, 10) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _legend(items) -> str:
    return '<div class="legend">' + "".join(f'<span><i style="background:{c}"></i>{_e(n)}</span>' for n, c in items) + "</div>"


def _color(label: str) -> str:
    """The emotion's colour in ferkit's drawings; another class (an adapter's) gets one of OTHER_COLORS by its name."""
    if label not in EMOTION_COLORS_BGR:
        return OTHER_COLORS[sum(label.encode()) % len(OTHER_COLORS)]
    b, g, r = EMOTION_COLORS_BGR[label]
    return f"#{r:02x}{g:02x}{b:02x}"


def _e(value) -> str:
    return html.escape(str(value), quote=True)
