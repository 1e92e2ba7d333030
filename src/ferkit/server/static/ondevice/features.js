// Face features in the browser: the port of ferkit/mesh.py (and the feature keys of face.py's Face.to_dict) onto
// onnxruntime-web, running the same two ONNX files (Face Mesh V2, Blendshape V2) and the same canonical face:
//   image + the face's box and five landmarks
//     -> a square 256x256 crop, 1.5x the face, turned upright from the eye line        (roiFromFivePoints, warpCrop)
//     -> Face Mesh V2 -> 478 (x, y, z) mapped back to image pixels                     (runMesh)
//     -> 146 of them -> Blendshape V2 -> 52 coefficients -> action units              (blendshapes, actionUnits)
//     -> the canonical face fitted to the mesh -> yaw, pitch, roll                     (headPose)
// Each function names the Python one it mirrors; the numbers follow the Python side's float32/float64 steps.

const MESH_POINTS = 478, MESH_INPUT = 256, ROI_SCALE = 1.5;  // mesh.py's constants
const FIVE_POINT_CENTRE = [0.0, 0.41], FIVE_POINT_SIDE = 2.49;
const EYE_OUTER_RIGHT = 33, EYE_OUTER_LEFT = 263;

// The sessions and the canonical face: manifest.features = {mesh, blendshapes, canonical_face}, each an entry that
// fetchVerified(entry) turns into its bytes (ArrayBuffer or Uint8Array) after checking its sha256. tables:
// manifest.feature_tables, mesh.py's own lists sent by the server so that they are written once: {blendshapes (the
// model's 52 outputs, in order), blendshape_input_points (the 146 mesh points the blendshape model reads, in its
// input order), action_units ({AU: the blendshapes it averages}; AU25 is rewritten in actionUnits)}.
// Mirrors FaceMesh.__init__ (the pose part: the 33 weighted points of canonical_face.json, centred once here).
export async function loadFeatureSessions(ort, features, fetchVerified, tables) {
  const names = ["mesh", "blendshapes", "canonical_face"];
  const missing = names.filter((name) => !features || !features[name]);
  if (missing.length) throw new Error(`the manifest's features lack ${missing.join(", ")}`);
  if (!tables) throw new Error("the manifest lacks feature_tables");
  // features.mesh_embedding (sent only for an adapter head that reads the embedding): the mesh model with the
  // embedding as its last output, the graph FaceMesh loads for that head (mesh.with_shared_map_output); it gives the
  // same mesh, so it replaces the shipped file
  const embedding = Boolean(features.mesh_embedding);
  const [mesh, blend, canonical] = await Promise.all(names.map((name) =>
    fetchVerified(name === "mesh" && embedding ? features.mesh_embedding : features[name])));
  let face;
  try {
    face = JSON.parse(new TextDecoder().decode(canonical));
  } catch (e) {
    throw new Error(`${features.canonical_face.url}: not the canonical face (not JSON: ${e.message})`);
  }
  const ids = face.pose_landmarks, total = face.pose_weights.reduce((a, b) => a + b, 0);
  const weights = face.pose_weights.map((w) => w / total);
  const mean = [0, 1, 2].map((k) => ids.reduce((s, id, i) => s + weights[i] * face.vertices[id][k], 0));
  const options = {executionProviders: ["wasm"]};
  return {
    mesh: await ort.InferenceSession.create(new Uint8Array(mesh), options),
    blendshapes: await ort.InferenceSession.create(new Uint8Array(blend), options),
    pose: {ids, weights, canonical: ids.map((id) => face.vertices[id].map((v, k) => v - mean[k]))},
    tables, embedding,
  };
}

// One face's feature keys, as Face.to_dict gives them: {mesh, blendshapes, action_units, head_pose}.
// rgba: {data: Uint8ClampedArray, width, height}; face: a Face.to_dict() (box, landmarks or null), its landmarks
// best unrounded (to_dict's 0.1 px moves a small face's eye-look blendshapes by up to 0.02).
// Mirrors Recognizer._features_batch with features "all" (one face a run; Python runs up to MESH_BATCH together).
export async function faceFeatures(ort, sessions, rgba, face) {
  return featureKeys(sessions, await faceMeasures(ort, sessions, rgba, face));
}

