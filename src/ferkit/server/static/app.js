// ferkit's page: photo upload, live camera over a WebSocket, and music for the detected mood.
// No libraries, no CDN. Emotion labels come from GET /api/v1/info; none is typed here.

const $ = (id) => document.getElementById(id);
const state = {
  labels: [],               // from /api/v1/info, in the model's order
  live: null,               // the running live session (see startLive)
  photoRequest: 0,          // numbers uploads, so that only the latest one's answer is shown
  music: { emotion: null, lastFetch: 0, timer: null },
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
  const acc = info.test_accuracy == null ? "test accuracy not measured yet"
    : `test accuracy ${(info.test_accuracy * 100).toFixed(1)} % on FER-2013 PrivateTest`;
  $("model-info").textContent = `Model ${info.model.name} (ferkit ${info.model.version}), ` +
    `${info.labels.length} emotions: ${info.labels.join(", ")}; detector ${info.detector}; ${acc}.` +
    (info.model.note ? ` (${info.model.note})` : "");
  state.info = info;
  buildLegend();
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

function renderFaceCards(container, faces) {
  container.replaceChildren(...faces.map((face, i) => {
    const card = document.createElement("section");
    card.className = "face";
    card.style.borderLeftColor = colourOf(face.emotion);
    card.dataset.emotion = face.emotion;
    const h = document.createElement("h3");
    h.textContent = `Face ${i + 1}: ${face.emotion} (${pct(face.probabilities[face.emotion])})`;
    card.setAttribute("aria-label", `Face ${i + 1}`);
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
    return card;
  }));
}

// Optional keys a face may carry (absent: nothing is shown): action_units {"AU12": 0.83, ...} (0..1 estimates),
// head_pose {yaw, pitch, roll} in degrees.
function faceFeatures(face) {
  const out = [];
  const aus = face.action_units && typeof face.action_units === "object"
    ? Object.entries(face.action_units).filter(([, v]) => Number.isFinite(v)).sort((a, b) => b[1] - a[1]).slice(0, 3)
    : [];
  if (aus.length) {
    const p = document.createElement("p");
    p.className = "aus";
    const label = document.createElement("span");
    label.className = "muted";
    label.textContent = "AU estimates: ";
    p.append(label, aus.map(([name, v]) => `${name} ${v.toFixed(2)}`).join(", "));
    out.push(p);
  }
  const pose = face.head_pose;
  if (pose && ["yaw", "pitch", "roll"].every((k) => Number.isFinite(pose[k]))) {
    const p = document.createElement("p");
    p.className = "pose";
    p.textContent = `Head pose: yaw ${pose.yaw.toFixed(0)}°, pitch ${pose.pitch.toFixed(0)}°, roll ${pose.roll.toFixed(0)}°`;
    out.push(p);
  }
  return out;
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

function offerMesh(faces) {
  if (faces.some((f) => meshOf(f).length)) {
    for (const el of document.querySelectorAll(".mesh-control")) el.hidden = false;
  }
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
  input.addEventListener("change", () => { if (input.files[0]) analyzePhoto(input.files[0]); });
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
    const file = [...(e.dataTransfer?.files || [])][0];
    if (file) analyzePhoto(file);
  });
  document.addEventListener("paste", (e) => {
    const item = [...(e.clipboardData?.items || [])].find((it) => it.kind === "file");
    if (item) { e.preventDefault(); analyzePhoto(item.getAsFile()); }
  });
  for (const button of document.querySelectorAll("button.example")) {
    button.addEventListener("click", async () => {
      const response = await fetch(button.dataset.src).catch(() => null);
      if (!response?.ok) { photoError("The example photo could not be loaded."); return; }
      const blob = await response.blob();
      analyzePhoto(new File([blob], button.dataset.name, { type: blob.type }));
    });
  }
  const camera = $("camera-input");
  $("take-photo").hidden = !matchMedia("(pointer: coarse)").matches;
  $("take-photo").addEventListener("click", () => camera.click());
  camera.addEventListener("change", () => { if (camera.files[0]) analyzePhoto(camera.files[0]); });
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
    for (const img of document.querySelectorAll("#photo-boxes img.heat")) img.hidden = !show;
  });
}

