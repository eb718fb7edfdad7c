// mmops dashboard: polls the control API, draws small SVG charts by hand (no library, no CDN).
"use strict";

const POLL_MS = 2000;
const KEY = "mmops.token";
const $ = (sel, root = document) => root.querySelector(sel);
let role = null;
let busy = false;
const forms = {}; // symbol -> start form open

function el(tag, attrs = {}, ...children) {
  const node = tag.startsWith("svg:")
    ? document.createElementNS("http://www.w3.org/2000/svg", tag.slice(4))
    : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (v !== null && v !== undefined && v !== false) node.setAttribute(k, v);
  }
  for (const c of children) if (c !== null && c !== undefined) node.append(c);
  return node;
}

const fmt = (v, d = 2) => (v === null || v === undefined ? "–" : Number(v).toLocaleString("en-US", { minimumFractionDigits: d, maximumFractionDigits: d }));
const signed = (v, d = 2) => (v === null || v === undefined ? "–" : (v > 0 ? "+" : "") + fmt(v, d));
const pct = (v, d = 2) => (v === null || v === undefined ? "–" : fmt(100 * v, d) + "%");
const tone = (v) => (v > 0 ? "pos" : v < 0 ? "neg" : "");
const hhmm = (iso) => (iso ? iso.slice(0, 16).replace("T", " ") : "");

async function api(path, body) {
  const token = sessionStorage.getItem(KEY);
  const init = { headers: { Authorization: "Bearer " + token } };
  if (body !== undefined) {
    init.method = "POST";
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const r = await fetch(path, init);
  let doc = null;
  try { doc = await r.json(); } catch (_e) { doc = { detail: r.statusText }; }
  if (r.status === 401) { signOut(doc.detail); throw new Error(doc.detail); }
  if (!r.ok) throw new Error(`${r.status}: ${doc.detail}`);
  return doc;
}

function banner(text) {
  const b = $("#banner");
  b.hidden = !text;
  b.textContent = text || "";
}

// ---- charts -----------------------------------------------------------------------------------
// Hand-written SVG: a few paths per chart, redrawn each poll; the viewBox is about the size the
// chart is shown at, so the labels keep their size.
function niceTicks(lo, hi, count) {
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 2.5, 5, 10].map((k) => k * mag).find((s) => s >= raw) || raw;
  const digits = Math.max(0, Math.min(6, -Math.floor(Math.log10(step) + 1e-9) + (step / mag === 2.5 ? 1 : 0)));
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + 1e-9; v += step) out.push([Math.abs(v) < step / 1e6 ? 0 : v, digits]);
  return out;
}

function scale(values, opts = {}) {
  const all = values.filter((v) => v !== null && Number.isFinite(v));
  if (opts.zero) all.push(0);
  (opts.extra || []).forEach((v) => all.push(v));
  let lo = all.length ? Math.min(...all) : 0, hi = all.length ? Math.max(...all) : 1;
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.08;
  return [lo - pad, hi + pad];
}

function pathOf(values, x, y, step) {
  let d = "", pen = false, points = 0;
  values.forEach((v, i) => {
    if (v === null || !Number.isFinite(v)) { pen = false; return; }
    const xi = x(i).toFixed(1), yi = y(v).toFixed(1);
    d += step && pen ? `H${xi}V${yi}` : `${pen ? "L" : "M"}${xi},${yi}`;
    pen = true; points++;
  });
  return [d, points];
}

