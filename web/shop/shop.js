// The shop front, for customers. Only the public API and the stream:
// - products: GET /v1/products (a page at a time; `q` is the catalog's full-text search, category
//   and vendor filter, also from the page's query string: /shop/?vendor=acme&q=lamp), each with
//   its current price (the list price with the dynamic rules applied, as GET /v1/prices/{sku}
//   gives it) and its available stock, in the one answer;
// - an account: POST /v1/users registers a customer, POST /v1/auth/token logs in; the token is
//   kept in sessionStorage (gone with the tab);
// - a cart kept in localStorage, placed as POST /v1/orders;
// - an order tracked live: a stream ticket (POST /v1/stream/tickets) opens an EventSource on
//   /v1/stream?context=orders&aggregate=<order id>; each event moves the steps on at once and the
//   order is read again at that event's position (X-Min-Position) for its details;
// - past orders: GET /v1/orders.
// Everything shown that came from the API or a user is set as text (textContent), never as
// markup.
"use strict";

const PAGE = 50;
const TOKEN_KEY = "eventshop.token";
const CART_KEY = "eventshop.cart";
const STEPS = ["placed", "reserved", "paid", "confirmed", "shipped", "delivered"];
// order events (their record names) and the step each one reaches
const EVENT_STEP = {
  OrderPlaced: "placed", OrderStockReserved: "reserved", OrderConfirmed: "confirmed",
  OrderShipped: "shipped", OrderDelivered: "delivered", OrderCancelled: "cancelled",
};
// the order read model's statuses and the step each one is
const STATUS_STEP = {
  placed: "placed", stock_reserved: "reserved", confirmed: "confirmed", shipped: "shipped",
  delivered: "delivered", cancelled: "cancelled",
};

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const $ = (id) => document.getElementById(id);

function show(id, on) { $(id).hidden = !on; }

// ---------------------------------------------------------------- the API

function token() { return sessionStorage.getItem(TOKEN_KEY); }

// The token's claims (sub, role, exp), or null. Only to show who is logged in: the API decides.
function claims() {
  const t = token();
  if (!t) return null;
  try {
    const part = t.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const c = JSON.parse(atob(part + "===".slice((part.length + 3) % 4)));
    return c.exp && c.exp * 1000 < Date.now() ? null : c;
  } catch (e) {
    return null;
  }
}

// One request: {status, ok, data (the JSON body or null), headers}. Never throws for an HTTP
// status; a network failure is status 0.
async function api(method, path, opts) {
  const o = opts || {};
  const headers = Object.assign({ "Accept": "application/json" }, o.headers || {});
  if (o.auth) headers["Authorization"] = "Bearer " + token();
  if (o.body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(path, { method, headers, body: o.body === undefined ? undefined : JSON.stringify(o.body) });
  } catch (e) {
    return { status: 0, ok: false, data: null, headers: new Headers() };
  }
  let data = null;
  try { data = await r.json(); } catch (e) { data = null; }
  return { status: r.status, ok: r.ok, data, headers: r.headers };
}

// What went wrong, in words: a problem's detail, else its title, else the status.
function why(res) {
  if (res.status === 0) return "the shop cannot be reached";
  const d = res.data || {};
  return d.detail || d.title || ("error " + res.status);
}

async function getJson(path) {
  const r = await fetch(path, { headers: { "Accept": "application/json" } });
  if (r.status === 404) return null;
  if (!r.ok) {
    let detail = "";
    try { detail = (await r.json()).detail || ""; } catch (e) { detail = ""; }
    throw new Error(detail || ("GET " + path + ": " + r.status));
  }
  return r.json();
}

function money(minor, currency) {
  try {
    const f = new Intl.NumberFormat(undefined, { style: "currency", currency });
    const digits = f.resolvedOptions().maximumFractionDigits;
    return f.format(minor / Math.pow(10, digits));
  } catch (e) {
    return String(minor) + " " + currency + " (minor units)";
  }
}

