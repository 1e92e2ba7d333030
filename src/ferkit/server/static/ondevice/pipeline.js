// The in-browser port of Recognizer.analyze (#36): YuNet (+ its margin look and the BlazeFace close-up retry), the
// five-point alignment and crop, the classifier's preprocessing from its metadata, and the live tracker. Each
// function names the Python function it mirrors (src/ferkit/...); the numbers are checked against Python by
// tests/server/test_ondevice_parity.py. Images here: {data: Uint8Array, width, height, channels} (1 grey, 3 BGR
// as OpenCV's), row-major, interleaved, uint8.

// ------------------------------------------------------------------ small helpers mirroring Python/NumPy/OpenCV
// Python's round() and np.round(): halves to the even neighbour.
export function pyRound(v) {
  const r = Math.round(v);
  return (Math.abs(v % 1) === 0.5 && r % 2 !== 0) ? r - 1 : r;
}

const clip = (v, lo, hi) => Math.min(Math.max(v, lo), hi);
const u8 = (v) => clip(Math.round(v), 0, 255);  // OpenCV's saturate_cast<uchar>

// detect._scaled_size: (w, h) times scale, never below one pixel.
function scaledSize(w, h, scale) {
  return [Math.max(1, pyRound(w * scale)), Math.max(1, pyRound(h * scale))];
}

// RGBA (ImageData) -> BGR, the colour order images.decode_image gives (alpha dropped, as Pillow's RGB convert).
export function bgrOf(rgba) {
  const n = rgba.width * rgba.height, src = rgba.data, out = new Uint8Array(n * 3);
  for (let i = 0; i < n; i++) {
    out[3 * i] = src[4 * i + 2]; out[3 * i + 1] = src[4 * i + 1]; out[3 * i + 2] = src[4 * i];
  }
  return {data: out, width: rgba.width, height: rgba.height, channels: 3};
}

// cv2.cvtColor(BGR2GRAY) for uint8: OpenCV's fixed-point weights (0.299, 0.587, 0.114 in 14 bits), rounded.
export function greyOf(bgr) {
  const n = bgr.width * bgr.height, s = bgr.data, out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = (s[3 * i] * 1868 + s[3 * i + 1] * 9617 + s[3 * i + 2] * 4899 + 8192) >> 14;
  return {data: out, width: bgr.width, height: bgr.height, channels: 1};
}

// One axis of cv2.resize's INTER_LINEAR: source index and the two weights per destination pixel, as OpenCV's
// resize.cpp makes them: the position in float32, half-pixel centres clamped at the edges, each weight rounded on its
// own to 11-bit fixed point (so the two need not sum to 2048). Across (`across`), positions beyond the edges are
// clamped with their weights; down, OpenCV keeps the weights and clamps only the rows read (`idx` then may be -1
// or src - 1 with a second weight: both rows are the edge row, and the fixed-point sum rounds differently).
function linearTab(src, dst, across) {
  const scale = 1 / (dst / src), idx = new Int32Array(dst), w0 = new Int32Array(dst), w1 = new Int32Array(dst);
  for (let d = 0; d < dst; d++) {
    let f = Math.fround((d + 0.5) * scale - 0.5), i = Math.floor(f);
    f = Math.fround(f - i);
    if (across && i < 0) { i = 0; f = 0; }
    if (across && i >= src - 1) { i = src - 1; f = 0; }
    idx[d] = i; w0[d] = pyRound(Math.fround(1 - f) * 2048); w1[d] = pyRound(f * 2048);
  }
  return {idx, w0, w1};
}

// One axis of cv2.resize's INTER_AREA when shrinking (OpenCV's computeResizeAreaTab): per destination pixel d, the
// source pixels it covers, src[start[d] .. start[d + 1]), and the fraction of it each covers, weight[...].
function areaTab(src, dst) {
  const scale = src / dst, start = new Int32Array(dst + 1), taps = [], weights = [];
  for (let d = 0; d < dst; d++) {
    const f1 = d * scale, f2 = f1 + scale, cell = Math.min(scale, src - f1);
    const s2 = Math.min(Math.floor(f2), src - 1), s1 = Math.min(Math.ceil(f1), s2);
    if (s1 - f1 > 1e-3) { taps.push(s1 - 1); weights.push((s1 - f1) / cell); }
    for (let s = s1; s < s2; s++) { taps.push(s); weights.push(1 / cell); }
    if (f2 - s2 > 1e-3) { taps.push(s2); weights.push(Math.min(Math.min(f2 - s2, 1), cell) / cell); }
    start[d + 1] = taps.length;
  }
  return {start, taps: Int32Array.from(taps), weights: Float64Array.from(weights)};
}