// The stage's values for one face, unrounded, as the Face's fields hold them before to_dict rounds them (what an
// adapter head reads, head.js): {mesh: (478 * 3) float32, b: (52) float32, blendshapes: {name: b}, head_pose:
// {yaw, pitch, roll} (float32 values), embedding: (512) float32 from the mesh's run where the sessions have it, else
// null}.
export async function faceMeasures(ort, sessions, rgba, face) {
  checkInput(rgba, face);
  let mesh, embedding;
  if (face.landmarks) {
    [mesh, embedding] = await runMesh(ort, sessions, rgba, roiFromFivePoints(face.landmarks));
  } else {  // FaceMesh.refine, one round: a box alone frames the face loosely, crop again from the first mesh
    const [first] = await runMesh(ort, sessions, rgba, roiFromBox(face.box));
    [mesh, embedding] = await runMesh(ort, sessions, rgba, faceRoi(first));
  }
  const b = await blendshapes(ort, sessions, mesh);
  const [yaw, pitch, roll] = headPose(sessions.pose, mesh);
  return {mesh, b, blendshapes: Object.fromEntries(sessions.tables.blendshapes.map((name, i) => [name, b[i]])),
          head_pose: {yaw, pitch, roll}, embedding};
}

// Face.to_dict's feature keys from faceMeasures' values, rounded as to_dict rounds them
export function featureKeys(sessions, {mesh, b, head_pose}) {
  const meshRows = [];
  for (let i = 0; i < MESH_POINTS; i++) meshRows.push([0, 1, 2].map((k) => npRound(mesh[3 * i + k], 1)));
  return {
    mesh: meshRows,
    blendshapes: Object.fromEntries(sessions.tables.blendshapes.map((name, i) => [name, pyRound(b[i], 4)])),
    action_units: Object.fromEntries(Object.entries(actionUnits(sessions.tables, b)).map(([au, v]) => [au, pyRound(v, 4)])),
    head_pose: {yaw: pyRound(head_pose.yaw, 1), pitch: pyRound(head_pose.pitch, 1), roll: pyRound(head_pose.roll, 1)},
  };
}

// A clear error for what faceFeatures cannot read (the Python side's arrays would refuse the same in reshape)
function checkInput(rgba, face) {
  if (!rgba || !rgba.data || rgba.data.length !== 4 * rgba.width * rgba.height || !(rgba.width > 0 && rgba.height > 0)) {
    throw new Error("faceFeatures: the image is not RGBA pixels of its width x height");
  }
  const number = (v) => typeof v === "number" && Number.isFinite(v);
  if (!face || !face.box || !["x", "y", "w", "h"].every((k) => number(face.box[k]))) {
    throw new Error(`faceFeatures: the face's box is not {x, y, w, h} numbers: ${JSON.stringify(face && face.box)}`);
  }
  const lm = face.landmarks;
  if (lm != null && !(Array.isArray(lm) && lm.length === 5 && lm.every((p) => p.length === 2 && p.every(number)))) {
    throw new Error(`faceFeatures: the face's landmarks are not five [x, y] points: ${JSON.stringify(lm)}`);
  }
}

// mesh.roi_from_five_points: (5, 2) detector landmarks -> [centre x, centre y, side, angle]
function roiFromFivePoints(five) {
  const [re, le, , rm, lm] = five;
  const dx = le[0] - re[0], dy = le[1] - re[1];
  const angle = Math.atan2(dy, dx), c = Math.cos(angle), s = Math.sin(angle);
  const eye = [(re[0] + le[0]) / 2, (re[1] + le[1]) / 2], mouth = [(rm[0] + lm[0]) / 2, (rm[1] + lm[1]) / 2];
  const down = [-s, c], right = [c, s];  // the face's own down and right on screen
  const scale = Math.max((mouth[0] - eye[0]) * down[0] + (mouth[1] - eye[1]) * down[1], 0.5 * Math.hypot(dx, dy), 1);
  const centre = [0, 1].map((k) => eye[k] + FIVE_POINT_CENTRE[0] * scale * right[k] + FIVE_POINT_CENTRE[1] * scale * down[k]);
  return [centre[0], centre[1], ROI_SCALE * FIVE_POINT_SIDE * scale, angle];
}

// mesh.roi_from_box: a box {x, y, w, h} -> its centre, upright, 1.5x its longer side
function roiFromBox(box) {
  return [box.x + box.w / 2, box.y + box.h / 2, ROI_SCALE * Math.max(box.w, box.h, 1), 0];
}

// mesh.face_roi on a mesh's 468 face points, the eyes its outer corners
function faceRoi(mesh) {
  const lo = [Infinity, Infinity], hi = [-Infinity, -Infinity];
  for (let i = 0; i < 468; i++) {
    for (let k = 0; k < 2; k++) {
      lo[k] = Math.min(lo[k], mesh[3 * i + k]);
      hi[k] = Math.max(hi[k], mesh[3 * i + k]);
    }
  }
  const dx = mesh[3 * EYE_OUTER_LEFT] - mesh[3 * EYE_OUTER_RIGHT], dy = mesh[3 * EYE_OUTER_LEFT + 1] - mesh[3 * EYE_OUTER_RIGHT + 1];
  return [(lo[0] + hi[0]) / 2, (lo[1] + hi[1]) / 2, ROI_SCALE * Math.max(hi[0] - lo[0], hi[1] - lo[1]), Math.atan2(dy, dx)];
}

