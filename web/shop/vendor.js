// The vendors' page (/shop/vendor.html), on the public API only:
// - a vendor registers (POST /v1/users, role vendor) and logs in (POST /v1/auth/token). The API
//   answers a vendor awaiting approval exactly as a wrong password (on purpose: a login tells
//   nothing), so the page says "awaiting approval" for the account this browser registered;
// - an administrator sees the vendors awaiting approval (GET /v1/vendors) and approves them
//   (POST /v1/vendors/{id}/approval);
// - an approved vendor sees its products (GET /v1/products?vendor=&status=any), lists and edits
//   them (POST, PATCH /v1/products), sets prices and rules (PUT /v1/prices/{sku}, POST and
//   DELETE /v1/prices/{sku}/rules), receives and adjusts stock (POST /v1/inventory/{sku}/receipts
//   and /adjustments), and sees its order lines (GET /v1/orders).
// Commands are sent with Prefer: wait (a 202 is then polled on GET /v1/commands/{id}); the next
// read of the same context carries the outcome's position (X-Min-Position), so what a command
// changed shows without a reload. Everything shown that came from the API or a user is set as
// text (textContent), never as markup.
"use strict";

const TOKEN_KEY = "eventshop.vendor.token";
const PENDING_KEY = "eventshop.vendor.pending"; // the e-mail this browser registered as a vendor
const REFRESH_MS = 30000;
const RULE_KINDS = {
  percent_off: ["percent"],
  amount_off: ["amount"],
  floor: ["amount"],
  low_stock_surcharge: ["percent", "threshold", "cap"],
};

const $ = (id) => document.getElementById(id);

function el(tag, props, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "text") e.textContent = v;
    else if (k === "cls") e.className = v;
    else if (k === "data") for (const [dk, dv] of Object.entries(v)) e.dataset[dk] = dv;
    else if (k === "on") for (const [ev, fn] of Object.entries(v)) e.addEventListener(ev, fn);
    else e.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) e.append(c);
  return e;
}

function field(label, input) {
  return el("label", {}, label + " ", input);
}

// ---------------------------------------------------------------- the API

const session = {
  token: sessionStorage.getItem(TOKEN_KEY),
  positions: {}, // context -> the position of the last command outcome seen
};

function claims(tok) {
  try {
    const b = tok.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    return JSON.parse(atob(b + "===".slice((b.length + 3) % 4)));
  } catch (e) { return {}; }
}

function problemText(method, path, status, data, statusText) {
  const why = data && (data.detail || data.title) ? (data.detail || data.title) : statusText;
  return method + " " + path + ": " + status + " " + why;
}

class ApiError extends Error {
  constructor(message, status, data) { super(message); this.status = status; this.data = data; }
}

// One request; ctx names the context whose last known position the read must have reached.
async function request(method, path, opts) {
  const o = opts || {};
  const headers = Object.assign({ "Accept": "application/json" }, o.headers || {});
  if (session.token) headers["Authorization"] = "Bearer " + session.token;
  if (o.ctx && session.positions[o.ctx]) headers["X-Min-Position"] = session.positions[o.ctx];
  if (o.body !== undefined) headers["Content-Type"] = "application/json";
  const r = await fetch(path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  if (r.status === 401 && session.token) logout("your session ended: log in again");
  return { status: r.status, ok: r.ok, data, statusText: r.statusText };
}

async function query(path, ctx) {
  const r = await request("GET", path, { ctx });
  if (!r.ok) throw new ApiError(problemText("GET", path, r.status, r.data, r.statusText), r.status, r.data);
  return r.data;
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

// A command: its outcome once decided (waited for, then polled), its position kept for the
// context's next read. Throws the rejection's problem.
async function command(method, path, body, ctx) {
  let r = await request(method, path, { body, headers: { "Prefer": "wait=10" } });
  // (a registration has no token to poll with: its 202 is its answer)
  for (let delay = 250; r.status === 202 && session.token && r.data && r.data.command_id; delay = Math.min(delay * 2, 2000)) {
    await sleep(delay);
    r = await request("GET", "/v1/commands/" + encodeURIComponent(r.data.command_id), { headers: { "Prefer": "wait=10" } });
  }
  if (!r.ok) throw new ApiError(problemText(method, path, r.status, r.data, r.statusText), r.status, r.data);
  if (r.data && r.data.position) session.positions[ctx] = r.data.position;
  return r.data;
}

// ---------------------------------------------------------------- money and numbers

function digitsOf(currency) {
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).resolvedOptions().maximumFractionDigits;
  } catch (e) { return 2; }
}