// cv2.resize(img, (dw, dh), interpolation=INTER_AREA if `area` else INTER_LINEAR) on uint8 images.
export function resize(img, dw, dh, area) {
  const {data, width: sw, height: sh, channels: c} = img;
  if (sw === dw && sh === dh) return img;
  const out = new Uint8Array(dw * dh * c);
  if (area) {  // every source row resampled across once, then the rows summed down
    const tx = areaTab(sw, dw), ty = areaTab(sh, dh), across = new Float64Array(sh * dw * c), acc = new Float64Array(dw * c);
    for (let y = 0; y < sh; y++)
      for (let x = 0; x < dw; x++)
        for (let t = tx.start[x]; t < tx.start[x + 1]; t++) {
          const from = (y * sw + tx.taps[t]) * c, to = (y * dw + x) * c, wx = tx.weights[t];
          for (let k = 0; k < c; k++) across[to + k] += data[from + k] * wx;
        }
    for (let y = 0; y < dh; y++) {
      acc.fill(0);
      for (let t = ty.start[y]; t < ty.start[y + 1]; t++) {
        const row = ty.taps[t] * dw * c, wy = ty.weights[t];
        for (let i = 0; i < acc.length; i++) acc[i] += across[row + i] * wy;
      }
      for (let i = 0; i < acc.length; i++) out[y * dw * c + i] = u8(acc[i]);
    }
  } else {
    // rows across in integers (pixel x 2048), then down as OpenCV's SIMD VResizeLinearVec_32s8u does it:
    // ((row >> 4) * weight) >> 16 per row, summed, then (sum + 2) >> 2; its rounding moves pixels by 1 from exact
    const tx = linearTab(sw, dw, true), ty = linearTab(sh, dh, false), rows = new Map();
    const across = (sy) => {
      if (rows.has(sy)) return rows.get(sy);
      const row = new Int32Array(dw * c);
      for (let x = 0; x < dw; x++) {
        const x0 = tx.idx[x], x1 = Math.min(x0 + 1, sw - 1);
        for (let k = 0; k < c; k++)
          row[x * c + k] = data[(sy * sw + x0) * c + k] * tx.w0[x] + data[(sy * sw + x1) * c + k] * tx.w1[x];
      }
      rows.set(sy, row);
      return row;
    };
    const s16 = (v) => clip(v, -32768, 32767);
    for (let y = 0; y < dh; y++) {
      const y0 = ty.idx[y], top = across(clip(y0, 0, sh - 1)), bottom = across(clip(y0 + 1, 0, sh - 1)), b0 = ty.w0[y], b1 = ty.w1[y];
      for (let i = 0; i < dw * c; i++) {
        const v = s16(((s16(top[i] >> 4) * b0) >> 16) + ((s16(bottom[i] >> 4) * b1) >> 16));
        out[y * dw * c + i] = clip((v + 2) >> 2, 0, 255);
      }
    }
  }
  return {data: out, width: dw, height: dh, channels: c};
}

// cv2.copyMakeBorder(img, top, bottom, left, right, BORDER_REPLICATE or BORDER_CONSTANT 0).
function border(img, top, bottom, left, right, replicate) {
  const {data, width: w, height: h, channels: c} = img, W = w + left + right, H = h + top + bottom;
  const out = new Uint8Array(W * H * c);
  for (let y = 0; y < H; y++) {
    const sy = y - top;
    if (!replicate && (sy < 0 || sy >= h)) continue;
    for (let x = 0; x < W; x++) {
      const sx = x - left;
      if (!replicate && (sx < 0 || sx >= w)) continue;
      const i = (clip(sy, 0, h - 1) * w + clip(sx, 0, w - 1)) * c;
      for (let k = 0; k < c; k++) out[(y * W + x) * c + k] = data[i + k];
    }
  }
  return {data: out, width: W, height: H, channels: c};
}

// cv2.getRotationMatrix2D(centre, angle in degrees, scale) -> [a, b, c, d, e, f] (2x3, row-major).
function rotationMatrix(cx, cy, angle, scale) {
  const t = angle * Math.PI / 180, a = scale * Math.cos(t), b = scale * Math.sin(t);
  return [a, b, (1 - a) * cx - b * cy, -b, a, b * cx + (1 - a) * cy];
}

// cv2.warpAffine(grey, m, (dw, dh), flags=INTER_LINEAR, borderMode=BORDER_REPLICATE) as imgwarp.cpp computes it:
// the inverse of m in doubles, source positions in 1/1024 pixel (the row's part and the column's part rounded
// apart, plus a half step) cut to OpenCV's 1/32-pixel grid, then the 15-bit fixed-point bilinear weights.
export function warpAffine(grey, m, dw, dh) {
  const [a, b, c, d, e, f] = m, det = a * e - b * d, D = det !== 0 ? 1 / det : 0;
  const ia = e * D, ib = -b * D, id = -d * D, ie = a * D;
  const ic = -ia * c - ib * f, iff = -id * c - ie * f;
  const {data, width: w, height: h} = grey, out = new Uint8Array(dw * dh);
  const AB = 1024, adelta = new Int32Array(dw), bdelta = new Int32Array(dw);
  for (let x = 0; x < dw; x++) { adelta[x] = pyRound(ia * x * AB); bdelta[x] = pyRound(id * x * AB); }
  for (let y = 0; y < dh; y++) {
    const X0 = pyRound((ib * y + ic) * AB) + 16, Y0 = pyRound((ie * y + iff) * AB) + 16;
    for (let x = 0; x < dw; x++) {
      const X = (X0 + adelta[x]) >> 5, Y = (Y0 + bdelta[x]) >> 5;
      const x0 = X >> 5, y0 = Y >> 5, fx = X & 31, fy = Y & 31;
      const xa = clip(x0, 0, w - 1), xb = clip(x0 + 1, 0, w - 1), ya = clip(y0, 0, h - 1), yb = clip(y0 + 1, 0, h - 1);
      const sum = data[ya * w + xa] * (32 - fx) * (32 - fy) + data[ya * w + xb] * fx * (32 - fy)
        + data[yb * w + xa] * (32 - fx) * fy + data[yb * w + xb] * fx * fy;  // weights x 1024: x 32 is OpenCV's 2^15
      out[y * dw + x] = clip((sum * 32 + 16384) >> 15, 0, 255);
    }
  }
  return {data: out, width: dw, height: dh, channels: 1};
}

// grey[y0:y1, x0:x1]
function slice(grey, x0, y0, x1, y1) {
  const w = x1 - x0, h = y1 - y0, out = new Uint8Array(Math.max(0, w * h));
  for (let y = 0; y < h; y++) out.set(grey.data.subarray((y0 + y) * grey.width + x0, (y0 + y) * grey.width + x1), y * w);
  return {data: out, width: w, height: h, channels: 1};
}

