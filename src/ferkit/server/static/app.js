// ferkit's page: photos and the live camera, analysed on this device (ondevice/worker.js, the same pipeline in
// WebAssembly) or on the server (POST /api/v1/analyze, the /api/v1/live WebSocket), and music for the detected mood.
// No libraries, no CDN. Emotion labels come from GET /api/v1/info; none is typed here. The music panel is
// music.js.

import { clearMusic, followMood, setupMusic } from "./music.js";

const $ = (id) => document.getElementById(id);
const state = {
  labels: [],               // from /api/v1/info, in the model's order
  live: null,               // the running live session (see startLive)
  photoRequest: 0,          // numbers uploads, so that only the latest one's answer is shown
  mode: "server",           // where analysis runs: "device" (the worker) or "server"; see setupWhere
  device: null,             // the on-device worker and its state (see startDevice); null until asked for
};

// One colour and one dash pattern per class index, so lines and boxes differ by more than colour; eight of
// each: FER-2013's seven classes and FER+'s eight.
const PALETTE = ["#c0392b", "#6d8b1e", "#7d3c98", "#d68910", "#1f5fbf", "#0e8a7d", "#5d6d7e", "#a04000"];
const DASHES = [[], [8, 4], [2, 3], [10, 3, 2, 3], [5, 5], [1, 2], [12, 6], [3, 6]];
const colourOf = (label) => PALETTE[state.labels.indexOf(label) % PALETTE.length];
const dashOf = (label) => DASHES[state.labels.indexOf(label) % DASHES.length];
const pct = (p) => `${(p * 100).toFixed(1)} %`;
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

function announce(text) {
  // Re-setting the same text would not be re-read; clear first.
  const el = $("announcer");
  el.textContent = "";
  setTimeout(() => { el.textContent = text; }, 30);
}

function setMessage(el, text, isError = false) {
  el.textContent = text;
  el.classList.toggle("error", isError);
}

// What the server said, in words for people: no Python bytes, no decoder internals, no MIME types; and what to do.
function friendlyError(status, detail, limits = state.info?.limits || {}) {
  const text = String(detail || "");
  const mb = (n) => `${Math.round(n / 1e6)} MB`, mp = (n) => `${Math.round(n / 1e6)} MP`;
  const kind = /in a format we read: ([^(;]+?)\s*[(;]/.exec(text)?.[1];
  if (status === 413 && /pixels/.test(text)) {
    return `Too large (max ${mp(limits.max_pixels || 40e6)}): resize it to fewer pixels and try again.`;
  }
  if (status === 413) return `Too large (max ${mb(limits.max_upload_bytes || 10e6)}): resize or compress it.`;
  if (status === 415) {
    return `This is not an image this page reads${kind ? ` (the file is ${kind})` : ""}. ` +
      "Save it as JPEG or PNG and try again.";
  }
  if (status === 422 || /corrupt|truncated/.test(text)) {
    return "This photo could not be read: the file seems damaged or cut short. Save it again and retry.";
  }
  if (status >= 500) return "The server could not analyse this photo. Try again in a moment.";
  return "The server could not use this file. Try a JPEG or PNG photo.";
}

async function errorDetail(response) {
  try {
    const body = await response.json();
    return typeof body.detail === "string" ? body.detail : JSON.stringify(body.detail);
  } catch {
    return `${response.status} ${response.statusText}`;
  }
}

// ------------------------------------------------------------------ model card
async function loadInfo() {
  const response = await fetch("/api/v1/info");
  if (!response.ok) throw new Error(await errorDetail(response));
  const info = await response.json();
  state.labels = info.labels;
  // agreement with people (the FER+ majority of ten annotators) where the card has it, else the card's own test set
  const pct = (x) => `${(x * 100).toFixed(1)} %`;
  const people = info.metrics && info.metrics.agreement, single = info.metrics && info.metrics.fer2013_labels;
  const acc = people ? `agrees with most of ten people on ${pct(people.accuracy)} of FER+ PrivateTest faces` +
      (single ? ` (FER-2013's single labels: ${pct(single.accuracy)})` : "")
    : info.test_accuracy == null ? "test accuracy not measured yet"
    : `test accuracy ${pct(info.test_accuracy)} on ${(info.metrics && info.metrics.test_set) || "its test set"}`;
  $("model-info").textContent = `Model ${info.model.name} (ferkit ${info.model.version}), ` +
    `${info.labels.length} emotions: ${info.labels.join(", ")}; detector ${info.detector}; ${acc}.` +
    (info.model.note ? ` (${info.model.note})` : "");
  state.info = info;
  buildLegend();
}

// ------------------------------------------------------------------ where the analysis runs
// "device": ondevice/worker.js runs ferkit's models in WebAssembly and no image leaves the page; "server": photos go
// to POST /api/v1/analyze and frames to the /api/v1/live WebSocket. The default is the device where the browser
// can; the visitor's choice is remembered.
const WHERE_KEY = "ferkit.analysis";
const WHERE_TEXT = { device: "On this device: nothing is uploaded", server: "On the server" };
// On the device the visitor chooses the face features (they cost the most time: live mode runs slower with them);
// on the server the server's --features decides.
const FEATURES_KEY = "ferkit.deviceFeatures";
// The smallest module with a SIMD instruction (i8x16.splat of 0, then i8x16.popcnt): it validates only where
// WebAssembly has SIMD, which onnxruntime-web's wasm build needs.
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0,
  65, 0, 253, 15, 253, 98, 11]);

// Why this browser cannot analyse on the device, in a sentence, or null when it can (module workers are checked
// when the worker starts: startDevice).
function deviceUnsupported() {
  if (typeof WebAssembly !== "object" || typeof WebAssembly.validate !== "function") {
    return "This browser runs no WebAssembly (it is missing or switched off), which on-device analysis needs, " +
      "so photos and frames are analysed on the server.";
  }
  let simd = false;
  try { simd = WebAssembly.validate(SIMD_PROBE); } catch { /* an old engine: no SIMD */ }
  if (!simd) {
    return "This browser's WebAssembly has no SIMD, which on-device analysis needs, so photos and frames are " +
      "analysed on the server.";
  }
  if (typeof Worker !== "function" || typeof createImageBitmap !== "function") {
    return "This browser has no Web Workers or ImageBitmaps, which on-device analysis needs, so photos and frames " +
      "are analysed on the server.";
  }
  return null;
}

function setupWhere() {
  const why = deviceUnsupported();
  let stored = null;
  try { stored = localStorage.getItem(WHERE_KEY); } catch { /* storage blocked: the default */ }
  for (const radio of document.querySelectorAll("input[name=where]")) {
    radio.addEventListener("change", () => {
      if (!radio.checked) return;
      try { localStorage.setItem(WHERE_KEY, radio.value); } catch { /* not remembered */ }
      setMode(radio.value, true);
    });
  }
  const features = $("features-toggle");
  try { features.checked = localStorage.getItem(FEATURES_KEY) !== "false"; } catch { /* storage blocked: on */ }
  features.addEventListener("change", () => {
    try { localStorage.setItem(FEATURES_KEY, String(features.checked)); } catch { /* not remembered */ }
  });
  if (why) { deviceUnavailable(why); return; }
  setMode(stored === "server" ? "server" : "device");
}

// The device mode cannot be used (this browser, or the worker did not start): the server mode, with the sentence.
function deviceUnavailable(why) {
  $("where-device").disabled = true;
  $("where-why").textContent = why;
  $("where-why").hidden = false;
  $("where-load").hidden = true;
  setMode("server", state.mode === "device");
}

// Switch where analysis runs; a running live session goes on in the other mode (switchLive).
function setMode(mode, spoken = false) {
  const before = state.mode;
  state.mode = mode;
  $(`where-${mode}`).checked = true;
  $("where-text").textContent = WHERE_TEXT[mode];
  document.body.dataset.mode = mode;
  document.body.classList.toggle("ondevice", mode === "device");
  showHeatmapNote();
  if (mode === "device") startDevice();
  if (state.live && before !== mode) switchLive(state.live);
  if (spoken) announce(`Analysis now runs ${mode === "device" ? "on this device: nothing is uploaded" : "on the server"}.`);
}