function apiSnippet() {
  const url = `${location.origin}/api/v1/analyze`;
  return `curl -F "file=@photo.jpg" ${url}\n\n` +
    `# Python\nimport httpx\nwith open("photo.jpg", "rb") as f:\n` +
    `    faces = httpx.post("${url}", files={"file": f}).json()["faces"]`;
}

// The answer as JSON to copy or download (the heat maps left out: they are large data URLs).
function offerJson(result) {
  const lean = { ...result, faces: result.faces.map(({ heatmap, ...face }) => face) };
  state.resultJson = JSON.stringify(lean, null, 2);
  const link = $("download-json");
  if (link.href.startsWith("blob:")) URL.revokeObjectURL(link.href);
  link.href = URL.createObjectURL(new Blob([state.resultJson], { type: "application/json" }));
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
  $("photo-figure").hidden = true;
  $("photo-boxes").replaceChildren();
  $("photo-caption").textContent = "";
  $("photo-faces").replaceChildren();
  $("result-actions").hidden = true;
  state.resultJson = null;
}

async function analyzePhoto(file) {
  const message = $("photo-message");
  const request = ++state.photoRequest;
  const limit = state.info?.limits?.max_upload_bytes;
  if (limit && file.size > limit) {  // the server refuses it too (413); saying so here saves the upload
    photoError(`Too large (max ${(limit / 1e6).toFixed(0)} MB): ${file.name || "the image"} is ${(file.size / 1e6).toFixed(1)} MB, over the server's limit. Resize or compress it.`);
    return;
  }
  setMessage(message, `Analysing ${file.name || "the pasted image"}…`);
  const progress = $("photo-progress");
  progress.hidden = false;
  $("panel-photo").setAttribute("aria-busy", "true");
  try {
    await analyzeUpload(file, request, message);
  } finally {
    if (request === state.photoRequest) {
      progress.hidden = true;
      $("panel-photo").removeAttribute("aria-busy");
    }
  }
}

async function analyzeUpload(file, request, message) {
  const form = new FormData();
  form.append("file", file, file.name || "pasted.png");
  let response, result;
  try {
    response = await fetch("/api/v1/analyze?explain=true", { method: "POST", body: form });
    result = response.ok ? await response.json() : null;
  } catch (err) {
    if (request === state.photoRequest) {
      photoError(`The server could not be reached (${err.message}).`, "Error: the server could not be reached.");
    }
    return;
  }
  if (request !== state.photoRequest) return;   // a newer photo was chosen meanwhile
  if (!response.ok) {
    const detail = friendlyError(response.status, await errorDetail(response));
    if (request === state.photoRequest) photoError(detail);
    return;
  }
  await showPhoto(file, result);
  if (request !== state.photoRequest) return;
  const text = result.faces.length ? describeFaces(result.faces) : noFaceHint(result.image);
  setMessage(message, text);
  announce(text);
  offerJson(result);
  if (result.faces.length) followMood(mainFace(result.faces).emotion, false, faceLabel(result.faces));
  else clearMusic("No face found, so no mood to suggest music for.");
}

