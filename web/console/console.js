// The operator console: an administrator's token (POST /v1/auth/token), then the projections
// (GET /v1/admin/projections) and dead letters (GET /v1/admin/dead-letters), refreshed every 2 s,
// with their actions. Everything shown that came from the API is set as text (textContent),
// never as markup.
"use strict";

const REFRESH_MS = 2000;
const TOKEN_KEY = "eventshop.console.token";

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = dv;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else e.setAttribute(k, v);
  }
  for (const c of children) e.append(c);
  return e;
}

const $ = (id) => document.getElementById(id);

function token() { return sessionStorage.getItem(TOKEN_KEY); }

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (token()) headers["Authorization"] = "Bearer " + token();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.status === 401) { logout("session expired: log in again"); }
  if (!r.ok) {
    const why = data && (data.detail || data.title) ? (data.detail || data.title) : r.statusText;
    throw new Error(method + " " + path + ": " + r.status + " " + why);
  }
  return data;
}

// ---- login

function claims(tok) {
  try {
    const b = tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(b + "===".slice((b.length + 3) % 4)));
  } catch (e) { return {}; }
}

async function login(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  try {
    const r = await fetch("/v1/auth/token", {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ email: $("email").value, password: $("password").value }),
    });
    const data = await r.json().catch(() => ({}));
    if (!r.ok) throw new Error(r.status === 401 ? "wrong e-mail or password" : (data.detail || r.statusText));
    if (claims(data.access_token).role !== "admin") throw new Error("this account is not an administrator's");
    sessionStorage.setItem(TOKEN_KEY, data.access_token);
    $("password").value = "";
    show();
  } catch (e) {
    $("login-error").textContent = e.message;
  }
}

function logout(why) {
  sessionStorage.removeItem(TOKEN_KEY);
  feed.stop();
  $("board").hidden = true;
  $("logout").hidden = true;
  $("login").hidden = false;
  $("who").textContent = "";
  $("login-error").textContent = why || "";
}

function show() {
  const c = claims(token());
  $("who").textContent = "admin " + (c.sub || "");
  $("login").hidden = true;
  $("logout").hidden = false;
  $("board").hidden = false;
  feed.start();
}

// ---- the feed: polling today. When GET /v1/stream lands, start() opens an EventSource on it
// (with a ticket from POST /v1/stream/tickets) and calls refresh() on each operations event,
// keeping a slow poll as the fallback; nothing else changes.

const feed = {
  timer: null,
  running: false,
  start() { if (!this.running) { this.running = true; this.tick(); } },
  stop() { this.running = false; clearTimeout(this.timer); this.timer = null; },
  async tick() {
    if (!this.running) return;
    await refresh();
    if (this.running) this.timer = setTimeout(() => this.tick(), REFRESH_MS);
  },
};

async function refresh() {
  try {
    const [pj, dl] = await Promise.all([api("GET", "/v1/admin/projections"), api("GET", "/v1/admin/dead-letters")]);
    renderProjections(pj.projections || []);
    renderDeadLetters(dl.dead_letters || []);
    $("refreshed").textContent = "refreshed " + new Date().toLocaleTimeString();
    $("board-error").textContent = "";
  } catch (e) {
    $("board-error").textContent = e.message;
  }
}

async function act(path, button) {
  const reason = $("reason").value.trim() || "from the operator console";
  button.disabled = true;
  try {
    await api("POST", path, { reason });
    $("board-error").textContent = "";
  } catch (e) {
    $("board-error").textContent = e.message;
  } finally {
    button.disabled = false;
  }
  refresh();
}

// ---- projections: one row per projection, kept across refreshes (updated in place)

const pjRows = new Map();

function partitionsOf(p) {
  const out = [];
  for (const part of p.partitions || []) {
    const lag = part.lag_events === null || part.lag_events === undefined ? "?" : String(part.lag_events);
    const hw = part.high_watermark === null || part.high_watermark === undefined ? "?" : String(part.high_watermark);
    let text = "p" + part.partition + ": " + part.position + " / " + hw + ", lag " + lag;
    if (part.lag_seconds) text += " (" + Number(part.lag_seconds).toFixed(1) + " s)";
    out.push(el("div", { class: part.lag_events > 0 ? "lagging" : "", text,
                         data: { partition: String(part.partition), position: String(part.position) } }));
  }
  return out;
}

function projectionRow(name) {
  const cells = {};
  for (const k of ["name", "context", "version", "state", "dead", "parts", "actions"]) cells[k] = el("td", { class: k });
  const enc = encodeURIComponent(name);
  const pause = el("button", { type: "button", class: "pause", text: "Pause" });
  pause.addEventListener("click", () => act("/v1/admin/projections/" + enc + "/pause", pause));
  const resume = el("button", { type: "button", class: "resume", text: "Resume" });
  resume.addEventListener("click", () => act("/v1/admin/projections/" + enc + "/resume", resume));
  cells.actions.append(pause, resume);
  const tr = el("tr", { data: { projection: name } }, ...Object.values(cells));
  return { tr, cells, pause, resume };
}

function renderProjections(list) {
  const body = $("projections").tBodies[0];
  const seen = new Set();
  for (const p of list) {
    const key = p.name || ("(" + p.context + ")");
    seen.add(key);
    let row = pjRows.get(key);
    if (!row) {
      row = projectionRow(key);
      pjRows.set(key, row);
      body.append(row.tr);
    }
    row.tr.dataset.state = p.state;
    row.cells.name.textContent = key;
    row.cells.context.textContent = p.context;
    row.cells.version.textContent = p.version === undefined ? "" : String(p.version);
    row.cells.state.replaceChildren(el("span", { text: p.state + (p.detail ? " (" + p.detail + ")" : "") }));
    row.cells.dead.textContent = p.dead_letters === undefined ? "" : String(p.dead_letters);
    row.cells.parts.replaceChildren(...partitionsOf(p));
    row.pause.hidden = !p.name || p.state === "paused";
    row.resume.hidden = !p.name || p.state !== "paused";
  }
  for (const [key, row] of pjRows) if (!seen.has(key)) { row.tr.remove(); pjRows.delete(key); }
}

// ---- dead letters

const dlRows = new Map();

function deadLetterRow(d) {
  const tr = el("tr", { data: { deadLetter: d.id } });
  const enc = encodeURIComponent(d.id);
  const replay = el("button", { type: "button", class: "replay", text: "Replay" });
  replay.addEventListener("click", () => act("/v1/admin/dead-letters/" + enc + "/replay", replay));
  const discard = el("button", { type: "button", class: "discard", text: "Discard" });
  discard.addEventListener("click", () => act("/v1/admin/dead-letters/" + enc + "/discard", discard));
  for (const v of [d.id, d.projection, d.topic, d.partition, d.offset, d.error, d.at])
    tr.append(el("td", { text: v === null || v === undefined ? "" : String(v) }));
  tr.append(el("td", {}, replay, discard));
  return tr;
}

function renderDeadLetters(list) {
  const body = $("dead-letters").tBodies[0];
  const seen = new Set();
  for (const d of list) {
    seen.add(d.id);
    if (!dlRows.has(d.id)) {
      const tr = deadLetterRow(d);
      dlRows.set(d.id, tr);
      body.append(tr);
    } else {
      dlRows.get(d.id).children[5].textContent = d.error; // a replay that failed again says why
    }
  }
  for (const [id, tr] of dlRows) if (!seen.has(id)) { tr.remove(); dlRows.delete(id); }
  $("no-dead-letters").hidden = list.length > 0;
  $("dead-letters").hidden = list.length === 0;
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout());
  if (token()) show();
});
