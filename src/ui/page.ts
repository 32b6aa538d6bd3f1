/**
 * The dashboard's one page: no framework and nothing fetched from elsewhere. Its script follows the server's
 * event stream (`/events`, one DashboardView per change) and draws the topology as inline SVG: hosts on a
 * circle (green up, red down), one coloured line per network between every two hosts it spans (dashed grey
 * when a host is down, dashed red when an encrypted path's tunnel is down), then the problems, hosts and
 * networks as tables. Every name is set as text, never parsed as markup. `data-*` attributes name what each
 * shape stands for, for a reader of the DOM (the dashboard test).
 */

/** The page, with the script and style allowed by `nonce` (the Content-Security-Policy forbids the rest). */
export function dashboardPage(nonce: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vxnet</title>
<link rel="icon" href="data:,">
<style nonce="${nonce}">
  body { font: 14px system-ui, sans-serif; margin: 1.5em; color: #222; }
  h1 { font-size: 1.3em; margin: 0 0 .3em; }
  h2 { font-size: 1.05em; margin: 1.2em 0 .4em; }
  #summary { color: #555; }
  #banner { display: none; background: #fdecea; color: #8a1c1c; padding: .5em .8em; margin: .6em 0; }
  #problems li { color: #8a1c1c; }
  table { border-collapse: collapse; }
  th, td { text-align: left; padding: .2em .8em .2em 0; border-bottom: 1px solid #eee; vertical-align: top; }
  th { color: #555; font-weight: 600; }
  .up { color: #2e7d32; } .down { color: #c62828; } .error { color: #c62828; } .pending { color: #a66b00; }
  svg text { font: 12px system-ui, sans-serif; }
</style>
</head>
<body>
<h1>vxnet</h1>
<div id="summary">connecting…</div>
<div id="banner"></div>
<svg id="topology" width="640" height="470" viewBox="0 0 640 470" role="img" aria-label="hosts and the networks between them"></svg>
<div id="legend"></div>
<h2>Problems</h2>
<ul id="problems"></ul>
<h2>Hosts</h2>
<table id="hosts"><thead><tr><th>host</th><th>state</th><th>underlay</th><th>revision</th><th>WireGuard</th><th>endpoints</th></tr></thead><tbody></tbody></table>
<h2>Networks</h2>
<table id="networks"><thead><tr><th>network</th><th>VNI</th><th>subnets</th><th>encrypted</th><th>hosts</th><th>endpoints</th><th>paths</th></tr></thead><tbody></tbody></table>
<script nonce="${nonce}">
"use strict";
const SVG = "http://www.w3.org/2000/svg";
const COLOURS = ["#1565c0", "#6a1b9a", "#00838f", "#ef6c00", "#2e7d32", "#ad1457", "#4e342e", "#283593"];
const session = new URLSearchParams(location.search).get("session") || "";

function el(name, attrs, text, ns) {
  const node = ns ? document.createElementNS(SVG, name) : document.createElement(name);
  for (const [key, value] of Object.entries(attrs || {})) node.setAttribute(key, String(value));
  if (text !== undefined) node.textContent = String(text);
  return node;
}

function row(cells, attrs) {
  const tr = el("tr", attrs);
  for (const cell of cells) tr.append(cell instanceof Node ? cell : el("td", {}, cell));
  return tr;
}

function drawTopology(view) {
  const svg = document.getElementById("topology");
  svg.replaceChildren();
  const hosts = view.hosts;
  const at = new Map();
  const cx = 320, cy = 225, radius = hosts.length > 1 ? 170 : 0;
  hosts.forEach((host, i) => {
    const angle = -Math.PI / 2 + (2 * Math.PI * i) / Math.max(hosts.length, 1);
    at.set(host.name, { x: cx + radius * Math.cos(angle), y: cy + radius * Math.sin(angle) });
  });
  const perPair = new Map();
  view.networks.forEach((network, n) => {
    for (const path of network.paths) {
      const key = path.a + "|" + path.b;
      const k = perPair.get(key) || 0;
      perPair.set(key, k + 1);
      const p = at.get(path.a), q = at.get(path.b);
      if (!p || !q) continue;
      const len = Math.hypot(q.x - p.x, q.y - p.y) || 1;
      const off = (k % 2 ? -1 : 1) * Math.ceil(k / 2) * 7;
      const dx = (-(q.y - p.y) / len) * off, dy = ((q.x - p.x) / len) * off;
      const colour = path.health === "ok" ? COLOURS[n % COLOURS.length] : path.health === "down" ? "#9e9e9e" : "#c62828";
      const line = el("line", {
        x1: p.x + dx, y1: p.y + dy, x2: q.x + dx, y2: q.y + dy, stroke: colour, "stroke-width": 4,
        "data-path": network.name + " " + path.a + " " + path.b, "data-health": path.health,
      }, undefined, true);
      if (path.health !== "ok") line.setAttribute("stroke-dasharray", "8 5");
      line.append(el("title", {}, network.name + ": " + path.a + " ⇄ " + path.b + " " + path.health, true));
      svg.append(line);
    }
  });
  for (const host of hosts) {
    const p = at.get(host.name);
    const g = el("g", { "data-host": host.name, "data-state": host.state }, undefined, true);
    g.append(el("circle", { cx: p.x, cy: p.y, r: 28, fill: host.state === "up" ? "#2e7d32" : "#c62828" }, undefined, true));
    g.append(el("text", { x: p.x, y: p.y + 4, "text-anchor": "middle", fill: "#fff" }, host.endpoints.length, true));
    g.append(el("text", { x: p.x, y: p.y + 44, "text-anchor": "middle" }, host.name, true));
    g.append(el("text", { x: p.x, y: p.y + 58, "text-anchor": "middle", fill: "#666" }, host.address, true));
    g.append(el("title", {}, host.name + " (" + host.state + "), " + host.endpoints.length + " endpoints", true));
    svg.append(g);
  }
  const legend = document.getElementById("legend");
  legend.replaceChildren(...view.networks.map((network, n) => {
    const span = el("span", { "data-network": network.name }, "━ " + network.name + " (VNI " + network.vni + (network.encrypted ? ", encrypted" : "") + ")  ");
    span.style.color = COLOURS[n % COLOURS.length];
    return span;
  }));
}

function render(view) {
  const s = view.status;
  document.getElementById("summary").textContent =
    "cluster " + s.clusterId + " at revision " + s.revision + " · " + s.nodes.up + " of " + s.nodes.total + " hosts up · " +
    s.networks + " networks · " + s.endpoints.ready + " of " + s.endpoints.total + " endpoints ready · " + new Date(view.at).toLocaleTimeString();
  document.getElementById("banner").style.display = "none";
  drawTopology(view);
  const problems = document.getElementById("problems");
  problems.replaceChildren(...(s.problems.length ? s.problems.map((p) => el("li", {}, p)) : [el("li", { class: "up" }, "no problems found")]));
  document.querySelector("#hosts tbody").replaceChildren(...view.hosts.map((h) => row([
    h.name, el("td", { class: h.state }, h.state), h.address, String(h.reconciledRevision), h.wireguard || "—",
    h.endpoints.map((e) => e.network + " " + e.ip + " " + e.target + (e.status === "ready" ? "" : " (" + e.status + ")")).join(", ") || "—",
  ], { "data-host-row": h.name })));
  document.querySelector("#networks tbody").replaceChildren(...view.networks.map((n) => row([
    n.name, String(n.vni), n.subnets.join(", "), n.encrypted ? "yes" : "no", n.hosts.join(", ") || "—", String(n.endpoints),
    n.paths.map((p) => p.a + "⇄" + p.b + " " + p.health).join(", ") || "—",
  ], { "data-network-row": n.name })));
}

const events = new EventSource("/events?session=" + encodeURIComponent(session));
events.onmessage = (message) => {
  const data = JSON.parse(message.data);
  if (data.error) {
    const banner = document.getElementById("banner");
    banner.textContent = data.error;
    banner.style.display = "block";
  } else {
    render(data);
  }
};
events.onerror = () => { document.getElementById("summary").textContent = "the dashboard server is gone (vxnet ui stopped?); retrying…"; };
</script>
</body>
</html>
`;
}