// ---------------------------------------------------------------- products

// The listing carries each product's current price (dynamic rules applied) and stock.
function fillOffer(p, li) {
  const price = li.querySelector(".price"), stock = li.querySelector(".stock");
  if (p.price) {
    price.textContent = money(p.price.amount_minor, p.price.currency);
    if (p.price.list_amount_minor !== p.price.amount_minor) price.append(el("s", "", money(p.price.list_amount_minor, p.price.currency)));
    li.dataset.currency = p.price.currency;
    li.dataset.price = String(p.price.amount_minor);
  } else {
    price.textContent = "no price yet";
  }
  if (p.available === null || p.available === undefined) {
    stock.textContent = "stock unknown";
  } else {
    stock.textContent = p.available > 0 ? p.available + " in stock" : "out of stock";
    stock.classList.add(p.available > 0 ? "in" : "out");
    li.dataset.available = String(p.available);
  }
  enableAdd(li);
}

function enableAdd(li) {
  const b = li.querySelector("button.add");
  b.disabled = !(li.dataset.price && Number(li.dataset.available) > 0);
}

function productItem(p) {
  const li = el("li", "product");
  li.dataset.sku = p.sku;
  const name = p.name === null ? p.sku : p.name;
  const add = el("button", "add", "Add to cart");
  add.type = "button";
  add.disabled = true;
  add.setAttribute("aria-label", "Add " + name + " to the cart");
  add.addEventListener("click", () => addToCart(li, name));
  li.append(el("span", "name", name), el("span", "sku", p.sku),
            el("span", "category", p.category || ""), el("span", "price", "…"), el("span", "stock", "…"), add);
  fillOffer(p, li);
  return li;
}

let cursor = null;

function query() {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if ($("find").value.trim()) q.set("q", $("find").value.trim());
  if ($("category").value.trim()) q.set("category", $("category").value.trim());
  if ($("vendor").value.trim()) q.set("vendor", $("vendor").value.trim());
  if (cursor) q.set("cursor", cursor);
  return q;
}

async function load(more) {
  if (!more) { cursor = null; $("products").replaceChildren(); }
  delete $("status").dataset.loaded;
  $("status").textContent = "loading…";
  try {
    const page = await getJson("/v1/products?" + query());
    for (const p of page.items) $("products").append(productItem(p));
    cursor = page.next_cursor;
    $("more").hidden = !cursor;
    const n = $("products").children.length;
    const searched = $("find").value.trim() !== "";
    $("status").textContent = n === 0 ? (searched ? "no products match" : "no products")
      : n + (n === 1 ? " product" : " products") + (searched ? " found" : "");
    $("status").dataset.loaded = "true";
  } catch (e) {
    $("status").textContent = e.message;
  }
}

// ---------------------------------------------------------------- the cart (localStorage)

function cart() {
  try {
    const c = JSON.parse(localStorage.getItem(CART_KEY) || "[]");
    return Array.isArray(c) ? c : [];
  } catch (e) {
    return [];
  }
}

function saveCart(lines) {
  localStorage.setItem(CART_KEY, JSON.stringify(lines));
  renderCart();
}

function addToCart(li, name) {
  const lines = cart();
  const sku = li.dataset.sku;
  const line = lines.find((l) => l.sku === sku);
  if (line) line.quantity = Math.min(line.quantity + 1, 1000);
  else lines.push({ sku, name, quantity: 1, amount_minor: Number(li.dataset.price), currency: li.dataset.currency });
  saveCart(lines);
  $("status").textContent = name + " is in the cart";
}