// Load the worker once: the manifest (GET /api/v1/ondevice: runtime, models with their sha256, settings), then
// {type: "init"}; the worker answers {type: "ready", part: "core"} (detector + classifier: analysis can start) and
// later {type: "ready", part: "features"} (face mesh and blendshapes) or {type: "failed", part: "features"} (the page
// says so and analyses without them), or an error, after which the page falls back to the server.
function startDevice() {
  if (state.device) return state.device.ready;
  const d = state.device = { worker: null, coreReady: false, featuresReady: false, hasFeatures: false,
    pending: new Map(), nextId: 0, failed: null };
  d.ready = (async () => {
    const response = await fetch("/api/v1/ondevice").catch(() => null);
    if (!response?.ok) {
      throw new Error(response ? `the server offers no on-device models (${response.status})` : "the server could not be reached");
    }
    const manifest = await response.json();
    if (manifest.available === false) {
      throw Object.assign(new Error(manifest.reason), { sentence: `This server cannot offer on-device analysis ` +
        `(${manifest.reason}), so photos and frames are analysed on the server.` });
    }
    d.hasFeatures = Boolean(manifest.features && Object.keys(manifest.features).length);
    let module = false;   // read by the browser only if it knows module workers: those that do not, ignore `type`
    const worker = d.worker = new Worker("/static/ondevice/worker.js", { get type() { module = true; return "module"; } });
    if (!module) {
      worker.terminate();
      throw Object.assign(new Error("no module workers"), { sentence: "This browser cannot start module workers, " +
        "which on-device analysis needs, so photos and frames are analysed on the server." });
    }
    showLoading("Loading the models into this browser…");
    return new Promise((resolve, reject) => {
      worker.onmessage = (e) => onDeviceMessage(d, e.data, resolve, reject);
      worker.onerror = (e) => {
        e.preventDefault();
        const err = new Error(e.message || "the worker stopped");
        reject(err);
        deviceFailed(d, err);
      };
      worker.postMessage({ type: "init", manifest });
    });
  })();
  d.ready.catch((err) => deviceFailed(d, err));
  return d.ready;
}

// The worker did not start, or stopped: its jobs fail, and the page offers the server. A live session running on
// the device stops rather than send its frames to the server unasked.
function deviceFailed(d, err) {
  if (d.failed) return;
  d.failed = err;
  for (const { reject } of d.pending.values()) reject(err);
  d.pending.clear();
  d.worker?.terminate();
  if (state.live && state.mode === "device") {
    stopLive("On-device analysis stopped, so the camera was stopped; nothing was sent. Press Start camera to " +
      "analyse on the server.", true);
  }
  deviceUnavailable(err.sentence || `On-device analysis could not start (${err.message}), so photos and frames ` +
    "are analysed on the server.");
}

function onDeviceMessage(d, msg, resolve, reject) {
  if (msg.type === "ready") $("where").dataset[msg.part] = "ready";   // for tests and styles: which parts have loaded
  if (msg.type === "ready" && msg.part === "core") {
    d.coreReady = true;
    showLoading(d.hasFeatures ? `Ready (models loaded in ${Math.round(msg.ms)} ms); the face features are still loading.`
      : `Ready (models loaded in ${Math.round(msg.ms)} ms).`);
    resolve();
    if (state.live) schedulePump(state.live);
  } else if (msg.type === "ready" && msg.part === "features") {
    d.featuresReady = true;
    showLoading(`Ready, with the face features (loaded in ${Math.round(msg.ms)} ms).`);
  } else if (msg.type === "failed" && msg.part === "features") {
    // A face-feature model did not load (a fetch failed, its sha256 differed, the runtime refused it): the detector
    // and classifier run on, so faces keep their emotions, without the face features; the checkbox can do nothing
    // (unticked here without a change event: the visitor's stored choice stays for the next visit).
    d.featuresFailed = msg.message;
    $("where").dataset.features = "failed";
    $("features-toggle").disabled = true;
    $("features-toggle").checked = false;
    const text = `The face features failed to load (${msg.message}), so faces come without them; emotions are ` +
      "still analysed on this device.";
    showLoading(text, true);
    announce(text);
  } else if (msg.type === "error" && msg.id == null) {
    reject(new Error(msg.message));
  } else if (msg.id != null && d.pending.has(msg.id)) {
    const job = d.pending.get(msg.id);
    d.pending.delete(msg.id);
    if (msg.type === "result") job.resolve(msg);
    else job.reject(new Error(msg.message));
  }
}

function showLoading(text, warning = false) {
  $("where-load").textContent = text;
  $("where-load").classList.toggle("warning", warning);
  $("where-load").hidden = false;
}

// One image to the worker -> its result {width, height, faces, timings}. The bitmap is transferred, not copied.
// Face features are asked for once their models have loaded, if the visitor wants them; until then the faces come
// without them.
async function analyzeOnDevice(bitmap, { live = false, session = "" } = {}) {
  const d = state.device;
  await d.ready;
  const id = ++d.nextId;
  return new Promise((resolve, reject) => {
    d.pending.set(id, { resolve, reject });
    const features = d.featuresReady && $("features-toggle").checked ? "all" : "off";
    d.worker.postMessage({ type: "analyze", id, image: bitmap, features, live, session }, [bitmap]);
  });
}

// Stage timings in words: "detect 12 ms · classify 3 ms · features 40 ms".
function stagesText(timings) {
  const names = [["detect_ms", "detect"], ["classify_ms", "classify"], ["features_ms", "features"]];
  return names.filter(([key]) => Number.isFinite(timings?.[key]) && (key !== "features_ms" || timings[key] > 0))
    .map(([key, name]) => `${name} ${timings[key].toFixed(0)} ms`).join(" · ");
}

// The heat map (Grad-CAM) is made by the server only: in device mode the toggle says so rather than show nothing.
function showHeatmapNote() {
  $("heatmap-note").hidden = !(state.mode === "device" && $("heatmap-toggle").checked);
}

// ------------------------------------------------------------------ tabs
function setupTabs() {
  const tabs = [$("tab-photo"), $("tab-live")];
  const select = (tab) => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute("aria-selected", String(on));
      t.tabIndex = on ? 0 : -1;
      $(t.getAttribute("aria-controls")).hidden = !on;
    }
    tab.focus();
  };
  for (const t of tabs) {
    t.addEventListener("click", () => select(t));
    t.addEventListener("keydown", (e) => {
      const i = tabs.indexOf(t);
      if (e.key === "ArrowRight" || e.key === "ArrowLeft") {
        e.preventDefault();
        select(tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length]);
      }
    });
  }
}

// ------------------------------------------------------------------ faces: bars and boxes
function sortedProbs(face) {
  return Object.entries(face.probabilities).sort((a, b) => b[1] - a[1]);
}

// One card per face. A plain <div> under its heading: a <section> with a name would make every face a landmark,
// and a screen reader's list of landmarks would fill with faces. `correctable`: photo mode offers "Wrong?".
function renderFaceCards(container, faces, correctable = false) {
  container.replaceChildren(...faces.map((face, i) => {
    const card = document.createElement("div");
    card.className = "face";
    card.style.borderLeftColor = colourOf(face.emotion);
    card.dataset.emotion = face.emotion;
    const h = document.createElement("h3");
    h.textContent = `Face ${i + 1}: ${face.emotion} (${pct(face.probabilities[face.emotion])})`;
    card.append(h);
    if (face.detector) {
      const found = document.createElement("p");
      found.className = "detector muted";
      found.textContent = `Found by ${face.detector}` +
        (Number.isFinite(face.detector_score) ? ` (detector score ${face.detector_score.toFixed(2)})` : "");
      card.append(found);
    }
    if (typeof face.adapter === "string" && face.adapter) {
      const adapter = document.createElement("p");
      adapter.className = "adapter muted";
      adapter.textContent = `Adapter: ${face.adapter}`;
      card.append(adapter);
    }
    const list = document.createElement("ul");
    list.className = "probs";
    for (const [label, p] of sortedProbs(face)) {
      const li = document.createElement("li");
      li.dataset.label = label;
      if (label === face.emotion) li.className = "top";
      const name = document.createElement("span");
      name.textContent = label === face.emotion ? `${label} ★` : label;
      const bar = document.createElement("span");
      bar.className = "bar";
      bar.setAttribute("aria-hidden", "true");
      const fill = document.createElement("span");
      fill.style.width = `${(p * 100).toFixed(1)}%`;
      fill.style.background = colourOf(label);
      bar.append(fill);
      const value = document.createElement("span");
      value.className = "value";
      value.textContent = pct(p);
      li.append(name, bar, value);
      list.append(li);
    }
    card.append(list);
    card.append(...faceFeatures(face));
    if (correctable) card.append(correctionControl(face, i));
    return card;
  }));
}

// FACS action units: the names ferkit.mesh.ACTION_UNITS gives them (a test checks the two lists agree).
const AU_NAMES = {
  AU1: "inner brow raiser", AU2: "outer brow raiser", AU4: "brow lowerer", AU5: "upper lid raiser",
  AU7: "lid tightener", AU10: "upper lip raiser",
  AU12: "lip corner puller", AU14: "dimpler", AU15: "lip corner depressor", AU17: "chin raiser",
  AU18: "lip pucker", AU20: "lip stretcher", AU22: "lip funneler", AU23: "lip tightener", AU25: "lips part",
  AU26: "jaw drop", AU28: "lip suck", AU43: "eyes closed",
};
const AUS_SHOWN = 3;   // the strongest few: the JSON has all of them