function money(minor, currency) {
  try {
    const f = new Intl.NumberFormat(undefined, { style: "currency", currency });
    return f.format(minor / Math.pow(10, f.resolvedOptions().maximumFractionDigits));
  } catch (e) {
    return String(minor) + " " + currency + " (minor units)";
  }
}

// "12.5" with 2 digits -> 1250, exactly (no floating point); null when it is not such a number.
function toMinor(text, digits) {
  const m = /^\s*(\d{1,15})(?:[.,](\d*))?\s*$/.exec(text);
  if (!m || (m[2] || "").length > digits) return null;
  return Number(m[1] + (m[2] || "").padEnd(digits, "0"));
}

function toInt(text) {
  return /^\s*-?\d{1,9}\s*$/.test(text) ? Number(text) : null;
}

function count(n, what) {
  return n + " " + what + (n === 1 ? "" : "s");
}

function when(ms) {
  return typeof ms === "number" ? new Date(ms).toLocaleString() : "";
}

// ---------------------------------------------------------------- who is here

function showOnly(id) {
  for (const s of ["signed-out", "admin", "vendor"]) $(s).hidden = s !== id;
}

function pendingEmail() { return localStorage.getItem(PENDING_KEY); }

function showPending() {
  const e = pendingEmail();
  $("pending").hidden = !e || !!session.token;
  $("pending-email").textContent = e || "";
}

const timer = {
  id: null,
  start(fn) { this.stop(); this.id = setInterval(() => { if (!document.hidden) fn(); }, REFRESH_MS); },
  stop() { clearInterval(this.id); this.id = null; },
};

function logout(why) {
  session.token = null;
  session.positions = {};
  sessionStorage.removeItem(TOKEN_KEY);
  timer.stop();
  cards.clear();
  $("products").replaceChildren();
  $("vendors").replaceChildren();
  $("orders").tBodies[0].replaceChildren();
  $("who").textContent = "";
  $("logout").hidden = true;
  showOnly("signed-out");
  showPending();
  $("login-error").textContent = why || "";
}

function enter() {
  const c = claims(session.token);
  $("logout").hidden = false;
  $("pending").hidden = true;
  if (c.role === "admin") {
    $("who").textContent = "administrator";
    showOnly("admin");
    $("admin").querySelector("h2").focus();
    loadVendors();
    timer.start(loadVendors);
  } else if (c.role === "vendor" && c.vendor_id) {
    $("who").textContent = "vendor";
    showName(c.sub);
    showOnly("vendor");
    $("vendor").querySelector("h2").focus();
    loadProducts();
    loadOrders();
    timer.start(() => { loadOrders(); for (const sku of cards.keys()) refreshStock(sku); });
  } else {
    logout("this page is for vendors and administrators; customers shop on the shop front");
  }
}

// The vendor's own name in the header (GET /v1/users/{id}: a user may read itself).
async function showName(sub) {
  try {
    const u = await query("/v1/users/" + encodeURIComponent(sub), "users");
    if (session.token && u.name) $("who").textContent = u.name;
  } catch (e) { /* the header keeps "vendor" */ }
}

