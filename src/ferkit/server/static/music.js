// ferkit's page, the music panel: tracks for the detected mood (GET /api/v1/recommendations), Like and Skip
// (POST /api/v1/feedback). app.js tells it the mood (followMood) or that there is none (clearMusic).

const $ = (id) => document.getElementById(id);
const music = { emotion: null, lastFetch: 0, timer: null, who: null };   // the mood followed and its fetch

const LIVE_MUSIC_INTERVAL_MS = 8000;   // in live mode the list changes at most this often
// How many tracks: none is asked for, so the page lists the API's default, the same number as the CLI.

export function setupMusic() {
  setupMoreTracks();
  for (const radio of document.querySelectorAll("input[name=strategy]")) {
    radio.addEventListener("change", () => { if (music.emotion) fetchMusic(music.emotion); });
  }
}

// Forget the mood: no list shown, any pending or in-flight fetch dropped, the next mood fetched afresh.
export function clearMusic(text) {
  const m = music;
  clearTimeout(m.timer);
  m.emotion = null;
  $("music-status").textContent = text;
  delete $("music-status").dataset.base;
  $("more-tracks").hidden = true;
  $("music-notice").hidden = true;
  $("music-notice").textContent = "";
  $("tracks").replaceChildren();
}

export function followMood(emotion, live, who = "the face") {
  const m = music;
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
  if (el.dataset.base) el.textContent = `${el.dataset.base} Following ${music.who}.`;
}

async function fetchMusic(emotion) {
  const m = music;
  m.emotion = emotion;
  m.lastFetch = Date.now();
  const strategy = document.querySelector("input[name=strategy]:checked").value;
  const status = $("music-status");
  status.textContent = `Finding music for “${emotion}”…`;
  let response;
  try {
    response = await fetch(`/api/v1/recommendations?emotion=${encodeURIComponent(emotion)}&strategy=${strategy}`);
  } catch {
    if (m.emotion !== emotion) return;
    status.textContent = "Music suggestions are unavailable: the server could not be reached.";
    $("tracks").replaceChildren();
    return;
  }
  if (!response.ok) {
    if (m.emotion !== emotion) return;
    status.textContent = "Music suggestions are unavailable right now: the server could not make a list.";
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

// Where the keyboard focus is in the track list, to put it back after the list is drawn anew: the same
// track's same control, else the control at the same place in the list.
function trackFocus() {
  const el = document.activeElement;
  const li = el?.closest?.("#tracks li");
  if (!li) return null;
  const controls = [...$("tracks").querySelectorAll("a, button")];
  return { track: li.dataset.trackId, kind: el.dataset.kind || "title", index: controls.indexOf(el) };
}

function restoreTrackFocus(where) {
  if (!where) return;
  const li = [...$("tracks").querySelectorAll("li")].find((x) => x.dataset.trackId === where.track && !x.hidden);
  const same = li?.querySelector(where.kind === "title" ? "a" : `button[data-kind=${where.kind}]`);
  const visible = [...$("tracks").querySelectorAll("li:not([hidden]) a, li:not([hidden]) button")];
  const target = same || visible[Math.min(Math.max(where.index, 0), visible.length - 1)] || $("music-status");
  target.focus();
}

function renderTracks(body) {
  const focus = trackFocus();
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
      b.dataset.kind = action;
      b.textContent = action === "like" ? "Like" : "Skip";
      b.setAttribute("aria-label", `${action === "like" ? "Like" : "Skip"} ${track.title} by ${track.artist}`);
      b.addEventListener("click", () => sendFeedback(track, action, body.emotion, li, result));
      actions.append(b);
    }
    actions.append(result);
    li.append(title, meta, reason, actions);
    return li;
  }));
  restoreTrackFocus(focus);
}

// After a like or skip the buttons stay focusable (aria-disabled, not disabled: a disabled button would drop the
// keyboard focus to the page's start) and do nothing more.
async function sendFeedback(track, action, emotion, li, result) {
  if (li.dataset.rated) return;
  const response = await fetch("/api/v1/feedback", {
    method: "POST", headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ track_id: track.id, action, emotion }),
  }).catch(() => null);
  if (!response?.ok) {
    result.textContent = response ? "Not saved: the server could not store it. Try again later."
      : "Not saved: the server could not be reached.";
    return;
  }
  li.dataset.rated = action;
  result.textContent = action === "like" ? "Liked" : "Skipped";
  li.classList.toggle("skipped", action === "skip");
  for (const b of li.querySelectorAll("button")) b.setAttribute("aria-disabled", "true");
}
