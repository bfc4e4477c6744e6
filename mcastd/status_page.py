"""The status page: one self-contained HTML document (the admin's machine may have no
internet), which polls /api/session every second and redraws the table in place. Everything a
laptop reports (its MAC, its reason) goes in with textContent, never as HTML."""

from __future__ import annotations

PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>mcastd status</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; background: #fafafa; }
h1 { font-size: 1.3em; margin: 0 0 .3em; }
#summary { margin: .3em 0 1em; }
#summary span { margin-right: 1.2em; }
table { border-collapse: collapse; width: 100%; background: #fff; }
th, td { border-bottom: 1px solid #ddd; padding: .35em .6em; text-align: left; }
th { background: #eee; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
.bar { background: #e5e5e5; width: 8em; height: .7em; display: inline-block; }
.bar i { background: #3a7; height: 100%; display: block; }
tr.failed td, tr.dropped td, tr.disk-error td { color: #a22; }
tr.done td { color: #272; }
#controls { margin: 1em 0; }
#controls button, #controls input { font: inherit; margin-right: .4em; }
#controls input { width: 4em; }
#message { margin-left: 1em; }
#message.error { color: #a22; }
</style>
</head>
<body>
<h1>mcastd <span id="name"></span></h1>
<div id="summary">
<span>state: <b id="state">-</b></span>
<span>progress: <b id="percent">-</b></span>
<span>rate: <b id="rate">-</b></span>
<span>ETA: <b id="eta">-</b></span>
<span>joined/expected: <b id="joined">-</b></span>
</div>
<div id="controls">
<button id="start" type="button">Start now</button>
<label>expected <input id="expected" type="number" min="1" step="1"></label>
<button id="set-expected" type="button">Set</button>
<button id="stop" type="button">Stop the session</button>
<span id="message"></span>
</div>
<table id="receivers">
<thead><tr><th>laptop</th><th>MAC / serial</th><th>state</th><th>%</th><th></th>
<th>rate</th><th>loss</th><th>ETA</th><th>reason</th><th></th></tr></thead>
<tbody></tbody>
</table>
<script>
"use strict";
const token = new URLSearchParams(location.search).get("token") || "";
const $ = (id) => document.getElementById(id);

function rate(bps) {
  if (bps >= 1e9) return (bps / 1e9).toFixed(2) + " Gbit/s";
  if (bps >= 1e6) return (bps / 1e6).toFixed(1) + " Mbit/s";
  return (bps / 1e3).toFixed(0) + " kbit/s";
}
function duration(s) {
  if (s === null || s === undefined) return "-";
  s = Math.round(s);
  const m = Math.floor(s / 60);
  return m > 0 ? m + " min " + (s % 60) + " s" : s + " s";
}
function cell(row, text, cls) {
  const td = document.createElement("td");
  td.textContent = text;
  if (cls) td.className = cls;
  row.appendChild(td);
  return td;
}
function receiverEta(r, session) {
  if (r.state !== "receiving" && r.state !== "lagging") return null;
  // The session's estimate (the slowest laptop's) scaled to what this one has left: steadier
  // than its own rate, which moves a whole block at a time.
  if (session.eta !== null && session.percent < 100) {
    return session.eta * (100 - r.percent) / (100 - session.percent);
  }
  return null;
}
function draw(s) {
  $("name").textContent = s.name ? "\\u2014 " + s.name : "";
  $("state").textContent = s.state;
  $("percent").textContent = s.percent.toFixed(1) + " %";
  $("rate").textContent = rate(s.rate_bps);
  $("eta").textContent = duration(s.eta);
  $("joined").textContent = s.joined + "/" + s.expected;
  if (document.activeElement !== $("expected")) $("expected").value = s.expected;
  const over = s.state === "complete";
  $("start").disabled = s.state !== "waiting";
  $("set-expected").disabled = over;
  $("stop").disabled = over;
  const body = document.querySelector("#receivers tbody");
  const rows = [];
  for (const r of s.receivers) {
    const tr = document.createElement("tr");
    tr.className = r.state.replace(" ", "-");
    tr.dataset.receiver = r.addr;
    cell(tr, r.addr, "addr");
    cell(tr, r.host.mac || r.host.dmi_serial || "", "host");
    cell(tr, r.state, "state");
    cell(tr, r.percent.toFixed(1) + " %", "num percent");
    const bar = cell(tr, "", "progress");
    const outer = document.createElement("span");
    outer.className = "bar";
    const inner = document.createElement("i");
    inner.style.width = Math.max(0, Math.min(100, r.percent)) + "%";
    outer.appendChild(inner);
    bar.appendChild(outer);
    cell(tr, rate(r.rate_bps), "num rate");
    cell(tr, (100 * r.loss).toFixed(1) + " %", "num loss");
    cell(tr, duration(receiverEta(r, s)), "num eta");
    cell(tr, r.reason, "reason");
    const act = cell(tr, "", "actions");
    if (!["done", "failed", "dropped", "disk error"].includes(r.state)) {
      const b = document.createElement("button");
      b.type = "button";
      b.textContent = "Drop";
      b.addEventListener("click", () => {
        if (confirm("Drop " + r.addr + "? It stops and keeps what it stored.")) {
          act_on("/api/drop", {receiver: r.addr});
        }
      });
      act.appendChild(b);
    }
    rows.push(tr);
  }
  body.replaceChildren(...rows);
}
function say(text, error) {
  $("message").textContent = text;
  $("message").className = error ? "error" : "";
}
async function act_on(path, body) {
  try {
    const resp = await fetch(path, {method: "POST", body: JSON.stringify(body || {}),
      headers: {"Content-Type": "application/json", "X-Mcastd-Token": token}});
    const data = await resp.json();
    say(data.message || data.error, !resp.ok);
  } catch (e) {
    say("The sender did not answer: " + e, true);
  }
  poll();
}
let polling = false;
async function poll() {
  if (polling) return;
  polling = true;
  try {
    const resp = await fetch("/api/session", {cache: "no-store"});
    if (resp.ok) draw(await resp.json());
  } catch (e) {
    $("state").textContent = "the sender is gone";
  } finally {
    polling = false;
  }
}
$("start").addEventListener("click", () => act_on("/api/start"));
$("set-expected").addEventListener("click",
  () => act_on("/api/expected", {expected: parseInt($("expected").value, 10)}));
$("stop").addEventListener("click", () => {
  if (confirm("Stop the session for every laptop?")) act_on("/api/stop");
});
poll();
setInterval(poll, 1000);
</script>
</body>
</html>
"""