async function login(ev) {
  ev.preventDefault();
  $("login-error").textContent = "";
  const email = $("email").value.trim();
  const r = await request("POST", "/v1/auth/token", { body: { email, password: $("password").value } });
  if (r.ok) {
    $("password").value = "";
    session.token = r.data.access_token;
    sessionStorage.setItem(TOKEN_KEY, session.token);
    if (pendingEmail() === email.toLowerCase()) localStorage.removeItem(PENDING_KEY);
    enter();
  } else if (r.status === 401) {
    $("login-error").textContent = pendingEmail() === email.toLowerCase()
      ? "this vendor account is awaiting approval by an administrator"
      : "wrong e-mail or password (a vendor account awaiting approval cannot log in yet)";
  } else {
    $("login-error").textContent = problemText("POST", "/v1/auth/token", r.status, r.data, r.statusText);
  }
}

async function register(ev) {
  ev.preventDefault();
  const button = $("register-submit");
  $("register-error").textContent = "";
  const email = $("reg-email").value.trim();
  const body = { name: $("reg-name").value, email, password: $("reg-password").value, role: "vendor" };
  if ($("reg-phone").value.trim()) body.phone = $("reg-phone").value.trim();
  button.disabled = true;
  try {
    await command("POST", "/v1/users", body, "users");
    localStorage.setItem(PENDING_KEY, email.toLowerCase());
    $("register").reset();
    $("email").value = email;
    showPending();
    $("pending").querySelector("h2").focus();
  } catch (e) {
    $("register-error").textContent = e.data && e.data.type === "urn:eventshop:problem:email_taken"
      ? "an account with this e-mail exists already: log in" : e.message;
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------- admin: vendor approval

async function loadVendors() {
  try {
    const page = await query("/v1/vendors?status=pending&limit=200", "users");
    $("vendors").replaceChildren(...page.items.map(vendorItem));
    const n = page.items.length;
    $("vendors-status").textContent = (n === 0 ? "no vendor is waiting" : count(n, "vendor") + " waiting") + lastApproved;
    $("vendors-status").dataset.loaded = "true";
  } catch (e) {
    $("vendors-status").textContent = e.message;
  }
}

let lastApproved = "";

function vendorItem(v) {
  const approve = el("button", { type: "button", cls: "approve", text: "Approve" });
  const li = el("li", { cls: "card vendor", data: { userId: v.user_id } },
    el("span", { cls: "name", text: v.name === null ? "(forgotten)" : v.name }),
    el("span", { cls: "email", text: v.email || "" }),
    el("span", { cls: "meta", text: "registered " + when(v.registered_at) }),
    approve);
  approve.setAttribute("aria-label", "Approve " + (v.name || v.user_id));
  approve.addEventListener("click", async () => {
    approve.disabled = true;
    try {
      await command("POST", "/v1/vendors/" + encodeURIComponent(v.user_id) + "/approval", undefined, "users");
      lastApproved = "; approved " + (v.name || v.user_id);
      $("vendors-status").dataset.approved = v.user_id;
      await loadVendors();
      $("admin").querySelector("h2").focus();
    } catch (e) {
      approve.disabled = false;
      $("vendors-status").textContent = e.message;
    }
  });
  return li;
}

// ---------------------------------------------------------------- vendor: products

const cards = new Map(); // sku -> { li, product, stockKnown }
const listedHere = new Set(); // skus this page just listed: no stock row yet, nothing to ask

function vendorId() { return claims(session.token).vendor_id; }

async function loadProducts() {
  const status = $("products-status");
  try {
    const seen = new Set();
    let cursor = null;
    do {
      const q = new URLSearchParams({ vendor: vendorId(), status: "any", limit: "200" });
      if (cursor) q.set("cursor", cursor);
      const page = await query("/v1/products?" + q, "catalog");
      for (const p of page.items) { seen.add(p.sku); upsertCard(p); }
      cursor = page.next_cursor;
    } while (cursor);
    for (const [sku, c] of cards) if (!seen.has(sku)) { c.li.remove(); cards.delete(sku); }
    status.textContent = cards.size === 0 ? "no product yet: list your first one above" : count(cards.size, "product");
    status.dataset.loaded = "true";
  } catch (e) {
    status.textContent = e.message;
  }
}

function upsertCard(p) {
  let c = cards.get(p.sku);
  if (!c) {
    c = { li: productCard(p.sku), product: p, stockKnown: listedHere.has(p.sku) ? false : undefined };
    cards.set(p.sku, c);
    const after = [...cards.keys()].filter((s) => s > p.sku).sort()[0];
    $("products").insertBefore(c.li, after ? cards.get(after).li : null);
    refreshPrice(p.sku);
    refreshStock(p.sku);
  }
  c.product = p;
  const li = c.li;
  li.dataset.status = p.status || "";
  li.querySelector(".name").textContent = p.name === null ? p.sku : p.name;
  li.querySelector(".category").textContent = p.category || "";
  li.querySelector(".state").textContent = p.status || "";
  li.querySelector(".description").textContent = p.description || "";
  const details = li.querySelector("form.details");
  if (!details.contains(document.activeElement)) {
    details.elements.name.value = p.name || "";
    details.elements.category.value = p.category || "";
    details.elements.description.value = p.description || "";
  }
  const price = li.querySelector("form.price").elements.currency;
  if (!price.value) price.value = p.currency || "";
}

function productCard(sku) {
  const msg = el("p", { cls: "msg", role: "status" });
  const li = el("li", { cls: "card product", data: { sku } },
    el("div", { cls: "head" },
      el("span", { cls: "name" }), el("span", { cls: "sku", text: sku }),
      el("span", { cls: "category" }), el("span", { cls: "state" })),
    el("p", { cls: "description" }),
    el("div", { cls: "figures" }, el("span", { cls: "price", text: "…" }), el("span", { cls: "stock", text: "…" })),
    el("ul", { cls: "rules" }),
    el("details", { cls: "manage" }, el("summary", { text: "Manage " + sku }),
      detailsForm(sku, msg), priceForm(sku, msg), ruleForm(sku, msg), receiveForm(sku, msg), adjustForm(sku, msg)),
    msg);
  return li;
}

// Runs a form's command, then refreshes what it changed; the outcome is said in the card.
function onSubmit(form, msg, run) {
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    msg.textContent = "sending…";
    msg.classList.remove("error");
    try {
      const said = await run();
      msg.textContent = said;
    } catch (e) {
      msg.textContent = e.message;
      msg.classList.add("error");
    } finally {
      button.disabled = false;
    }
  });
}