function cartLine(line) {
  const li = el("li", "line");
  li.dataset.sku = line.sku;
  const qty = el("input", "qty");
  qty.type = "number";
  qty.min = "1";
  qty.max = "1000";
  qty.value = String(line.quantity);
  qty.setAttribute("aria-label", "Quantity of " + line.name);
  qty.addEventListener("change", () => {
    const n = Math.max(1, Math.min(1000, Math.floor(Number(qty.value)) || 1));
    saveCart(cart().map((l) => (l.sku === line.sku ? Object.assign(l, { quantity: n }) : l)));
  });
  const remove = el("button", "remove", "Remove");
  remove.type = "button";
  remove.setAttribute("aria-label", "Remove " + line.name + " from the cart");
  remove.addEventListener("click", () => saveCart(cart().filter((l) => l.sku !== line.sku)));
  li.append(el("span", "name", line.name), qty,
            el("span", "amount", money(line.amount_minor * line.quantity, line.currency)), remove);
  return li;
}

function renderCart() {
  const lines = cart();
  $("cart-count").textContent = String(lines.reduce((n, l) => n + l.quantity, 0));
  $("cart-lines").replaceChildren(...lines.map(cartLine));
  const currencies = [...new Set(lines.map((l) => l.currency))];
  if (lines.length === 0) $("cart-total").textContent = "The cart is empty.";
  else if (currencies.length > 1) $("cart-total").textContent = "An order takes one currency: keep products of one.";
  else $("cart-total").textContent = "Total " + money(lines.reduce((s, l) => s + l.amount_minor * l.quantity, 0), currencies[0]);
  $("place-order").disabled = lines.length === 0;
}

async function placeOrder(ev) {
  ev.preventDefault();
  if (!claims()) {
    $("cart-status").textContent = "Log in to place the order.";
    openPanel("auth");
    return;
  }
  const lines = cart();
  if (lines.length === 0) return;
  const body = {
    lines: lines.map((l) => ({ sku: l.sku, quantity: l.quantity })),
    shipping_address: {
      name: $("ship-name").value.trim(), line1: $("ship-line1").value.trim(), city: $("ship-city").value.trim(),
      postal_code: $("ship-postal").value.trim(), country: $("ship-country").value.trim(),
    },
  };
  $("place-order").disabled = true;
  $("cart-status").textContent = "placing the order…";
  const key = "shop-" + (crypto.randomUUID ? crypto.randomUUID() : String(Date.now()) + Math.random());
  const res = await api("POST", "/v1/orders", { auth: true, body, headers: { "Prefer": "wait=20", "Idempotency-Key": key } });
  $("place-order").disabled = false;
  if (!res.ok || !res.data || !res.data.order_id) {
    $("cart-status").textContent = "The order was not placed: " + why(res);
    return;
  }
  saveCart([]);
  $("cart-status").textContent = "";
  track(res.data.order_id, res.status === 201 ? res.data.position : null);
}

// ---------------------------------------------------------------- tracking an order live

const tracked = { id: null, reached: -1, final: false, source: null, from: "earliest", retry: null, gen: 0 };

function stepIndex(step) { return STEPS.indexOf(step); }

// Moves the steps on to step (never back: events and reads may arrive out of order).
function reach(step) {
  if (step === "cancelled") {
    tracked.final = true;
    $("track-status").dataset.status = "cancelled";
    $("track-status").textContent = "Cancelled";
    $("track-steps").classList.add("cancelled");
    return;
  }
  const i = stepIndex(step);
  if (i < 0 || i <= tracked.reached || $("track-status").dataset.status === "cancelled") return;
  tracked.reached = i;
  for (const li of $("track-steps").children) {
    const k = stepIndex(li.dataset.step);
    li.classList.toggle("done", k <= i);
    if (k === i) li.setAttribute("aria-current", "step");
    else li.removeAttribute("aria-current");
  }
  $("track-status").dataset.status = step;
  $("track-status").textContent = step === "delivered" ? "Delivered" : "Now: " + step;
  if (step === "delivered") tracked.final = true;
}

