// The fedmesh web view: polls ../debug/graph once a second and draws the
// clusterset as SVG; explains a service's endpoint priorities from
// ../debug/endpoints; shows the clusterset quotas' split from
// ../debug/quotas. Relative URLs only, so that the page works on the
// admin port (/ui/) and behind `fedmesh dashboard` (/TOKEN/ui/) alike.
"use strict";

const SVG = "http://www.w3.org/2000/svg";
const W = 900, H = 600, R = 48;
const state = { graph: null, explainKey: "", ticks: 0, revision: -1 };

function el(tag, attrs, text) {
  const e = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

function html(tag, text, cls) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (cls) e.className = cls;
  return e;
}

function row(cells, cls) {
  const tr = html("tr", undefined, cls);
  for (const c of cells) {
    if (c instanceof Node) { const td = html("td"); td.append(c); tr.append(td); } else tr.append(html("td", c));
  }
  return tr;
}

function fmtRate(r) { return r >= 100 ? r.toFixed(0) : r >= 10 ? r.toFixed(1) : r.toFixed(2); }
function fmtMs(s) { if (s === undefined || s === null) return "p99 –"; const ms = s * 1000; return "p99 " + (ms >= 100 ? ms.toFixed(0) : ms.toFixed(1)) + "ms"; }
function fmtPct(x) { return (x * 100).toFixed(x > 0 && x < 0.01 ? 2 : 1) + "%"; }

// clusterState is the class of a cluster: fenced wins, then unreachable.
function clusterState(c) {
  if (c.fenced) return "fenced";
  if (!c.local && (!c.connected || c.state !== "alive")) return "unreachable";
  return "alive";
}

// positions places clusters on a circle, grouped by region, this
// cluster first.
function positions(clusters) {
  const sorted = clusters.slice().sort((a, b) =>
    (b.local - a.local) || (a.region || "").localeCompare(b.region || "") || a.name.localeCompare(b.name));
  const pos = new Map();
  // Room around the circle for the loops of local traffic and labels.
  const n = sorted.length, cx = W / 2, cy = H / 2 + 20, rad = n <= 1 ? 0 : Math.min(W, H) / 2 - 145;
  sorted.forEach((c, i) => {
    const a = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(n, 1);
    pos.set(c.name, { x: cx + rad * Math.cos(a), y: cy + rad * Math.sin(a), a });
  });
  return pos;
}

function drawClusters(g, pos) {
  const layer = document.getElementById("clusters");
  layer.replaceChildren();
  for (const c of g.clusters) {
    const p = pos.get(c.name);
    const st = clusterState(c);
    const grp = el("g", {
      class: "cluster " + st + (c.local ? " local" : ""), "data-cluster": c.name, "data-state": st,
      "data-fenced": c.fenced ? "true" : "false", transform: `translate(${p.x.toFixed(1)},${p.y.toFixed(1)})`,
    });
    const title = el("title", {}, c.fenced ? `${c.name}: fenced (${c.fenceReason || "unreachable"})` : `${c.name}: ${c.state}`);
    grp.append(title, el("circle", { class: "body", r: R }));
    grp.append(el("text", { class: "name", y: -6 }, c.name));
    grp.append(el("text", { class: "sub", y: 10 }, [c.region, c.zone].filter(Boolean).join(" / ")));
    let label = c.local ? "this cluster" : c.state;
    if (c.fenced) label = "FENCED";
    else if (st === "unreachable") label = c.state === "alive" ? "catalog unreachable" : c.state;
    grp.append(el("text", { class: "state", y: 25 }, label));
    // The gateway sits on the rim, facing outwards.
    const gx = Math.cos(p.a) * (R + 4), gy = Math.sin(p.a) * (R + 4);
    const gw = c.gateway || {};
    const gcls = "gateway" + ((gw.observed && !gw.up) || c.fenced ? " down" : "");
    const gg = el("g", { class: gcls, "data-gateway": c.name, transform: `translate(${gx.toFixed(1)},${gy.toFixed(1)})` });
    let gtitle = `gateway ${gw.address || "unknown"}`;
    if (gw.observed) gtitle += gw.up ? `: ${gw.activeConnections || 0} open, ${fmtRate(gw.connectionRate || 0)} conn/s` : ": not answering";
    gg.append(el("title", {}, gtitle), el("rect", { x: -13, y: -9, width: 26, height: 18, rx: 3 }), el("text", { y: 4 }, "gw"));
    grp.append(gg);
    layer.append(grp);
  }
}