// Intersection over union of two [x, y, w, h] boxes.
function iouOf(a, b) {
  const iw = Math.min(a[0] + a[2], b[0] + b[2]) - Math.max(a[0], b[0]);
  const ih = Math.min(a[1] + a[3], b[1] + b[3]) - Math.max(a[1], b[1]);
  if (iw <= 0 || ih <= 0) return 0;
  return iw * ih / (a[2] * a[3] + b[2] * b[3] - iw * ih);
}

const byScore = (scores) => scores.map((s, i) => i).sort((i, j) => scores[j] - scores[i] || i - j);  // stable

// ------------------------------------------------------------------ detection (src/ferkit/detect.py)
// Detections: {boxes: [[x, y, w, h] ints], scores: [..], landmarks: [[[x, y] x5]] or null, sources: [..]}
const empty = (landmarks) => ({boxes: [], scores: [], landmarks: landmarks ? [] : null, sources: []});

function pick(d, keep) {
  return {boxes: keep.map((i) => d.boxes[i]), scores: keep.map((i) => d.scores[i]),
          landmarks: d.landmarks && keep.map((i) => d.landmarks[i]), sources: keep.map((i) => d.sources[i])};
}

// cv2.dnn.NMSBoxes (Rect2d): best score first, a box is kept when it overlaps no kept box by more than `nms`.
function nmsBoxes(boxes, scores, threshold, nms) {
  const kept = [];
  for (const i of byScore(scores)) {
    if (!(scores[i] > threshold)) continue;
    if (kept.every((k) => iouOf(boxes[i], boxes[k]) <= nms)) kept.push(i);
  }
  return kept;
}

const byX = (boxes) => boxes.map((b, i) => i).sort((i, j) => boxes[i][0] - boxes[j][0] || i - j);

// YuNetDetector.raw: YuNet's own tight boxes, scores and landmarks at `longSide`, those scoring `threshold` or more.
async function yunetRaw(ort, session, cfg, bgr, longSide, threshold) {
  const {width: w, height: h} = bgr, scale = longSide / Math.max(h, w);
  const [sw, sh] = scaledSize(w, h, scale), small = resize(bgr, sw, sh, scale < 1);
  const ph = Math.ceil(sh / 32) * 32, pw = Math.ceil(sw / 32) * 32;  // padded with zeros at the bottom and right
  const x = new Float32Array(3 * ph * pw);  // BGR, 0-255, NCHW
  for (let y = 0; y < sh; y++)
    for (let i = 0; i < sw; i++)
      for (let k = 0; k < 3; k++) x[k * ph * pw + y * pw + i] = small.data[(y * sw + i) * 3 + k];
  const out = await session.run({input: new ort.Tensor("float32", x, [1, 3, ph, pw])});
  const boxes = [], scores = [], points = [];
  for (const stride of [8, 16, 32]) {
    const cols = pw / stride, cls = out[`cls_${stride}`].data, obj = out[`obj_${stride}`].data;
    const bb = out[`bbox_${stride}`].data, kps = out[`kps_${stride}`].data;
    for (let i = 0; i < cls.length; i++) {
      const score = Math.fround(Math.sqrt(Math.fround(clip(cls[i], 0, 1) * clip(obj[i], 0, 1))));
      if (score < threshold) continue;
      const cx = i % cols, cy = Math.floor(i / cols);
      const bw = Math.exp(bb[4 * i + 2]) * stride, bh = Math.exp(bb[4 * i + 3]) * stride;  // face_detect.cpp's decoding
      boxes.push([(cx + bb[4 * i]) * stride - bw / 2, (cy + bb[4 * i + 1]) * stride - bh / 2, bw, bh]);
      points.push([0, 1, 2, 3, 4].map((p) => [(kps[10 * i + 2 * p] + cx) * stride, (kps[10 * i + 2 * p + 1] + cy) * stride]));
      scores.push(score);
    }
  }
  if (!boxes.length) return empty(true);
  const keep = nmsBoxes(boxes, scores, threshold, cfg.nms_threshold);
  const kb = keep.map((i) => boxes[i].map((v) => pyRound(v / scale)));
  const order = byX(kb);
  return {boxes: order.map((i) => kb[i]), scores: order.map((i) => scores[keep[i]]),
          landmarks: order.map((i) => points[keep[i]].map(([px, py]) => [px / scale, py / scale])),
          sources: order.map(() => "yunet")};
}

// YuNetDetector.raw_with_margin: `raw` on the image inside a margin of repeated border pixels (half its longer side
// all round), for a face that fills the image; boxes and landmarks back in the image's pixels.
async function yunetWithMargin(ort, session, cfg, bgr, longSide) {
  const {width: w, height: h} = bgr, margin = 0.5, scale = longSide / ((1 + 2 * margin) * Math.max(h, w));
  const [sw, sh] = scaledSize(w, h, scale), small = resize(bgr, sw, sh, scale < 1);
  const p = Math.max(1, pyRound(margin * Math.max(sw, sh)));
  const found = await yunetRaw(ort, session, cfg, border(small, p, p, p, p, true), longSide, cfg.margin_threshold);
  const sx = sw / w, sy = sh / h;
  return {boxes: found.boxes.map(([x, y, bw, bh]) => [pyRound((x - p) / sx), pyRound((y - p) / sy), pyRound(bw / sx), pyRound(bh / sy)]),
          scores: found.scores, landmarks: found.landmarks.map((pts) => pts.map(([x, y]) => [(x - p) / sx, (y - p) / sy])),
          sources: found.sources};
}