function renderOrder(o) {
  const step = STATUS_STEP[o.status];
  // paid: the payment captured (it comes before the order is confirmed)
  if (o.payment_status === "captured" || (o.payment && o.payment.status === "captured")) reach("paid");
  if (step) reach(step);
  $("track-lines").replaceChildren(...o.lines.map((l) =>
    el("li", "line", l.quantity + " × " + l.sku + " at " + money(l.unit_amount_minor, o.currency))));
  const extra = [money(o.total_minor, o.currency)];
  if (o.tracking_number) extra.push("tracking number " + o.tracking_number);
  if (o.cancel_reason) extra.push("cancelled: " + o.cancel_reason);
  $("track-lines").append(el("li", "total", extra.join(" · ")));
}

// Reads the order once the read model has applied position (when given).
async function readOrder(id, position) {
  const headers = position ? { "X-Min-Position": position } : {};
  const res = await api("GET", "/v1/orders/" + encodeURIComponent(id), { auth: true, headers });
  if (res.ok && tracked.id === id) renderOrder(res.data);
}

function stopStream() {
  if (tracked.source) tracked.source.close();
  tracked.source = null;
  if (tracked.retry) clearTimeout(tracked.retry);
  tracked.retry = null;
}

function onOrderEvent(d, gen) {
  if (gen !== tracked.gen) return;
  const short = String(d.type || "").split(".").pop();
  const at = d.occurred_at ? new Date(d.occurred_at).toLocaleTimeString() : "";
  $("track-log").prepend(el("li", "", at + " " + short));
  const [p, o] = String(d.position || "").split(":");
  if (o !== undefined) tracked.from = "orders:" + p + ":" + (Number(o) + 1);
  if (EVENT_STEP[short]) reach(EVENT_STEP[short]);
  readOrder(tracked.id, d.position);
  if (tracked.final) {
    stopStream();
    $("track-live").textContent = "";
  }
}

// The stream closed before the order's end: open it again where it left off, after a pause.
function reopenLater(gen, reason) {
  stopStream();
  if (gen !== tracked.gen || tracked.final) return;
  if (!claims()) {
    $("track-live").textContent = "Log in again to follow the order.";
    return;
  }
  $("track-live").textContent = "reconnecting (" + reason + ")…";
  tracked.retry = setTimeout(() => openStream(gen), 2000);
}

async function openStream(gen) {
  const res = await api("POST", "/v1/stream/tickets", { auth: true });
  if (gen !== tracked.gen) return;
  if (!res.ok) { reopenLater(gen, why(res)); return; }
  const q = new URLSearchParams({ ticket: res.data.ticket, context: "orders", aggregate: tracked.id, from: tracked.from });
  const source = new EventSource("/v1/stream?" + q);
  tracked.source = source;
  source.addEventListener("message", (m) => onOrderEvent(JSON.parse(m.data), gen));
  source.addEventListener("caught-up", () => {
    if (gen === tracked.gen && !tracked.final) $("track-live").textContent = "live: updates appear as they happen";
  });
  // the server ends a stream (token expired, shutdown…) with "end": never let EventSource retry
  // with the used ticket
  source.addEventListener("end", (m) => {
    let reason = "ended";
    try { reason = JSON.parse(m.data).reason || reason; } catch (e) { reason = "ended"; }
    reopenLater(gen, reason);
  });
  source.addEventListener("error", () => reopenLater(gen, "connection lost"));
}

function track(id, position) {
  stopStream();
  Object.assign(tracked, { id, reached: -1, final: false, from: "earliest", gen: tracked.gen + 1 });
  $("track-id").textContent = id;
  $("track-steps").classList.remove("cancelled");
  for (const li of $("track-steps").children) { li.classList.remove("done"); li.removeAttribute("aria-current"); }
  delete $("track-status").dataset.status;
  $("track-status").textContent = "";
  $("track-lines").replaceChildren();
  $("track-log").replaceChildren();
  $("track-live").textContent = "connecting…";
  openPanel("tracking");
  readOrder(id, position);
  openStream(tracked.gen);
}

// ---------------------------------------------------------------- past orders

