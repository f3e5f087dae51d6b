// The Sluice console: a page over the public v1 API, polled once a second. It keeps
// nothing of its own but a short history of each queue's totals, to plot rates.
"use strict";

const POLL_MS = 1000;
const HISTORY = 120; // samples kept per queue: two minutes of rates

const state = { cluster: null, queues: [], topics: [], subs: {}, history: {}, tasks: {} };

function $(sel, root = document) { return root.querySelector(sel); }

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "on") for (const [ev, f] of Object.entries(v)) e.addEventListener(ev, f);
    else if (v !== undefined && v !== null) e.setAttribute(k, v);
  }
  for (const c of children.flat()) e.append(c instanceof Node ? c : String(c ?? ""));
  return e;
}

function status(text, error = false) {
  const s = $("#status");
  s.textContent = text;
  s.className = error ? "error" : "";
}

async function api(method, path, body) {
  const init = { method, headers: {} };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    init.headers["Content-Type"] = "application/json";
  }
  const res = await fetch("/v1" + path, init);
  const text = await res.text();
  const data = text ? JSON.parse(text) : {};
  if (!res.ok) throw new Error(data.error ? `${data.error.code}: ${data.error.message}` : res.statusText);
  return data;
}

const enc = encodeURIComponent;

// ---- polling ----

async function poll() {
  try {
    const [cluster, queues, topics] = await Promise.all([
      api("GET", "/cluster"),
      api("GET", "/queues?limit=1000"),
      api("GET", "/topics?limit=1000"),
    ]);
    state.cluster = cluster;
    $("#node").textContent = `node ${cluster.node}`;
    state.queues = queues.queues;
    state.topics = topics.topics;
    const subs = await Promise.all(state.topics.map(t =>
      api("GET", `/topics/${enc(t.name)}/subscriptions`).catch(() => ({ subscriptions: [] }))));
    state.topics.forEach((t, i) => { state.subs[t.name] = subs[i].subscriptions; });
    const now = Date.now();
    for (const q of state.queues) {
      const h = state.history[q.name] ||= [];
      h.push({ t: now, ...q.totals });
      if (h.length > HISTORY + 1) h.shift();
    }
    status(`updated ${new Date(now).toLocaleTimeString()}`);
  } catch (e) {
    status(`cannot read the broker: ${e.message}`, true);
  }
  render();
}

/// Per-second rates between consecutive samples: [{t, sent, received, acked}].
function rates(name) {
  const h = state.history[name] || [];
  const out = [];
  for (let i = 1; i < h.length; i++) {
    const dt = (h[i].t - h[i - 1].t) / 1000 || 1;
    out.push({
      t: h[i].t,
      sent: Math.max(0, (h[i].sent - h[i - 1].sent) / dt),
      received: Math.max(0, (h[i].received - h[i - 1].received) / dt),
      acked: Math.max(0, (h[i].acked - h[i - 1].acked) / dt),
    });
  }
  return out;
}

const fmt = n => n >= 100 ? n.toFixed(0) : n.toFixed(1);

// ---- plots (SVG, no library) ----