function drawEdges(g, pos) {
  const layer = document.getElementById("edges");
  layer.replaceChildren();
  // Faint links: the federation's full mesh, gateway to gateway.
  const names = g.clusters.map(c => c.name);
  for (let i = 0; i < names.length; i++) {
    for (let j = i + 1; j < names.length; j++) {
      const a = pos.get(names[i]), b = pos.get(names[j]);
      layer.append(el("line", { class: "link", x1: a.x, y1: a.y, x2: b.x, y2: b.y }));
    }
  }
  const maxRate = Math.max(1, ...g.edges.map(e => e.requestRate));
  for (const e of g.edges) {
    const a = pos.get(e.from), b = pos.get(e.to);
    if (!a || !b) continue;
    const width = 1.5 + 5 * Math.sqrt(e.requestRate / maxRate);
    const grp = el("g", { class: "edge" + (e.errorRate > 0 ? " errors" : ""), "data-edge": `${e.from}>${e.to}`, "data-from": e.from, "data-to": e.to });
    const label = `${fmtRate(e.requestRate)} rps · ${fmtPct(e.errorRatio)} err · ${fmtMs(e.p99Seconds)}`;
    let d, lx, ly;
    if (e.from === e.to) {
      // A loop outside the cluster: requests served locally.
      const ox = Math.cos(a.a), oy = Math.sin(a.a), px = -oy, py = ox;
      const s = { x: a.x + ox * R + px * 18, y: a.y + oy * R + py * 18 };
      const t = { x: a.x + ox * R - px * 18, y: a.y + oy * R - py * 18 };
      const c1 = { x: s.x + ox * 70 + px * 30, y: s.y + oy * 70 + py * 30 };
      const c2 = { x: t.x + ox * 70 - px * 30, y: t.y + oy * 70 - py * 30 };
      d = `M${s.x},${s.y} C${c1.x},${c1.y} ${c2.x},${c2.y} ${t.x},${t.y}`;
      lx = a.x + ox * (R + 72); ly = a.y + oy * (R + 72) + (oy >= 0 ? 14 : -6);
    } else {
      const dx = b.x - a.x, dy = b.y - a.y, len = Math.hypot(dx, dy) || 1;
      const ux = dx / len, uy = dy / len, nx = -uy, ny = ux, bend = 28;
      const s = { x: a.x + ux * R, y: a.y + uy * R }, t = { x: b.x - ux * (R + 4), y: b.y - uy * (R + 4) };
      const m = { x: (s.x + t.x) / 2 + nx * bend, y: (s.y + t.y) / 2 + ny * bend };
      d = `M${s.x},${s.y} Q${m.x},${m.y} ${t.x},${t.y}`;
      lx = m.x + nx * 8; ly = m.y + ny * 8;
    }
    grp.append(el("title", {}, `${e.from} → ${e.to}: ${Math.round(e.requests)} requests in the window; ${label}`));
    grp.append(el("path", { d, "stroke-width": width.toFixed(1), "marker-end": "url(#arrow)" }));
    grp.append(el("text", { x: lx.toFixed(1), y: ly.toFixed(1), "text-anchor": "middle" }, label));
    layer.append(grp);
  }
}

function drawMembers(g) {
  const body = document.querySelector("#members tbody");
  body.replaceChildren();
  for (const c of g.clusters) {
    const st = clusterState(c);
    let s = c.local ? "this cluster" : c.state;
    if (c.fenced) s = "fenced: " + (c.fenceReason || "unreachable");
    else if (st === "unreachable") s = c.state + (c.connected ? "" : ", catalog unreachable");
    const rtt = c.rttSeconds ? (c.rttSeconds * 1000).toFixed(2) + " ms" : "–";
    body.append(row([c.name, s, rtt, c.gateway && c.gateway.address || "–"], c.fenced ? "fenced" : ""));
  }
}

function drawFailover(g) {
  const p = document.getElementById("failover");
  const local = g.clusters.find(c => c.local);
  const f = local && local.failover;
  if (!f || f.state === "idle") { p.textContent = `${g.cluster}: no client requests in the window`; p.dataset.state = "idle"; return; }
  p.dataset.state = f.state;
  const shares = (f.servedBy || []).map(s => `${s.cluster} ${fmtPct(s.share)}`).join(", ");
  p.textContent = f.state === "local"
    ? `${g.cluster} serves its own clients (${shares})`
    : `${g.cluster} has failed over: ${shares}`;
}

function fillSelect(sel, values, labels) {
  const cur = sel.value;
  const want = values.map((v, i) => v + "\t" + (labels ? labels[i] : v)).join("\n");
  const have = Array.from(sel.options).map(o => o.value + "\t" + o.textContent).join("\n");
  if (have === want) return;
  sel.replaceChildren();
  values.forEach((v, i) => { const o = html("option", labels ? labels[i] : v); o.value = v; sel.append(o); });
  if (values.includes(cur)) sel.value = cur;
}

function drawExplainChoices(g) {
  fillSelect(document.getElementById("service"), g.services.map(s => s.name),
    g.services.map(s => `${s.name} (${Object.entries(s.healthy).map(([c, n]) => `${c}: ${n}`).join(", ")})`));
  const sidecars = g.proxies.filter(p => p.role === "sidecar");
  fillSelect(document.getElementById("proxy"), sidecars.map(p => p.id),
    sidecars.map(p => `${p.workload || p.id}.${p.namespace || ""} (${p.id})`));
}