function detailsForm(sku, msg) {
  const f = el("form", { cls: "details" }, el("h3", { text: "Details" }),
    field("Name", el("input", { name: "name", type: "text", maxlength: "200", required: "" })),
    field("Category", el("input", { name: "category", type: "text", maxlength: "100", required: "" })),
    field("Description", el("textarea", { name: "description", maxlength: "4000", rows: "2" })),
    el("button", { type: "submit", text: "Save details" }));
  onSubmit(f, msg, async () => {
    const p = cards.get(sku).product, body = {};
    for (const k of ["name", "category", "description"]) if (f.elements[k].value !== (p[k] || "")) body[k] = f.elements[k].value;
    if (Object.keys(body).length === 0) return "nothing changed";
    await command("PATCH", "/v1/products/" + encodeURIComponent(sku), body, "catalog");
    await loadProducts();
    return "details saved";
  });
  return f;
}

function priceForm(sku, msg) {
  const f = el("form", { cls: "price" }, el("h3", { text: "List price" }),
    field("Amount", el("input", { name: "amount", type: "text", inputmode: "decimal", required: "", placeholder: "12.99" })),
    field("Currency", el("input", { name: "currency", type: "text", maxlength: "3", pattern: "[A-Z]{3}", required: "" })),
    el("button", { type: "submit", text: "Set price" }));
  onSubmit(f, msg, async () => {
    const currency = f.elements.currency.value.trim().toUpperCase();
    const amount = toMinor(f.elements.amount.value, digitsOf(currency));
    if (amount === null) throw new Error("amount: a number with at most " + digitsOf(currency) + " decimals");
    await command("PUT", "/v1/prices/" + encodeURIComponent(sku), { amount_minor: amount, currency }, "pricing");
    await refreshPrice(sku);
    return "price set to " + money(amount, currency);
  });
  return f;
}

