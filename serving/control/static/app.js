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
// lines: [{values, color, width, dash}], each value a number or null (a gap)
function chart(kind, lines, opts = {}) {
  const W = 600, H = 130, L = 52, R = opts.right ? 46 : 8, T = 6, B = 16;
  const svg = el("svg:svg", { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: "none", class: "chart-" + kind });
  const all = lines.flatMap((l) => l.values.filter((v) => v !== null && Number.isFinite(v)));
  if (opts.zero) all.push(0);
  (opts.extra || []).forEach((v) => all.push(v));
  const n = Math.max(...lines.map((l) => l.values.length), 2);
  let lo = Math.min(...all), hi = Math.max(...all);
  if (!all.length) { lo = 0; hi = 1; }
  if (hi === lo) { hi += 1; lo -= 1; }
  const pad = (hi - lo) * 0.06; lo -= pad; hi += pad;
  const x = (i) => L + (i * (W - L - R)) / (n - 1);
  const y = (v) => T + ((hi - v) * (H - T - B)) / (hi - lo);
  for (let k = 0; k <= 3; k++) {
    const v = lo + ((hi - lo) * k) / 3;
    svg.append(el("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "grid" }));
    svg.append(el("svg:text", { x: L - 4, y: y(v) + 3, "text-anchor": "end", text: fmt(v, opts.digits ?? 2) }));
  }
  if (opts.zero && lo < 0 && hi > 0) svg.append(el("svg:line", { x1: L, x2: W - R, y1: y(0), y2: y(0), class: "zero" }));
  (opts.extra || []).forEach((v) => svg.append(el("svg:line", { x1: L, x2: W - R, y1: y(v), y2: y(v), class: "zero" })));
  let points = 0;
  for (const l of lines) {
    let d = "", pen = false;
    l.values.forEach((v, i) => {
      if (v === null || !Number.isFinite(v)) { pen = false; return; }
      const xi = x(i).toFixed(1), yi = y(v).toFixed(1);
      if (l.step && pen) d += `H${xi}V${yi}`; else d += `${pen ? "L" : "M"}${xi},${yi}`;
      pen = true; points++;
    });
    if (l.fill && d) {
      const base = y(Math.max(lo, Math.min(hi, 0))).toFixed(1);
      svg.append(el("svg:path", { d: `${d}V${base}H${x(0)}Z`, fill: l.fill, stroke: "none" }));
    }
    svg.append(el("svg:path", { d, fill: "none", stroke: l.color, "stroke-width": l.width || 1.4, "stroke-dasharray": l.dash || null, class: l.name }));
  }
  if (opts.right) {  // a second scale on the right: the drawdown, 0 at the top
    const dd = opts.right.values, top = Math.max(...dd.filter((v) => v !== null), 1e-9);
    const yr = (v) => T + (v * (H - T - B)) / top;
    let d = `M${x(0)},${yr(0)}`;
    dd.forEach((v, i) => { d += `L${x(i).toFixed(1)},${yr(v || 0).toFixed(1)}`; });
    d += `L${x(dd.length - 1)},${yr(0)}Z`;
    svg.append(el("svg:path", { d, fill: "rgba(255,77,79,.22)", stroke: "rgba(255,77,79,.7)", "stroke-width": 1, class: "drawdown" }));
    svg.append(el("svg:text", { x: W - R + 4, y: T + 8, text: "dd 0" }));
    svg.append(el("svg:text", { x: W - R + 4, y: H - B, text: pct(-top, 2) }));
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
  const rows = [];
  const dist = (p) => (p && st.mark ? signed(((p - st.mark) / st.mark) * 1e4, 1) + " bps" : "");
  rows.push(el("tr", { class: "ask" }, el("td", { text: "ask (ours)" }), el("td", { class: "num", text: fmt(st.ask) }), el("td", { class: "num", text: st.ask_lots ? st.ask_lots + " lots" : "–" }), el("td", { class: "num", text: dist(st.ask) })));
  rows.push(el("tr", { class: "mid" }, el("td", { text: "last" }), el("td", { class: "num", text: fmt(st.mark) }), el("td", { class: "num", text: "" }), el("td", { class: "num", text: st.spread_ticks !== null ? st.spread_ticks + " ticks" : "" })));
  rows.push(el("tr", { class: "bid" }, el("td", { text: "bid (ours)" }), el("td", { class: "num", text: fmt(st.bid) }), el("td", { class: "num", text: st.bid_lots ? st.bid_lots + " lots" : "–" }), el("td", { class: "num", text: dist(st.bid) })));
  const orders = st.orders.map((o) => el("tr", { class: o.side === "buy" ? "bid" : "ask" },
    el("td", { text: o.side + " " + o.status }), el("td", { class: "num", text: fmt(o.price) }),
    el("td", { class: "num", text: `${o.lots - o.filled_lots}/${o.lots}` }), el("td", { class: "num muted", text: "tick " + o.tick })));
  return el("div", { class: "chart book" },
    el("div", { class: "title" }, el("i", { text: "book: our orders around the last close" })),
    el("table", { class: "ladder" }, el("tbody", {}, ...rows)),
    el("div", { class: "title" }, el("i", { text: `working orders (${st.orders.length})` })),
    el("table", { class: "ladder orders" }, el("tbody", {}, ...orders)));
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
  const price = chart("price", [
    { values: se.mid, color: "#c9d3df", width: 1.2, name: "mid" },
    { values: se.bid, color: "#2ecc71", width: 1.2, step: true, name: "bid" },
    { values: se.ask, color: "#ff5c5c", width: 1.2, step: true, name: "ask" }], { times: se.time });
  const inv = chart("inventory", [{ values: se.inventory_lots, color: "#4aa3ff", fill: "rgba(74,163,255,.18)", step: true, name: "inventory" }],
    { zero: true, digits: 0, extra: [st.max_position_lots, -st.max_position_lots], times: se.time });
  const pnl = chart("pnl", [{ values: se.pnl, color: se.pnl.length && se.pnl[se.pnl.length - 1] < 0 ? "#ff5c5c" : "#26c281", width: 1.5, name: "pnl" }],
    { zero: true, right: { values: se.drawdown }, times: se.time });
  const versions = pf.by_version.map((v) => `${v.label} ${signed(v.pnl)} (${v.fills} fills)`).join(" · ") || "–";
  const stats = el("div", { class: "stats" },
    el("span", {}, "fill rate ", el("b", { text: pct(pf.fill_rate, 1) })),
    el("span", {}, "avg spread ", el("b", { text: pf.avg_spread_bps !== null ? fmt(pf.avg_spread_bps, 2) + " bps" : "–" })),
    el("span", {}, "turnover ", el("b", { text: pf.inventory_turnover !== null ? fmt(pf.inventory_turnover, 1) + "×" : "–" })),
    el("span", {}, "volume ", el("b", { text: fmt(pf.volume_quote, 0) })),
    el("span", {}, "fees ", el("b", { text: fmt(pf.fees, 2) })),
    el("span", {}, "max dd ", el("b", { text: pct(pf.max_drawdown, 3) })),
    el("span", {}, "by version ", el("b", { class: "versions", text: versions })));
  return el("article", { class: "panel card", id: "card-" + st.symbol, "data-symbol": st.symbol, "data-quoting": String(st.quoting), "data-risk": st.risk_status },
    head, startForm(st), el("div", { class: "riskmsg", text: st.risk_status !== "ACTIVE" ? st.risk_message || st.reasons.join(", ") : "" }),
    quote, figures,
    el("div", { class: "charts" },
      chartBox([el("i", { text: "mid" }), el("i", { style: "color:#2ecc71", text: "our bid" }), el("i", { style: "color:#ff5c5c", text: "our ask" })], price),
      ladder(st),
      chartBox([el("i", { text: "inventory, lots (dashed: the limit)" })], inv),
      chartBox([el("i", { text: "PnL" }), el("i", { style: "color:#ff5c5c", text: "drawdown (right)" })], pnl)),
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
    $("#clock").textContent = `tick ${ac.tick} / ${ac.ticks_total} · ${hhmm(ac.time)} UTC · ${ac.active.length}/${ac.symbols.length} quoting`;
    $("#killstate").textContent = ac.kill ? "KILL SWITCH ON" : "kill switch off";
    $("#killstate").className = "pill " + (ac.kill ? "on" : "off");
    const open = al.open.map((o) => `${o.symbol} ${o.status}: ${o.message || o.reasons.join(", ")}`);
    banner(ac.kill ? `Kill switch ON (${ac.kill_by}: ${ac.kill_reason})` : open.length ? open.join("  |  ") : "");
    $("#cards").replaceChildren(...per.map(([st, se, pf]) => card(st, se, pf)));
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