async function showPhoto(file, result) {
  const img = $("photo");
  if (img.src) URL.revokeObjectURL(img.src);
  img.src = URL.createObjectURL(file);   // shown from memory; never uploaded anywhere but our server
  await img.decode().catch(() => {});
  $("photo-figure").hidden = false;
  const { width, height } = result.image;
  const showHeat = $("heatmap-toggle").checked;
  // Percentages of the image's own size: the overlay (.photo-frame) is exactly the displayed image.
  const X = (x) => `${(x / width) * 100}%`, Y = (y) => `${(y / height) * 100}%`;
  const place = (el, b) => Object.assign(el.style, { left: X(b.x), top: Y(b.y), width: X(b.w), height: Y(b.h) });
  const heats = [], boxes = [], dots = [];
  const shownScale = img.clientWidth / width || 1;   // displayed px per image px
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
    const tag = document.createElement("span");
    tag.className = "tag";
    tag.textContent = `${i + 1}: ${face.emotion}`;
    // The tag sits above the box, unless that is off the image (then inside its top); right-aligned for a box
    // in the right half, so that it does not stick out past the image's edge.
    if (face.box.y * shownScale < 22) tag.classList.add("inside");
    if (face.box.x + face.box.w / 2 > width / 2) tag.classList.add("right");
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
  const mesh = meshCanvas(result.faces, width, height);
  $("photo-boxes").replaceChildren(...heats, ...boxes, ...dots, ...(mesh ? [mesh] : []));
  offerMesh(result.faces);
  $("photo-caption").textContent = `${width} × ${height} pixels; ${plural(result.faces.length, "face")}; ` +
    `analysed in ${result.elapsed_ms.toFixed(0)} ms on the server.`;
  renderFaceCards($("photo-faces"), result.faces);
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

function setupLive() {
  $("live-start").addEventListener("click", startLive);
  $("live-stop").addEventListener("click", () => stopLive("Camera stopped."));
  $("live-pause").addEventListener("click", () => {
    const s = state.live;
    if (!s) return;
    s.paused = !s.paused;
    $("live-pause").textContent = s.paused ? "Resume" : "Pause";
    $("live-pause").setAttribute("aria-pressed", String(s.paused));
    setMessage($("live-message"), s.paused ? "Paused: no frames are sent." : "Running.");
    if (s.paused) {   // nothing arrives while paused: the rates say so
      $("live-fps").textContent = "0.0";
      $("live-latency").textContent = "–";
      s.results = [];
    }
    if (!s.paused) pump();
  });
}

async function startLive() {
  const message = $("live-message");
  if (state.live) return;
  if (!navigator.mediaDevices?.getUserMedia) {
    setMessage(message, "This browser cannot open a camera here (it needs https or localhost).", true);
    return;
  }
  let stream;
  try {
    stream = await navigator.mediaDevices.getUserMedia({ video: { width: 640, height: 480 }, audio: false });
  } catch (err) {
    setMessage(message, `The camera could not be opened (${err.name}: ${err.message}).`, true);
    announce("Error: the camera could not be opened.");
    return;
  }
  const video = $("video");
  video.srcObject = stream;
  await video.play().catch(() => {});
  const proto = location.protocol === "https:" ? "wss" : "ws";
  const ws = new WebSocket(`${proto}://${location.host}/api/v1/live`);
  ws.binaryType = "arraybuffer";
  const s = state.live = {
    ws, stream, paused: false, sent: 0, answered: 0, lastSend: 0, sendTimes: new Map(),
    results: [], tracks: [], history: [], startedAt: performance.now(), lastSpoken: 0, spokenEmotion: null,
    canvas: document.createElement("canvas"), lastResult: null, encoding: false,
  };
  ws.onopen = () => setMessage(message, "Running.");
  ws.onmessage = (e) => { if (state.live === s) onLiveMessage(s, JSON.parse(e.data)); };   // none after Stop
  ws.onclose = () => { if (state.live === s) stopLive("The connection to the server closed."); };
  $("live-pause").disabled = false;
  $("live-stop").disabled = false;
  $("live-stop").focus();           // the pressed button is disabled next: the focus goes to one that works
  $("live-start").disabled = true;
  announce("Camera started.");
}

function stopLive(text) {
  const s = state.live;
  if (!s) return;
  state.live = null;
  s.stream.getTracks().forEach((t) => t.stop());
  if (s.ws.readyState <= 1) s.ws.close();
  $("video").srcObject = null;
  $("live-start").disabled = false;
  const hadFocus = [$("live-stop"), $("live-pause")].includes(document.activeElement);
  $("live-pause").disabled = true;
  $("live-pause").textContent = "Pause";
  $("live-pause").setAttribute("aria-pressed", "false");
  $("live-stop").disabled = true;
  if (hadFocus || document.activeElement === document.body) $("live-start").focus();
  // Nothing of the stopped session stays on screen: overlay, face cards, rates
  clearOverlay();
  $("live-faces").replaceChildren();
  for (const id of ["live-fps", "live-latency", "live-server"]) $(id).textContent = "–";
  $("live-dropped").textContent = "0";
  setMessage($("live-message"), text);
  announce(text);
}

// Send the next frame if the server is keeping up; called on a timer and after each answer.
function pump() {
  const s = state.live;
  if (!s || s.paused || s.encoding || s.ws.readyState !== 1) return;
  const video = $("video");
  const now = performance.now();
  if (s.sent - s.answered >= MAX_IN_FLIGHT || now - s.lastSend < MIN_INTERVAL_MS || !video.videoWidth) return;
  const scale = Math.min(1, SEND_WIDTH / video.videoWidth);
  s.canvas.width = Math.round(video.videoWidth * scale);
  s.canvas.height = Math.round(video.videoHeight * scale);
  s.canvas.getContext("2d").drawImage(video, 0, 0, s.canvas.width, s.canvas.height);
  s.encoding = true;
  s.lastSend = now;
  s.canvas.toBlob(async (blob) => {
    s.encoding = false;
    if (!blob || state.live !== s || s.ws.readyState !== 1) return;
    const bytes = await blob.arrayBuffer();
    s.sent += 1;                     // the server numbers binary frames the same way: 1, 2, 3 ...
    s.sendTimes.set(s.sent, performance.now());
    s.ws.send(bytes);
  }, "image/jpeg", 0.75);
}
setInterval(pump, 10);

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
    drawOverlay(msg.image, faces, msg.frame, held);
    if (!held) renderFaceCards($("live-faces"), faces);
    updateStats(s, msg);
    recordHistory(s, faces);
    speakLive(s, faces);
    const mood = recentMood(s);
    if (mood) followMood(mood, true, "the largest face, over the last 5 s");
  }
  pump();
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
  offerMesh(faces);
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
  $("live-server").textContent = `${msg.process_ms.toFixed(0)} ms`;
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

