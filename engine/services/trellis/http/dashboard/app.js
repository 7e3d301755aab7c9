// The Trellis dashboard: a page per hash route (#/workflows, #/workflows/ID,
// #/queues, #/workers, #/dead-letters, #/schedules, #/events) over the
// process's JSON API
// (docs/operations.md "HTTP"), kept live by the task event stream
// (/api/events). No framework and no build step: the process serves these
// files from its binary. Text from the API is only ever set as textContent.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const KINDS = ["submitted", "started", "retried", "succeeded", "failed", "dead_lettered", "revoked"];

// ---- small helpers ----------------------------------------------------------

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick" || k === "onchange" || k === "onsubmit") node[k] = v;
    else if (v !== undefined && v !== null && v !== false) node.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function svg(tag, attrs, ...children) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function time(ms) {
  if (ms === null || ms === undefined) return "–";
  return new Date(ms).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
}

function badge(state) { return el("span", { class: "state " + state, "data-state": state }, state); }

function json(v) { return JSON.stringify(v, null, 1); }

function notice(text, isError) {
  const box = document.getElementById("notice");
  box.textContent = text;
  box.className = "notice" + (isError ? " error" : "");
  box.hidden = false;
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

async function api(path, options) {
  const opts = Object.assign({ headers: {} }, options || {});
  if (opts.method === "POST") {
    opts.headers["Content-Type"] = "application/json";
    const token = sessionStorage.getItem("trellis-token");
    if (token) opts.headers["Authorization"] = "Bearer " + token;
  }
  const res = await fetch(path, opts);
  const body = await res.json().catch(() => null);
  if (!res.ok) {
    const e = body && body.error ? body.error : { type: "http_" + res.status, message: res.statusText };
    throw new Error(e.type + ": " + e.message);
  }
  return body;
}

function debounce(fn, ms) {
  let timer = null;
  return () => { clearTimeout(timer); timer = setTimeout(fn, ms); };
}

// ---- the event stream ----------------------------------------------------------

const listeners = new Set();
const recent = [];

function connectEvents() {
  const live = document.getElementById("live");
  const source = new EventSource("/api/events");
  source.onopen = () => { live.textContent = "live"; live.classList.add("on"); };
  source.onerror = () => { live.textContent = "offline"; live.classList.remove("on"); };
  const deliver = (msg) => {
    let e;
    try { e = JSON.parse(msg.data); } catch (_) { return; }
    recent.unshift(e);
    recent.length = Math.min(recent.length, 200);
    for (const f of listeners) f(e);
  };
  for (const k of KINDS) source.addEventListener(k, deliver);
  source.addEventListener("missed", () => { for (const f of listeners) f({ kind: "missed" }); });
}

// ---- views -------------------------------------------------------------------

let current = null;  // {stop()} of the view on screen

function show(view, ...children) {
  const main = document.getElementById("view");
  main.replaceChildren(...children);
  main.dataset.view = view;
  for (const a of document.querySelectorAll("header nav a")) {
    a.classList.toggle("active", a.dataset.view === view.split("/")[0]);
  }
}

function failed(view, err) {
  show(view, el("h1", {}, "Cannot load"), el("p", { class: "error-text" }, String(err.message || err)));
}

function workflowsView(params) {
  const state = params.get("state") || "";
  let cursor = null;
  const rows = el("tbody", {});
  const more = el("button", { hidden: true }, "Older");
  const filter = el("select", { id: "state-filter" },
    ["", "STARTED", "SUCCESS", "FAILURE", "REVOKED"].map((s) =>
      el("option", { value: s, selected: s === state }, s || "every state")));
  filter.onchange = () => { location.hash = "#/workflows" + (filter.value ? "?state=" + filter.value : ""); };
  const search = el("input", { id: "search", placeholder: "workflow id", size: 34 });
  const form = el("form", { class: "toolbar" }, filter, search, el("button", { type: "submit" }, "Open"));
  form.onsubmit = (ev) => {
    ev.preventDefault();
    const id = search.value.trim();
    if (id) location.hash = "#/workflows/" + encodeURIComponent(id);
  };
  const table = el("table", { id: "workflows" },
    el("thead", {}, el("tr", {}, el("th", {}, "Workflow"), el("th", {}, "State"), el("th", {}, "Created"),
      el("th", {}, "Finished"), el("th", {}, "Key"))), rows);
  show("workflows", el("h1", {}, "Workflows"), form, table, el("p", {}, more));

  async function load(append) {
    const q = new URLSearchParams({ limit: "50" });
    if (state) q.set("state", state);
    if (append && cursor) q.set("cursor", cursor);
    try {
      const page = await api("/api/workflows?" + q);
      if (!append) rows.replaceChildren();
      for (const w of page.workflows) {
        rows.append(el("tr", { "data-id": w.id },
          el("td", {}, el("a", { href: "#/workflows/" + encodeURIComponent(w.id), class: "mono" }, w.id)),
          el("td", {}, badge(w.state)), el("td", {}, time(w.created_at)), el("td", {}, time(w.finished_at)),
          el("td", { class: "mono" }, w.key === null ? "–" : w.key)));
      }
      if (!rows.children.length) rows.append(el("tr", {}, el("td", { colspan: 5, class: "muted" }, "No workflows.")));
      cursor = page.next;
      more.hidden = !cursor;
    } catch (err) { notice(err.message, true); }
  }
  more.onclick = () => load(true);
  load(false);
  // Workflow-level events change the first page; an older page stays put.
  const reload = debounce(() => { if (!cursor || rows.children.length <= 50) load(false); }, 500);
  const onEvent = (e) => { if (e.kind === "missed" || e.node === null) reload(); };
  listeners.add(onEvent);
  return { stop() { listeners.delete(onEvent); } };
}

// Lays out the canvas: a chain left to right, a group top to bottom, a chord
// its header then its body; each composite in a dashed frame.
const BOX = { w: 168, h: 46 }, GAP = 36, STACK = 10, PAD = 12, LABEL = 14;

// The nodes drawn inside a composite: its children, or the canvas it was
// replaced by (a map over its input, once expanded).
function inner(doc, n) {
  const kids = n.children.filter((c) => doc.byId.has(c));
  if (!kids.length && n.replacement !== null && doc.byId.has(n.replacement)) kids.push(n.replacement);
  return kids;
}

// The callbacks hung on a node (links and link_errors), drawn to its right.
function callbacksOf(doc, n) {
  return [...(n.links || []), ...(n.link_errors || [])].filter((c) => doc.byId.has(c));
}

function measure(doc, id) {
  const n = doc.byId.get(id);
  if (!n) return { w: 0, h: 0 };
  const cbs = callbacksOf(doc, n);
  if (cbs.length && !n.withCallbacks) {
    // Measured as itself, then as itself beside its stacked callbacks.
    n.withCallbacks = true;
    const own = measure(doc, id);
    const sizes = cbs.map((c) => measure(doc, c));
    const ch = sizes.reduce((s, k) => s + k.h, 0) + STACK * (sizes.length - 1);
    n.own = own;
    n.withCallbacks = false;
    return (n.size = { w: own.w + GAP + Math.max(...sizes.map((k) => k.w)), h: Math.max(own.h, ch), callbacks: true });
  }
  if (n.kind === "task") {
    if (n.replacement === null || !doc.byId.has(n.replacement)) return (n.size = { w: BOX.w, h: BOX.h });
    // A step that replaced itself: its box, then the canvas it became.
    const r = measure(doc, n.replacement);
    return (n.size = { w: BOX.w + GAP + r.w + 2 * PAD, h: Math.max(BOX.h, r.h) + 2 * PAD + LABEL, framed: true });
  }
  const kids = inner(doc, n).map((c) => measure(doc, c));
  let w, h;
  if (!kids.length) { w = 110; h = 34; }
  else if (n.kind === "chain") {
    w = kids.reduce((s, k) => s + k.w, 0) + GAP * (kids.length - 1);
    h = Math.max(...kids.map((k) => k.h));
  } else if (n.kind === "group") {
    w = Math.max(...kids.map((k) => k.w));
    h = kids.reduce((s, k) => s + k.h, 0) + STACK * (kids.length - 1);
  } else {  // chord: header members stacked, the body (last) to the right
    const header = kids.slice(0, -1), body = kids[kids.length - 1];
    const hw = header.length ? Math.max(...header.map((k) => k.w)) : 0;
    const hh = header.reduce((s, k) => s + k.h, 0) + STACK * Math.max(0, header.length - 1);
    w = hw + (header.length ? GAP : 0) + body.w;
    h = Math.max(hh, body.h);
  }
  return (n.size = { w: w + 2 * PAD, h: h + 2 * PAD + LABEL });
}

function place(doc, id, x, y, out, onPick, bare) {
  const n = doc.byId.get(id);
  if (n.size.callbacks && !n.placingOwn) {
    const full = n.size;
    n.size = n.own;
    n.placingOwn = true;
    const main = place(doc, id, x, y + (full.h - n.own.h) / 2, out, onPick, bare);
    n.placingOwn = false;
    n.size = full;
    let cy = y;
    for (const c of callbacksOf(doc, n)) {
      const k = doc.byId.get(c);
      const cb = place(doc, c, x + n.own.w + GAP, cy, out, onPick);
      out.append(svg("path", { class: "edge callback " + (k.callback || "link"),
        d: `M${main.outX},${main.midY} C${main.outX + GAP / 2},${main.midY} ${cb.inX - GAP / 2},${cb.midY} ${cb.inX - 2},${cb.midY}` }));
      out.append(svg("text", { class: "frame-label", x: main.outX + 4, y: cb.midY - 4 }, k.callback === "link_error" ? "on error" : "then"));
      cy += k.size.h + STACK;
    }
    return { inX: x, outX: main.outX, midY: main.midY };
  }
  const { w, h } = bare ? BOX : n.size;
  if (n.kind === "task" && n.size.framed && !bare) {
    out.append(svg("rect", { class: "frame", x, y, width: w, height: h, rx: 6 }));
    out.append(svg("text", { class: "frame-label", x: x + 6, y: y + 12 }, "replaced by a canvas"));
    const r = doc.byId.get(n.replacement).size;
    const inY = y + PAD + LABEL, span = h - 2 * PAD - LABEL;
    const box = place(doc, id, x + PAD, inY + (span - BOX.h) / 2, out, onPick, true);
    const sub = place(doc, n.replacement, x + PAD + BOX.w + GAP, inY + (span - r.h) / 2, out, onPick);
    out.append(svg("path", { class: "edge", d: `M${box.outX},${box.midY} L${sub.inX - 2},${sub.midY}` }));
    return { inX: x, outX: x + w, midY: y + h / 2 };
  }
  if (n.kind === "task") {
    const g = svg("g", { class: "box " + n.state, "data-node": n.id, "data-state": n.state, "data-task": n.task });
    g.append(svg("rect", { x, y, width: w, height: h }));
    g.append(svg("text", { x: x + 8, y: y + 18 }, (n.task || "?") + "  #" + n.id));
    let line = n.state + (n.attempt > 1 ? " · attempt " + n.attempt : "");
    if (n.progress && n.progress.done !== undefined) {
      line += " · " + n.progress.done + (n.progress.total !== null ? "/" + n.progress.total : "");
    }
    g.append(svg("text", { x: x + 8, y: y + 36 }, line));
    g.addEventListener("click", () => onPick(n, g));
    out.append(g);
    return { inX: x, outX: x + w, midY: y + h / 2 };
  }
  out.append(svg("rect", { class: "frame", x, y, width: w, height: h, rx: 6, "data-node": n.id, "data-state": n.state }));
  out.append(svg("text", { class: "frame-label", x: x + 6, y: y + 12 }, n.kind + " #" + n.id + " · " + n.state));
  const ix = x + PAD, iy = y + PAD + LABEL;
  const kids = inner(doc, n);
  const edge = (x1, y1, x2, y2) => out.append(svg("path", { class: "edge",
    d: `M${x1},${y1} C${x1 + GAP / 2},${y1} ${x2 - GAP / 2},${y2} ${x2 - 2},${y2}` }));
  if (!kids.length) {
    out.append(svg("text", { class: "frame-label", x: ix, y: iy + 12 }, "empty"));
  } else if (n.kind === "chain") {
    let cx = ix, prev = null;
    for (const c of kids) {
      const k = doc.byId.get(c).size;
      const p = place(doc, c, cx, iy + (h - 2 * PAD - LABEL - k.h) / 2, out, onPick);
      if (prev) edge(prev.outX, prev.midY, p.inX, p.midY);
      prev = p; cx += k.w + GAP;
    }
  } else if (n.kind === "group") {
    let cy = iy;
    for (const c of kids) { place(doc, c, ix, cy, out, onPick); cy += doc.byId.get(c).size.h + STACK; }
  } else {
    const header = kids.slice(0, -1), bodyId = kids[kids.length - 1];
    const hw = header.length ? Math.max(...header.map((c) => doc.byId.get(c).size.w)) : 0;
    let cy = iy; const ends = [];
    for (const c of header) { ends.push(place(doc, c, ix, cy, out, onPick)); cy += doc.byId.get(c).size.h + STACK; }
    const b = doc.byId.get(bodyId).size;
    const bx = ix + hw + (header.length ? GAP : 0);
    const body = place(doc, bodyId, bx, iy + (h - 2 * PAD - LABEL - b.h) / 2, out, onPick);
    for (const e of ends) edge(e.outX, e.midY, body.inX, body.midY);
  }
  return { inX: x, outX: x + w, midY: y + h / 2 };
}

function drawGraph(doc, onPick) {
  doc.byId = new Map(doc.nodes.map((n) => [n.id, n]));
  if (!doc.byId.has(0)) return el("p", { class: "muted" }, "No nodes.");
  const size = measure(doc, 0);
  const root = svg("svg", { width: size.w + 4, height: size.h + 4, id: "graph", role: "img" });
  root.append(svg("defs", {}, svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 9, refY: 5,
    markerWidth: 7, markerHeight: 7, orient: "auto" }, svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa3ab" }))));
  place(doc, 0, 2, 2, root, onPick);
  return root;
}

function workflowView(id) {
  let selected = null;
  const holder = el("div", {});
  show("workflows/detail", el("p", {}, el("a", { href: "#/workflows" }, "← Workflows")), holder);
  async function revoke(node) {
    if (!confirm(node === undefined ? "Revoke workflow " + id + "?" : "Revoke node " + node + "?")) return;
    try {
      await api("/api/workflows/" + encodeURIComponent(id) + "/revoke",
        { method: "POST", body: JSON.stringify(node === undefined ? {} : { node }) });
      notice("Revoked."); load();
    } catch (err) { notice(err.message, true); }
  }
  function details(n) {
    if (!n) return el("div", { class: "details muted", id: "details" }, "Select a node to see its details.");
    return el("div", { class: "details", id: "details", "data-node": n.id },
      el("h2", {}, (n.task || n.kind) + " #" + n.id, " ", badge(n.state)),
      el("div", {}, "Attempts: " + n.attempt + (n.queue ? " · queue " + n.queue : "") +
        (n.updated_at ? " · last change " + time(n.updated_at) : "")),
      n.progress ? el("div", {}, "Progress: ", el("code", {}, json(n.progress))) : null,
      n.custom_state ? el("div", {}, "Custom state: ", el("code", {}, n.custom_state)) : null,
      n.error ? el("pre", { class: "error-text" }, json(n.error)) : null,
      ["SUCCESS", "FAILURE", "REVOKED"].includes(n.state) ? null :
        el("button", { class: "danger", onclick: () => revoke(n.id) }, "Revoke this node"));
  }
  async function load() {
    let doc;
    try { doc = await api("/api/workflows/" + encodeURIComponent(id)); } catch (err) { return failed("workflows/detail", err); }
    const finished = ["SUCCESS", "FAILURE", "REVOKED"].includes(doc.state);
    // Each cell its own element: adjacent text would merge into one grid cell.
    const cell = (v) => (v instanceof Node ? v : el("span", {}, v));
    const summary = el("div", { class: "summary", id: "summary", "data-state": doc.state },
      ["Workflow", el("span", { class: "mono" }, doc.id), "State", badge(doc.state),
        "Created", time(doc.created_at), "Finished", time(doc.finished_at),
        "Nodes", String(doc.node_count) + (doc.truncated ? " (the first " + doc.nodes.length + " drawn)" : ""),
        "Result", el("pre", {}, doc.result === null ? "–" : json(doc.result)),
        "Error", el("pre", {}, doc.error === null ? "–" : json(doc.error))].map(cell));
    const graph = el("div", { class: "graph" }, drawGraph(doc, (n, g) => {
      selected = n.id;
      for (const s of document.querySelectorAll(".graph .selected")) s.classList.remove("selected");
      g.classList.add("selected");
      document.getElementById("details").replaceWith(details(n));
    }));
    const keep = selected !== null ? doc.byId.get(selected) : null;
    holder.replaceChildren(...[el("h1", {}, "Workflow"), summary,
      finished ? null : el("p", {}, el("button", { class: "danger", id: "revoke", onclick: () => revoke() }, "Revoke workflow")),
      el("h2", {}, "Graph"), graph, details(keep)].filter(Boolean));
  }
  load();
  const reload = debounce(load, 200);
  const onEvent = (e) => { if (e.kind === "missed" || e.workflow === id) reload(); };
  listeners.add(onEvent);
  return { stop() { listeners.delete(onEvent); } };
}

function tableView(view, title, columns, fetchRows, rowOf, everyMs) {
  const body = el("tbody", {});
  show(view, el("h1", {}, title), el("table", { id: view },
    el("thead", {}, el("tr", {}, columns.map((c) => el("th", { class: c.endsWith("/s") || c === "Depth" ? "num" : null }, c)))), body));
  async function load() {
    try {
      const rows = await fetchRows();
      body.replaceChildren(...rows.map(rowOf));
      if (!rows.length) body.append(el("tr", {}, el("td", { colspan: columns.length, class: "muted" }, "None.")));
    } catch (err) { notice(err.message, true); }
  }
  load();
  const timer = everyMs ? setInterval(load, everyMs) : null;
  return { load, stop() { clearInterval(timer); } };
}

function queuesView() {
  let last = null;
  return tableView("queues", "Queues",
    ["Queue", "Depth", "Published", "Succeeded", "Failed", "Retried", "Dead letters", "Published/s", "Succeeded/s"],
    async () => {
      const rows = await api("/api/queues");
      const now = Date.now(), prev = last;
      last = { at: now, rows: new Map(rows.map((r) => [r.queue, r])) };
      for (const r of rows) {
        const p = prev && prev.rows.get(r.queue), dt = prev ? (now - prev.at) / 1000 : 0;
        r.publishRate = p && dt > 0 ? ((r.published - p.published) / dt).toFixed(1) : "–";
        r.successRate = p && dt > 0 ? ((r.succeeded - p.succeeded) / dt).toFixed(1) : "–";
      }
      return rows;
    },
    (r) => el("tr", { "data-queue": r.queue }, el("td", { class: "mono" }, r.queue),
      [r.depth, r.published, r.succeeded, r.failed, r.retried, r.dead_letters, r.publishRate, r.successRate]
        .map((v) => el("td", { class: "num" }, v))),
    2000);
}

function workersView() {
  return tableView("workers", "Workers and dispatchers",
    ["Name", "Role", "Queues", "Registered tasks", "Concurrency", "Running now"],
    () => api("/api/workers"),
    (w) => el("tr", { "data-name": w.name, "data-role": w.role },
      el("td", { class: "mono" }, w.name), el("td", {}, w.role),
      el("td", {}, w.all_queues ? "every queue" : (w.queues || []).join(", ") || (w.partition !== undefined ? "partition " + w.partition : "–")),
      el("td", {}, (w.tasks || []).join(", ") || "–"),
      el("td", { class: "num" }, w.concurrency === undefined ? "–" : w.concurrency),
      el("td", {}, (w.active || []).map((a) => el("div", { class: "mono" },
        a.task + " #" + a.node + " of ", el("a", { href: "#/workflows/" + encodeURIComponent(a.workflow_id) }, a.workflow_id),
        " · " + a.running_ms + " ms")))),
    3000);
}

function deadLettersView() {
  const view = tableView("dead-letters", "Dead letters",
    ["Id", "Partition", "Reason", "Error", "Workflow", "Node", "Task", "Attempts", "Created", ""],
    () => api("/api/dead-letters"),
    (d) => el("tr", { "data-letter": d.id, "data-replayed": String(d.replayed) },
      el("td", { class: "num" }, d.id), el("td", { class: "num" }, d.partition),
      el("td", {}, d.reason), el("td", {}, el("pre", {}, d.error)),
      el("td", {}, d.workflow_id ? el("a", { class: "mono", href: "#/workflows/" + encodeURIComponent(d.workflow_id) }, d.workflow_id) : "–"),
      el("td", { class: "num" }, d.node < 0 ? "–" : d.node), el("td", {}, d.task || "–"),
      el("td", { class: "num" }, d.attempts), el("td", {}, time(d.created_at)),
      el("td", {}, d.replayed ? "replayed" : el("button", { class: "replay", onclick: async () => {
        try {
          const r = await api("/api/dead-letters/" + d.id + "/replay", { method: "POST", body: JSON.stringify({ partition: d.partition }) });
          notice("Replayed: workflow " + r.id + " runs again."); view.load();
        } catch (err) { notice(err.message, true); }
      } }, "Replay"))),
    0);
  // A replayed node that fails again is a new letter: follow the stream.
  const reload = debounce(view.load, 300);
  const onEvent = (e) => { if (e.kind === "dead_lettered" || e.kind === "missed") reload(); };
  listeners.add(onEvent);
  return { stop() { view.stop(); listeners.delete(onEvent); } };
}

function schedulesView() {
  return tableView("schedules", "Schedules",
    ["Name", "When", "Overlap", "Catch-up", "State", "Last tick", "Next tick", "Last workflow"],
    () => api("/api/schedules"),
    (s) => el("tr", { "data-name": s.name, "data-paused": String(s.paused) },
      el("td", { class: "mono" }, s.name),
      el("td", { class: "mono" }, s.every ? "every " + s.every : s.cron + " (" + s.zone + ")"),
      el("td", {}, s.overlap), el("td", {}, s.catchup),
      el("td", {}, s.paused ? "paused" : "active"),
      el("td", {}, time(s.last_tick)), el("td", {}, time(s.next_tick)),
      el("td", {}, s.last_workflow ? el("a", { class: "mono", href: "#/workflows/" + encodeURIComponent(s.last_workflow) },
        s.last_workflow) : "–")),
    5000);
}

function eventsView() {
  const list = el("ul", { class: "events", id: "events" });
  const line = (e) => el("li", { "data-kind": e.kind },
    e.kind === "missed" ? "… events missed (the stream fell behind)" :
      time(e.at) + "  " + e.kind.padEnd(13) + " " + e.workflow + (e.node === null ? "" : "  #" + e.node + " " + e.task) +
      (e.error ? "  " + e.error.type + ": " + e.error.message : ""));
  list.append(...recent.map(line));
  show("events", el("h1", {}, "Task events"), el("p", { class: "muted" }, "Newest first; the stream shows what happens while this page is open."), list);
  const onEvent = (e) => { list.prepend(line(e)); while (list.children.length > 200) list.lastChild.remove(); };
  listeners.add(onEvent);
  return { stop() { listeners.delete(onEvent); } };
}

function route() {
  if (current) current.stop();
  const hash = location.hash.replace(/^#\/?/, "") || "workflows";
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  const parts = path.split("/");
  if (parts[0] === "workflows" && parts[1]) current = workflowView(decodeURIComponent(parts[1]));
  else if (parts[0] === "queues") current = queuesView();
  else if (parts[0] === "workers") current = workersView();
  else if (parts[0] === "dead-letters") current = deadLettersView();
  else if (parts[0] === "schedules") current = schedulesView();
  else if (parts[0] === "events") current = eventsView();
  else current = workflowsView(params);
}

window.addEventListener("DOMContentLoaded", () => {
  const token = document.getElementById("token");
  token.value = sessionStorage.getItem("trellis-token") || "";
  token.onchange = () => sessionStorage.setItem("trellis-token", token.value);
  connectEvents();
  window.addEventListener("hashchange", route);
  route();
});