async function explain() {
  const svc = document.getElementById("service").value, node = document.getElementById("proxy").value;
  const note = document.getElementById("explain-note");
  const body = document.querySelector("#endpoints tbody");
  if (!svc || !node) { note.textContent = "no service or no connected sidecar of this cluster"; body.replaceChildren(); return; }
  const q = new URLSearchParams({ node, service: svc });
  let dumps;
  try {
    const r = await fetch("../debug/endpoints?" + q, { cache: "no-store" });
    if (!r.ok) { note.textContent = `endpoints of ${svc} for ${node}: ${r.status} ${(await r.text()).trim()}`; body.replaceChildren(); return; }
    dumps = await r.json();
  } catch (err) { note.textContent = "endpoints: " + err; return; }
  body.replaceChildren();
  let n = 0;
  for (const d of dumps || []) {
    for (const c of d.clusters || []) {
      for (const ep of c.endpoints || []) {
        n++;
        const sent = ep.sent ? (ep.viaGateway ? `${ep.sentAs} (gateway)` : ep.sentAs || ep.address) : "not sent: " + (ep.notSentReason || "");
        const health = ep.healthy ? "healthy" : "unhealthy: " + (ep.healthReason || "");
        const tr = row([ep.address, ep.cluster, sent, ep.sent ? String(ep.priority) : "–", ep.priorityReason || "", health]);
        if (!ep.healthy) tr.lastChild.className = "bad";
        body.append(tr);
      }
    }
  }
  note.textContent = `${svc} as ${node} (locality ${dumps && dumps[0] ? dumps[0].locality : "?"}) receives it: ${n} endpoints`;
}

// quotas shows each clusterset quota's split among the clusters: recent
// demand per interval, share, and whether a cluster is fenced or this
// one is in a minority.
async function quotas() {
  const note = document.getElementById("quota-note");
  const body = document.querySelector("#quotas tbody");
  let page;
  try {
    const r = await fetch("../debug/quotas", { cache: "no-store" });
    if (!r.ok) { note.textContent = `quotas: ${r.status} ${(await r.text()).trim()}`; return; }
    page = await r.json();
  } catch (err) { note.textContent = "quotas: " + err; return; }
  body.replaceChildren();
  const qs = page.quotas || [];
  for (const q of qs) {
    for (const c of q.clusters || []) {
      const st = [];
      if (c.local) st.push(q.minority ? "here, minority: share frozen" : "here");
      if (c.fenced) st.push("fenced");
      const tr = row([q.quota, c.cluster, String(c.admitted), String(c.refused), String(c.share), st.join(", ") || "–"]);
      tr.dataset.quota = `${q.quota}|${c.cluster}|${c.share}${c.fenced ? "|fenced" : ""}`;
      if (c.fenced) tr.className = "bad";
      body.append(tr);
    }
  }
  note.textContent = qs.length === 0 ? "no clusterset quota"
    : qs.map(q => `${q.quota}: ${q.total} per ${q.interval}` + (q.sidecars ? `, ${q.sidecars.length} sidecars here` : "")).join("; ");
}

function drawTargets(g) {
  const up = g.targets.filter(t => t.up).length;
  const down = g.targets.filter(t => !t.up).map(t => `${t.node} (${t.error})`);
  document.getElementById("targets").textContent = g.targets.length === 0
    ? "none: no sidecar or gateway of this cluster is connected"
    : `${up} of ${g.targets.length} answer` + (down.length ? "; not answering: " + down.join("; ") : "");
}

function draw(g) {
  state.graph = g;
  document.getElementById("whose").textContent = `the clusterset as ${g.cluster} sees it (view revision ${g.viewRevision})`;
  document.getElementById("updated").textContent = `updated ${new Date(g.time).toLocaleTimeString()} · rates over ${g.windowSeconds.toFixed(0)}s`;
  const pos = positions(g.clusters);
  drawEdges(g, pos);
  drawClusters(g, pos);
  drawMembers(g);
  drawFailover(g);
  drawExplainChoices(g);
  drawTargets(g);
  document.body.dataset.ready = "true";
}

function problem(msg) {
  const p = document.getElementById("problem");
  p.hidden = !msg;
  p.textContent = msg || "";
}

async function tick() {
  try {
    const r = await fetch("../debug/graph", { cache: "no-store" });
    if (!r.ok) {
      problem(`graph: ${r.status} ${(await r.text()).trim()}`);
    } else {
      draw(await r.json());
      problem("");
      // Explain again when the choice or the view changed, and every few
      // seconds (outlier ejections change nothing in the view).
      const g = state.graph;
      const key = document.getElementById("service").value + "|" + document.getElementById("proxy").value;
      if (key !== state.explainKey || g.viewRevision !== state.revision || state.ticks % 3 === 0) {
        state.explainKey = key;
        state.revision = g.viewRevision;
        explain();
      }
      if (state.ticks % 2 === 0) quotas();
      state.ticks++;
    }
  } catch (err) {
    problem("control plane unreachable: " + err.message);
  }
  setTimeout(tick, 1000);
}

document.getElementById("service").addEventListener("change", explain);
document.getElementById("proxy").addEventListener("change", explain);
tick();