// mesh.crop_transform: the 2x3 map [a, b, c, d, e, f] from image pixels to the 256x256 crop
function cropTransform([cx, cy, side, angle]) {
  const k = MESH_INPUT / side, c = Math.cos(angle) * k, s = Math.sin(angle) * k;
  return [c, s, MESH_INPUT / 2 - c * cx - s * cy, -s, c, MESH_INPUT / 2 + s * cx - c * cy];
}

// cv2.invertAffineTransform
function invertAffine([a, b, c, d, e, f]) {
  const det = a * e - b * d, k = det !== 0 ? 1 / det : 0;
  const A = e * k, B = -b * k, D = -d * k, E = a * k;
  return [A, B, -A * c - B * f, D, E, -D * c - E * f];
}

// cv2.warpAffine(image, m, (256, 256), INTER_LINEAR, BORDER_CONSTANT) on uint8 as OpenCV computes it: source
// positions in 1/32 pixel (fixed point, AB_BITS 10), bilinear weights in 1/1024, outside pixels 0 -> RGB in [0, 1]
// as FaceMesh.run feeds it, (1, 256, 256, 3) float32.
function warpCrop(rgba, m) {
  const [a, b, c, d, e, f] = invertAffine(m);
  const {data, width, height} = rgba;
  const out = new Float32Array(MESH_INPUT * MESH_INPUT * 3), scale = Math.fround(1 / 255);
  const px = (x, y, ch) => (x >= 0 && y >= 0 && x < width && y < height ? data[4 * (y * width + x) + ch] : 0);
  for (let v = 0; v < MESH_INPUT; v++) {
    const X0 = Math.round((b * v + c) * 1024) + 16, Y0 = Math.round((e * v + f) * 1024) + 16;
    for (let u = 0; u < MESH_INPUT; u++) {
      const X = (X0 + Math.round(a * u * 1024)) >> 5, Y = (Y0 + Math.round(d * u * 1024)) >> 5;
      const x = X >> 5, y = Y >> 5, fx = X & 31, fy = Y & 31;
      const w00 = (32 - fx) * (32 - fy), w01 = fx * (32 - fy), w10 = (32 - fx) * fy, w11 = fx * fy;
      for (let ch = 0; ch < 3; ch++) {
        const value = (px(x, y, ch) * w00 + px(x + 1, y, ch) * w01 + px(x, y + 1, ch) * w10 +
                       px(x + 1, y + 1, ch) * w11 + 512) >> 10;
        out[3 * (v * MESH_INPUT + u) + ch] = value * scale;
      }
    }
  }
  return out;
}

// FaceMesh.run for one face: crop, Face Mesh V2, back to image pixels -> [(478 * 3) float32 x, y, z, the embedding:
// (512) float32, the model's fourth output (128, 2, 2) flattened, or null without sessions.embedding]
async function runMesh(ort, sessions, rgba, roi) {
  const m = cropTransform(roi), inverse = invertAffine(m), side = roi[2];
  const session = sessions.mesh;
  const input = new ort.Tensor("float32", warpCrop(rgba, m), [1, MESH_INPUT, MESH_INPUT, 3]);
  const out = await session.run({[session.inputNames[0]]: input});
  const points = out[session.outputNames[0]].data;  // (1, 1, 1, 1434) crop pixels
  const mesh = new Float32Array(MESH_POINTS * 3);
  for (let i = 0; i < MESH_POINTS; i++) {
    const x = points[3 * i], y = points[3 * i + 1];
    mesh[3 * i] = x * inverse[0] + y * inverse[1] + inverse[2];
    mesh[3 * i + 1] = x * inverse[3] + y * inverse[4] + inverse[5];
    mesh[3 * i + 2] = points[3 * i + 2] * side / MESH_INPUT;
  }
  return [mesh, sessions.embedding ? Float32Array.from(out[session.outputNames[3]].data) : null];
}

// FaceMesh.blendshapes for one face: the 146 points' image x, y -> (52) float32 in [0, 1]
async function blendshapes(ort, sessions, mesh) {
  const points = sessions.tables.blendshape_input_points;
  const session = sessions.blendshapes, pts = new Float32Array(points.length * 2);
  points.forEach((p, i) => { pts[2 * i] = mesh[3 * p]; pts[2 * i + 1] = mesh[3 * p + 1]; });
  const out = await session.run({[session.inputNames[0]]: new ort.Tensor("float32", pts, [1, pts.length / 2, 2])});
  return out[session.outputNames[0]].data;
}

// mesh.action_units: each AU the mean of its blendshapes (float32, as numpy's); AU25 jawOpen less mouthClose in [0, 1]
function actionUnits(tables, b) {
  const at = (name) => b[tables.blendshapes.indexOf(name)];
  const out = {};
  for (const [au, names] of Object.entries(tables.action_units)) {
    out[au] = Math.fround(names.reduce((s, n) => s + at(n), 0) / names.length);
  }
  out.AU25 = Math.min(Math.max(Math.fround(at("jawOpen") - at("mouthClose")), 0), 1);
  return out;
}