// detect.roll_degrees for one face: the eye line's angle in degrees.
function rollDegrees(lm) {
  return Math.atan2(lm[1][1] - lm[0][1], lm[1][0] - lm[0][0]) * 180 / Math.PI;
}

// detect.frame_boxes: tight boxes -> squares framed like FER-2013's crops, clamped to the image.
function frameBoxes(d, frame, w, h) {
  const [scale, shift] = frame;
  return d.boxes.map((b, i) => {
    const side = (b[2] + b[3]) / 2 * scale, roll = d.landmarks ? rollDegrees(d.landmarks[i]) * Math.PI / 180 : 0;
    const cx = b[0] + b[2] / 2 - Math.sin(roll) * shift * side, cy = b[1] + b[3] / 2 + Math.cos(roll) * shift * side;
    const x0 = clip(cx - side / 2, 0, w - 1), y0 = clip(cy - side / 2, 0, h - 1);
    const x1 = clip(cx + side / 2, x0 + 1, w), y1 = clip(cy + side / 2, y0 + 1, h);
    return [pyRound(x0), pyRound(y0), pyRound(x1 - x0), pyRound(y1 - y0)];
  });
}

// detect.distinct_boxes: greedy suppression, best score first; kept indices in their original order.
function distinctBoxes(boxes, scores, threshold) {
  const kept = [];
  for (const i of byScore(scores)) if (kept.every((k) => !(iouOf(boxes[i], boxes[k]) > threshold))) kept.push(i);
  return kept.sort((a, b) => a - b);
}

// detect._ssd_anchors: BlazeFace short-range anchor centres, 2 per cell at stride 8, 6 per cell at stride 16.
function ssdAnchors(size) {
  const anchors = [];
  for (const [stride, perCell] of [[8, 2], [16, 6]]) {
    const cells = size / stride;
    for (let y = 0; y < cells; y++)
      for (let x = 0; x < cells; x++)
        for (let k = 0; k < perCell; k++) anchors.push([(x + 0.5) / cells, (y + 0.5) / cells]);
  }
  return anchors;
}
const ANCHORS = ssdAnchors(128);

// detect._weighted_nms: MediaPipe's weighted NMS over [x0, y0, x1, y1] boxes.
function weightedNms(boxes, scores, threshold) {
  const order = byScore(scores), used = new Array(order.length).fill(false), outBoxes = [], outScores = [];
  const bs = order.map((i) => boxes[i]), ss = order.map((i) => scores[i]);
  const area = (b) => (b[2] - b[0]) * (b[3] - b[1]);
  for (let i = 0; i < bs.length; i++) {
    if (used[i]) continue;
    const sum = [0, 0, 0, 0];
    let weight = 0;
    for (let j = 0; j < bs.length; j++) {
      if (used[j]) continue;
      const iw = Math.max(0, Math.min(bs[i][2], bs[j][2]) - Math.max(bs[i][0], bs[j][0]));
      const ih = Math.max(0, Math.min(bs[i][3], bs[j][3]) - Math.max(bs[i][1], bs[j][1]));
      const inter = iw * ih;
      if (!(inter / (area(bs[i]) + area(bs[j]) - inter + 1e-9) > threshold)) continue;
      used[j] = true;
      for (let k = 0; k < 4; k++) sum[k] += bs[j][k] * ss[j];
      weight += ss[j];
    }
    outBoxes.push(sum.map((v) => v / weight));
    outScores.push(ss[i]);
  }
  return [outBoxes, outScores];
}

// BlazeFaceDetector.detect: the close-up retry; boxes framed like FER-2013's, no landmarks.
async function blazeface(ort, session, cfg, bgr) {
  const {width: w, height: h} = bgr, n = 128, s = n / Math.max(h, w);
  const [sw, sh] = scaledSize(w, h, s), small = resize(bgr, sw, sh, s < 1);
  const top = Math.floor((n - sh) / 2), left = Math.floor((n - sw) / 2);
  const x = new Float32Array(3 * n * n).fill(-1);  // RGB, letterboxed with black, scaled to [-1, 1], NCHW
  for (let y = 0; y < sh; y++)
    for (let i = 0; i < sw; i++)
      for (let k = 0; k < 3; k++) x[k * n * n + (y + top) * n + i + left] = small.data[(y * sw + i) * 3 + 2 - k] / 127.5 - 1;
  const out = await session.run({input: new ort.Tensor("float32", x, [1, 3, n, n])});
  const reg = out.regressors.data, cls = out.classificators.data, boxes = [], scores = [];
  for (let i = 0; i < ANCHORS.length; i++) {
    const score = 1 / (1 + Math.exp(-clip(cls[i], -100, 100)));
    if (score < cfg.score_threshold) continue;
    const cx = reg[16 * i] / n + ANCHORS[i][0], cy = reg[16 * i + 1] / n + ANCHORS[i][1];
    const bw = reg[16 * i + 2] / n, bh = reg[16 * i + 3] / n;
    boxes.push([((cx - bw / 2) * n - left) / s, ((cy - bh / 2) * n - top) / s, ((cx + bw / 2) * n - left) / s, ((cy + bh / 2) * n - top) / s]);
    scores.push(score);
  }
  if (!boxes.length) return empty(false);
  const [merged, mergedScores] = weightedNms(boxes, scores, cfg.nms_threshold);
  const [scale, shift] = cfg.frame;
  const framed = merged.map((b) => {
    const size = Math.max(b[2] - b[0], b[3] - b[1]) * scale, cx = (b[0] + b[2]) / 2, cy = (b[1] + b[3]) / 2 + shift * size;
    const x0 = clip(cx - size / 2, 0, w - 1), y0 = clip(cy - size / 2, 0, h - 1);
    const x1 = clip(cx - size / 2 + size, 1, w), y1 = clip(cy - size / 2 + size, 1, h);
    return [pyRound(x0), pyRound(y0), pyRound(x1 - x0), pyRound(y1 - y0)];
  });
  const order = byX(framed);
  return {boxes: order.map((i) => framed[i]), scores: order.map((i) => Math.fround(mergedScores[i])), landmarks: null,
          sources: order.map(() => "blazeface")};
}

