// The on-device analysis worker (#36): a module Web Worker that loads onnxruntime-web (wasm, SIMD) and ferkit's
// models from the manifest (GET /api/v1/ondevice), checks each file's sha256, and answers the page's messages
// (protocol: docs in /work/notes/ondevice.md and below) with the faces the server would give for the same image.
//   page -> worker: {type: "init", manifest} | {type: "analyze", id, image, features, live, session} | {type: "reset", session}
//   worker -> page: {type: "ready", part, ms} | {type: "result", id, width, height, faces, faces_left_out, timings}
//                   | {type: "error", id, message}
import * as pipeline from "./pipeline.js";
import {applyHead, checkHead} from "./head.js";

let ort = null, manifest = null, sessions = null;  // set by init
let head = null;              // the manifest's adapter head (head.js), or null: the classifier's own answer
let features = null;          // a promise of loadFeatures' answer
const trackers = new Map();   // live session -> pipeline.FaceTracker

// Fetch one manifest entry ({url, sha256}) and check its bytes against the sha256 before anything uses them.
async function fetchVerified(entry) {
  const response = await fetch(entry.url);
  if (!response.ok) throw new Error(`${entry.url}: HTTP ${response.status}`);
  const bytes = await response.arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0")).join("");
  if (hex !== entry.sha256) throw new Error(`${entry.url}: sha256 ${hex} differs from the manifest's ${entry.sha256}`);
  return bytes;
}

async function session(entry) {
  return ort.InferenceSession.create(new Uint8Array(await fetchVerified(entry)), {executionProviders: ["wasm"]});
}

async function init(m) {
  const t0 = performance.now();
  manifest = m;
  head = m.adapter ? checkHead(m.adapter, m.classifier) : null;  // before any download: a head for another model
  ort = await import(m.runtime.module);
  ort.env.wasm.wasmPaths = m.runtime.wasm_dir;
  // threads need SharedArrayBuffer, which only a cross-origin isolated page has
  ort.env.wasm.numThreads = self.crossOriginIsolated ? Math.min(4, navigator.hardwareConcurrency || 1) : 1;
  const [classifier, detector, closeup, ...members] = await Promise.all(
    [m.classifier, m.detector, m.closeup, ...m.classifier.members].map(session));
  sessions = {classifier, detector, closeup, members: members.map((s, i) => [s, m.classifier.members[i].weight])};
  features = loadFeatures(t0);
  // A head that reads face features turns their stage on, as loading it does in Python (Recognizer.__init__): its
  // answers need the feature models, so the core is ready only with them, and without them the page stays on the
  // server (this error has id null).
  if (headStages()) {
    const loaded = await features;
    if (loaded.failed) throw new Error(`the adapter ${head.name} reads face features, but ${loaded.failed}`);
  }
  postMessage({type: "ready", part: "core", ms: performance.now() - t0});
  features.then((loaded) => { if (!loaded.failed) postMessage({type: "ready", part: "features", ms: loaded.ms}); });
}

// The face-feature stages the adapter head reads (mesh.py names: "blendshapes", "pose"), or null for none
function headStages() {
  return head && head.stage_features.length ? head.stage_features : null;
}

// The face-feature models load after the core's: the page analyses before they arrive (unless the adapter head
// reads them: init). A failure here is not the page's "error" with id null (which makes it fall back to the
// server): it is answered when features are asked for. -> {module, sessions, ms} or {failed: a sentence}
async function loadFeatures(t0) {
  try {
    const module = await import("./features.js");
    const loaded = {module, sessions: await module.loadFeatureSessions(ort, manifest.features, fetchVerified,
      manifest.feature_tables)};
    return {...loaded, ms: performance.now() - t0};
  } catch (e) {
    postMessage({type: "failed", part: "features", message: String(e && e.message || e)});  // the page says so
    return {failed: `the face-feature models did not load: ${e.message || e}`};
  }
}