// ------------------------------------------------------------------ music panel
const LIVE_MUSIC_INTERVAL_MS = 8000;   // in live mode the list changes at most this often
// How many tracks: none is asked for, so the page lists the API's default, the same number as the CLI.

function setupMusic() {
  for (const radio of document.querySelectorAll("input[name=strategy]")) {
    radio.addEventListener("change", () => { if (state.music.emotion) fetchMusic(state.music.emotion); });
  }
}

// Forget the mood: no list shown, any pending or in-flight fetch dropped, the next mood fetched afresh.
function clearMusic(text) {
  const m = state.music;
  clearTimeout(m.timer);
  m.emotion = null;
  $("music-status").textContent = text;
  delete $("music-status").dataset.base;
  $("more-tracks").hidden = true;
  $("music-notice").hidden = true;
  $("music-notice").textContent = "";
  $("tracks").replaceChildren();
}

function followMood(emotion, live, who = "the face") {
  const m = state.music;
  m.who = who;
  if (emotion === m.emotion) { showWho(); return; }
  const wait = live ? m.lastFetch + LIVE_MUSIC_INTERVAL_MS - Date.now() : 0;
  clearTimeout(m.timer);
  if (wait > 0) {
    m.timer = setTimeout(() => followMood(emotion, false, who), wait);
  } else {
    fetchMusic(emotion);
  }
}

function showWho() {
  const el = $("music-status");
  if (el.dataset.base) el.textContent = `${el.dataset.base} Following ${state.music.who}.`;
}