// YuNetDetector.detect_faces: YuNet, then its margin look, then BlazeFace; YuNet's boxes framed and de-duplicated.
export async function detectFaces(ort, sessions, manifest, bgr, longSide) {
  const cfg = manifest.detector, side = longSide || cfg.long_side;
  let found = await yunetRaw(ort, sessions.detector, cfg, bgr, side, cfg.score_threshold);
  if (!found.boxes.length) found = await yunetWithMargin(ort, sessions.detector, cfg, bgr, side);
  if (!found.boxes.length) return blazeface(ort, sessions.closeup, manifest.closeup, bgr);
  const boxes = frameBoxes(found, cfg.frame, bgr.width, bgr.height);
  const keep = distinctBoxes(boxes, found.scores, 0.5);  // detect.FRAMED_OVERLAP
  return pick({...found, boxes}, keep);
}

// server/worker.largest: at most `maxFaces` faces, the largest by box area, left to right; -> [detections, left out].
export function largest(d, maxFaces) {
  const n = d.boxes.length;
  if (n <= maxFaces) return [d, 0];
  const area = d.boxes.map((b) => b[2] * b[3]);
  const keep = byScore(area).slice(0, maxFaces).sort((a, b) => a - b);
  return [pick(d, keep), n - maxFaces];
}

// ------------------------------------------------------------------ crop + classify (recognizer.py, preprocess.py)
// Recognizer.crop (align on, margin 0): the square around the box turned upright from the eye line (pixels beyond
// the image repeat its border); without landmarks the box itself, clamped to the image.
export function crop(grey, box, landmarks) {
  const [x, y, w, h] = box;
  if (landmarks) {
    const roll = Math.fround(rollDegrees(landmarks)), side = Math.max(1, Math.max(w, h));
    const cx = x + w / 2, cy = y + h / 2, m = rotationMatrix(cx, cy, roll, 1);
    m[2] += side / 2 - cx;
    m[5] += side / 2 - cy;
    return warpAffine(grey, m, side, side);
  }
  return slice(grey, Math.max(0, x), Math.max(0, y), Math.min(grey.width, x + w), Math.min(grey.height, y + h));
}

// preprocess.resize_face + to_model_input, with the numbers from the model file's metadata ("preprocess"):
// crops -> (N, 1, size, size) float32, area interpolation when shrinking, linear when enlarging.
export function modelInput(crops, preprocess) {
  const size = preprocess.image_size, x = new Float32Array(crops.length * size * size);
  crops.forEach((c, n) => {
    if (!c.width || !c.height) throw new Error(`empty face crop of shape (${c.height}, ${c.width})`);
    const face = resize(c, size, size, Math.min(c.width, c.height) > size);
    for (let i = 0; i < size * size; i++) x[n * size * size + i] = Math.fround(face.data[i] * preprocess.scale) + preprocess.offset;
  });
  return x;
}

// Recognizer._run: the classifier on preprocessed input, plus an ensemble's shipped members' weighted outputs
// -> (N, K) probabilities (the graph's "probs" output is already a softmax).
export async function classify(ort, sessions, manifest, x, n) {
  const size = manifest.classifier.metadata.preprocess.image_size, k = manifest.classifier.labels.length;
  if (!n) return [];
  const feed = {input: new ort.Tensor("float32", x, [n, 1, size, size])};
  const probs = Float32Array.from((await sessions.classifier.run(feed)).probs.data);
  for (const [session, weight] of sessions.members || []) {
    const p = (await session.run(feed)).probs.data;
    for (let i = 0; i < probs.length; i++) probs[i] += Math.fround(weight * p[i]);
  }
  return Array.from({length: n}, (_, i) => probs.subarray(i * k, (i + 1) * k));
}

// Recognizer._make_face + Face.to_dict: the JSON the server gives for a face.
export function faceDict(labels, box, probs, score, landmarks, source) {
  let top = 0;
  for (let i = 1; i < probs.length; i++) if (probs[i] > probs[top]) top = i;
  const r = (v, d) => Math.round(v * 10 ** d) / 10 ** d;
  const face = {box: {x: box[0], y: box[1], w: box[2], h: box[3]}, emotion: labels[top],
                probabilities: Object.fromEntries(labels.map((l, i) => [l, probs[i]])),
                detector: source, detector_score: r(score, 4), detector_confidence: r(score, 4),
                landmarks: landmarks ? landmarks.map(([x, y]) => [r(x, 1), r(y, 1)]) : null};
  // the landmarks unrounded, for the face features (Python's mesh stage reads them so); not enumerable: not posted
  Object.defineProperty(face, "rawLandmarks", {value: landmarks || null});
  return face;
}

// Recognizer._faces for one image: every face cropped and classified in one batch -> face dicts.
export async function facesFor(ort, sessions, manifest, grey, d) {
  const crops = d.boxes.map((b, i) => crop(grey, b, d.landmarks && d.landmarks[i]));
  const probs = await classify(ort, sessions, manifest, modelInput(crops, manifest.classifier.metadata.preprocess), crops.length);
  return d.boxes.map((b, i) => faceDict(manifest.classifier.labels, b, probs[i], d.scores[i],
                                        d.landmarks && d.landmarks[i], d.sources[i]));
}

