// The operator console: an administrator's token (POST /v1/auth/token), then
//  - activity per context (GET /v1/admin/activity and the projections' positions): command rate,
//    rejections, handler and projector lag, as a small live chart (inline SVG);
//  - the projections (GET /v1/admin/projections) with pause/resume, a shadow rebuild with its
//    progress bar and ETA, its comparison and the swap;
//  - the dead letters (GET /v1/admin/dead-letters) with replay/discard;
//  - the order saga's open orders with their deadlines (GET /v1/admin/sagas);
//  - an event browser: an aggregate's history (GET /v1/history/...) and the live stream
//    (GET /v1/stream with a ticket from POST /v1/stream/tickets) with filters.
// The board refreshes when the event stream says something happened (at most once a second),
// and by polling besides: every 2 s without the stream or while a rebuild runs, every 6 s else.
// Everything shown that came from the API is set as text (textContent), never as markup.
"use strict";

const POLL_MS = 2000;
const POLL_LIVE_MS = 6000;
const STREAM_REFRESH_MS = 1000;
const CHART_POINTS = 60;
const STREAM_ROWS = 200;
const TOKEN_KEY = "eventshop.console.token";
const SVG = "http://www.w3.org/2000/svg";

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

function svg(tag, attrs) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  return e;
}

const $ = (id) => document.getElementById(id);
const str = (v) => (v === null || v === undefined ? "" : String(v));

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
    const err = new Error(method + " " + path + ": " + r.status + " " + why);
    err.status = r.status;
    throw err;
  }
  return data;
}

function when(ms) { return ms ? new Date(Number(ms)).toLocaleString() : ""; }