async function fetchMusic(emotion) {
  const m = state.music;
  m.emotion = emotion;
  m.lastFetch = Date.now();
  const strategy = document.querySelector("input[name=strategy]:checked").value;
  const status = $("music-status");
  status.textContent = `Finding music for “${emotion}”…`;
  let response;
  try {
    response = await fetch(`/api/v1/recommendations?emotion=${encodeURIComponent(emotion)}&strategy=${strategy}`);
  } catch (err) {
    if (m.emotion !== emotion) return;
    status.textContent = `Music suggestions are unavailable (${err.message}).`;
    $("tracks").replaceChildren();
    return;
  }
  if (!response.ok) {
    const detail = await errorDetail(response);
    if (m.emotion !== emotion) return;
    status.textContent = `Music suggestions are unavailable: ${detail}`;
    $("tracks").replaceChildren();
    return;
  }
  const body = await response.json();
  if (m.emotion !== emotion) return;     // a newer mood (or none) won the race
  status.dataset.base = `${body.tracks.length} tracks to ${body.strategy === "lift" ? "lift" : "match"} ` +
    `“${body.emotion}” (from the ${body.source} catalog).`;
  showWho();
  const notice = $("music-notice");
  notice.hidden = !body.notice;
  notice.textContent = body.notice || "";
  renderTracks(body);
}

const TRACKS_SHOWN = 5;   // the rest on demand: a short page

function setupMoreTracks() {
  $("more-tracks").addEventListener("click", () => {
    const hidden = [...document.querySelectorAll("#tracks li[hidden]")];
    for (const li of hidden) li.hidden = false;
    $("more-tracks").hidden = true;
    hidden[0]?.querySelector("a, button")?.focus();
  });
}

function renderTracks(body) {
  const more = $("more-tracks");
  more.hidden = body.tracks.length <= TRACKS_SHOWN;
  more.textContent = `Show ${body.tracks.length - TRACKS_SHOWN} more`;
  $("tracks").replaceChildren(...body.tracks.map((track, i) => {
    const li = document.createElement("li");
    li.hidden = i >= TRACKS_SHOWN;
    li.dataset.trackId = track.id;
    const title = document.createElement(track.url ? "a" : "span");
    title.className = "title";
    title.textContent = track.title;
    if (track.url) { title.href = track.url; title.target = "_blank"; title.rel = "noopener noreferrer"; }
    const meta = document.createElement("span");
    meta.textContent = ` by ${track.artist}` + (track.genre ? ` · ${track.genre}` : "") + (track.year ? ` · ${track.year}` : "");
    const reason = document.createElement("span");
    reason.className = "reason";
    reason.textContent = track.reason;
    const actions = document.createElement("span");
    actions.className = "actions";
    const result = document.createElement("span");
    result.className = "feedback-result";
    result.setAttribute("role", "status");
    for (const action of ["like", "skip"]) {
      const b = document.createElement("button");
      b.type = "button";
      b.className = "secondary";
      b.textContent = action === "like" ? "Like" : "Skip";
      b.setAttribute("aria-label", `${action === "like" ? "Like" : "Skip"} ${track.title} by ${track.artist}`);
      b.addEventListener("click", () => sendFeedback(track, action, body.emotion, li, result));
      actions.append(b);
    }
    actions.append(result);
    li.append(title, meta, reason, actions);
    return li;
  }));
}

async function sendFeedback(track, action, emotion, li, result) {
  const response = await fetch("/api/v1/feedback", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ track_id: track.id, action, emotion }),
  }).catch((err) => ({ ok: false, statusText: err.message, json: async () => ({}) }));
  if (!response.ok) {
    result.textContent = `Not saved: ${await errorDetail(response)}`;
    return;
  }
  result.textContent = action === "like" ? "Liked" : "Skipped";
  li.classList.toggle("skipped", action === "skip");
  for (const b of li.querySelectorAll("button")) b.disabled = true;
}

// ------------------------------------------------------------------ start
async function main() {
  setupTabs();
  setupPhoto();
  setupLandmarks();
  setupMesh();
  setupLive();
  setupMusic();
  setupMoreTracks();
  try {
    await loadInfo();
    document.body.dataset.ready = "true";
  } catch (err) {
    $("model-info").textContent = `The server did not answer /api/v1/info (${err.message}).`;
  }
}
main();
