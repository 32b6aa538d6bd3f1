/**
 * The dashboard page: static HTML and CSS, and the script that draws it, served by `vxnet ui` (server.ts).
 * The script fetches the view (view.ts) every POLL_MS and builds every element with DOM calls and
 * `textContent` — names, addresses and error messages come from the cluster and are never parsed as HTML —
 * and the topology as inline SVG; no framework. The page's Content-Security-Policy allows only this origin's
 * script and no inline script, so it is served as a file of its own.
 */

export const POLL_MS = 2000;

export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>vxnet dashboard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="style.css">
<link rel="icon" href="icon.svg" type="image/svg+xml">
</head>
<body>
<header><h1>vxnet</h1><span id="cluster"></span><span id="updated"></span></header>
<p id="problem" hidden></p>
<main>
<section id="topology-section"><h2>Topology</h2><svg id="topology" role="img" aria-label="hosts, their endpoints and the peerings between hosts"></svg>
<p class="legend"><span class="ok">━ peering ok</span> <span class="degraded">━ degraded</span> <span class="down">━ down</span></p></section>
<section><h2>Hosts</h2><table id="hosts"><thead><tr><th>host</th><th>address</th><th>state</th><th>behind</th><th>endpoints</th><th>last seen</th></tr></thead><tbody></tbody></table></section>
<section><h2>Peerings</h2><table id="peerings"><thead><tr><th>between</th><th>networks</th><th>health</th><th>why</th></tr></thead><tbody></tbody></table></section>
<section><h2>Networks</h2><table id="networks"><thead><tr><th>network</th><th>VNI</th><th>subnets</th><th>endpoints</th><th></th></tr></thead><tbody></tbody></table></section>
<section><h2>Endpoints</h2><table id="endpoints"><thead><tr><th>id</th><th>network</th><th>host</th><th>address</th><th>MAC</th><th>status</th></tr></thead><tbody></tbody></table></section>
</main>
<script src="app.js"></script>
</body>
</html>
`;

export const PAGE_CSS = `
body { font: 14px/1.4 system-ui, sans-serif; margin: 0; color: #1f2328; background: #f6f8fa; }
header { display: flex; gap: 1.5em; align-items: baseline; padding: .6em 1.2em; background: #24292f; color: #fff; }
header h1 { font-size: 1.2em; margin: 0; }
#updated { margin-left: auto; opacity: .8; }
#problem { margin: .8em 1.2em; padding: .6em; background: #ffebe9; border: 1px solid #ff8182; }
main { display: grid; grid-template-columns: minmax(320px, 620px) 1fr; gap: 1em; padding: 1em 1.2em; }
section { background: #fff; border: 1px solid #d0d7de; border-radius: 6px; padding: .6em .9em; }
#topology-section { grid-row: span 3; }
h2 { font-size: 1em; margin: .2em 0 .6em; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .2em .5em; border-bottom: 1px solid #eaeef2; white-space: nowrap; }
svg { width: 100%; height: auto; }
.ok { color: #1a7f37; } .degraded { color: #9a6700; } .down { color: #cf222e; } .pending { color: #9a6700; } .error { color: #cf222e; } .ready { color: #1a7f37; } .up { color: #1a7f37; }
.swatch { display: inline-block; width: .8em; height: .8em; border-radius: 50%; margin-right: .4em; vertical-align: middle; }
`;

/** Two hosts and their peering, as the tab's icon (without one, browsers ask for /favicon.ico, outside the secret). */
export const PAGE_ICON = '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 32 32"><line x1="8" y1="16" x2="24" y2="16" stroke="#1a7f37" stroke-width="4"/><circle cx="8" cy="16" r="6" fill="#2f6fdf"/><circle cx="24" cy="16" r="6" fill="#2f6fdf"/></svg>';

/** The browser side; plain JavaScript (the page loads it as is). */
export const PAGE_SCRIPT = `'use strict';
const SVG = 'http://www.w3.org/2000/svg';
const STROKE = { ok: '#1a7f37', degraded: '#bf8700', down: '#cf222e' };
function el(tag, attrs, text) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function svg(tag, attrs, text) {
  const node = document.createElementNS(SVG, tag);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = String(text);
  return node;
}
function rows(id, items, cells) {
  const body = document.querySelector('#' + id + ' tbody');
  body.replaceChildren(...items.map((item) => {
    const tr = el('tr', { 'data-key': cells.key(item) });
    for (const cell of cells.render(item)) tr.append(cell instanceof Node ? wrap(cell) : el('td', {}, cell));
    return tr;
  }));
}
function wrap(node) { const td = el('td'); td.append(node); return td; }
function ago(iso, now) {
  if (!iso) return 'never';
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  return s < 60 ? s + 's ago' : s < 3600 ? Math.floor(s / 60) + 'm ago' : Math.floor(s / 3600) + 'h ago';
}
function draw(view) {
  const root = document.getElementById('topology');
  root.setAttribute('viewBox', '0 0 ' + view.width + ' ' + view.height);
  const hosts = new Map(view.hosts.map((h) => [h.name, h]));
  const parts = [];
  for (const p of view.peerings) {
    const a = hosts.get(p.a), b = hosts.get(p.b);
    const line = svg('line', { x1: a.x, y1: a.y, x2: b.x, y2: b.y, stroke: STROKE[p.health], 'stroke-width': 3, 'data-peering': p.a + ' ' + p.b, 'data-health': p.health });
    if (p.health !== 'ok') line.setAttribute('stroke-dasharray', '8 5');
    line.append(svg('title', {}, p.a + ' ↔ ' + p.b + ': ' + p.networks.join(', ') + (p.reason ? ' — ' + p.reason : '')));
    parts.push(line);
  }
  for (const e of view.endpoints) {
    const h = hosts.get(e.node);
    parts.push(svg('line', { x1: h.x, y1: h.y, x2: e.x, y2: e.y, stroke: e.color, 'stroke-width': 1, opacity: 0.5 }));
    const dot = svg('circle', { cx: e.x, cy: e.y, r: 7, fill: e.status === 'ready' ? e.color : '#fff', stroke: e.color, 'stroke-width': 2, 'data-endpoint': e.id, 'data-status': e.status });
    dot.append(svg('title', {}, e.ip + ' on ' + e.network + ' (' + e.id + ', ' + e.status + ')'));
    parts.push(dot);
    parts.push(svg('text', { x: e.labelX, y: e.labelY, 'text-anchor': 'middle', 'font-size': 10, fill: '#57606a' }, e.ip));
  }
  for (const h of view.hosts) {
    const g = svg('g', { 'data-host': h.name, 'data-health': h.health });
    g.append(svg('circle', { cx: h.x, cy: h.y, r: 32, fill: '#fff', stroke: STROKE[h.health], 'stroke-width': 4 }));
    g.append(svg('text', { x: h.x, y: h.y - 1, 'text-anchor': 'middle', 'font-size': 12, 'font-weight': 'bold' }, h.name));
    g.append(svg('text', { x: h.x, y: h.y + 13, 'text-anchor': 'middle', 'font-size': 9, fill: '#57606a' }, h.address));
    g.append(svg('title', {}, h.name + ' (' + h.address + '): ' + h.state + (h.behind ? ', ' + h.behind + ' revisions behind' : '')));
    parts.push(g);
  }
  root.replaceChildren(...parts);
}
function render(view) {
  const now = Date.parse(view.at);
  document.getElementById('cluster').textContent = 'cluster ' + view.clusterId + ' · revision ' + view.revision;
  document.getElementById('updated').textContent = 'updated ' + new Date(now).toLocaleTimeString();
  draw(view);
  rows('hosts', view.hosts, { key: (h) => h.name, render: (h) => [h.name, h.address, el('span', { class: h.health }, h.state), h.behind, h.endpoints, ago(h.lastSeen, now)] });
  rows('peerings', view.peerings, { key: (p) => p.a + ' ' + p.b, render: (p) => [p.a + ' ↔ ' + p.b, p.networks.join(', '), el('span', { class: p.health }, p.health), p.reason] });
  rows('networks', view.networks, { key: (n) => n.name, render: (n) => {
    const name = el('span'); const swatch = el('span', { class: 'swatch' }); swatch.style.background = n.color; name.append(swatch, document.createTextNode(n.name));
    return [name, n.vni, n.subnets.join(', '), n.endpoints, [n.encrypted ? 'encrypted' : '', n.internal ? 'internal' : ''].filter(Boolean).join(', ')];
  } });
  rows('endpoints', view.endpoints, { key: (e) => e.id, render: (e) => [e.id, e.network, e.node, e.ip, e.mac, el('span', { class: e.status, title: e.message || '' }, e.status)] });
}
async function poll() {
  const problem = document.getElementById('problem');
  try {
    const res = await fetch('view.json', { cache: 'no-store' });
    const body = await res.json();
    if (!res.ok) throw new Error(body.error || res.statusText);
    render(body);
    problem.hidden = true;
  } catch (err) {
    problem.textContent = 'cannot reach the manager: ' + err.message;
    problem.hidden = false;
  }
  setTimeout(poll, ${POLL_MS});
}
poll();
`;