function seconds(s) {
  if (s === null || s === undefined || s < 0 || !isFinite(s)) return "?";
  if (s < 90) return Math.round(s) + " s";
  if (s < 5400) return Math.round(s / 60) + " min";
  return (s / 3600).toFixed(1) + " h";
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
  browser.stop();
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

// ---- event streams: an EventSource on GET /v1/stream with a fresh single-use ticket

async function openStream(params, handlers) {
  const t = await api("POST", "/v1/stream/tickets");
  const q = new URLSearchParams(params);
  q.set("ticket", t.ticket);
  const es = new EventSource("/v1/stream?" + q.toString());
  es.addEventListener("message", (e) => {
    let item = null;
    try { item = JSON.parse(e.data); } catch (x) { return; }
    handlers.message(item);
  });
  es.addEventListener("caught-up", () => handlers.state("live"));
  es.addEventListener("end", (e) => {
    let why = "";
    try { why = JSON.parse(e.data).reason || ""; } catch (x) { why = ""; }
    es.close();
    handlers.ended(why);
  });
  // an EventSource reconnects by itself, but its ticket was single use: end it and let the
  // owner open another
  es.addEventListener("error", () => { if (es.readyState !== EventSource.OPEN) { es.close(); handlers.ended("disconnected"); } });
  return es;
}

// ---- the feed: the board's refreshes

const feed = {
  timer: null,
  running: false,
  es: null,
  live: false,
  rebuilding: false,
  pending: null,
  retry: null,
  start() {
    if (this.running) return;
    this.running = true;
    this.tick();
    this.connect();
  },
  stop() {
    this.running = false;
    clearTimeout(this.timer); this.timer = null;
    clearTimeout(this.pending); this.pending = null;
    clearTimeout(this.retry); this.retry = null;
    if (this.es) this.es.close();
    this.es = null;
    this.setLive(false, "off");
  },
  setLive(live, text) {
    this.live = live;
    $("feed-state").dataset.state = live ? "live" : "off";
    $("feed-state").textContent = "live feed: " + text;
  },
  async connect() {
    if (!this.running) return;
    try {
      this.es = await openStream({ from: "now" }, {
        message: () => this.soon(),
        state: (s) => this.setLive(true, s),
        ended: (why) => {
          this.es = null;
          this.setLive(false, why || "ended");
          if (this.running) this.retry = setTimeout(() => this.connect(), 3000);
        },
      });
      if (!this.running) { this.es.close(); this.es = null; return; }
      this.es.addEventListener("open", () => this.setLive(true, "live"));
    } catch (e) {
      this.setLive(false, "unavailable");
      if (this.running) this.retry = setTimeout(() => this.connect(), 5000);
    }
  },
  // an event happened: refresh within STREAM_REFRESH_MS, once for a burst
  soon() {
    if (this.pending || !this.running) return;
    this.pending = setTimeout(() => { this.pending = null; refresh(); }, STREAM_REFRESH_MS);
  },
  async tick() {
    if (!this.running) return;
    await refresh();
    const ms = this.live && !this.rebuilding ? POLL_LIVE_MS : POLL_MS;
    if (this.running) this.timer = setTimeout(() => this.tick(), ms);
  },
};

let refreshing = null;

async function refresh() {
  if (refreshing) return refreshing;
  refreshing = (async () => {
    try {
      const [pj, dl, ac] = await Promise.all([
        api("GET", "/v1/admin/projections"),
        api("GET", "/v1/admin/dead-letters"),
        api("GET", "/v1/admin/activity"),
      ]);
      const projections = pj.projections || [];
      renderProjections(projections);
      renderDeadLetters(dl.dead_letters || []);
      renderActivity(ac, projections);
      browser.fillContexts((ac.contexts || []).map((c) => c.context));
      feed.rebuilding = projections.some((p) => p.state === "rebuilding");
      $("refreshed").textContent = "refreshed " + new Date().toLocaleTimeString();
      $("board-error").textContent = "";
    } catch (e) {
      $("board-error").textContent = e.message;
    }
    await sagas.refresh();
  })();
  try { await refreshing; } finally { refreshing = null; }
}

async function act(path, button, extra) {
  const reason = $("reason").value.trim() || "from the operator console";
  button.disabled = true;
  try {
    await api("POST", path, Object.assign({ reason }, extra || {}));
    $("board-error").textContent = "";
  } catch (e) {
    $("board-error").textContent = e.message;
  } finally {
    button.disabled = false;
  }
  refresh();
}

// ---- activity: one card per context with its numbers and a chart of the last readings

const cards = new Map();

function card(ctx) {
  let c = cards.get(ctx);
  if (c) return c;
  const chart = svg("svg", { viewBox: "0 0 240 60", width: 240, height: 60, role: "img",
                             "aria-label": ctx + ": commands, rejections and lag over the last readings" });
  chart.append(svg("rect", { x: 0, y: 0, width: 240, height: 60, class: "bg" }));
  const lines = {};
  for (const k of ["commands", "rejected", "hlag", "plag"]) {
    lines[k] = svg("polyline", { class: "k-" + k, points: "", fill: "none" });
    chart.append(lines[k]);
  }
  const figures = el("dl");
  const fig = {};
  for (const [k, label] of [["rate", "commands/s"], ["rejections", "rejections/s"], ["total", "commands (accepted / rejected)"],
                            ["handler", "handler position (lag)"], ["projector", "projector position (lag)"]]) {
    fig[k] = el("dd", { class: k });
    figures.append(el("dt", { text: label }), fig[k]);
  }
  const box = el("article", { class: "card", data: { context: ctx } }, el("h3", { text: ctx }), chart, figures);
  $("activity").append(box);
  c = { box, lines, fig, points: [], last: null };
  cards.set(ctx, c);
  return c;
}

function projectorTotals(projections, ctx) {
  let position = 0, lag = 0, known = false;
  for (const p of projections) {
    if (p.context !== ctx || !p.name) continue;
    for (const part of p.partitions || []) {
      position += Number(part.position) || 0;
      lag += Number(part.lag_events) || 0;
      known = true;
    }
  }
  return known ? { position, lag } : null;
}

function drawLine(line, values) {
  const max = Math.max(1, ...values);
  const step = 240 / (CHART_POINTS - 1);
  const x0 = 240 - (values.length - 1) * step;
  line.setAttribute("points", values.map((v, i) => (x0 + i * step).toFixed(1) + "," + (57 - (v / max) * 54).toFixed(1)).join(" "));
}

function renderActivity(ac, projections) {
  for (const a of ac.contexts || []) {
    const c = card(a.context);
    const pj = projectorTotals(projections, a.context);
    const now = { at: ac.at, commands: a.commands, accepted: a.accepted, rejected: a.rejected };
    let rate = 0, rejections = 0;
    if (c.last && now.at > c.last.at) {
      const dt = (now.at - c.last.at) / 1000;
      if (now.commands !== null && c.last.commands !== null) rate = Math.max(0, now.commands - c.last.commands) / dt;
      rejections = Math.max(0, now.rejected - c.last.rejected) / dt;
    }
    c.last = now;
    c.points.push({ commands: rate, rejected: rejections, hlag: Number(a.handler_lag) || 0, plag: pj ? pj.lag : 0 });
    if (c.points.length > CHART_POINTS) c.points.shift();
    for (const k of Object.keys(c.lines)) drawLine(c.lines[k], c.points.map((p) => p[k]));
    c.fig.rate.textContent = rate.toFixed(1);
    c.fig.rejections.textContent = rejections.toFixed(1);
    c.fig.total.textContent = str(a.commands === null ? "?" : a.commands) + " (" + a.accepted + " / " + a.rejected + ")";
    c.fig.handler.textContent = a.handler_position === null ? "unknown" : a.handler_position + " (" + a.handler_lag + ")";
    c.fig.projector.textContent = pj ? pj.position + " (" + pj.lag + ")" : "unknown";
    c.box.dataset.commands = str(a.commands);
    c.box.dataset.handlerPosition = str(a.handler_position);
    c.box.dataset.projectorPosition = pj ? String(pj.position) : "";
    c.box.dataset.readings = String(c.points.length);
  }
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

function button(cls, text, onClick) {
  const b = el("button", { type: "button", class: cls, text });
  b.addEventListener("click", () => onClick(b));
  return b;
}

function projectionRow(name) {
  const cells = {};
  for (const k of ["name", "context", "version", "state", "dead", "parts", "rebuild", "actions"]) cells[k] = el("td", { class: k });
  const enc = encodeURIComponent(name);
  const base = "/v1/admin/projections/" + enc + "/";
  const row = {
    pause: button("pause", "Pause", (b) => act(base + "pause", b)),
    resume: button("resume", "Resume", (b) => act(base + "resume", b)),
    rebuild: button("rebuild", "Rebuild", (b) => act(base + "rebuild", b, { swap: "on_request" })),
    swap: button("swap", "Swap in", (b) => act(base + "swap", b)),
    bar: el("progress", { max: "1", value: "0", "aria-label": "rebuild of " + name }),
    note: el("span", { class: "note" }),
    cells,
  };
  cells.rebuild.append(row.bar, row.note);
  cells.actions.append(row.pause, row.resume, row.rebuild, row.swap);
  row.tr = el("tr", { data: { projection: name } }, ...Object.values(cells));
  return row;
}

// The rebuild cell: the bar and what it stands for, from the state and its progress numbers.
function renderRebuild(row, p) {
  const r = p.rebuild;
  let fraction = null, note = "";
  if (p.state === "rebuilding") {
    const done = r ? Number(r.applied) : 0, left = r ? Number(r.remaining) : -1;
    fraction = left >= 0 && done + left > 0 ? done / (done + left) : 0;
    note = r ? done + " applied, " + (left >= 0 ? left : "?") + " left, ETA " + seconds(Number(r.eta_s)) : "starting";
  } else if (p.state === "shadow_ready") {
    fraction = 1;
    const eq = p.compare ? (p.compare.equal ? "equal" : "differs") : "compared";
    note = "ready, " + eq + " to the live tables: swap it in";
    row.tr.dataset.compare = p.compare ? String(!!p.compare.equal) : "";
  } else if (p.detail && /^shadow rebuild/.test(p.detail)) {
    fraction = /swapped in/.test(p.detail) ? 1 : null;
    note = p.detail;
  }
  row.bar.hidden = fraction === null;
  if (fraction !== null) row.bar.value = fraction;
  row.tr.dataset.progress = fraction === null ? "" : fraction.toFixed(3);
  row.note.textContent = note;
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
    row.tr.dataset.context = p.context;
    row.cells.name.textContent = key;
    row.cells.context.textContent = p.context;
    row.cells.version.textContent = str(p.version);
    const detail = p.detail && p.state !== "rebuilding" && p.state !== "shadow_ready" ? " (" + p.detail + ")" : "";
    row.cells.state.replaceChildren(el("span", { text: p.state + detail }));
    row.cells.dead.textContent = str(p.dead_letters);
    row.cells.parts.replaceChildren(...partitionsOf(p));
    renderRebuild(row, p);
    const busy = p.state === "rebuilding" || p.state === "shadow_ready";
    row.pause.hidden = !p.name || p.state === "paused" || busy;
    row.resume.hidden = !p.name || p.state !== "paused";
    row.rebuild.hidden = !p.name || busy || p.state === "paused";
    row.swap.hidden = !p.name || p.state !== "shadow_ready";
  }
  for (const [key, row] of pjRows) if (!seen.has(key)) { row.tr.remove(); pjRows.delete(key); }
}

// ---- dead letters

const dlRows = new Map();

function deadLetterRow(d) {
  const tr = el("tr", { data: { deadLetter: d.id } });
  const enc = encodeURIComponent(d.id);
  const replay = button("replay", "Replay", (b) => act("/v1/admin/dead-letters/" + enc + "/replay", b));
  const discard = button("discard", "Discard", (b) => act("/v1/admin/dead-letters/" + enc + "/discard", b));
  for (const v of [d.id, d.projection, d.topic, d.partition, d.offset, d.error, d.at])
    tr.append(el("td", { text: str(v) }));
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

// ---- open orders: the saga's deadlines, soonest first; "More" shows the next page too

const sagas = {
  pages: 1,
  async refresh() {
    try {
      let url = "/v1/admin/sagas?limit=50", rows = [], page = null;
      for (let i = 0; i < this.pages && url; i++) {
        page = await api("GET", url);
        rows = rows.concat(page.open_orders || []);
        url = page.next;
      }
      this.render(rows, page);
      $("sagas-error").textContent = "";
    } catch (e) {
      $("sagas-error").textContent = e.message;
    }
  },
  render(rows, page) {
    const body = $("sagas").tBodies[0];
    const now = page ? page.now : Date.now();
    body.replaceChildren(...rows.map((o) => {
      const look = button("look", "History", () => browser.showHistory("orders", o.order_id));
      const left = (o.deadline - now) / 1000;
      return el("tr", { data: { order: o.order_id, status: o.status }, class: left < 0 ? "late" : "" },
        el("td", { text: o.order_id }), el("td", { text: o.status }), el("td", { text: o.waits_on }),
        el("td", { text: when(o.deadline) }), el("td", { text: left < 0 ? "late by " + seconds(-left) : seconds(left) }),
        el("td", {}, look));
    }));
    $("sagas-total").textContent = page ? "(" + page.total + ")" : "";
    $("no-sagas").hidden = rows.length > 0;
    $("sagas").hidden = rows.length === 0;
    $("sagas-more").hidden = !(page && page.next);
  },
};

// ---- the event browser

function eventRow(item, withAggregate) {
  const cells = [];
  if (withAggregate) cells.push(el("td", { text: str(item.context) }), el("td", { text: str(item.aggregate_id) }));
  const type = str(item.type).replace(/^eventshop\.[a-z]+\./, "");
  cells.push(el("td", { text: str(item.version) }), el("td", { text: type, title: str(item.type) }),
             el("td", { text: when(item.occurred_at) }), el("td", { text: str(item.position) }));
  if (!withAggregate) cells.push(el("td", { text: str(item.actor) }));
  let payload = "";
  try { payload = JSON.stringify(item.payload); } catch (e) { payload = ""; }
  const flags = (item.shredded ? " [shredded]" : "") + (item.unreadable ? " [unreadable]" : "");
  cells.push(el("td", { class: "payload" }, el("code", { text: payload + flags })));
  return el("tr", { data: { type, version: str(item.version) } }, ...cells);
}

const browser = {
  es: null,
  historyNext: null,
  fillContexts(contexts) {
    for (const id of ["history-context", "stream-context"]) {
      const sel = $(id);
      if (sel.dataset.filled) continue;
      for (const c of contexts) sel.append(el("option", { value: c, text: c }));
      sel.dataset.filled = "1";
    }
  },
  async showHistory(ctx, id) {
    if (ctx) { $("history-context").value = ctx; $("history-id").value = id; }
    const c = $("history-context").value, a = $("history-id").value.trim();
    if (!c || !a) return;
    $("history").tBodies[0].replaceChildren();
    $("history-caption").textContent = c + " " + a;
    this.historyNext = "/v1/history/" + encodeURIComponent(c) + "/" + encodeURIComponent(a) + "?limit=100";
    await this.moreHistory();
    $("events-section").scrollIntoView();
  },
  async moreHistory() {
    if (!this.historyNext) return;
    $("history-error").textContent = "";
    try {
      const h = await api("GET", this.historyNext);
      const body = $("history").tBodies[0];
      for (const item of h.items || []) body.append(eventRow(item, false));
      this.historyNext = h.next;
      $("history").hidden = false;
      $("history").dataset.aggregate = h.aggregate_id;
      $("history").dataset.count = String(body.rows.length);
      $("history-more").hidden = !h.next;
    } catch (e) {
      this.historyNext = null;
      $("history").hidden = true;
      $("history-more").hidden = true;
      $("history-error").textContent = e.status === 404 ? "no such aggregate" : e.message;
    }
  },
  async follow(ev) {
    ev.preventDefault();
    this.stop();
    const params = { from: $("stream-from").value };
    const ctx = $("stream-context").value, type = $("stream-type").value.trim(), agg = $("stream-aggregate").value.trim();
    if (ctx) params.context = ctx;
    if (type) params.type = type.replace(/\s+/g, "");
    if (agg) params.aggregate = agg;
    $("stream-error").textContent = "";
    $("stream").tBodies[0].replaceChildren();
    this.state("connecting");
    $("stream-start").disabled = true;
    $("stream-stop").disabled = false;
    try {
      this.es = await openStream(params, {
        message: (item) => this.add(item),
        state: (s) => this.state(s === "live" ? "caught up, live" : s),
        ended: (why) => { this.es = null; this.state("ended: " + why); this.buttons(); },
      });
      this.es.addEventListener("open", () => { if ($("stream-state").dataset.state === "connecting") this.state("catching up"); });
    } catch (e) {
      $("stream-error").textContent = e.message;
      this.state("not following");
      this.buttons();
    }
  },
  add(item) {
    const body = $("stream").tBodies[0];
    body.prepend(eventRow(item, true));
    while (body.rows.length > STREAM_ROWS) body.lastElementChild.remove();
    $("stream").dataset.count = String(Number($("stream").dataset.count || 0) + 1);
  },
  state(s) {
    $("stream-state").textContent = s;
    $("stream-state").dataset.state = s;
  },
  buttons() {
    $("stream-start").disabled = false;
    $("stream-stop").disabled = true;
  },
  stop() {
    if (this.es) this.es.close();
    this.es = null;
    $("stream").dataset.count = "0";
    this.state("not following");
    this.buttons();
  },
};

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", login);
  $("logout").addEventListener("click", () => logout());
  $("sagas-more").addEventListener("click", () => { sagas.pages++; sagas.refresh(); });
  $("history-form").addEventListener("submit", (e) => { e.preventDefault(); browser.showHistory(); });
  $("history-more").addEventListener("click", () => browser.moreHistory());
  $("stream-form").addEventListener("submit", (e) => browser.follow(e));
  $("stream-stop").addEventListener("click", () => browser.stop());
  if (token()) show();
});