async function loadOrders() {
  $("orders-status").textContent = "loading…";
  const res = await api("GET", "/v1/orders?limit=50", { auth: true });
  if (!res.ok) { $("orders-status").textContent = why(res); return; }
  const items = res.data.items;
  $("order-list").replaceChildren(...items.map((o) => {
    const li = el("li", "order");
    li.dataset.orderId = o.order_id;
    li.dataset.status = o.status;
    const when = new Date(o.placed_at).toLocaleString();
    const total = o.total_minor === undefined ? "" : money(o.total_minor, o.currency);
    const b = el("button", "follow", "Follow");
    b.type = "button";
    b.setAttribute("aria-label", "Follow order " + o.order_id);
    b.addEventListener("click", () => track(o.order_id, null));
    li.append(el("span", "when", when), el("span", "status", STATUS_STEP[o.status] || o.status),
              el("span", "amount", total), el("span", "id", o.order_id), b);
    return li;
  }));
  $("orders-status").textContent = items.length === 0 ? "No orders yet." : "";
}

// ---------------------------------------------------------------- account

function renderAccount() {
  const c = claims();
  $("who").textContent = c ? "Logged in (" + c.role + ")" : "";
  show("show-auth", !c);
  show("logout", !!c);
  show("show-orders", !!c);
}

function openPanel(id) {
  for (const p of ["auth", "tracking", "cart", "orders"]) if (p !== id && p !== "tracking") show(p, false);
  show(id, true);
  const h = $(id).querySelector("h2");
  if (h) h.focus();
  if (id === "orders") loadOrders();
}

async function login(ev) {
  ev.preventDefault();
  $("auth-status").textContent = "logging in…";
  const res = await api("POST", "/v1/auth/token", { body: { email: $("login-email").value.trim(), password: $("login-password").value } });
  if (!res.ok) { $("auth-status").textContent = "Not logged in: " + why(res); return; }
  sessionStorage.setItem(TOKEN_KEY, res.data.access_token);
  $("login-password").value = "";
  $("auth-status").textContent = "";
  renderAccount();
  show("auth", false);
  if (cart().length) openPanel("cart");
}

async function register(ev) {
  ev.preventDefault();
  $("auth-status").textContent = "creating the account…";
  const email = $("reg-email").value.trim();
  const res = await api("POST", "/v1/users", {
    headers: { "Prefer": "wait=15" },
    body: { email, password: $("reg-password").value, name: $("reg-name").value.trim(), role: "customer" },
  });
  if (res.status !== 201) { $("auth-status").textContent = "No account created: " + why(res); return; }
  $("reg-password").value = "";
  $("login-email").value = email;
  $("auth-status").textContent = "Account created: log in with it.";
  // the new account's id (Location: /v1/users/{id})
  $("auth-status").dataset.registered = (res.headers.get("Location") || "").split("/").pop() || "true";
  $("login-password").focus();
}

function logout() {
  sessionStorage.removeItem(TOKEN_KEY);
  stopStream();
  tracked.gen++;
  show("tracking", false);
  show("orders", false);
  renderAccount();
}

document.addEventListener("DOMContentLoaded", () => {
  const given = new URLSearchParams(location.search);
  $("category").value = given.get("category") || "";
  $("vendor").value = given.get("vendor") || "";
  $("find").value = given.get("q") || "";
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
  $("more").addEventListener("click", () => load(true));
  $("show-auth").addEventListener("click", () => openPanel("auth"));
  $("show-cart").addEventListener("click", () => openPanel("cart"));
  $("show-orders").addEventListener("click", () => openPanel("orders"));
  $("logout").addEventListener("click", logout);
  $("login-form").addEventListener("submit", login);
  $("register-form").addEventListener("submit", register);
  $("checkout").addEventListener("submit", placeOrder);
  // another tab changed the cart
  window.addEventListener("storage", (ev) => { if (ev.key === CART_KEY) renderCart(); });
  renderAccount();
  renderCart();
  load(false);
});