function ruleForm(sku, msg) {
  const kind = el("select", { name: "kind" }, ...Object.keys(RULE_KINDS).map((k) => el("option", { value: k, text: k.replace(/_/g, " ") })));
  const f = el("form", { cls: "rule" }, el("h3", { text: "Add a price rule" }),
    field("Kind", kind),
    field("Rule id", el("input", { name: "rule_id", type: "text", maxlength: "64", pattern: "[A-Za-z0-9._\\-]{1,64}", required: "" })),
    el("label", { data: { param: "percent" } }, "Percent ", el("input", { name: "percent", type: "text", inputmode: "decimal", placeholder: "10" })),
    el("label", { data: { param: "amount" } }, "Amount ", el("input", { name: "amount", type: "text", inputmode: "decimal", placeholder: "1.00" })),
    el("label", { data: { param: "threshold" } }, "When fewer available than ", el("input", { name: "threshold", type: "number", min: "1", step: "1" })),
    el("label", { data: { param: "cap" } }, "At most (amount) ", el("input", { name: "cap", type: "text", inputmode: "decimal" })),
    field("Valid from (optional)", el("input", { name: "valid_from", type: "datetime-local" })),
    field("Valid until (optional)", el("input", { name: "valid_until", type: "datetime-local" })),
    el("button", { type: "submit", text: "Add rule" }));
  const showParams = () => {
    const wanted = RULE_KINDS[kind.value];
    for (const l of f.querySelectorAll("label[data-param]")) l.hidden = !wanted.includes(l.dataset.param);
  };
  const newId = () => { f.elements.rule_id.value = "r-" + Date.now().toString(36); };
  kind.addEventListener("change", showParams);
  showParams();
  newId();
  onSubmit(f, msg, async () => {
    const c = cards.get(sku);
    const body = ruleBody(f, c.li.querySelector(".price").dataset.currency || c.product.currency || "EUR");
    await command("POST", "/v1/prices/" + encodeURIComponent(sku) + "/rules", body, "pricing");
    await refreshPrice(sku);
    newId();
    return "rule " + body.rule_id + " added";
  });
  return f;
}

function ruleBody(f, currency) {
  const e = f.elements, kind = e.kind.value, wanted = RULE_KINDS[kind];
  const body = { rule_id: e.rule_id.value.trim(), kind };
  if (wanted.includes("percent")) {
    body.basis_points = toMinor(e.percent.value, 2);
    if (body.basis_points === null) throw new Error("percent: a number with at most 2 decimals");
  }
  if (wanted.includes("amount")) {
    body.amount_minor = toMinor(e.amount.value, digitsOf(currency));
    if (body.amount_minor === null) throw new Error("amount: a number in " + currency);
    body.currency = currency;
  }
  if (wanted.includes("threshold")) {
    body.threshold = toInt(e.threshold.value);
    body.cap_minor = toMinor(e.cap.value, digitsOf(currency));
    if (body.threshold === null || body.cap_minor === null) throw new Error("threshold and cap are needed");
    body.currency = currency;
  }
  for (const k of ["valid_from", "valid_until"]) if (e[k].value) body[k] = new Date(e[k].value).getTime();
  return body;
}

function receiveForm(sku, msg) {
  const f = el("form", { cls: "receive" }, el("h3", { text: "Receive stock" }),
    field("Quantity", el("input", { name: "quantity", type: "number", min: "1", max: "1000000", step: "1", required: "" })),
    el("button", { type: "submit", text: "Receive" }));
  onSubmit(f, msg, async () => {
    const quantity = toInt(f.elements.quantity.value);
    if (quantity === null || quantity < 1) throw new Error("quantity: a whole number of at least 1");
    await command("POST", "/v1/inventory/" + encodeURIComponent(sku) + "/receipts", { quantity }, "inventory");
    cards.get(sku).stockKnown = true;
    await refreshStock(sku);
    f.reset();
    return quantity + " received";
  });
  return f;
}

