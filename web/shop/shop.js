// The shop front: the listed products (GET /v1/products, a page at a time, filtered by category
// and vendor, also from the page's query string: /shop/?vendor=acme), each with its current price
// (GET /v1/prices/{sku}: list price and dynamic rules applied) and its stock
// (GET /v1/inventory/{sku}). Everything shown that came from the API is set as text
// (textContent), never as markup.
"use strict";

const PAGE = 50;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  return e;
}

const $ = (id) => document.getElementById(id);

async function getJson(path) {
  const r = await fetch(path, { headers: { "Accept": "application/json" } });
  if (r.status === 404) return null;
  if (!r.ok) throw new Error("GET " + path + ": " + r.status);
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

async function fillPrice(sku, li) {
  const cell = li.querySelector(".price");
  try {
    const p = await getJson("/v1/prices/" + encodeURIComponent(sku));
    if (!p) { cell.textContent = "no price yet"; return; }
    cell.textContent = money(p.amount_minor, p.currency);
    if (p.list_amount_minor !== p.amount_minor) cell.append(el("s", "", money(p.list_amount_minor, p.currency)));
    li.dataset.price = String(p.amount_minor);
  } catch (e) { cell.textContent = "price unavailable"; }
}

async function fillStock(sku, li) {
  const cell = li.querySelector(".stock");
  try {
    const s = await getJson("/v1/inventory/" + encodeURIComponent(sku));
    const n = s ? s.available : 0;
    cell.textContent = n > 0 ? n + " in stock" : "out of stock";
    cell.classList.add(n > 0 ? "in" : "out");
    li.dataset.available = String(n);
  } catch (e) { cell.textContent = "stock unavailable"; }
}

function productItem(p) {
  const li = el("li", "product");
  li.dataset.sku = p.sku;
  li.append(el("span", "name", p.name === null ? p.sku : p.name), el("span", "sku", p.sku),
            el("span", "category", p.category || ""), el("span", "price", "…"), el("span", "stock", "…"));
  fillPrice(p.sku, li);
  fillStock(p.sku, li);
  return li;
}

let cursor = null;

function query() {
  const q = new URLSearchParams({ limit: String(PAGE) });
  if ($("category").value.trim()) q.set("category", $("category").value.trim());
  if ($("vendor").value.trim()) q.set("vendor", $("vendor").value.trim());
  if (cursor) q.set("cursor", cursor);
  return q;
}

function applyFind() {
  const want = $("find").value.trim().toLowerCase();
  for (const li of $("products").children) {
    const text = (li.querySelector(".name").textContent + " " + li.dataset.sku).toLowerCase();
    li.hidden = want !== "" && !text.includes(want);
  }
}

async function load(more) {
  if (!more) { cursor = null; $("products").replaceChildren(); }
  $("status").textContent = "loading…";
  try {
    const page = await getJson("/v1/products?" + query());
    for (const p of page.items) $("products").append(productItem(p));
    cursor = page.next_cursor;
    $("more").hidden = !cursor;
    const n = $("products").children.length;
    $("status").textContent = n === 0 ? "no products" : n + " products";
    $("status").dataset.loaded = "true";
    applyFind();
  } catch (e) {
    $("status").textContent = e.message;
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const given = new URLSearchParams(location.search);
  $("category").value = given.get("category") || "";
  $("vendor").value = given.get("vendor") || "";
  $("find").value = given.get("q") || "";
  $("filters").addEventListener("submit", (ev) => { ev.preventDefault(); load(false); });
  $("find").addEventListener("input", applyFind);
  $("more").addEventListener("click", () => load(true));
  load(false);
});