// Optional keys a face may carry (absent: nothing is shown): action_units {"AU12": 0.83, ...} (0..1 estimates),
// head_pose {yaw, pitch, roll} in degrees.
function faceFeatures(face) {
  const out = [];
  const aus = face.action_units && typeof face.action_units === "object"
    ? Object.entries(face.action_units).filter(([, v]) => Number.isFinite(v)).sort((a, b) => b[1] - a[1])
      .slice(0, AUS_SHOWN)
    : [];
  if (aus.length) out.push(actionUnitList(aus));
  const pose = face.head_pose;
  if (pose && ["yaw", "pitch", "roll"].every((k) => Number.isFinite(pose[k]))) {
    const p = document.createElement("p");
    p.className = "pose";
    const raw = document.createElement("span");
    raw.className = "muted";
    raw.textContent = ` (yaw ${pose.yaw.toFixed(0)}°, pitch ${pose.pitch.toFixed(0)}°, roll ${pose.roll.toFixed(0)}°)`;
    p.append(`Head: ${poseInWords(pose)}`, raw);
    out.push(p);
  }
  return out;
}

// The strongest action units, named, on the probabilities' 0-100 scale, with a line saying what they are.
function actionUnitList(aus) {
  const box = document.createElement("div");
  box.className = "aus";
  const intro = document.createElement("p");
  intro.className = "muted";
  intro.textContent = "Strongest facial movements (FACS action units, estimated from the face mesh, 0–100):";
  const list = document.createElement("ul");
  list.className = "probs aus-list";
  for (const [code, v] of aus) {
    const li = document.createElement("li");
    li.dataset.au = code;
    const name = document.createElement("span");
    name.textContent = AU_NAMES[code] ? `${code} ${AU_NAMES[code]}` : code;
    const bar = document.createElement("span");
    bar.className = "bar";
    bar.setAttribute("aria-hidden", "true");
    const fill = document.createElement("span");
    fill.style.width = `${Math.min(100, Math.max(0, v * 100)).toFixed(0)}%`;
    fill.style.background = "#5d6d7e";
    bar.append(fill);
    const value = document.createElement("span");
    value.className = "value";
    value.textContent = (v * 100).toFixed(0);
    li.append(name, bar, value);
    list.append(li);
  }
  box.append(intro, list);
  return box;
}

// Head pose in words, from the person's own point of view. ferkit's signs (docs/face-features.md): yaw > 0 turns
// towards the image's right, which is the person's left; pitch > 0 is chin up; roll > 0 turns the face clockwise
// on screen, its top towards the image's right: the head leans towards the person's left shoulder.
const POSE_STEADY = 5;     // degrees: below this an angle is not worth a word
const POSE_SLIGHT = 15;    // degrees: below this a nod is "slightly"

function poseInWords({ yaw, pitch, roll }) {
  const deg = (a) => `${Math.round(Math.abs(a))}°`;
  const side = (a) => (a > 0 ? "left" : "right");
  const parts = [Math.abs(yaw) < POSE_STEADY ? "facing the camera" : `turned ${deg(yaw)} to their ${side(yaw)}`];
  if (Math.abs(pitch) >= POSE_STEADY) {
    parts.push(`chin ${Math.abs(pitch) < POSE_SLIGHT ? "slightly" : deg(pitch)} ${pitch > 0 ? "up" : "down"}`);
  }
  if (Math.abs(roll) >= POSE_STEADY) parts.push(`tilted ${deg(roll)} towards their ${side(roll)} shoulder`);
  return parts.join(", ");
}

// The face mesh: [x, y, z] points in image pixels, or [] when the face has none.
function meshOf(face) {
  if (!Array.isArray(face.mesh)) return [];
  return face.mesh.filter((p) => Array.isArray(p) && p.length >= 2 && Number.isFinite(p[0]) && Number.isFinite(p[1]));
}

const MESH_KEY = "ferkit.showMesh";
const showMesh = () => document.body.classList.contains("show-mesh");

// The mesh checkboxes appear once some face has a mesh; one setting for both modes, remembered, off by default.
function setupMesh() {
  const toggles = [...document.querySelectorAll(".mesh-toggle")];
  const apply = (on) => {
    for (const t of toggles) t.checked = on;
    document.body.classList.toggle("show-mesh", on);     // photo mode: CSS shows the mesh canvas
    const r = state.live?.lastResult;
    if (r) drawOverlay(r.image, r.faces, r.frame, r.held);
  };
  let stored = null;
  try { stored = localStorage.getItem(MESH_KEY); } catch { /* storage blocked: default off */ }
  apply(stored === "true");
  for (const t of toggles) {
    t.addEventListener("change", () => {
      apply(t.checked);
      try { localStorage.setItem(MESH_KEY, String(t.checked)); } catch { /* not remembered */ }
    });
  }
}

// A panel's "Show face mesh" is offered while its faces have a mesh. Photo mode follows each answer (a no-face
// photo hides it); live mode only shows it (`keep`), so that it does not flicker on frames where the face is
// lost, and hides it when the camera stops.
function offerMesh(panel, faces, keep = false) {
  const control = $(panel).querySelector(".mesh-control");
  const any = faces.some((f) => meshOf(f).length);
  if (any || !keep) control.hidden = !any;
}

function describeFaces(faces) {
  if (!faces.length) return "No face found.";
  const parts = faces.map((f, i) => `Face ${i + 1}: ${f.emotion}, ${Math.round(f.probabilities[f.emotion] * 100)} percent`);
  return `${plural(faces.length, "face")} found. ${parts.join(". ")}.`;
}

// The hint after a photo with no face, from what we know: the image's size (a fixed pixel figure would be
// wrong for a close-up where the face fills the image).
const SMALL_IMAGE_SIDE = 100;   // px; below this the whole image holds little detail for a detector

function noFaceHint({ width, height }) {
  const found = `No face found in this ${width} × ${height} pixel image.`;
  if (Math.min(width, height) < SMALL_IMAGE_SIDE) {
    return `${found} The image is small: a larger photo of the face gives the detector more to work with.`;
  }
  return `${found} Try a brighter, sharper photo with the face turned towards the camera and not cut off ` +
    "at the edges of the image.";
}

// Five points per face, [x, y] in image pixels (eyes, nose tip, mouth corners), or null when the
// detector gives none.
function landmarksOf(face) {
  const points = face.landmarks;
  if (!Array.isArray(points)) return [];
  return points.filter((p) => Array.isArray(p) && p.length === 2 && p.every(Number.isFinite));
}

const LANDMARKS_KEY = "ferkit.showLandmarks";
const showLandmarks = () => !document.body.classList.contains("no-landmarks");

// One setting for both modes' checkboxes, remembered in this browser.
function setupLandmarks() {
  const toggles = [...document.querySelectorAll(".landmarks-toggle")];
  const apply = (on) => {
    for (const t of toggles) t.checked = on;
    document.body.classList.toggle("no-landmarks", !on);   // photo mode: CSS hides the dots
    const r = state.live?.lastResult;
    if (r) drawOverlay(r.image, r.faces, r.frame, r.held);          // live mode: redraw the canvas
  };
  let stored = null;
  try { stored = localStorage.getItem(LANDMARKS_KEY); } catch { /* storage blocked: default on */ }
  apply(stored !== "false");
  for (const t of toggles) {
    t.addEventListener("change", () => {
      apply(t.checked);
      try { localStorage.setItem(LANDMARKS_KEY, String(t.checked)); } catch { /* not remembered */ }
    });
  }
}

// ------------------------------------------------------------------ photo mode
function setupPhoto() {
  const input = $("file-input");
  const zone = $("dropzone");
  input.addEventListener("change", () => takeFromInput(input));
  $("choose-file").addEventListener("click", (e) => { e.stopPropagation(); input.click(); });
  // The drop zone acts as a button: Enter on key down, Space on key up (as buttons do); its own button handles
  // its keys itself.
  zone.addEventListener("keydown", (e) => {
    if (e.target !== zone) return;
    if (e.key === "Enter") { e.preventDefault(); input.click(); }
    if (e.key === " ") e.preventDefault();   // no scrolling
  });
  zone.addEventListener("keyup", (e) => {
    if (e.target === zone && e.key === " ") { e.preventDefault(); input.click(); }
  });
  zone.addEventListener("dragover", (e) => { e.preventDefault(); zone.classList.add("over"); });
  zone.addEventListener("dragleave", () => zone.classList.remove("over"));
  zone.addEventListener("drop", (e) => {
    e.preventDefault();
    zone.classList.remove("over");
    const files = [...(e.dataTransfer?.files || [])];
    if (files.length) analyzePhoto(files[0], { others: files.length - 1 });
  });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData?.items || [])].find((it) => it.kind === "file");
    if (item) { e.preventDefault(); analyzePhoto(item.getAsFile()); }
  });
  for (const button of document.querySelectorAll("button.example")) {
    button.addEventListener("click", () => analyzeExample(button));
  }
  const camera = $("camera-input");
  const coarse = matchMedia("(pointer: coarse)").matches;
  $("take-photo").hidden = !coarse;
  $("take-photo").addEventListener("click", () => camera.click());
  camera.addEventListener("change", () => takeFromInput(camera, { scroll: true }));
  $("snapshot-open").hidden = coarse || !navigator.mediaDevices?.getUserMedia;
  setupSnapshot();
  $("clear-photo").addEventListener("click", () => {
    state.photoRequest += 1;               // an answer still on its way is not shown either
    setMessage($("photo-message"), "");
    clearPhoto();
    clearMusic("Analyse a photo or start the camera to get suggestions.");
    announce("Cleared.");
    $("choose-file").focus();              // the pressed button is hidden now
  });
  $("download-image").addEventListener("click", downloadAnnotated);
  $("copy-json").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(state.resultJson || "");
      $("json-status").textContent = "Copied.";
    } catch {
      $("json-status").textContent = "Copying is blocked here: use Download the JSON.";
    }
  });
  $("api-code").textContent = apiSnippet();
  $("heatmap-toggle").addEventListener("change", () => {
    const show = $("heatmap-toggle").checked;
    showHeatmapNote();
    for (const img of document.querySelectorAll("#photo-boxes img.heat")) img.hidden = !show;
  });
}