// The image as RGBA pixels: ImageData as it is, an ImageBitmap drawn once onto an OffscreenCanvas.
function pixels(image) {
  if (image.data) return image;
  const canvas = new OffscreenCanvas(image.width, image.height), ctx = canvas.getContext("2d", {willReadFrequently: true});
  ctx.drawImage(image, 0, 0);
  if (image.close) image.close();
  return ctx.getImageData(0, 0, canvas.width, canvas.height);
}

// Worker.analyze (photo) or Worker.frame (live) of src/ferkit/server/worker.py, then the face features when asked.
async function analyze(msg) {
  const t0 = performance.now(), rgba = pixels(msg.image), bgr = pipeline.bgrOf(rgba), grey = pipeline.greyOf(bgr);
  const timings = {detect_ms: 0, classify_ms: 0, features_ms: 0, total_ms: 0};
  let faces, leftOut;
  if (msg.live) {
    let tracker = trackers.get(msg.session);
    if (!tracker) trackers.set(msg.session, tracker = new pipeline.FaceTracker(ort, sessions, manifest));
    faces = await tracker.process(bgr, grey, timings);
    leftOut = tracker.leftOut;
  } else {
    const t1 = performance.now();
    const [found, left] = pipeline.largest(await pipeline.detectFaces(ort, sessions, manifest, bgr), manifest.settings.max_faces);
    leftOut = left;
    const t2 = performance.now();
    faces = await pipeline.facesFor(ort, sessions, manifest, grey, found);
    timings.detect_ms = t2 - t1;
    timings.classify_ms = performance.now() - t2;
  }
  // The stage runs when asked for ("all": every key) or when the head reads it (Python's Recognizer with such a
  // head: blendshapes and action units with "blendshapes", head_pose with "pose"; the mesh only when asked).
  const stages = msg.features === "all" ? null : headStages();
  const measured = new Map();   // face -> its stage values, unrounded, for the head
  if ((msg.features === "all" || stages) && faces.length) {
    const t3 = performance.now(), loaded = await features;
    if (loaded.failed) throw new Error(loaded.failed);
    for (const face of faces.slice(0, manifest.settings.max_faces)) {
      const unrounded = {...face, landmarks: face.rawLandmarks};
      const values = await loaded.module.faceMeasures(ort, loaded.sessions, rgba, unrounded);
      const keys = loaded.module.featureKeys(loaded.sessions, values);
      if (stages) {
        if (!stages.includes("blendshapes")) { delete keys.blendshapes; delete keys.action_units; }
        if (!stages.includes("pose")) delete keys.head_pose;
        delete keys.mesh;
      }
      Object.assign(face, keys);
      measured.set(face, values);
    }
    timings.features_ms = performance.now() - t3;
  }
  // Recognizer._make_face: the head relabels each face after the stage that fills its features (its time is
  // classify's: it is part of the classification)
  if (head) {
    const t4 = performance.now();
    for (const face of faces) applyHead(head, face, measured.get(face) || null);
    timings.classify_ms += performance.now() - t4;
  }
  timings.total_ms = performance.now() - t0;
  return {type: "result", id: msg.id, width: rgba.width, height: rgba.height, faces, faces_left_out: leftOut, timings};
}

// One message at a time, in order: a live tracker's frames must not interleave.
let queue = Promise.resolve();
self.onmessage = (event) => {
  const msg = event.data;
  queue = queue.then(async () => {
    try {
      if (msg.type === "init") await init(msg.manifest);
      else if (msg.type === "reset") trackers.delete(msg.session);
      else if (msg.type === "analyze") {
        if (!sessions) throw new Error("analyze before init: send {type: 'init', manifest} first");
        postMessage(await analyze(msg));
      } else throw new Error(`unknown message type ${JSON.stringify(msg.type)}; known: init, analyze, reset`);
    } catch (e) {
      postMessage({type: "error", id: msg.id ?? null, message: String(e && e.message || e)});
    }
  });
};