// ------------------------------------------------------------------ live: faces across frames (src/ferkit/track.py)
const IDENTITY_JUMP = 0.8, LOOK_SIDE = 24, STILL = 0.05, FOLLOW_SIDE = 32, REFINE_SIDE = 128;  // track.py's constants

// cv2.matchTemplate(image, templ, TM_CCOEFF_NORMED) + cv2.minMaxLoc: the best match's [x, y, score] (the first
// maximum in row order; a flat window scores 0, as OpenCV's normalisation gives it).
function bestMatch(image, templ) {
  const {width: W, height: H, data: I} = image, {width: w, height: h, data: T} = templ, n = w * h;
  let tMean = 0;
  for (let i = 0; i < n; i++) tMean += T[i];
  tMean /= n;
  const t = new Float64Array(n);
  let tNorm = 0;
  for (let i = 0; i < n; i++) { t[i] = T[i] - tMean; tNorm += t[i] * t[i]; }
  tNorm = Math.sqrt(tNorm);
  let best = [0, 0, -Infinity];
  for (let y = 0; y + h <= H; y++) {
    for (let x = 0; x + w <= W; x++) {
      let num = 0, sum = 0, sum2 = 0;
      for (let j = 0; j < h; j++) {
        const row = (y + j) * W + x;
        for (let i = 0; i < w; i++) {
          const v = I[row + i];
          num += t[j * w + i] * v; sum += v; sum2 += v * v;
        }
      }
      const d = Math.sqrt(Math.max(sum2 - sum * sum / n, 0)) * tNorm;
      const score = Math.abs(num) < d ? num / d : Math.abs(num) < d * 1.125 ? Math.sign(num) : 0;
      if (score > best[2]) best = [x, y, score];
    }
  }
  return best;
}

// track._patch: grey inside a box, the border repeated where the box leaves the frame.
function patchOf(grey, [x, y, w, h]) {
  const x0 = Math.max(0, x), y0 = Math.max(0, y), x1 = Math.min(grey.width, x + w), y1 = Math.min(grey.height, y + h);
  if (x1 <= x0 || y1 <= y0) return {data: new Uint8Array(w * h), width: w, height: h, channels: 1};
  const p = slice(grey, x0, y0, x1, y1);
  return (p.width === w && p.height === h) ? p : border(p, y0 - y, y + h - y1, x0 - x, x + w - x1, true);
}

const scaleFor = (w, h, side) => Math.min(1, side / Math.max(w, h));  // track._scale
const centreOffset = (w, h) => [Math.max(0, Math.floor((w - REFINE_SIDE) / 2)), Math.max(0, Math.floor((h - REFINE_SIDE) / 2))];
// track._resized: INTER_AREA, never enlarged.
const resized = (img, s) => s >= 1 ? img : resize(img, Math.max(1, pyRound(img.width * s)), Math.max(1, pyRound(img.height * s)), true);

// track._match: where `templ` (a patch resized by s) best matches `region` resized by s, in region pixels.
function matchIn(region, templ, s) {
  const small = resized(region, s);
  if (templ.height > small.height || templ.width > small.width) return null;
  const [bx, by, score] = bestMatch(small, templ);
  return [bx * region.width / small.width, by * region.height / small.height, score];
}

// cv2.GaussianBlur(float image, (0, 0), sigma): 7 taps for sigma 0.7 (OpenCV's size for float images), BORDER_REFLECT_101.
function gaussianBlur(f, w, h, sigma) {
  const r = (((Math.round(sigma * 4 * 2 + 1)) | 1) - 1) / 2, k = [];
  for (let i = -r; i <= r; i++) k.push(Math.exp(-0.5 * i * i / (sigma * sigma)));
  const total = k.reduce((a, b) => a + b);
  const kernel = k.map((v) => v / total), reflect = (i, n) => i < 0 ? -i : i >= n ? 2 * n - 2 - i : i;
  const tmp = new Float64Array(w * h), out = new Float64Array(w * h);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = -r; i <= r; i++) s += f[y * w + reflect(x + i, w)] * kernel[i + r];
      tmp[y * w + x] = s;
    }
  for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let i = -r; i <= r; i++) s += tmp[reflect(y + i, h) * w + x] * kernel[i + r];
      out[y * w + x] = s;
    }
  return out;
}

// track.appearance: the face's upright, blurred LOOK_SIDE crop with zero mean and unit length.
function appearance(grey, [x, y, w, h], landmarks) {
  const side = Math.max(w, h, 1), angle = landmarks ? rollDegrees(landmarks) : 0;
  const m = rotationMatrix(x + w / 2, y + h / 2, angle, LOOK_SIDE / side);
  m[2] += LOOK_SIDE / 2 - (x + w / 2);
  m[5] += LOOK_SIDE / 2 - (y + h / 2);
  const crop = warpAffine(grey, m, LOOK_SIDE, LOOK_SIDE);  // OpenCV's warpAffine runs INTER_AREA as INTER_LINEAR
  const f = gaussianBlur(crop.data, LOOK_SIDE, LOOK_SIDE, 0.7);
  const mean = f.reduce((a, b) => a + b) / f.length;
  for (let i = 0; i < f.length; i++) f[i] -= mean;
  const norm = Math.hypot(...f) + 1e-6;
  return f.map((v) => v / norm);
}

const dot = (a, b) => a.reduce((s, v, i) => s + v * b[i], 0);
const thumbnail = (grey) => resize(grey, 32, 24, true).data;  // track._thumbnail