// A file input's choice, then the input emptied: choosing the same file again (after an error, say) fires
// `change` again only if the input no longer holds it.
function takeFromInput(input, options = {}) {
  const file = input.files[0];
  input.value = "";
  if (file) analyzePhoto(file, options);
}

async function analyzeExample(button) {
  const response = await fetch(button.dataset.src).catch(() => null);
  if (!response?.ok) { photoError("The example photo could not be loaded: is the ferkit server still running?"); return; }
  const blob = await response.blob();
  analyzePhoto(new File([blob], button.dataset.name, { type: blob.type }));
}

// ------------------------------------------------------------------ webcam snapshot (desktops)
function setupSnapshot() {
  $("snapshot-open").addEventListener("click", openSnapshot);
  $("snapshot-cancel").addEventListener("click", () => { closeSnapshot(); $("snapshot-open").focus(); });
  $("snapshot-take").addEventListener("click", takeSnapshot);
}

async function openSnapshot() {
  if (state.snapshot) return;
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    photoError(cameraErrorText(err));
    return;
  }
  state.snapshot = stream;
  const video = $("snapshot-video");
  video.srcObject = stream;
  $("snapshot").hidden = false;
  await video.play().catch(() => {});
  $("snapshot-take").focus();
}

function closeSnapshot() {
  if (!state.snapshot) return;
  state.snapshot.getTracks().forEach((t) => t.stop());
  state.snapshot = null;
  $("snapshot-video").srcObject = null;
  $("snapshot").hidden = true;
}

function takeSnapshot() {
  const video = $("snapshot-video");
  if (!video.videoWidth) return;   // no picture yet
  const canvas = document.createElement("canvas");
  canvas.width = video.videoWidth;
  canvas.height = video.videoHeight;
  canvas.getContext("2d").drawImage(video, 0, 0);
  closeSnapshot();
  $("snapshot-open").focus();
  canvas.toBlob((blob) => {
    if (blob) analyzePhoto(new File([blob], "snapshot.jpg", { type: "image/jpeg" }));
  }, "image/jpeg", 0.9);
}

// Runs with what `[serve]` installs, or nothing at all: curl, and Python's own urllib sending the image itself as
// the body (the endpoint takes multipart or a raw image/* body), so no httpx or requests is needed.
function apiSnippet() {
  const url = `${location.origin}/api/v1/analyze`;
  return `curl -F "file=@photo.jpg" ${url}\n\n` +
    "# Python, standard library only\n" +
    "import json, urllib.request\n" +
    "with open(\"photo.jpg\", \"rb\") as f:\n" +
    `    request = urllib.request.Request("${url}", data=f.read(), headers={"Content-Type": "image/jpeg"})\n` +
    "faces = json.load(urllib.request.urlopen(request))[\"faces\"]\n" +
    "print(faces)";
}

// The answer as JSON to read, copy or download (the heat maps left out: they are large data URLs).
function offerJson(result) {
  const lean = { ...result, faces: result.faces.map(({ heatmap, ...face }) => face) };
  state.resultJson = JSON.stringify(lean, null, 2);
  const link = $("download-json");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([state.resultJson], { type: "application/json" }));
  $("json-code").textContent = state.resultJson;
  $("json-view").hidden = false;
  $("json-status").textContent = "";
  $("result-actions").hidden = false;
}

// An error leaves nothing of the previous photo on screen: neither its picture and faces nor its music.
function photoError(detail, spoken = `Error: ${detail}`) {
  setMessage($("photo-message"), detail, true);
  announce(spoken);
  clearPhoto();
  clearMusic("No photo analysed, so no mood to suggest music for.");
}

function clearPhoto() {
  const img = $("photo");
  if (img.src) URL.revokeObjectURL(img.src);
  img.removeAttribute("src");
  img.classList.remove("upscaled");
  $("photo-figure").hidden = true;
  $("photo-boxes").replaceChildren();
  $("photo-caption").textContent = "";
  $("photo-faces").replaceChildren();
  $("result-actions").hidden = true;
  $("json-view").hidden = true;
  $("json-code").textContent = "";
  $("panel-photo").querySelector(".mesh-control").hidden = true;
  state.resultJson = null;
  state.photoResult = null;
}

// `others`: how many more files came with this one (a drop of several): only the first is analysed, and the
// message says so. `scroll`: bring the result into view when done (a phone's camera photo; see showResult).
async function analyzePhoto(file, { others = 0, scroll = false } = {}) {
  const message = $("photo-message");
  const request = ++state.photoRequest;
  const name = file.name || "the pasted image";
  const limit = state.info?.limits?.max_upload_bytes;
  if (file.size === 0) {   // nothing to send: the server would only say it cannot read it
    photoError(`${name}: the file is empty (0 bytes). Choose another photo.`);
    return;
  }
  if (state.mode === "server" && limit && file.size > limit) {  // the server refuses it too (413); saying so here saves the upload
    photoError(`Too large (max ${(limit / 1e6).toFixed(0)} MB): ${name} is ${(file.size / 1e6).toFixed(1)} MB, over the server's limit. Resize or compress it.`);
    return;
  }
  const note = others ? ` ${plural(others + 1, "file")} were dropped: only the first, ${name}, was analysed.` : "";
  setMessage(message, `Analysing ${name}…`);
  const progress = $("photo-progress");
  progress.hidden = false;
  $("panel-photo").setAttribute("aria-busy", "true");
  try {
    if (state.mode === "device") await analyzeHere(file, request, { note, scroll });
    else await analyzeUpload(file, request, { note, scroll });
  } finally {
    if (request === state.photoRequest) {
      progress.hidden = true;
      $("panel-photo").removeAttribute("aria-busy");
    }
  }
}

async function analyzeUpload(file, request, { note, scroll }) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted.png");
  let response, result;
  const sent = performance.now();
  try {
    response = await fetch("/api/v1/analyze?explain=true", { method: "POST", body: form });
    result = response.ok ? await response.json() : null;
    state.photoRoundTripMs = performance.now() - sent;   // upload + analysis + answer, beside the server's own time
  } catch {
    if (request === state.photoRequest) {
      photoError("The server could not be reached: it may have stopped. Start it again (ferkit serve) " +
        "and choose the photo again.", "Error: the server could not be reached.");
    }
    return;
  }
  if (request !== state.photoRequest) return;   // a newer photo was chosen meanwhile
  if (!response.ok) {
    photoError(friendlyError(response.status, await errorDetail(response)));
    return;
  }
  await showResult(file, result, request, { note, scroll });
}

// Photo mode on this device: the browser decodes the file (EXIF orientation applied, as the server does) and the
// worker analyses it; nothing is sent. The result has the server's shape: {image, faces, elapsed_ms} (+ timings).
async function analyzeHere(file, request, { note, scroll }) {
  const d = state.device;
  if (!d.coreReady) setMessage($("photo-message"), `Loading the models into this browser, then analysing ${file.name || "the pasted image"}…`);
  let bitmap;
  try {
    bitmap = await createImageBitmap(file, { imageOrientation: "from-image" });
  } catch {
    if (request === state.photoRequest) photoError(friendlyError(415, ""));
    return;
  }
  const maxPixels = state.info?.limits?.max_pixels;
  if (maxPixels && bitmap.width * bitmap.height > maxPixels) {
    bitmap.close();
    if (request === state.photoRequest) photoError(friendlyError(413, "pixels"));
    return;
  }
  const size = { width: bitmap.width, height: bitmap.height };
  let answer;
  try {
    answer = await analyzeOnDevice(bitmap);
  } catch (err) {
    if (request !== state.photoRequest) return;
    photoError(d.failed ? "This photo was not analysed: on-device analysis could not start, and it was not sent " +
      "anywhere. The page analyses on the server now: choose the photo again to send it there."
      : `This photo could not be analysed on this device (${err.message}). Try another photo, or choose “On the server”.`);
    return;
  }
  if (request !== state.photoRequest) return;
  const result = { image: { width: answer.width ?? size.width, height: answer.height ?? size.height },
    faces: answer.faces, faces_left_out: answer.faces_left_out ?? 0, elapsed_ms: answer.timings?.total_ms ?? 0,
    timings: answer.timings, analysed_on: "device" };
  await showResult(file, result, request, { note, scroll });
}

