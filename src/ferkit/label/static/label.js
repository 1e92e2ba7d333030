"use strict";
// The labelling page: one face at a time from /api/face, answers to /api/answer, the panel from /api/state.
// Keys act in the order pressed (a chain of promises), so fast typing never answers the wrong face twice.

const $ = (id) => document.getElementById(id);
let state = null;      // /api/state
let face = null;       // the face shown (null: none yet, or all answered)
let back = 0;          // 0: the next face; k: the face answered k answers ago
let chain = Promise.resolve();

async function api(path, body) {
  const init = body === undefined ? {} :
    {method: "POST", headers: {"content-type": "application/json"}, body: JSON.stringify(body)};
  const response = await fetch(path, init);
  const json = await response.json();
  if (!response.ok) throw new Error(json.detail || response.statusText);
  return json;
}

function act(step) {
  chain = chain.then(step).catch((e) => { $("status").textContent = e.message; $("status").className = "error"; });
  return chain;
}

function pct(v) { return Math.round(v * 100); }

function element(tag, props = {}, children = []) {
  const node = Object.assign(document.createElement(tag), props);
  for (const child of children) node.append(child);
  return node;
}

// ------------------------------------------------------------ the face
async function loadFace() {
  const answer = await api(`/api/face?back=${back}`);
  face = answer.face;
  renderFace(answer.why);
}

function renderFace(why) {
  const has = face !== null;
  $("crop").hidden = !has;
  $("waiting").hidden = has;
  document.body.dataset.face = has ? face.id : "";
  document.body.dataset.path = has ? `${face.path}#${face.index}` : "";
  document.body.dataset.guess = has && face.guess ? face.guess : "";
  document.body.dataset.back = String(back);
  for (const b of document.querySelectorAll("#choices button, #accept, #skip, #no-face")) b.disabled = !has;
  if (!has) {
    $("where").textContent = "";
    $("guess").textContent = "";
    $("probabilities").replaceChildren();
    $("context-figure").hidden = true;
    $("waiting").textContent = why === "waiting" ? "Analysing the photos: the first face shows as soon as it is found."
      : "Every face found so far has an answer.";
    return;
  }
  const several = face.faces_in_photo > 1;
  const whose = face.person ? `, person ${face.person}` : "";
  const place = several ? `face ${face.index + 1} of ${face.faces_in_photo} in ` : "";
  $("where").textContent = (back ? `Going back (${back} answer${back > 1 ? "s" : ""} ago): ` : "") + place + face.path + whose;
  $("crop").src = face.crop;
  $("crop").alt = `The face to label: ${place}${face.path}`;
  $("context-figure").hidden = !several;
  if (several) {
    $("context").src = face.context;
    $("context").alt = `The whole photo ${face.path}, this face outlined`;
    const [x, y, w, h] = face.box, [W, H] = face.size;
    Object.assign($("mark").style, {left: `${100 * x / W}%`, top: `${100 * y / H}%`,
                                    width: `${100 * w / W}%`, height: `${100 * h / H}%`});
  }
  $("guess").textContent = face.guess ? `The model's guess: ${face.guess} (Enter accepts it)`
    : "The model has no guess among your labels.";
  $("probabilities").replaceChildren(...face.probabilities.map(([label, p]) => element("li", {}, [
    element("span", {textContent: label}),
    element("span", {className: "bar", ariaHidden: "true"}, [element("span", {style: `width: ${pct(p)}%`})]),
    element("span", {textContent: `${pct(p)} %`})])));
  for (const b of document.querySelectorAll("#choices button")) {
    const chosen = face.answer && face.answer.kind === "label" && face.answer.label === b.dataset.label;
    b.setAttribute("aria-pressed", String(Boolean(chosen)));
  }
  if (face.answer && face.answer.kind !== "label") {
    $("status").textContent = `Answered before: ${face.answer.kind === "skip" ? "skipped" : "no usable face"}.`;
  }
}

async function answer(kind, label) {
  if (face === null) return;
  await api("/api/answer", {id: face.id, kind, label});
  const said = kind === "label" ? label : kind === "skip" ? "skipped" : "no usable face";
  $("status").className = "";
  $("status").textContent = `${face.path}${face.faces_in_photo > 1 ? ` face ${face.index + 1}` : ""}: ${said}.`;
  if (back > 0) back -= 1;
  await loadFace();
  // A clicked button keeps the focus, and Enter would press it again: the focus goes back to the face instead.
  if (document.activeElement && document.activeElement.closest("#choices, #actions")) {
    $("face-heading").focus({preventScroll: true});
  }
  await refreshState();
}

async function acceptGuess() {
  if (face === null) return;
  if (!face.guess) { $("status").textContent = "The model's guess is not one of your labels: pick one with 1-9."; return; }
  await answer("label", face.guess);
}