// FaceMesh.head_pose for one face: the weighted rotation fit of the canonical face onto the mesh (x right, y up, z to
// the camera) -> [yaw, pitch, roll] degrees as float32. Python's Kabsch (SVD with the reflection fixed) maximises
// sum w dst.R src over rotations; Horn's quaternion (the top eigenvector of a 4x4 matrix) maximises the same.
function headPose({ids, weights, canonical}, mesh) {
  const dst = ids.map((id) => [mesh[3 * id], -mesh[3 * id + 1], -mesh[3 * id + 2]]);
  const mean = [0, 1, 2].map((k) => dst.reduce((s, p, i) => s + weights[i] * p[k], 0));
  const S = [[0, 0, 0], [0, 0, 0], [0, 0, 0]];  // S[a][b] = sum w src_a dst_b
  canonical.forEach((src, i) => {
    for (let a = 0; a < 3; a++) for (let b = 0; b < 3; b++) S[a][b] += weights[i] * src[a] * (dst[i][b] - mean[b]);
  });
  const [[xx, xy, xz], [yx, yy, yz], [zx, zy, zz]] = S;
  const N = [[xx + yy + zz, yz - zy, zx - xz, xy - yx],
             [yz - zy, xx - yy - zz, xy + yx, zx + xz],
             [zx - xz, xy + yx, -xx + yy - zz, yz + zy],
             [xy - yx, zx + xz, yz + zy, -xx - yy + zz]];
  const [w, x, y, z] = topEigenvector(N);
  const r = [[1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)],
             [2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)],
             [2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)]];
  return eulerDegrees(r).map(Math.fround);
}

// The unit eigenvector of a symmetric 4x4 matrix's largest eigenvalue (cyclic Jacobi rotations; numpy's svd in Python)
function topEigenvector(matrix) {
  const A = matrix.map((row) => row.slice()), V = [0, 1, 2, 3].map((i) => [0, 1, 2, 3].map((j) => +(i === j)));
  for (let sweep = 0; sweep < 50; sweep++) {
    let off = 0;
    for (let p = 0; p < 4; p++) for (let q = p + 1; q < 4; q++) off += A[p][q] * A[p][q];
    if (off < 1e-30) break;
    for (let p = 0; p < 4; p++) {
      for (let q = p + 1; q < 4; q++) {
        if (A[p][q] === 0) continue;
        const theta = (A[q][q] - A[p][p]) / (2 * A[p][q]);
        const t = Math.sign(theta || 1) / (Math.abs(theta) + Math.sqrt(theta * theta + 1));
        const c = 1 / Math.sqrt(t * t + 1), s = t * c;
        for (let k = 0; k < 4; k++) {  // A <- A J (columns p, q), V <- V J
          const akp = A[k][p], akq = A[k][q];
          A[k][p] = c * akp - s * akq; A[k][q] = s * akp + c * akq;
          const vkp = V[k][p], vkq = V[k][q];
          V[k][p] = c * vkp - s * vkq; V[k][q] = s * vkp + c * vkq;
        }
        for (let k = 0; k < 4; k++) {  // A <- J^T A (rows p, q)
          const apk = A[p][k], aqk = A[q][k];
          A[p][k] = c * apk - s * aqk; A[q][k] = s * apk + c * aqk;
        }
      }
    }
  }
  const top = [0, 1, 2, 3].reduce((best, i) => (A[i][i] > A[best][best] ? i : best), 0);
  return V.map((row) => row[top]);
}

// mesh.euler_degrees: R = Rz(-roll) Ry(yaw) Rx(-pitch) -> [yaw, pitch, roll] in degrees
function eulerDegrees(r) {
  const deg = 180 / Math.PI;
  return [-Math.asin(Math.min(Math.max(r[2][0], -1), 1)) * deg,
          -Math.atan2(r[2][1], r[2][2]) * deg,
          -Math.atan2(r[1][0], r[0][0]) * deg];
}

// numpy.round(x, n) as Face.to_dict rounds the mesh: x * 10^n rounded half to even, divided back
function npRound(x, n) {
  const k = 10 ** n, y = x * k, r = Math.round(y);
  return (Math.abs(y % 1) === 0.5 ? 2 * Math.round(y / 2) : r) / k;
}

// Python's round(x, n) on a float as Face.to_dict rounds the rest: the nearest n-decimal number to x's exact value
// (toFixed's choice; the two differ only on exact binary ties such as 0.03125 at 4 decimals, by 1e-4)
function pyRound(x, n) {
  return Number(x.toFixed(n));
}