function plot(series, { width = 600, height = 180, spark = false } = {}) {
  const keys = ["sent", "received", "acked"];
  const max = Math.max(1, ...series.flatMap(p => keys.map(k => p[k])));
  const peak = Math.max(0, ...series.flatMap(p => keys.map(k => p[k])));
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.setAttribute("viewBox", `0 0 ${width} ${height}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("class", spark ? "spark" : "plot");
  svg.setAttribute("data-peak", peak.toFixed(2));
  svg.setAttribute("data-samples", series.length);
  const colors = { sent: "#1f6feb", received: "#e36209", acked: "#2e7d32" };
  for (const k of keys) {
    const line = document.createElementNS(svg.namespaceURI, "polyline");
    const n = Math.max(1, HISTORY - 1);
    const offset = HISTORY - series.length;
    const points = series.map((p, i) =>
      `${(((offset + i) / n) * width).toFixed(1)},${(height - (p[k] / max) * (height - 4) - 2).toFixed(1)}`);
    line.setAttribute("points", points.join(" "));
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", colors[k]);
    line.setAttribute("stroke-width", spark ? "1.5" : "2");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    line.setAttribute("id", spark ? "" : `plot-${k}`);
    svg.append(line);
  }
  return svg;
}

// ---- views ----

function membersSection() {
  const c = state.cluster;
  if (!c) return el("section", {}, el("h2", {}, "Cluster"), "…");
  const rows = c.members.map(m => el("tr", {},
    el("td", {}, m.id), el("td", {}, m.peerAddress), el("td", {}, m.role),
    el("td", { class: m.leader ? "leader" : "" }, m.leader ? "leader" : ""),
    el("td", { class: "num" }, m.lag ?? "?")));
  const groups = c.groups.map(g => el("tr", {},
    el("td", {}, g.id), el("td", {}, g.leader ?? "none"), el("td", { class: "num" }, g.term),
    el("td", {}, g.voters.join(", ")), el("td", { class: "num" }, g.committed ?? ""),
    el("td", { class: "num" }, g.applied ?? "")));
  return el("section", { id: "cluster" },
    el("h2", {}, "Cluster"),
    el("table", { id: "cluster-members" },
      el("tr", {}, ["member", "peer address", "role", "", "lag"].map(h => el("th", {}, h))), rows),
    el("table", { id: "cluster-groups" },
      el("tr", {}, ["group", "leader", "term", "voters", "committed", "applied"].map(h => el("th", {}, h))),
      groups));
}

function queuesSection() {
  const rows = state.queues.map(q => {
    const r = rates(q.name);
    const last = r[r.length - 1] || { sent: 0, received: 0, acked: 0 };
    return el("tr", { "data-queue": q.name },
      el("td", {}, el("a", { href: `#/queue/${enc(q.name)}` }, q.name)),
      el("td", { class: "num visible" }, q.counts.visible),
      el("td", { class: "num" }, q.counts.inFlight),
      el("td", { class: "num" }, q.counts.delayed),
      el("td", { class: "num" }, fmt(last.sent)),
      el("td", { class: "num" }, fmt(last.received)),
      el("td", { class: "num" }, fmt(last.acked)),
      el("td", {}, plot(r, { width: 120, height: 24, spark: true })));
  });
  const form = el("form", { id: "create-queue", on: { submit: createQueue } },
    el("input", { id: "create-queue-name", placeholder: "new queue name", required: "" }),
    el("input", { id: "create-queue-visibility", type: "number", min: "0", placeholder: "visibility s" }),
    el("label", {}, el("input", { id: "create-queue-fifo", type: "checkbox" }), " FIFO"),
    el("button", { id: "create-queue-submit", type: "submit" }, "Create queue"));
  return el("section", { id: "queues" },
    el("h2", {}, "Queues"), form,
    el("table", { id: "queues-table" },
      el("tr", {}, ["queue", "visible", "in flight", "delayed", "send/s", "receive/s", "ack/s", "last 2 min"]
        .map((h, i) => el("th", { class: i && i < 7 ? "num" : "" }, h))),
      rows));
}

function endpointText(e) {
  if (e.queue) return `queue ${e.queue}`;
  if (e.http) return `http ${e.http.url}`;
  if (e.email) return `email ${e.email.to}`;
  if (e.pull) return "pull";
  if (e.websocket) return "websocket";
  return JSON.stringify(e);
}

function topicsSection() {
  const blocks = state.topics.map(t => el("div", { "data-topic": t.name },
    el("h3", {}, `${t.name} `, el("span", { class: "muted" }, `${t.messages} messages`)),
    el("table", {},
      el("tr", {}, ["subscription", "endpoint", "delivered", "backlog", "retrying", "failed"]
        .map((h, i) => el("th", { class: i > 1 ? "num" : "" }, h))),
      (state.subs[t.name] || []).map(s => el("tr", { "data-subscription": s.name },
        el("td", {}, s.name), el("td", {}, endpointText(s.endpoint)),
        el("td", { class: "num" }, s.counts.delivered), el("td", { class: "num" }, s.counts.backlog),
        el("td", { class: "num" }, s.counts.retrying), el("td", { class: "num" }, s.counts.failed))))));
  return el("section", { id: "topics" }, el("h2", {}, "Topics"),
    blocks.length ? blocks : el("p", { class: "muted" }, "No topics."));
}