async function goBack() {
  back += 1;
  const previous = await api(`/api/face?back=${back}`);
  if (previous.face === null) {
    back -= 1;
    $("status").textContent = back ? "This is the first answer: nothing further back." : "Nothing to go back to yet.";
    return;
  }
  face = previous.face;
  renderFace();
}

// ------------------------------------------------------------ the panel
async function refreshState() {
  state = await api("/api/state");
  const c = state.counts;
  document.body.dataset.answered = String(c.answered);
  $("progress").textContent = `${c.analysed.toLocaleString()} of ${c.photos.toLocaleString()} photos analysed` +
    `${state.analysing ? " …" : ""}, ${c.faces.toLocaleString()} faces found, ${c.answered.toLocaleString()} answered` +
    (c.unreadable ? `, ${c.unreadable} unreadable` : "");
  if (state.error) $("progress").textContent += ` (${state.error})`;
  $("counts").tBodies[0].replaceChildren(
    ...state.labels.map((label, i) => row(`${i + 1} ${label}`, c.labels[label])),
    row("no usable face", c.no_face), row("skipped", c.skipped));
  const e = state.estimate;
  $("estimate").textContent = e.ready
    ? `Adapted head: ${pct(e.adapted)} % ± ${pct(e.adapted_std)} vs base ${pct(e.base)} %, from ${e.n} labels ` +
      `(${e.folds}-fold cross-validation${e.grouped ? " grouped by person" : ""}, baseline: ${e.baseline}` +
      `${Object.keys(e.left_out).length ? `; left out until they have 20: ${Object.keys(e.left_out).join(", ")}` : ""})` +
      (e.note ? `. ${e.note}.` : ".")
    : `Estimate: ${e.reason}.`;
  $("adapt-status").textContent = state.adapt.message;
  $("adapt-status").className = state.adapt.state === "failed" ? "error" : "";
  document.body.dataset.adapt = state.adapt.state;
  $("rule").textContent = state.rule;
  $("history").replaceChildren(...state.history.slice().reverse().map((h) => element("li", {}, [
    element("img", {src: h.crop, loading: "lazy", alt: `${h.path}: ${h.answer}`, width: 64, height: 64}),
    element("span", {textContent: h.answer})])));
  if (state.unreadable.length) {
    $("unreadable").replaceChildren(...state.unreadable.map(([, why]) =>
      element("li", {textContent: why})));  // the message names the file
  }
}

function row(label, n) {
  return element("tr", {}, [element("td", {textContent: label}), element("td", {className: "n", textContent: String(n)})]);
}

// ------------------------------------------------------------ keys and buttons
function onKey(event) {
  if (event.ctrlKey || event.metaKey || event.altKey || !state) return;
  const onButton = event.target instanceof HTMLButtonElement;
  const key = event.key;
  if (/^[1-9]$/.test(key) && Number(key) <= state.labels.length) {
    event.preventDefault();
    act(() => answer("label", state.labels[Number(key) - 1]));
  } else if (key === "Enter" && !onButton) {
    event.preventDefault();
    act(acceptGuess);
  } else if (key === "Backspace") {
    event.preventDefault();
    act(goBack);
  } else if (key === "s" || key === "S") {
    act(() => answer("skip"));
  } else if (key === "n" || key === "N") {
    act(() => answer("no_face"));
  }
}

async function start() {
  await refreshState();
  $("choices").replaceChildren(...state.labels.map((label, i) => {
    const b = element("button", {type: "button"}, [element("kbd", {textContent: String(i + 1)}), ` ${label}`]);
    b.dataset.label = label;
    b.setAttribute("aria-pressed", "false");
    b.addEventListener("click", () => act(() => answer("label", label)));
    return b;
  }));
  $("accept").addEventListener("click", () => act(acceptGuess));
  $("back").addEventListener("click", () => act(goBack));
  $("skip").addEventListener("click", () => act(() => answer("skip")));
  $("no-face").addEventListener("click", () => act(() => answer("no_face")));
  $("adapt").addEventListener("click", () => act(async () => {
    const s = await api("/api/adapt", {});
    $("adapt-status").textContent = s.message;
  }));
  document.addEventListener("keydown", onKey);
  await loadFace();
  document.body.dataset.ready = "true";
  // While photos are being analysed, or adapt runs, the panel and a waiting page catch up by themselves.
  setInterval(() => act(async () => {
    if (!state.analysing && state.adapt.state !== "running" && face !== null) return;
    await refreshState();
    if (face === null && back === 0) await loadFace();
  }), 1000);
  setInterval(() => act(refreshState), 5000);  // the estimate, computed beside the server's event loop
}

start().catch((e) => { $("status").textContent = e.message; $("status").className = "error"; });