// The answer on screen, from either mode: the photo and its boxes, the message, the JSON, the music.
async function showResult(file, result, request, { note, scroll }) {
  await showPhoto(file, result);
  if (request !== state.photoRequest) return;
  const text = (result.faces.length ? describeFaces(result.faces) : noFaceHint(result.image)) +
    leftOutText(result) + note;
  setMessage($("photo-message"), text);
  announce(text);
  offerJson(result);
  if (scroll || matchMedia("(pointer: coarse)").matches) scrollToResult();
  if (result.faces.length) followMood(mainFace(result.faces).emotion, false, faceLabel(result.faces));
  else clearMusic("No face found, so no mood to suggest music for.");
}

// Faces beyond the server's cap (the largest are analysed first): "100 faces shown; 12 smaller ones left out."
function leftOutText(result) {
  const n = Number(result.faces_left_out) || 0;
  return n > 0 ? ` ${plural(result.faces.length, "face")} shown; ${n} smaller ${n === 1 ? "one" : "ones"} left out.` : "";
}

// On a phone the result starts far below the buttons: bring its message to the top of the screen.
function scrollToResult() {
  const top = $("photo-message").getBoundingClientRect().top;
  if (top < 0 || top > innerHeight / 3) $("photo-message").scrollIntoView({ block: "start" });
}

const MIN_SHOWN_PX = 320;   // a photo narrower than this is drawn upscaled to it (CSS #photo.upscaled)
const TAG_PX = 24;          // the room a face's tag takes above or below its box, in displayed px

async function showPhoto(file, result) {
  const img = $("photo");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);   // shown from memory; never uploaded anywhere but our server
  await img.decode().catch(() => {});
  const { width, height } = result.image;
  img.classList.toggle("upscaled", width < MIN_SHOWN_PX);
  $("photo-figure").hidden = false;
  const showHeat = $("heatmap-toggle").checked;
  // Percentages of the image's own size: the overlay (.photo-frame) is exactly the displayed image.
  const X = (x) => `${(x / width) * 100}%`, Y = (y) => `${(y / height) * 100}%`;
  const place = (el, b) => Object.assign(el.style, { left: X(b.x), top: Y(b.y), width: X(b.w), height: Y(b.h) });
  const heats = [], boxes = [], dots = [];
  const shownScale = img.clientWidth / width || 1;   // displayed px per image px
  let tagsAbove = false;
  result.faces.forEach((face, i) => {
    if (face.heatmap) {   // the map covers the face box; drawn under every box's border
      const heat = document.createElement("img");
      heat.className = "heat";
      heat.alt = `Heat map for face ${i + 1}`;
      heat.src = face.heatmap;
      heat.hidden = !showHeat;
      place(heat, face.box);
      heats.push(heat);
    }
    const div = document.createElement("div");
    div.className = "face-box";
    div.dataset.emotion = face.emotion;
    place(div, face.box);
    div.style.borderColor = colourOf(face.emotion);
    const tag = faceTag(face, i, { width, height, shownScale });
    if (!tag.classList.contains("below") && face.box.y * shownScale < TAG_PX) tagsAbove = true;
    div.append(tag);
    boxes.push(div);
    // Dots scale with the face as shown: at most an eighth of its width, 2-7 px.
    const dotSize = Math.max(2, Math.min(7, (face.box.w * shownScale) / 8));
    for (const [x, y] of landmarksOf(face)) {
      const dot = document.createElement("span");
      dot.className = "landmark";
      dot.dataset.face = String(i);
      Object.assign(dot.style, { left: X(x), top: Y(y), width: `${dotSize}px`, height: `${dotSize}px`,
        margin: `${-dotSize / 2}px 0 0 ${-dotSize / 2}px`, borderWidth: `${Math.min(1.5, dotSize / 4)}px` });
      dots.push(dot);
    }
  });
  // A tag never covers its face: above the box, else below it, else (a face filling the photo) above the photo
  // in room the frame keeps for it.
  document.querySelector(".photo-frame").classList.toggle("tags-above", tagsAbove);
  const mesh = meshCanvas(result.faces, width, height);
  $("photo-boxes").replaceChildren(...heats, ...boxes, ...dots, ...(mesh ? [mesh] : []));
  offerMesh("panel-photo", result.faces);
  $("photo-caption").textContent = `${width} × ${height} pixels${width < MIN_SHOWN_PX ? " (shown enlarged)" : ""}; ` +
    `${plural(result.faces.length, "face")}${leftOutText(result) ? ` (${result.faces_left_out} more left out)` : ""}; ` +
    (result.analysed_on === "device"
      ? `analysed in ${result.elapsed_ms.toFixed(0)} ms on this device (${stagesText(result.timings)}).`
      : `analysed in ${result.elapsed_ms.toFixed(0)} ms on the server ` +
        `(${state.photoRoundTripMs.toFixed(0)} ms with the upload and the answer).`);
  state.photoResult = result;
  renderFaceCards($("photo-faces"), result.faces, true);
}

// A face's tag: "1: <emotion>", right-aligned for a box in the right half (so that it does not stick out past the
// image's edge); above its box when there is room in the image, else below it when there is room there.
function faceTag(face, i, { width, height, shownScale }) {
  const tag = document.createElement("span");
  tag.className = "tag";
  tag.textContent = `${i + 1}: ${face.emotion}`;
  const roomAbove = face.box.y * shownScale, roomBelow = (height - face.box.y - face.box.h) * shownScale;
  if (roomAbove < TAG_PX && roomBelow >= TAG_PX) tag.classList.add("below");
  if (face.box.x + face.box.w / 2 > width / 2) tag.classList.add("right");
  return tag;
}

// The photo with its boxes and tags drawn in, at the photo's own size, as a PNG download.
function downloadAnnotated() {
  const result = state.photoResult, img = $("photo");
  if (!result || !img.naturalWidth) return;
  const canvas = document.createElement("canvas");
  canvas.width = img.naturalWidth;
  canvas.height = img.naturalHeight;
  const ctx = canvas.getContext("2d");
  ctx.drawImage(img, 0, 0);
  const line = Math.max(2, Math.round(canvas.width / 250));
  const font = Math.max(12, Math.round(canvas.width / 40));
  ctx.font = `bold ${font}px system-ui, sans-serif`;
  result.faces.forEach((face, i) => {
    const { x, y, w, h } = face.box;
    ctx.lineWidth = line;
    ctx.strokeStyle = colourOf(face.emotion);
    ctx.strokeRect(x, y, w, h);
    const text = `${i + 1}: ${face.emotion} ${Math.round(face.probabilities[face.emotion] * 100)}%`;
    const tw = ctx.measureText(text).width + 8, th = font + 6;
    const ty = y >= th ? y - th : Math.min(y + h, canvas.height - th);
    const tx = Math.max(0, Math.min(x, canvas.width - tw));
    ctx.fillStyle = "#000";
    ctx.fillRect(tx, ty, tw, th);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, tx + 4, ty + font);
  });
  canvas.toBlob((blob) => {
    const a = document.createElement("a");
    a.href = URL.createObjectURL(blob);
    a.download = "ferkit-annotated.png";
    a.click();
    setTimeout(() => URL.revokeObjectURL(a.href), 10_000);   // the download has its own copy by then
  }, "image/png");
}

// The photo's mesh: one canvas in image pixels, stretched over the photo (CSS shows it when the toggle is on).
function meshCanvas(faces, width, height) {
  if (!faces.some((f) => meshOf(f).length)) return null;
  const canvas = document.createElement("canvas");
  canvas.className = "mesh";
  canvas.width = width;
  canvas.height = height;
  canvas.setAttribute("aria-hidden", "true");
  const ctx = canvas.getContext("2d");
  let n = 0;
  for (const face of faces) {
    const points = meshOf(face);
    const r = Math.max(0.6, face.box.w / 160);
    ctx.fillStyle = "rgba(0, 255, 200, 0.85)";
    for (const [x, y] of points) { ctx.fillRect(x - r, y - r, 2 * r, 2 * r); n += 1; }
  }
  canvas.dataset.points = String(n);
  return canvas;
}

const area = (f) => f.box.w * f.box.h;
const mainFace = (faces) => faces.reduce((a, b) => (area(b) > area(a) ? b : a));
// Which face the music follows, in words: "face 2, the largest of 3", or "the face" when alone.
const faceLabel = (faces) => (faces.length === 1 ? "the face"
  : `face ${faces.indexOf(mainFace(faces)) + 1}, the largest of ${faces.length}`);