function messageTable(messages, withAck, queue) {
  return el("table", {},
    el("tr", {}, ["id", "body", "receives", "sent", "key", "attributes", ""].map(h => el("th", {}, h))),
    messages.map(m => el("tr", { "data-message": m.id },
      el("td", {}, m.id),
      el("td", {}, el("pre", {}, m.body ?? `(base64) ${m.bodyBase64 ?? ""}`)),
      el("td", { class: "num" }, m.receiveCount),
      el("td", {}, new Date(m.sentAt).toLocaleString()),
      el("td", {}, m.key ?? ""),
      el("td", {}, Object.entries(m.attributes || {}).map(([k, v]) => `${k}=${v}`).join(" ")),
      el("td", {}, withAck && m.receipt
        ? el("button", { class: "ack", on: { click: ev => ack(ev, queue, m.receipt) } }, "Ack") : ""))));
}

function queueView(name) {
  const q = state.queues.find(q => q.name === name);
  if (!q) return [el("section", {}, el("h2", {}, name), el("p", {}, "No such queue (yet)."))];
  const a = q.attributes;
  const r = rates(name);
  const last = r[r.length - 1] || { sent: 0, received: 0, acked: 0 };
  const info = el("section", { id: "queue", "data-queue": name },
    el("h2", {}, `Queue ${name}`),
    el("table", {},
      el("tr", {}, ["visible", "in flight", "delayed", "send/s", "receive/s", "ack/s"].map(h => el("th", { class: "num" }, h))),
      el("tr", {},
        el("td", { class: "num", id: "count-visible" }, q.counts.visible),
        el("td", { class: "num", id: "count-in-flight" }, q.counts.inFlight),
        el("td", { class: "num", id: "count-delayed" }, q.counts.delayed),
        el("td", { class: "num" }, fmt(last.sent)), el("td", { class: "num" }, fmt(last.received)),
        el("td", { class: "num" }, fmt(last.acked)))),
    el("p", { class: "legend" }, el("span", { class: "sent" }, "— send/s"),
      el("span", { class: "received" }, "— receive/s"), el("span", { class: "acked" }, "— ack/s"),
      el("span", { class: "muted" }, "over the last two minutes")),
    plot(r),
    el("p", { class: "muted" },
      `visibility ${a.visibilitySeconds}s · delay ${a.delaySeconds}s · retention ${a.retentionSeconds}s · ` +
      `${a.fifo ? "FIFO" : "standard"}` + (a.deadLetter ? ` · dead letters to ${a.deadLetter.queue} after ${a.deadLetter.maxReceives}` : "")));
  const act = el("section", { id: "actions" },
    el("h2", {}, "Messages"),
    el("form", { id: "send", on: { submit: ev => send(ev, name) } },
      el("input", { id: "send-body", placeholder: "body", required: "", size: "40" }),
      el("input", { id: "send-key", placeholder: "key" }),
      el("input", { id: "send-priority", type: "number", min: "1", max: "16", placeholder: "priority" }),
      el("input", { id: "send-delay", type: "number", min: "0", placeholder: "delay s" }),
      el("button", { id: "send-submit", type: "submit" }, "Send")),
    el("form", { on: { submit: ev => ev.preventDefault() } },
      el("button", { id: "peek-button", type: "button", class: "secondary", on: { click: () => peek(name) } }, "Peek"),
      el("button", { id: "receive-button", type: "button", class: "secondary", on: { click: () => receive(name) } }, "Receive"),
      el("input", { id: "lookup-id", placeholder: "message id", size: "30" }),
      el("button", { id: "lookup-button", type: "button", class: "secondary", on: { click: () => lookup(name) } }, "Look up"),
      el("button", { id: "redrive-button", type: "button", class: "secondary", on: { click: () => redrive(name) } }, "Redrive to sources")),
    el("div", { id: "results" }, results.node || ""));
  return [info, act];
}

// Results of the last peek / receive / look-up stay across re-renders.
const results = { node: null };