// track._still: the detected box (and landmarks) within STILL x the face's side of the followed one.
function still(box, landmarks, newBox, newLandmarks) {
  const [x, y, w, h] = box, [nx, ny, nw, nh] = newBox, tolerance = STILL * Math.max(w, h);
  if (Math.hypot(nx + nw / 2 - x - w / 2, ny + nh / 2 - y - h / 2) > tolerance || Math.abs(nw - w) > tolerance ||
      Math.abs(nh - h) > tolerance) return false;
  if (!landmarks || !newLandmarks) return true;
  return Math.max(...landmarks.map(([px, py], i) => Math.hypot(newLandmarks[i][0] - px, newLandmarks[i][1] - py))) <= tolerance;
}

// track._move: a followed face's new box; its landmarks move with it.
function move(track, box) {
  if (track.landmarks) track.landmarks = track.landmarks.map(([px, py]) => [px + box[0] - track.box[0], py + box[1] - track.box[1]]);
  track.box = box;
}

// track.match_boxes: greedy one-to-one by overlap, highest first -> [[old, new]].
function matchBoxes(old, boxes, threshold) {
  const pairs = [];
  old.forEach((o, i) => boxes.forEach((n, j) => pairs.push([iouOf(o, n), i, j])));
  pairs.sort((a, b) => b[0] - a[0] || b[1] - a[1] || b[2] - a[2]);
  const usedOld = new Set(), usedNew = new Set(), out = [];
  for (const [overlap, i, j] of pairs) {
    if (overlap < threshold) break;
    if (usedOld.has(i) || usedNew.has(j)) continue;
    usedOld.add(i); usedNew.add(j); out.push([i, j]);
  }
  return out;
}

// track._match_near: boxes overlap left unmatched, nearest centres first, within the larger side -> Map(new -> old).
function matchNear(old, boxes, usedOld, usedNew) {
  const centre = (b) => [b[0] + b[2] / 2, b[1] + b[3] / 2], pairs = [];
  old.forEach((o, i) => boxes.forEach((n, j) => {
    if (usedOld.has(i) || usedNew.has(j)) return;
    const [ox, oy] = centre(o), [nx, ny] = centre(n), d = Math.hypot(ox - nx, oy - ny);
    if (d < Math.max(o[2], o[3], n[2], n[3])) pairs.push([d, i, j]);
  }));
  pairs.sort((a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2]);
  const out = new Map();
  for (const [, i, j] of pairs) if (![...out.values()].includes(i) && !out.has(j)) out.set(j, i);
  return out;
}

// track.FaceTracker (with its IoUTracker, smoothing off as the server runs it): detect every `detect_every`-th frame
// on a copy `live_detect_side` long, follow faces by template matching between, classify every frame, stable ids.
export class FaceTracker {
  constructor(ort, sessions, manifest) {
    Object.assign(this, {ort, sessions, manifest, s: manifest.settings});
    this.tracks = []; this.nextId = 1;
    this.templates = new Map(); this.looks = new Map(); this.live = []; this.thumb = null; this.frameIndex = -1;
    this.leftOut = 0;
  }

  reset() {
    this.tracks = []; this.templates.clear(); this.looks.clear(); this.live = []; this.thumb = null; this.frameIndex = -1;
  }

  // FaceTracker.process: one frame (BGR and its grey) -> face dicts with "id" and "detected", left to right.
  async process(bgr, grey, timings) {
    this.frameIndex += 1;
    const cut = this.hardCut(grey);
    if (cut) {  // another shot: nobody carries over
      const index = this.frameIndex;
      this.reset();
      this.frameIndex = index;
      this.thumb = thumbnail(grey);
    }
    const t0 = performance.now();
    let live = null;
    if (!cut && this.frameIndex % this.s.detect_every && this.live.length) live = this.followStep(grey);
    if (live === null) live = await this.detectStep(bgr, grey);
    this.live = live;
    const t1 = performance.now();
    timings.detect_ms = t1 - t0;
    if (!live.length) return [];
    const tracks = live.map(([t]) => t);
    const found = {boxes: tracks.map((t) => t.box), scores: tracks.map((t) => t.score),
                   landmarks: tracks.some((t) => !t.landmarks) ? null : tracks.map((t) => t.landmarks),
                   sources: tracks.map((t) => t.source)};
    const faces = await facesFor(this.ort, this.sessions, this.manifest, grey, found);
    timings.classify_ms = performance.now() - t1;
    const out = faces.map((face, i) => Object.assign(face, {id: live[i][0].id, detected: live[i][1]}));
    return out.sort((a, b) => a.box.x - b.box.x);
  }

  hardCut(grey) {  // FaceTracker._hard_cut
    if (this.s.cut_threshold === null) return false;
    const thumb = thumbnail(grey), last = this.thumb;
    this.thumb = thumb;
    if (!last) return false;
    let diff = 0;
    for (let i = 0; i < thumb.length; i++) diff += Math.abs(thumb[i] - last[i]);
    return diff / thumb.length > this.s.cut_threshold;
  }

  samePerson(grey, track) {  // FaceTracker._same_person
    const look = appearance(grey, track.box, track.landmarks), [average, last] = this.looks.get(track.id) || [null, null];
    if (this.s.identity_threshold !== null && last &&
        (dot(look, last) < IDENTITY_JUMP || dot(look, average) < this.s.identity_threshold)) return false;
    const mixed = average ? average.map((v, i) => 0.8 * v + 0.2 * look[i]) : look, norm = Math.hypot(...mixed) + 1e-9;
    this.looks.set(track.id, [mixed.map((v) => v / norm), look]);
    return true;
  }