// ------------------------------------------------------------------ live mode
const MAX_IN_FLIGHT = 2;       // frames sent but not answered; more only adds latency
const MIN_INTERVAL_MS = 33;    // at most ~30 frames per second
const SEND_WIDTH = 480;        // frames are downscaled before JPEG encoding: less bandwidth, faster detection
const EMA = 0.35;              // weight of the newest frame when smoothing
const HOLD_MS = 1000;          // a face lost for a frame stays drawn (as held) this long
const RECONNECT_MS = [500, 1000, 2000, 4000];   // waits before each new try after a lost connection, then the last
const DOWN_AFTER = 3;          // failed tries in a row after which the server is said to be stopped
// Close codes after which trying again can help: the network or the server went away (1006: no close frame, as
// when the server is killed), or the server restarts or is busy. Others (a refused frame, a policy) end the session.
const RETRY_CODES = new Set([1001, 1006, 1011, 1012, 1013, 1014]);
const IDLE_CLOSE = 1000;       // the server's idle limit (ws_idle_seconds): a paused or hidden tab sent nothing
const QUIET_AFTER_MS = 10_000; // an idle close of a connection that lasted this long is replaced without a word

function setupLive() {
  $("live-start").addEventListener("click", startLive);
  $("live-stop").addEventListener("click", () => stopLive("Camera stopped."));
  $("live-pause").addEventListener("click", togglePause);
}

// Pause freezes the picture with its boxes: the video stops too, so the boxes stay on the faces they belong to.
function togglePause() {
  const s = state.live;
  if (!s) return;
  s.paused = !s.paused;
  $("live-pause").textContent = s.paused ? "Resume" : "Pause";
  $("live-pause").setAttribute("aria-pressed", String(s.paused));
  setMessage($("live-message"), s.paused ? "Paused: the picture is frozen and no frames are sent." : "Running.");
  if (s.paused) {   // nothing arrives while paused: the rates say so
    $("video").pause();
    $("live-fps").textContent = "0.0";
    $("live-latency").textContent = "–";
    s.results = [];
  } else {
    $("video").play().catch(() => {});
    schedulePump(s);
  }
}

// What to do about a camera that would not open, by the browser's error name.
function cameraErrorText(err) {
  const advice = {
    NotAllowedError: "The camera is blocked for this page. Allow it: click the camera or lock icon left of the " +
      "address, set Camera to Allow, then try again.",
    SecurityError: "The browser allows the camera only on https or localhost pages. Open this page through " +
      "https or on the machine that runs ferkit.",
    NotFoundError: "No camera was found. Plug one in (or switch it on) and try again.",
    OverconstrainedError: "The camera cannot give a 640 × 480 picture. Try another camera.",
    NotReadableError: "The camera is in use by another program or tab, or the system blocks it. Close the other " +
      "program (video calls, other camera tabs) and try again.",
    AbortError: "The camera did not start. Try again; if it persists, restart the browser.",
  };
  return advice[err?.name] || "The camera could not be opened. Check that one is connected and allowed, then try again.";
}

async function startLive() {
  const message = $("live-message");
  if (state.live) return;
  if (!navigator.mediaDevices?.getUserMedia) {
    setMessage(message, "This browser cannot open a camera here: it needs an https or localhost page.", true);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    const text = cameraErrorText(err);
    setMessage(message, text, true);
    announce(`Error: ${text}`);
    return;
  }
  const video = $("video");
  video.srcObject = stream;
  await video.play().catch(() => {});
  const s = state.live = {
    ws: null, stream, paused: false, sent: 0, answered: 0, lastSend: 0, sendTimes: new Map(),
    results: [], tracks: [], history: [], startedAt: performance.now(), lastSpoken: 0, spokenEmotion: null,
    canvas: document.createElement("canvas"), lastResult: null, encoding: false, frameRequested: false,
    failures: 0, retryTimer: null,
    session: `live-${Date.now()}`, busy: false,   // on the device: the worker's tracker, one frame in flight
  };
  if (state.mode === "device") runOnDevice(s);
  else connectLive(s);
  $("live-pause").disabled = false;
  $("live-stop").disabled = false;
  $("live-stop").focus();           // the pressed button is disabled next: the focus goes to one that works
  $("live-start").disabled = true;
  announce("Camera started.");
}

// On the device no connection is needed: frames go to the worker (pumpDevice) once its models are loaded.
function runOnDevice(s) {
  setMessage($("live-message"), state.device?.coreReady ? "Running on this device."
    : "Loading the models into this browser; analysis starts when they are ready.");
  startDevice().then(() => {
    if (state.live === s && state.mode === "device") { setMessage($("live-message"), "Running on this device."); schedulePump(s); }
  }, () => {});
}

// The other mode, mid-session: the camera, chart and smoothing go on. To the device: the WebSocket is closed
// (the handlers ignore a socket that is no longer the session's) and frames go to the worker; to the server: a
// WebSocket is opened, and the worker's tracker for this session is dropped.
function switchLive(s) {
  s.results = [];
  if (state.mode === "device") {
    const ws = s.ws;
    s.ws = null;
    clearTimeout(s.retryTimer);
    if (ws && ws.readyState <= 1) ws.close(1000, "analysis moved to the browser");
    s.session = `live-${Date.now()}`;
    runOnDevice(s);
  } else {
    state.device?.worker?.postMessage({ type: "reset", session: s.session });
    s.busy = false;
    connectLive(s);
  }
}

// One WebSocket for the session; a lost one is replaced (see connectionLost) while the camera keeps running.
function connectLive(s) {
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = s.ws = new WebSocket(`${proto}://${location.host}/api/v1/live`);
  ws.binaryType = "arraybuffer";
  // the server numbers a connection's frames from 1: a new connection starts the count again
  Object.assign(s, { sent: 0, answered: 0, encoding: false });
  s.sendTimes.clear();
  ws.onopen = () => {
    if (state.live !== s || s.ws !== ws) return;
    s.openedAt = performance.now();
    if (s.quiet) { s.quiet = false; schedulePump(s); return; }   // the message (Paused, say) stays as it is
    const text = s.failures || s.lost ? "Reconnected: running again." : "Running.";
    s.failures = 0;
    s.lost = false;
    setMessage($("live-message"), text);
    if (text !== "Running.") announce(text);
    schedulePump(s);
  };
  ws.onmessage = (e) => { if (state.live === s && s.ws === ws) onLiveMessage(s, JSON.parse(e.data)); };
  ws.onclose = (e) => { if (state.live === s && s.ws === ws) connectionLost(s, e); };
}

// A closed connection: tried again with a growing wait while it may come back, said as an error; after
// DOWN_AFTER failures in a row the server is said to be stopped, with what to do (the page keeps trying).
function connectionLost(s, e) {
  if (e.code === IDLE_CLOSE && performance.now() - (s.openedAt ?? Infinity) > QUIET_AFTER_MS) {
    s.quiet = true;                // nothing was sent for minutes: a new connection, nothing to tell
    connectLive(s);
    return;
  }
  if (!RETRY_CODES.has(e.code)) {
    stopLive(`The server ended the live session${e.reason ? ` (${e.reason})` : ""}. Press Start camera to begin again.`,
      true);
    return;
  }
  s.lost = true;
  const wait = RECONNECT_MS[Math.min(s.failures, RECONNECT_MS.length - 1)];
  s.failures += 1;
  const again = `trying again in ${(wait / 1000).toFixed(wait < 1000 ? 1 : 0)} s`;
  const text = s.failures > DOWN_AFTER
    ? `The server is not answering: it may have stopped. Start it again (ferkit serve) or check the network; ` +
      `the page reconnects by itself (${again}).`
    : `The connection to the server was lost; ${again}.`;
  setMessage($("live-message"), text, true);
  if (s.failures === 1 || s.failures === DOWN_AFTER + 1) announce(`Error: ${text}`);
  clearTimeout(s.retryTimer);
  s.retryTimer = setTimeout(() => { if (state.live === s) connectLive(s); }, wait);
}

function stopLive(text, isError = false) {
  const s = state.live;
  if (!s) return;
  state.live = null;
  clearTimeout(s.retryTimer);
  s.stream.getTracks().forEach((t) => t.stop());
  if (s.ws && s.ws.readyState <= 1) s.ws.close();
  if (state.device?.worker && !state.device.failed) state.device.worker.postMessage({ type: "reset", session: s.session });
  $("video").srcObject = null;
  $("live-start").disabled = false;
  const hadFocus = [$("live-stop"), $("live-pause")].includes(document.activeElement);
  $("live-pause").disabled = true;
  $("live-pause").textContent = "Pause";
  $("live-pause").setAttribute("aria-pressed", "false");
  $("live-stop").disabled = true;
  if (hadFocus || document.activeElement === document.body) $("live-start").focus();
  // Nothing of the stopped session stays on screen: overlay, face cards, rates, the mesh switch
  clearOverlay();
  $("live-faces").replaceChildren();
  $("panel-live").querySelector(".mesh-control").hidden = true;
  for (const id of ["live-fps", "live-latency", "live-stages"]) $(id).textContent = "–";
  $("live-dropped").textContent = "0";
  setMessage($("live-message"), text, isError);
  announce(isError ? `Error: ${text}` : text);
}