// lines: [{values, color, width, step, fill, name}] (a null value is a gap); opts.under: an
// underwater panel below (the drawdown, 0 at its top)
function chart(kind, W, lines, opts = {}) {
  const H = opts.under ? 170 : 140, L = 58, R = 8, T = 8, B = 16;
  const bottom = opts.under ? H - B - 46 : H - B;
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, class: "chart-" + kind });
  const n = Math.max(...lines.map((l) => l.values.length), 2);
  const [lo, hi] = scale(lines.flatMap((l) => l.values), opts);
  const x = (i) => L + (i * (W - L - R)) / (n - 1);
  const y = (v) => T + ((hi - v) * (bottom - T)) / (hi - lo);
  for (const [v, digits] of niceTicks(lo, hi, 3)) {
    svg.append(el("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: v === 0 && opts.zero ? "zero" : "grid" }));
    svg.append(el("svg:text", { x: L - 5, y: y(v) + 3, "text-anchor": "end", text: fmt(v, digits) }));
  }
  (opts.extra || []).forEach((v) => svg.append(el("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "limit" })));
  let points = 0;
  for (const l of lines) {
    const [d, k] = pathOf(l.values, x, y, l.step);
    points = Math.max(points, k);
    if (l.fill && d) svg.append(el("svg:path", { d: `${d}V${y(Math.max(lo, Math.min(hi, 0))).toFixed(1)}H${x(0)}Z`, fill: l.fill, stroke: "none" }));
    svg.append(el("svg:path", { d, fill: "none", stroke: l.color, "stroke-width": l.width || 1.4, class: l.name }));
  }
  if (opts.under) {
    const dd = opts.under.map((v) => v || 0), top = Math.max(...dd, 1e-12), y0 = bottom + 10, y1 = H - B;
    const yd = (v) => y0 + (v * (y1 - y0)) / top;
    const [d] = pathOf(dd, x, yd, false);
    svg.append(el("svg:line", { x1: L, x2: W - R, y1: y0, y2: y0, class: "grid" }));
    svg.append(el("svg:path", { d: `${d}V${y0}H${x(0)}Z`, fill: "rgba(255,77,79,.28)", stroke: "#ff5c5c", "stroke-width": 1, class: "drawdown" }));
    svg.append(el("svg:text", { x: L - 5, y: y0 + 4, "text-anchor": "end", text: "dd 0" }));
    svg.append(el("svg:text", { x: L - 5, y: y1, "text-anchor": "end", text: pct(-top, 3) }));
  }
  if (opts.times && opts.times.length) {
    svg.append(el("svg:text", { x: L, y: H - 3, text: hhmm(opts.times[0]) }));
    svg.append(el("svg:text", { x: W - R, y: H - 3, "text-anchor": "end", text: hhmm(opts.times[opts.times.length - 1]) }));
  }
  svg.setAttribute("data-points", points);
  return svg;
}

function chartBox(title, svg) {
  return el("div", { class: "chart" }, el("div", { class: "title", text: "" }, ...title), svg);
}

// ---- one symbol -------------------------------------------------------------------------------
function ladder(st) {
  const dist = (p) => (p && st.mark ? signed(((p - st.mark) / st.mark) * 1e4, 1) + " bps" : "");
  const row = (cls, name, price, lots, note) => el("tr", { class: cls }, el("td", { text: name }),
    el("td", { class: "num", text: fmt(price) }), el("td", { class: "num", text: lots }), el("td", { class: "num", text: note }));
  const rows = [
    row("ask", "ask", st.ask, st.ask_lots ? `${st.ask_lots}` : "–", dist(st.ask)),
    row("mid", "last", st.mark, "", st.spread_ticks !== null ? `${st.spread_ticks} t` : ""),
    row("bid", "bid", st.bid, st.bid_lots ? `${st.bid_lots}` : "–", dist(st.bid)),
  ];
  const orders = st.orders.map((o) => row(o.side === "buy" ? "bid" : "ask",
    o.side + (["intent", "open"].includes(o.status) ? "" : " " + o.status), o.price, `${o.lots - o.filled_lots}/${o.lots}`, "tick " + o.tick));
  return el("div", { class: "chart book" },
    el("div", { class: "title" }, el("i", { text: "book: our quotes around the last close" })),
    el("table", { class: "ladder" }, el("tbody", {}, ...rows)),
    el("div", { class: "title" }, el("i", { text: `working orders (${st.orders.length})` })),
    el("table", { class: "ladder orders" }, el("tbody", {}, ...(orders.length ? orders : [el("tr", {}, el("td", { class: "muted", text: "none" }))]))));
}

function controls(st) {
  const op = role === "operator";
  const stop = el("button", { class: "stop", disabled: !op || !st.quoting, title: "cancel its orders, keep its position", text: "Stop",
    onclick: () => act("/maker/stop", { symbol: st.symbol, reason: "dashboard" }) });
  const start = el("button", { class: "start", disabled: !op, text: st.quoting ? "Limits…" : "Start…",
    onclick: () => { forms[st.symbol] = !forms[st.symbol]; refresh(); } });
  return [stop, start];
}

function startForm(st) {
  if (!forms[st.symbol]) return null;
  const lots = el("input", { type: "number", min: 1, step: 1, placeholder: "max lots", value: st.overridden.includes("max_position_lots") ? st.max_position_lots : null });
  const bps = el("input", { type: "number", min: 0, step: 0.1, placeholder: "min ½-spread bps", value: st.overridden.includes("min_half_spread_bps") ? st.min_half_spread_bps : null });
  const go = el("button", { text: "Start with these", onclick: () => {
    const body = { symbol: st.symbol, reason: "dashboard" };
    if (lots.value) body.limits = { max_position_lots: Number(lots.value) };
    if (bps.value) body.spread = { min_half_spread_bps: Number(bps.value) };
    forms[st.symbol] = false;
    act("/maker/start", body);
  } });
  return el("div", { class: "startform" }, el("span", { class: "muted", text: "own limits (empty: params.yaml)" }), lots, bps, go);
}

function card(st, se, pf) {
  const over = st.overridden.map((k) => (k === "max_position_lots" ? `max ${st.max_position_lots} lots` : `≥ ${st.min_half_spread_bps} bps ½-spread`));
  const head = el("div", { class: "head" },
    el("span", { class: "sym", text: st.symbol }),
    el("span", { class: "pill risk " + st.risk_status, text: st.risk_status, title: st.reasons.join(", ") }),
    el("span", { class: "pill state " + (st.quoting ? "quoting" : "stopped"), text: st.quoting ? "QUOTING" : "STOPPED" }),
    st.pending.length ? el("span", { class: "pill", text: "pending: " + st.pending.join(", ") }) : null,
    st.model_free ? el("span", { class: "pill REDUCING", text: "model-free", title: st.model_free }) : null,
    el("span", { class: "overrides", text: over.join(" · ") }),
    el("span", { class: "spacer" }), ...controls(st));
  const quote = el("div", { class: "quote" },
    el("div", { class: "bid" }, el("div", { class: "side", text: "BID" }), el("b", { class: "quote-bid", text: fmt(st.bid) }), el("span", { class: "muted", text: st.bid_lots ? ` × ${st.bid_lots}` : "" })),
    el("div", { class: "spread" }, el("div", { class: "side", text: "SPREAD" }), el("b", { class: "quote-spread", text: st.spread_bps !== null ? fmt(st.spread_bps, 2) + " bps" : "–" }), el("div", { class: "muted", text: st.spread_ticks !== null ? st.spread_ticks + " ticks" : "no two-sided quote" })),
    el("div", { class: "ask" }, el("div", { class: "side", text: "ASK" }), el("span", { class: "muted", text: st.ask_lots ? `${st.ask_lots} × ` : "" }), el("b", { class: "quote-ask", text: fmt(st.ask) })));
  const dd = se.drawdown.length ? se.drawdown[se.drawdown.length - 1] : 0;
  const figures = el("div", { class: "figures" },
    el("div", {}, "inventory", el("b", { class: "inventory", text: `${signed(st.inventory_lots, 0)} lots` })),
    el("div", {}, "position (base)", el("b", { text: fmt(st.inventory_base, 4) })),
    el("div", {}, "limit", el("b", { text: `±${st.max_position_lots} lots` })),
    el("div", {}, "PnL", el("b", { class: "pnl " + tone(st.pnl), text: signed(st.pnl) })),
    el("div", {}, "drawdown", el("b", { class: dd > 0 ? "neg" : "", text: pct(dd, 3) })),
    el("div", {}, "fills", el("b", { text: fmt(pf.fills, 0) })));
  const price = chart("price", 440, [
    { values: se.mid, color: "#c9d3df", width: 1.2, name: "mid" },
    { values: se.bid, color: "#2ecc71", width: 1.2, step: true, name: "bid" },
    { values: se.ask, color: "#ff5c5c", width: 1.2, step: true, name: "ask" }], { times: se.time });
  const inv = chart("inventory", 330, [{ values: se.inventory_lots, color: "#4aa3ff", fill: "rgba(74,163,255,.18)", step: true, name: "inventory" }],
    { zero: true, extra: [st.max_position_lots, -st.max_position_lots], times: se.time });
  const last = se.pnl.length ? se.pnl[se.pnl.length - 1] : 0;
  const pnl = chart("pnl", 330, [{ values: se.pnl, color: last < 0 ? "#ff5c5c" : "#26c281", width: 1.5, name: "pnl" }],
    { zero: true, under: se.drawdown, times: se.time });
  const versions = pf.by_version.map((v) => `${v.label} ${signed(v.pnl)} (${v.fills} fills)`).join(" · ") || "–";
  const stats = el("div", { class: "stats" },
    el("span", {}, "fill rate ", el("b", { text: pct(pf.fill_rate, 1) })),
    el("span", {}, "avg spread ", el("b", { text: pf.avg_spread_bps !== null ? fmt(pf.avg_spread_bps, 2) + " bps" : "–" })),
    el("span", {}, "turnover ", el("b", { text: pf.inventory_turnover !== null ? fmt(pf.inventory_turnover, 1) + "×" : "–" })),
    el("span", {}, "volume ", el("b", { text: fmt(pf.volume_quote, 0) })),
    el("span", {}, "fees ", el("b", { text: fmt(pf.fees, 2) })),
    el("span", {}, "max dd ", el("b", { text: pct(pf.max_drawdown, 3) })),
    el("span", {}, "by version ", el("b", { class: "versions", text: versions })));
  return el("article", { class: "panel card risk-" + st.risk_status + (st.quoting ? "" : " is-stopped"), id: "card-" + st.symbol, "data-symbol": st.symbol, "data-quoting": String(st.quoting), "data-risk": st.risk_status },
    head, startForm(st), el("div", { class: "riskmsg", text: st.risk_status !== "ACTIVE" ? st.risk_message || st.reasons.join(", ") : "" }),
    quote, figures,
    el("div", { class: "charts" },
      chartBox([el("i", { text: "mid" }), el("i", { style: "color:#2ecc71", text: "our bid" }), el("i", { style: "color:#ff5c5c", text: "our ask" })], price),
      ladder(st)),
    el("div", { class: "charts half" },
      chartBox([el("i", { text: "inventory, lots" }), el("i", { class: "muted", text: "dashed: ± the limit" })], inv),
      chartBox([el("i", { text: "PnL" }), el("i", { style: "color:#ff5c5c", text: "drawdown below" })], pnl)),
    stats);
}

// ---- the page -----------------------------------------------------------------------------------
async function act(path, body) {
  try {
    const ack = await api(path, body);
    banner("");
    $("#net").textContent = `${ack.action}${ack.symbol ? " " + ack.symbol : ""}: ${ack.detail}`;
  } catch (e) { banner(`${path}: ${e.message}`); }
  refresh();
}

function events(al) {
  const body = $("#events tbody");
  body.replaceChildren(...al.events.slice().reverse().map((e) => el("tr", { class: e.severity },
    el("td", { class: "num", text: hhmm(e.time) }), el("td", { class: "num", text: e.tick }), el("td", { text: e.symbol || "–" }),
    el("td", { text: e.kind }), el("td", { text: e.message }))));
  $("#events-count").textContent = `(${al.events.length} newest)`;
}

async function refresh() {
  if (busy || !sessionStorage.getItem(KEY)) return;
  busy = true;
  try {
    const ac = await api("/maker/active");
    const per = await Promise.all(ac.symbols.map((s) => Promise.all([
      api("/maker/status/" + s), api("/maker/series/" + s + "?points=480"), api("/maker/performance/" + s)])));
    const al = await api("/maker/risk/alerts?limit=60");
    $("#phase").textContent = ac.phase.toUpperCase();
    $("#phase").className = "pill " + ac.phase;
    $("#clock").textContent = `tick ${ac.tick}${ac.ticks_total === null ? " (live)" : " / " + ac.ticks_total} · ${hhmm(ac.time)} UTC · ${ac.active.length}/${ac.symbols.length} quoting`;
    $("#killstate").textContent = ac.kill ? "KILL SWITCH ON" : "kill switch off";
    $("#killstate").className = "pill " + (ac.kill ? "on" : "off");
    const open = al.open.map((o) => `${o.symbol} ${o.status}: ${o.message || o.reasons.join(", ")}`);
    banner(ac.kill ? `Kill switch ON (${ac.kill_by}: ${ac.kill_reason})` : open.length ? open.join("  |  ") : "");
    $("#cards").replaceChildren(...per.map(([st, se, pf]) => (forms[st.symbol] && $("#card-" + st.symbol)) || card(st, se, pf)));
    events(al);
    $("#net").textContent = "updated " + new Date().toLocaleTimeString();
  } catch (e) {
    $("#net").textContent = "API: " + e.message;
  } finally { busy = false; }
}

function signOut(why) {
  sessionStorage.removeItem(KEY);
  role = null;
  $("#login").hidden = false;
  $("#login-error").textContent = why || "";
}

async function signIn(token) {
  sessionStorage.setItem(KEY, token);
  try {
    role = (await api("/maker/whoami")).role;
  } catch (e) { $("#login-error").textContent = e.message; return; }
  $("#login").hidden = true;
  $("#role").textContent = "role: " + role;
  for (const id of ["#kill", "#resume"]) $(id).disabled = role !== "operator";
  refresh();
}

$("#login-form").addEventListener("submit", (ev) => { ev.preventDefault(); signIn($("#token").value.trim()); });
$("#signout").addEventListener("click", () => signOut(""));
$("#kill").addEventListener("click", () => {
  const reason = prompt("Kill switch: cancel every order (and flatten if risk.flatten_on_kill). Reason?", "manual kill (dashboard)");
  if (reason) act("/maker/kill", { reason });
});
$("#resume").addEventListener("click", () => {
  const reason = prompt("Clear the kill switch. Why is it safe to quote again?");
  if (reason) act("/maker/resume", { reason });
});
if (sessionStorage.getItem(KEY)) signIn(sessionStorage.getItem(KEY)); else signOut("");
setInterval(refresh, POLL_MS);