function adjustForm(sku, msg) {
  const reason = el("select", { name: "reason" }, ...["count", "damage", "return"].map((r) => el("option", { value: r, text: r })));
  const f = el("form", { cls: "adjust" }, el("h3", { text: "Adjust stock" }),
    field("By (+/-)", el("input", { name: "delta", type: "number", min: "-1000000", max: "1000000", step: "1", required: "" })),
    field("Reason", reason),
    el("button", { type: "submit", text: "Adjust" }));
  onSubmit(f, msg, async () => {
    const delta = toInt(f.elements.delta.value);
    if (delta === null || delta === 0) throw new Error("by: a whole number other than 0");
    await command("POST", "/v1/inventory/" + encodeURIComponent(sku) + "/adjustments", { delta, reason: reason.value }, "inventory");
    cards.get(sku).stockKnown = true;
    await refreshStock(sku);
    f.reset();
    return "stock adjusted by " + delta;
  });
  return f;
}

// ---------------------------------------------------------------- prices, rules and stock

// An Avro union may come as {"long": 5}: its one value.
function plain(v) {
  if (v && typeof v === "object" && !Array.isArray(v)) {
    const keys = Object.keys(v);
    if (keys.length === 1) return v[keys[0]];
  }
  return v;
}

// The rules in force (added, not removed) from the price's history, oldest first.
function liveRules(history) {
  const rules = new Map();
  for (const h of history.items) {
    if (/RuleAdded$/.test(h.event_type)) rules.set(h.rule_id, h.details);
    else if (/RuleRemoved$/.test(h.event_type)) rules.delete(h.rule_id);
  }
  return rules;
}

function describeRule(d, currency) {
  const bp = plain(d.basis_points), amount = plain(d.amount_minor), cur = plain(d.currency) || currency;
  const kind = plain(d.kind);
  let text = kind;
  if (kind === "percent_off") text = (bp / 100) + "% off";
  else if (kind === "amount_off") text = money(amount, cur) + " off";
  else if (kind === "floor") text = "never below " + money(amount, cur);
  else if (kind === "low_stock_surcharge") {
    text = "+" + (bp / 100) + "% when fewer than " + plain(d.threshold) + " are available (at most " + money(plain(d.cap_minor), cur) + ")";
  }
  const from = plain(d.valid_from), until = plain(d.valid_until);
  if (from) text += ", from " + when(from);
  if (until) text += ", until " + when(until);
  return text;
}

async function refreshPrice(sku) {
  const c = cards.get(sku);
  if (!c) return;
  const cell = c.li.querySelector(".price"), list = c.li.querySelector("ul.rules");
  try {
    const base = "/v1/prices/" + encodeURIComponent(sku);
    const history = await query(base + "/history", "pricing");
    if (!history.items.some((h) => /PriceSet$/.test(h.event_type))) {
      cell.textContent = "no price yet";
      delete c.li.dataset.price;
      list.replaceChildren();
      return;
    }
    const p = await query(base, "pricing");
    cell.textContent = money(p.amount_minor, p.currency);
    if (p.list_amount_minor !== p.amount_minor) cell.append(" ", el("s", { text: money(p.list_amount_minor, p.currency) }));
    cell.dataset.currency = p.currency;
    c.li.dataset.price = String(p.amount_minor);
    const form = c.li.querySelector("form.price");
    if (!form.contains(document.activeElement)) form.elements.currency.value = p.currency;
    const applied = new Set(p.applied_rules.map((a) => a.rule_id));
    list.replaceChildren(...[...liveRules(history)].map(([id, d]) => ruleItem(sku, id, d, p.currency, applied.has(id))));
  } catch (e) {
    cell.textContent = e.message;
  }
}