// Frames are sent from the video's own frame callbacks while the camera runs and is not paused, and after each
// answer: no timer, so a tab with the camera off or paused does no work at all.
function schedulePump(s) {
  if (s.frameRequested || s.paused || state.live !== s) return;
  s.frameRequested = true;
  const video = $("video");
  const next = () => { s.frameRequested = false; pump(); };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(next);
  else requestAnimationFrame(next);
}

function pump() {
  const s = state.live;
  if (!s || s.paused) return;
  if (state.mode === "device") pumpDevice(s);
  else pumpServer(s);
}

// On the device: the video frame as an ImageBitmap to the worker (transferred, never encoded or sent), one at a
// time: the worker is one thread, so a second frame would only wait there and add latency.
function pumpDevice(s) {
  const video = $("video");
  const d = state.device;
  if (s.busy || !d?.coreReady || d.failed) return;   // the answer, or the models' readiness, calls again
  if (!video.videoWidth) { schedulePump(s); return; }
  s.busy = true;
  const session = s.session;
  const started = performance.now();
  s.sent += 1;
  const frame = s.sent;
  createImageBitmap(video)
    .then((bitmap) => analyzeOnDevice(bitmap, { live: true, session }))
    .then((answer) => {
      if (state.live !== s || s.session !== session) return;
      s.answered = frame;
      s.results.push({ t: performance.now(), rtt: performance.now() - started });
      showLiveResult(s, { type: "result", frame, image: { width: answer.width, height: answer.height },
        faces: answer.faces, faces_left_out: answer.faces_left_out ?? 0, timings: answer.timings, dropped: 0 });
    }, (err) => {
      if (state.live !== s || s.session !== session || d.failed) return;
      setMessage($("live-message"), `A camera frame could not be analysed on this device (${err.message}); the next ` +
        "frames still are.", true);
    })
    .finally(() => {
      if (state.live !== s || s.session !== session) return;
      s.busy = false;
      schedulePump(s);
    });
}

// Send the next frame if the server is keeping up; else wait for the next video frame or answer.
function pumpServer(s) {
  const video = $("video");
  const now = performance.now();
  const busy = s.encoding || !s.ws || s.ws.readyState !== 1 || s.sent - s.answered >= MAX_IN_FLIGHT;
  if (busy || now - s.lastSend < MIN_INTERVAL_MS || !video.videoWidth) {
    if (!busy) schedulePump(s);   // too soon or no picture yet: the next frame; busy: the answer calls again
    return;
  }
  const scale = Math.min(1, SEND_WIDTH / video.videoWidth);
  s.canvas.width = Math.round(video.videoWidth * scale);
  s.canvas.height = Math.round(video.videoHeight * scale);
  s.canvas.getContext("2d").drawImage(video, 0, 0, s.canvas.width, s.canvas.height);
  s.encoding = true;
  s.lastSend = now;
  const ws = s.ws;
  s.canvas.toBlob(async (blob) => {
    if (state.live !== s || s.ws !== ws) return;
    const bytes = blob && ws.readyState === 1 ? await blob.arrayBuffer() : null;
    s.encoding = false;
    if (bytes && state.live === s && s.ws === ws && ws.readyState === 1) {
      s.sent += 1;                     // the server numbers binary frames the same way: 1, 2, 3 ...
      s.sendTimes.set(s.sent, performance.now());
      ws.send(bytes);
    }
    schedulePump(s);                   // room for one more in flight: the next video frame
  }, "image/jpeg", 0.75);
}

function onLiveMessage(s, msg) {
  if (msg.type === "hello") return;
  if (msg.frame != null) {
    // An answer for frame n also settles every earlier frame (the server drops stale ones).
    s.answered = Math.max(s.answered, msg.frame);
    const sentAt = s.sendTimes.get(msg.frame);
    for (const id of s.sendTimes.keys()) if (id <= msg.frame) s.sendTimes.delete(id);
    if (sentAt != null && msg.type === "result") s.results.push({ t: performance.now(), rtt: performance.now() - sentAt });
  }
  if (msg.type === "error") {   // one frame lost; the server's detail is for programs, not for people
    setMessage($("live-message"), /over the limit/.test(msg.detail || "")
      ? "A camera frame was too large for the server and was skipped; the next frames are still sent."
      : "A camera frame could not be read and was skipped; the next frames are still sent.", true);
  } else if (msg.type === "result") {
    showLiveResult(s, msg);
  }
  pump();
}

// A result from either mode (the worker's is given the server message's shape): overlay, cards, rates, chart.
function showLiveResult(s, msg) {
  // A frame where the face was lost (between detections, faces that moved far in a slow tab's long gaps)
  // keeps the last faces on screen for HOLD_MS, marked as held, rather than flashing the box off.
  const now = performance.now();
  let faces, held = false;
  if (!msg.faces.length && s.lastSeen && now - s.lastSeen.t < HOLD_MS) {
    faces = s.lastSeen.faces;
    held = true;
  } else {
    faces = $("smooth-toggle").checked ? smooth(s, msg.faces) : (s.tracks = [], msg.faces);
    s.lastSeen = faces.length ? { t: now, faces } : null;
  }
  s.lastResult = { ...msg, faces, held };
  showLeftOut(s, msg);
  drawOverlay(msg.image, faces, msg.frame, held);
  if (!held) renderFaceCards($("live-faces"), faces);
  updateStats(s, msg);
  recordHistory(s, faces);
  speakLive(s, faces);
  const mood = recentMood(s);
  if (mood) followMood(mood, true, "the largest face, over the last 5 s");
}

// Faces beyond the server's cap, said once when the count of left-out faces starts or stops.
function showLeftOut(s, msg) {
  const text = leftOutText(msg).trim();
  if (text === (s.leftOut || "")) return;
  s.leftOut = text;
  setMessage($("live-message"), text || "Running.");
}

// The live mood for music: the main face's most frequent emotion over the last few seconds.
function recentMood(s, seconds = 5) {
  const now = (performance.now() - s.startedAt) / 1000;
  const counts = new Map();
  for (const point of s.history) {
    if (!point.probs || now - point.t > seconds) continue;
    const top = state.labels.reduce((a, b) => (point.probs[b] > point.probs[a] ? b : a));
    counts.set(top, (counts.get(top) || 0) + 1);
  }
  let best = null;
  for (const [label, n] of counts) if (!best || n > counts.get(best)) best = label;
  return best;
}

// EMA over frames, per face (matched to the previous frame by the server's face id).
function smooth(s, faces) {
  const out = faces.map((face) => {
    const best = s.tracks.find((t) => t.id === face.id);  // the server's tracker gives each face a stable id
    const probs = {};
    for (const label of state.labels) {
      const p = face.probabilities[label];
      probs[label] = best ? EMA * p + (1 - EMA) * best.probabilities[label] : p;
    }
    const emotion = state.labels.reduce((a, b) => (probs[b] > probs[a] ? b : a));
    return { ...face, probabilities: probs, emotion };
  });
  s.tracks = out;
  return out;
}

function drawOverlay(image, faces, frame, held = false) {
  const video = $("video");
  const canvas = $("overlay");
  canvas.width = video.clientWidth;
  canvas.height = video.clientHeight;
  const ctx = canvas.getContext("2d");
  ctx.clearRect(0, 0, canvas.width, canvas.height);
  const sx = canvas.width / image.width, sy = canvas.height / image.height;
  ctx.font = "bold 15px system-ui, sans-serif";
  faces.forEach((face, i) => {
    const { x, y, w, h } = face.box;
    ctx.strokeStyle = colourOf(face.emotion);
    ctx.lineWidth = held ? 2 : 3;
    ctx.globalAlpha = held ? 0.6 : 1;
    ctx.setLineDash(dashOf(face.emotion));
    ctx.strokeRect(x * sx, y * sy, w * sx, h * sy);
    ctx.setLineDash([]);
    const text = `${i + 1}: ${face.emotion} ${Math.round(face.probabilities[face.emotion] * 100)}%`;
    const tw = ctx.measureText(text).width + 8;
    const ty = Math.max(0, y * sy - 20);
    const tx = Math.max(0, Math.min(x * sx, canvas.width - tw));   // within the preview's edges
    ctx.fillStyle = "rgba(0,0,0,0.75)";
    ctx.fillRect(tx, ty, tw, 20);
    ctx.fillStyle = "#fff";
    ctx.fillText(text, tx + 4, ty + 15);
    if (showLandmarks()) {
      const r = Math.max(1, Math.min(3, (w * sx) / 16));   // small faces get small dots
      ctx.lineWidth = Math.min(1.5, r / 2);
      ctx.strokeStyle = "#000";
      for (const [px, py] of landmarksOf(face)) {
        ctx.beginPath();
        ctx.arc(px * sx, py * sy, r, 0, 2 * Math.PI);
        ctx.fill();
        ctx.stroke();
      }
    }
    if (showMesh()) {
      ctx.fillStyle = "rgba(0, 255, 200, 0.85)";
      for (const [px, py] of meshOf(face)) ctx.fillRect(px * sx - 0.75, py * sy - 0.75, 1.5, 1.5);
    }
  });
  ctx.globalAlpha = 1;
  offerMesh("panel-live", faces, true);
  canvas.dataset.mesh = showMesh() ? String(faces.reduce((n, f) => n + meshOf(f).length, 0)) : "0";
  canvas.dataset.held = held ? "1" : "0";
  canvas.dataset.frame = String(frame);
  canvas.dataset.faces = String(faces.length);
  canvas.dataset.emotions = faces.map((f) => f.emotion).join(",");
  canvas.dataset.boxes = faces.map((f) => `${f.box.x},${f.box.y},${f.box.w},${f.box.h}`).join(";");
  canvas.dataset.landmarks = showLandmarks() ? String(faces.reduce((n, f) => n + landmarksOf(f).length, 0)) : "0";
}

