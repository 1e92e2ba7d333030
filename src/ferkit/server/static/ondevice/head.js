// An adapter head in the browser: the runtime half of src/ferkit/head.py (what load_recognizer(adapter=...) runs),
// on the head the server sends in its manifest ("adapter", routes/ondevice.py):
//   {name, classes (K), features (D names "group:key"), mean (D), scale (D), weights (K x D), bias (K),
//    probability_floor, base_model: {name, file, sha256}, stage_features (mesh.py names the head reads)}
// A face dict (Face.to_dict's keys, probabilities unrounded) and the face-feature stage's unrounded values
//   -> the features in the head's order (log of the base probabilities, blendshapes, head pose, the mesh
//      embedding)                                                                                  (faceFeatures)
//   -> standardised, linear, softmax over the head's classes                                        (headProbabilities)
//   -> the face relabelled, its base model's probabilities kept, the adapter named                   (applyHead)
// Every number is a double, as NumPy's float64 in head.py.

// Feature groups whose values the face-features stage gives, with the stage's name (head.py's STAGE_FEATURES)
const STAGE_FEATURES = {blendshapes: "blendshapes", head_pose: "pose", mesh_embedding: "embedding"};

// load_adapter + Head.check_base: the head, refused (an Error naming both models) unless it was fitted on the very
// classifier file this page runs (its sha256) and the classifier gives every base probability it reads.
export function checkHead(head, classifier) {
  const base = head.base_model || {};
  if (base.sha256 !== classifier.sha256) {
    throw new Error(`the adapter ${head.name} was fitted on the model ${JSON.stringify(base.name)} (${base.file}, ` +
      `sha256 ${String(base.sha256).slice(0, 12)}...), not on ${classifier.name} (sha256 ` +
      `${classifier.sha256.slice(0, 12)}...)`);
  }
  const missing = head.features.filter((n) => n.startsWith("log_probabilities:"))
    .map((n) => n.slice(n.indexOf(":") + 1)).filter((label) => !classifier.labels.includes(label));
  if (missing.length) throw new Error(`the adapter ${head.name} reads features over labels ${missing} that the model lacks`);
  return head;
}

// head._face_groups: {group: {key: value}} of one face, null where the face lacks the group. measured: the stage's
// values for the face ({blendshapes: {name: v}, head_pose: {yaw, pitch, roll}, embedding: (512) or null}, unrounded)
// or null.
// The embedding's keys are its indices, "0" to "511".
function faceGroups(face, measured) {
  const embedding = measured && measured.embedding;
  return {log_probabilities: face.base_probabilities || face.probabilities,
          blendshapes: measured ? measured.blendshapes : null, head_pose: measured ? measured.head_pose : null,
          mesh_embedding: embedding ? Object.fromEntries(Array.from(embedding, (v, i) => [String(i), v])) : null};
}

// head.face_features: one face's features in the head's order, log_probabilities as log(max(p, floor)); an Error
// naming the group or key the face lacks.
export function faceFeatures(head, face, measured) {
  const groups = faceGroups(face, measured);
  return head.features.map((name) => {
    const at = name.indexOf(":"), group = name.slice(0, at), key = name.slice(at + 1);
    const values = groups[group];
    if (values == null) {
      throw new Error(`this adapter needs the face's ${group}, which the face does not carry` +
        (group in STAGE_FEATURES ? ` (the face-features stage ${STAGE_FEATURES[group]} gives it)` : ""));
    }
    if (!(key in values)) throw new Error(`this adapter needs ${group} ${JSON.stringify(key)}, which the face's ${group} lack`);
    const v = values[key];
    return group === "log_probabilities" ? Math.log(Math.max(v, head.probability_floor)) : v;
  });
}

// Head.probabilities (one face) + head.softmax: (D) features -> (K) probabilities over head.classes
export function headProbabilities(head, x) {
  const z = head.weights.map((row, k) =>
    row.reduce((sum, w, j) => sum + ((x[j] - head.mean[j]) / head.scale[j]) * w, 0) + head.bias[k]);
  const top = Math.max(...z), e = z.map((v) => Math.exp(v - top)), total = e.reduce((a, b) => a + b, 0);
  return e.map((v) => v / total);
}

// Head.apply: the face dict relabelled in place: probabilities and emotion over the head's classes (the first
// largest, as np.argmax), the base model's probabilities kept in base_probabilities, `adapter` naming the head.
export function applyHead(head, face, measured) {
  const p = headProbabilities(head, faceFeatures(head, face, measured));
  let top = 0;
  for (let k = 1; k < p.length; k++) if (p[k] > p[top]) top = k;
  const base = face.base_probabilities || face.probabilities;
  Object.assign(face, {probabilities: Object.fromEntries(head.classes.map((c, k) => [c, p[k]])),
                       emotion: head.classes[top], adapter: head.name, base_probabilities: base});
  return face;
}