function ruleItem(sku, id, d, currency, applied) {
  const remove = el("button", { type: "button", cls: "remove", text: "Remove", "aria-label": "Remove rule " + id });
  const li = el("li", { data: { ruleId: id, applied: String(applied) } },
    el("span", { text: describeRule(d, currency) + (applied ? " (applies now)" : "") + " " }),
    el("span", { cls: "sku", text: id + " " }), remove);
  remove.addEventListener("click", async () => {
    remove.disabled = true;
    const msg = cards.get(sku).li.querySelector("p.msg");
    try {
      await command("DELETE", "/v1/prices/" + encodeURIComponent(sku) + "/rules/" + encodeURIComponent(id), undefined, "pricing");
      msg.textContent = "rule " + id + " removed";
      await refreshPrice(sku);
    } catch (e) {
      remove.disabled = false;
      msg.textContent = e.message;
    }
  });
  return li;
}

// The stock row exists from the first receipt on: a sku known to have none is not asked for.
async function refreshStock(sku) {
  const c = cards.get(sku);
  if (!c) return;
  const cell = c.li.querySelector(".stock");
  if (c.stockKnown === false) { cell.textContent = "no stock received yet"; return; }
  try {
    const r = await request("GET", "/v1/inventory/" + encodeURIComponent(sku), { ctx: "inventory" });
    if (r.status === 404) {
      c.stockKnown = false;
      cell.textContent = "no stock received yet";
      return;
    }
    if (!r.ok) throw new Error(problemText("GET", "stock", r.status, r.data, r.statusText));
    c.stockKnown = true;
    const s = r.data;
    cell.textContent = s.available + " available (" + s.on_hand + " on hand, " + s.reserved + " reserved)";
    c.li.dataset.available = String(s.available);
  } catch (e) {
    cell.textContent = e.message;
  }
}

// ---------------------------------------------------------------- order lines

async function loadOrders() {
  const status = $("orders-status");
  try {
    const page = await query("/v1/orders?limit=100", "orders");
    $("orders").tBodies[0].replaceChildren(...page.items.map((o) => el("tr", { data: { orderId: o.order_id, sku: o.sku || "" } },
      el("td", { text: o.order_id }), el("td", { text: o.sku || "" }), el("td", { text: String(o.quantity ?? "") }),
      el("td", { text: typeof o.unit_amount_minor === "number" ? money(o.unit_amount_minor, o.currency) : "" }),
      el("td", { text: o.status }), el("td", { text: when(o.placed_at) }))));
    status.textContent = page.items.length === 0 ? "no order line yet" : count(page.items.length, "order line");
    $("orders").hidden = page.items.length === 0;
    status.dataset.loaded = "true";
  } catch (e) {
    status.textContent = e.message;
  }
}

// ---------------------------------------------------------------- start

async function listProduct(ev) {
  ev.preventDefault();
  const f = ev.target, e = f.elements, msg = f.querySelector(".msg");
  const button = f.querySelector("button[type=submit]");
  const body = { sku: e.sku.value.trim(), name: e.name.value, category: e.category.value, currency: e.currency.value.trim().toUpperCase() };
  if (e.description.value) body.description = e.description.value;
  button.disabled = true;
  msg.textContent = "sending…";
  try {
    await command("POST", "/v1/products", body, "catalog");
    listedHere.add(body.sku);
    await loadProducts();
    const c = cards.get(body.sku);
    msg.textContent = body.sku + " listed";
    f.reset();
    if (c) {
      $("new-product-box").open = false;
      const manage = c.li.querySelector("details.manage");
      manage.open = true;
      manage.querySelector("summary").focus();
    }
  } catch (err) {
    msg.textContent = err.message;
  } finally {
    button.disabled = false;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  $("login").addEventListener("submit", login);
  $("register").addEventListener("submit", register);
  $("logout").addEventListener("click", () => logout(""));
  $("vendors-refresh").addEventListener("click", loadVendors);
  $("products-refresh").addEventListener("click", loadProducts);
  $("orders-refresh").addEventListener("click", loadOrders);
  $("new-product").addEventListener("submit", listProduct);
  if (session.token && claims(session.token).exp * 1000 > Date.now()) enter();
  else logout("");
});