function clearOverlay() {
  const canvas = $("overlay");
  canvas.getContext("2d").clearRect(0, 0, canvas.width, canvas.height);
  for (const key of ["frame", "faces", "emotions", "boxes", "landmarks", "mesh", "held"]) delete canvas.dataset[key];
}

function updateStats(s, msg) {
  if (s.paused) return;             // answers to frames sent before the pause do not make a rate
  const now = performance.now();
  s.results = s.results.filter((r) => now - r.t < 2000);
  const windowS = Math.min(2, (now - s.startedAt) / 1000);
  const fps = windowS > 0.2 ? s.results.length / windowS : 0;
  const rtts = s.results.map((r) => r.rtt).sort((a, b) => a - b);
  $("live-fps").textContent = fps.toFixed(1);
  $("live-latency").textContent = rtts.length ? `${rtts[Math.floor(rtts.length / 2)].toFixed(0)} ms` : "–";
  // Per stage: the worker's own timings on the device; on the server, its analysis (decode + inference), its
  // queue, and the rest of the round trip (encoding, network, the answer).
  const rtt = s.results.length ? s.results[s.results.length - 1].rtt : null;   // this frame's round trip
  $("live-stages").textContent = msg.timings ? `${stagesText(msg.timings)} (this device)`
    : `server ${msg.process_ms.toFixed(0)} ms · queue ${Math.max(0, msg.latency_ms - msg.process_ms).toFixed(0)} ms` +
      (rtt != null ? ` · network and encoding ${Math.max(0, rtt - msg.latency_ms).toFixed(0)} ms` : "");
  $("live-dropped").textContent = String(msg.dropped);
}

// Screen readers hear a change of the main face's emotion, at most every 3 seconds.
function speakLive(s, faces) {
  const now = performance.now();
  const emotion = faces.length ? mainFace(faces).emotion : null;
  if (emotion === s.spokenEmotion || now - s.lastSpoken < 3000) return;
  s.spokenEmotion = emotion;
  s.lastSpoken = now;
  announce(emotion ? `Now ${emotion}. ${describeFaces(faces)}` : "No face in view.");
}

// ------------------------------------------------------------------ emotion-over-time chart
const HISTORY_MAX = 900;   // points kept: about 3 minutes at 5 points per second, then the oldest go

function recordHistory(s, faces) {
  const t = (performance.now() - s.startedAt) / 1000;
  const last = s.history[s.history.length - 1];
  if (last && t - last.t < 0.2) return;              // at most 5 points per second
  s.history.push({ t, probs: faces.length ? mainFace(faces).probabilities : null });
  if (s.history.length > HISTORY_MAX) s.history.shift();
  drawChart(s.history);
}

function buildLegend() {
  $("chart-legend").replaceChildren(...state.labels.map((label) => {
    const li = document.createElement("li");
    const dash = dashOf(label).join(" ");
    li.innerHTML = `<svg width="28" height="10" aria-hidden="true"><line x1="0" y1="5" x2="28" y2="5"
      stroke="${colourOf(label)}" stroke-width="3" stroke-dasharray="${dash}"/></svg>`;
    li.append(document.createTextNode(label));
    return li;
  }));
}

function drawChart(history) {
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, left = 34, bottom = 18;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#5a5f6b";
  ctx.font = "11px system-ui, sans-serif";
  ctx.strokeStyle = "#ddd";
  ctx.lineWidth = 1;
  for (const v of [0, 0.5, 1]) {
    const y = (H - bottom) * (1 - v);
    ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(W, y); ctx.stroke();
    ctx.fillText(`${v * 100}%`, 2, Math.max(10, y + 4));
  }
  if (!history.length) return;
  const t0 = history[0].t, t1 = Math.max(history[history.length - 1].t, t0 + 1);
  const X = (t) => left + ((t - t0) / (t1 - t0)) * (W - left - 4);
  ctx.fillText(`${t0.toFixed(0)} s`, left, H - 4);
  ctx.fillText(`${t1.toFixed(0)} s`, W - 30, H - 4);
  for (const label of state.labels) {
    ctx.strokeStyle = colourOf(label);
    ctx.setLineDash(dashOf(label));
    ctx.lineWidth = 2;
    ctx.beginPath();
    let pen = false;
    for (const point of history) {
      if (!point.probs) { pen = false; continue; }
      const y = (H - bottom) * (1 - point.probs[label]);
      if (pen) ctx.lineTo(X(point.t), y); else ctx.moveTo(X(point.t), y);
      pen = true;
    }
    ctx.stroke();
  }
  ctx.setLineDash([]);
  // The same information as text, for people who cannot see the chart.
  const counts = Object.fromEntries(state.labels.map((l) => [l, 0]));
  let withFace = 0;
  for (const point of history) {
    if (!point.probs) continue;
    withFace += 1;
    counts[state.labels.reduce((a, b) => (point.probs[b] > point.probs[a] ? b : a))] += 1;
  }
  const ranked = Object.entries(counts).filter(([, n]) => n).sort((a, b) => b[1] - a[1]);
  $("chart-summary").textContent = withFace
    ? `Over ${t1.toFixed(0)} s (${withFace} samples with a face): ` +
      ranked.map(([l, n]) => `${l} ${Math.round((n / withFace) * 100)} %`).join(", ") + " of the time."
    : "No face seen yet.";
}

// ------------------------------------------------------------------ "wrong?": a correction for a face
// The face's predicted and correct labels go to POST /api/v1/corrections; nothing else of the photo is sent.
function correctionControl(face, i) {
  const box = document.createElement("div");
  box.className = "wrong";
  const open = document.createElement("button");
  open.type = "button";
  open.className = "secondary";
  open.textContent = "Wrong?";
  open.setAttribute("aria-label", `Face ${i + 1} is wrong? Say what it shows`);
  open.setAttribute("aria-expanded", "false");
  const form = document.createElement("span");
  form.hidden = true;
  const label = document.createElement("label");
  const select = document.createElement("select");
  select.append(...state.labels.filter((l) => l !== face.emotion).map((l) => new Option(l, l)));
  label.append(`Face ${i + 1} shows `, select);
  const save = document.createElement("button");
  save.type = "button";
  save.textContent = "Send";
  const result = document.createElement("span");
  result.setAttribute("role", "status");
  form.append(label, " ", save);
  box.append(open, form, result);
  open.addEventListener("click", () => {
    form.hidden = !form.hidden;
    open.setAttribute("aria-expanded", String(!form.hidden));
    if (!form.hidden) select.focus();
  });
  save.addEventListener("click", () => sendCorrection(face, select.value, { open, form, result }));
  return box;
}

async function sendCorrection(face, correct, { open, form, result }) {
  const response = await fetch("/api/v1/corrections", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ predicted: face.emotion, correct, model: state.info?.model?.name || null }),
  }).catch(() => null);
  if (!response?.ok) {
    result.textContent = response?.status === 429 ? "Not saved: too many corrections just now; try again in a minute."
      : response ? "Not saved: the server could not store it." : "Not saved: the server could not be reached.";
    return;
  }
  form.hidden = true;
  open.setAttribute("aria-expanded", "false");
  open.focus();                    // the Send button is hidden now: the focus stays on this card
  result.textContent = `Thank you: saved as ${correct}.`;
}

// ------------------------------------------------------------------ start
async function main() {
  setupTabs();
  setupPhoto();
  setupLandmarks();
  setupMesh();
  setupLive();
  setupMusic();
  setupWhere();
  try {
    await loadInfo();
    document.body.dataset.ready = "true";
  } catch (err) {
    $("model-info").textContent = "The server did not describe its model: reload the page; if it persists, " +
      "check that ferkit serve is running.";
  }
}
main();