  update(d) {  // IoUTracker.update: detections -> their tracks, in the detections' order
    const boxes = d.boxes, threshold = this.s.iou_threshold;
    const matched = new Map(matchBoxes(this.tracks.map((t) => t.box), boxes, threshold).map(([i, j]) => [j, i]));
    const near = matchNear(this.tracks.map((t) => t.box), boxes, new Set(matched.values()), new Set(matched.keys()));
    near.forEach((i, j) => matched.set(j, i));
    const seen = new Set(), out = boxes.map((box, j) => {
      let track;
      if (matched.has(j)) {
        track = this.tracks[matched.get(j)];
        Object.assign(track, {box, score: d.scores[j], missed: 0});
      } else {
        track = {id: this.nextId++, box, score: d.scores[j], missed: 0, landmarks: null, source: ""};
        this.tracks.push(track);
      }
      seen.add(track.id);
      return track;
    });
    for (const t of this.tracks) if (!seen.has(t.id)) t.missed += 1;
    this.tracks = this.tracks.filter((t) => t.missed <= this.s.max_missed);
    return out;
  }

  async detectStep(bgr, grey) {  // FaceTracker._detect_step
    const [d, leftOut] = largest(await detectFaces(this.ort, this.sessions, this.manifest, bgr, this.s.live_detect_side),
                                 this.s.max_faces);
    this.leftOut = leftOut;  // server/worker.LargestFaces.left_out: from the last detection
    const followed = new Map(this.tracks.map((t) => [t.id, this.followed(grey, t)]));
    const found = this.update(d);
    found.forEach((track, i) => {
      track.landmarks = d.landmarks ? d.landmarks[i] : null;
      track.source = d.sources[i];
      if (!this.samePerson(grey, track)) {  // another person where this track's was: a new track
        this.templates.delete(track.id); this.looks.delete(track.id);
        track.id = this.nextId++;
        this.samePerson(grey, track);
      } else if (this.s.detect_every > 1 && followed.get(track.id) &&
                 still(...followed.get(track.id), track.box, track.landmarks)) {
        [track.box, track.landmarks] = followed.get(track.id);  // the detector's jitter, not a move
      }
      this.templates.set(track.id, this.template(grey, track.box));
    });
    const ids = new Set(found.map((t) => t.id)), live = found.map((t) => [t, true]);
    for (const track of this.tracks) {  // faces the detector missed are followed for up to max_missed detections
      if (ids.has(track.id) || !followed.get(track.id)) continue;
      const box = followed.get(track.id)[0];
      if (found.every((t) => iouOf(box, t.box) < this.s.iou_threshold)) { move(track, box); live.push([track, false]); }
    }
    const alive = new Set(this.tracks.map((t) => t.id));
    for (const map of [this.templates, this.looks]) for (const id of [...map.keys()]) if (!alive.has(id)) map.delete(id);
    return live;
  }

  followStep(grey) {  // FaceTracker._follow_step: null as soon as a face is lost or is someone else
    const live = [];
    for (const [track] of this.live) {
      const box = this.follow(grey, track);
      if (!box) return null;
      move(track, box);
      const last = (this.looks.get(track.id) || [null, null])[1];
      if (this.s.identity_threshold !== null && last && dot(appearance(grey, track.box, track.landmarks), last) < IDENTITY_JUMP) return null;
      live.push([track, false]);
    }
    return live;
  }

  followed(grey, track) {  // FaceTracker._followed: [box, landmarks] where following puts the face, or null
    const box = this.follow(grey, track);
    if (!box) return null;
    const dx = box[0] - track.box[0], dy = box[1] - track.box[1];
    return [box, track.landmarks ? track.landmarks.map(([px, py]) => [px + dx, py + dy]) : null];
  }

  follow(grey, track) {  // FaceTracker._follow: a coarse search at ~32 px across, then a fine one at full resolution
    const templates = this.templates.get(track.id);
    if (!templates) return null;
    const [coarse, fine] = templates, [x, y, w, h] = track.box, W = grey.width, H = grey.height;
    const x0 = Math.max(0, x - Math.floor(w / 2)), y0 = Math.max(0, y - Math.floor(h / 2));
    const x1 = Math.min(W, x + w + Math.floor(w / 2)), y1 = Math.min(H, y + h + Math.floor(h / 2));
    if (x1 - x0 < w || y1 - y0 < h || std(coarse.data) < 1e-3) return null;
    const s = scaleFor(w, h, FOLLOW_SIDE), found = matchIn(slice(grey, x0, y0, x1, y1), coarse, s);
    if (!found || found[2] < this.s.follow_min_score) return null;
    const pad = Math.ceil(1 / s) + 1, [cx, cy] = centreOffset(w, h);
    const gx = pyRound(x0 + found[0]) - pad, gy = pyRound(y0 + found[1]) - pad;
    const [fx, fy] = bestMatch(patchOf(grey, [gx + cx, gy + cy, fine.width + 2 * pad, fine.height + 2 * pad]), fine);
    return [gx + fx, gy + fy, w, h];
  }

  template(grey, box) {  // FaceTracker._template: the coarse patch and the central part at full resolution
    const [, , w, h] = box, patch = patchOf(grey, box), [cx, cy] = centreOffset(w, h);
    const fine = slice(patch, cx, cy, Math.min(w, cx + REFINE_SIDE), Math.min(h, cy + REFINE_SIDE));
    return [resized(patch, scaleFor(w, h, FOLLOW_SIDE)), fine];
  }
}

function std(a) {
  let mean = 0, v = 0;
  for (const x of a) mean += x;
  mean /= a.length;
  for (const x of a) v += (x - mean) ** 2;
  return Math.sqrt(v / a.length);
}