function render() {
  const view = $("#view");
  // Keep what is being typed: re-render only the parts that are not forms in use.
  const active = document.activeElement;
  if (active && active.tagName === "INPUT" && view.contains(active)) {
    refreshNumbers();
    return;
  }
  const route = location.hash.replace(/^#/, "") || "/";
  const m = route.match(/^\/queue\/(.+)$/);
  const parts = m ? queueView(decodeURIComponent(m[1])) : [membersSection(), queuesSection(), topicsSection()];
  view.replaceChildren(...parts);
}

/// While someone types, only the counts and plots change.
function refreshNumbers() {
  for (const q of state.queues) {
    const cell = document.querySelector(`tr[data-queue="${CSS.escape(q.name)}"] td.visible`);
    if (cell) cell.textContent = q.counts.visible;
    const page = document.querySelector(`#queue[data-queue="${CSS.escape(q.name)}"]`);
    if (page) {
      $("#count-visible").textContent = q.counts.visible;
      $("#count-in-flight").textContent = q.counts.inFlight;
      $("#count-delayed").textContent = q.counts.delayed;
      page.querySelector("svg.plot").replaceWith(plot(rates(q.name)));
    }
  }
}

// ---- actions ----

async function run(what, f) {
  try {
    await f();
    status(what);
  } catch (e) {
    status(e.message, true);
  }
  await poll();
}

function createQueue(ev) {
  ev.preventDefault();
  const name = $("#create-queue-name").value.trim();
  const body = {};
  const vis = $("#create-queue-visibility").value;
  if (vis) body.visibilitySeconds = Number(vis);
  if ($("#create-queue-fifo").checked) body.fifo = true;
  document.activeElement.blur();
  return run(`created ${name}`, () => api("PUT", `/queues/${enc(name)}`, body));
}

function send(ev, queue) {
  ev.preventDefault();
  const body = { body: $("#send-body").value };
  const key = $("#send-key").value;
  if (key) body.key = key;
  const priority = $("#send-priority").value;
  if (priority) body.priority = Number(priority);
  const delay = $("#send-delay").value;
  if (delay) body.delaySeconds = Number(delay);
  document.activeElement.blur();
  return run("sent", async () => {
    const sent = await api("POST", `/queues/${enc(queue)}/messages`, body);
    status(`sent ${sent.id}`);
  });
}

function show(title, node) {
  results.node = el("div", {}, el("h3", {}, title), node);
  const r = $("#results");
  if (r) r.replaceChildren(results.node);
}

function peek(queue) {
  return run("peeked", async () => {
    const got = await api("GET", `/queues/${enc(queue)}/peek?max=20`);
    show(`Peek: ${got.messages.length} visible`, el("div", { id: "peek-results" }, messageTable(got.messages, false)));
  });
}

function receive(queue) {
  return run("received", async () => {
    const got = await api("POST", `/queues/${enc(queue)}/receive`, { max: 10 });
    show(`Received ${got.messages.length}`, el("div", { id: "receive-results" }, messageTable(got.messages, true, queue)));
  });
}

function ack(ev, queue, receipt) {
  ev.target.disabled = true;
  return run("acknowledged", () => api("POST", `/queues/${enc(queue)}/ack`, { receipts: [receipt] }).then(r => {
    const e = r.results[0] && r.results[0].error;
    if (e) throw new Error(`${e.code}: ${e.message}`);
    ev.target.textContent = "acked";
  }));
}

function lookup(queue) {
  const id = $("#lookup-id").value.trim();
  return run("found", async () => {
    const m = await api("GET", `/queues/${enc(queue)}/messages/${enc(id)}`);
    show(`Message ${m.id} (${m.state})`, el("div", { id: "lookup-results" }, messageTable([m], false)));
  });
}

function redrive(queue) {
  return run("redrive started", async () => {
    const t = await api("POST", `/queues/${enc(queue)}/redrive`, {});
    show(`Redrive ${t.id}: ${t.state}, ${t.moved}/${t.total} moved`, el("div", { id: "redrive-results" }));
  });
}

window.addEventListener("hashchange", () => { results.node = null; render(); });
poll();
setInterval(poll, POLL_MS);
