"""The page's inline style sheet and scripts: plain strings, so the page needs no other file.

`JS` does two things: A/B listening (starting a stem while another plays pauses that one and
continues at its position) and sortable columns in the table of every stem. `LISTEN_JS` runs
the blind test: sliders kept in localStorage per report, names revealed on request, ratings
exported as a JSON file (the format `ratings` reads).
"""

from __future__ import annotations

CSS = """
:root{--ink:#1d2330;--muted:#6b7280;--line:#e5e7eb;--bg:#f5f6f8;--card:#fff;
--good:#15803d;--warn:#b45309;--bad:#c2261d;--accent:#4338ca}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);line-height:1.45;
font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"Helvetica Neue",Arial,sans-serif}
main{max-width:1320px;margin:0 auto;padding:28px 28px 64px}
header{margin-bottom:8px}
.kicker{text-transform:uppercase;letter-spacing:.08em;font-size:12px;color:var(--accent);
font-weight:600}
h1{font-size:30px;margin:4px 0 6px;letter-spacing:-.01em}
h2{font-size:20px;margin:36px 0 12px}
h3{font-size:16px;margin:0 0 10px}
.unit{font-weight:400;color:var(--muted);font-size:13px;margin-left:6px}
.meta{color:var(--muted);margin:0 0 12px;font-size:13px}
.howto{background:#eef2ff;border-left:4px solid var(--accent);padding:10px 14px;
border-radius:6px;max-width:980px;margin:0 0 14px}
nav{display:flex;gap:18px;flex-wrap:wrap;font-size:14px}
nav a{color:var(--accent);text-decoration:none;font-weight:500}
nav a:hover{text-decoration:underline}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(560px,1fr));gap:16px}
.card{background:var(--card);border:1px solid var(--line);border-radius:10px;
padding:16px 18px;box-shadow:0 1px 2px rgba(16,24,40,.04)}
.chart{width:100%;height:auto;max-width:640px;display:block}
.chart .label{font-size:13px;fill:var(--ink)}
.chart .value{font-size:12px;fill:var(--muted);font-variant-numeric:tabular-nums}
.note{color:var(--muted);font-size:13px;margin:8px 0 0}
.note b{color:var(--ink);font-weight:600}
.empty{color:var(--muted)}
.verdicts{display:grid;grid-template-columns:repeat(auto-fit,minmax(280px,1fr));gap:16px;
margin-bottom:16px}
.verdict{background:linear-gradient(135deg,#ecfdf5,#fff 70%);border:1px solid #bbf7d0;
border-radius:10px;padding:14px 18px}
.verdict .kicker{color:var(--good)}
.verdict .winner{font-size:19px;font-weight:700;word-break:break-word;margin-top:2px}
.verdict .score{font-size:28px;font-weight:700;color:var(--good);
font-variant-numeric:tabular-nums;line-height:1.2}
.verdict .score span{font-size:13px;color:var(--muted);font-weight:500}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:14px}
th,td{padding:7px 10px;border-bottom:1px solid var(--line);text-align:left;vertical-align:top}
thead th{font-size:12px;text-transform:uppercase;letter-spacing:.04em;color:var(--muted);
font-weight:600;white-space:nowrap}
tbody tr:last-child th,tbody tr:last-child td{border-bottom:0}
.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
th.model{font-weight:600;white-space:nowrap}
.sub{font-size:12px;color:var(--muted);font-weight:400;text-transform:none;letter-spacing:0}
.muted{color:var(--muted)}
.good{color:var(--good)}.warn{color:var(--warn)}.bad{color:var(--bad);font-weight:600}
.chip{display:inline-block;padding:1px 8px;margin:1px 3px 1px 0;border-radius:999px;
font-size:12px;background:#e0e7ff;color:#3730a3}
.chip.missing{background:none;border:1px dashed #cbd5e1;color:#94a3b8;
text-decoration:line-through}
.project{margin-bottom:16px}
.project-head{display:flex;align-items:center;gap:24px;flex-wrap:wrap;margin-bottom:8px}
.project-head h3{margin:0;font-size:18px}
.stem.original{display:flex;align-items:center;gap:12px}
.stem.original img{width:220px;height:44px}
.stem.original audio{width:300px;margin-top:2px}
.matrix{table-layout:fixed;min-width:900px}
.matrix th:first-child{width:250px}
th.model{white-space:normal;overflow-wrap:anywhere}
.stem{margin:0}
.stem img{display:block;width:100%;max-width:320px;height:56px;border-radius:4px;
object-fit:fill;background:#000}
.stem audio{display:block;width:100%;max-width:320px;height:32px;margin-top:4px}
.stem figcaption{font-size:12px;color:var(--muted);margin-top:2px}
.stem figcaption b{color:var(--ink)}
tr.reference{background:#f8fafc}
td.missing{color:#94a3b8;font-style:italic;vertical-align:middle;
background:repeating-linear-gradient(135deg,#fafafa 0 8px,#f3f4f6 8px 16px)}
td.broken,td.failed{color:var(--bad);vertical-align:middle}
.measures{font-size:13px}
.measures th,.measures td{padding:5px 8px}
.measures th{cursor:pointer;user-select:none}
.measures td:nth-child(2),.measures td:last-child{white-space:nowrap}
.measures th[data-dir=asc]::after{content:" ▲"}
.measures th[data-dir=desc]::after{content:" ▼"}
.problems{margin:0;padding-left:18px}
.coverage{margin:0;padding-left:18px;line-height:1.7}
.problems li{margin:6px 0}
code{font-size:13px;background:#f1f5f9;padding:0 4px;border-radius:4px}
.chart .iqr{stroke:var(--ink);stroke-width:1.4;opacity:.55;fill:none}
.explain{max-width:980px;margin:0 0 14px}
.stem figcaption .warn,td.notes{font-size:12px}
td.notes{min-width:180px;white-space:normal}
.listened th.model{white-space:normal}
.listen-bar{display:flex;gap:12px;align-items:center;flex-wrap:wrap;margin:0 0 14px;
position:sticky;top:0;z-index:2;background:var(--bg);padding:8px 0}
.listen-bar input[type=text]{font:inherit;padding:4px 8px;border:1px solid var(--line);
border-radius:6px}
button{font:inherit;font-size:13px;padding:5px 12px;border:1px solid #c7d2fe;
border-radius:6px;background:#eef2ff;color:#3730a3;cursor:pointer}
button.primary{background:var(--accent);color:#fff;border-color:var(--accent)}
.trial{margin-bottom:14px}
.trial-head{display:flex;gap:14px;align-items:baseline;flex-wrap:wrap;margin-bottom:6px}
.trial-head h3{margin:0}
.trial-head button{margin-left:auto}
.context{display:flex;gap:12px;align-items:center;margin:4px 0 8px;font-size:13px;
color:var(--muted)}
.context audio,.excerpts audio{height:32px;width:300px}
.excerpts td,.excerpts th{border-bottom:1px solid var(--line);padding:4px 8px;
vertical-align:middle}
.excerpts th.code{font-size:18px;width:48px;text-align:center}
.excerpts td.slider{width:100%;white-space:nowrap}
.excerpts input[type=range]{width:70%;vertical-align:middle;opacity:.45}
.excerpts input[type=range].rated{opacity:1}
.excerpts output{display:inline-block;width:3em;text-align:right;
font-variant-numeric:tabular-nums}
.excerpts td.name{font-weight:600;white-space:normal;overflow-wrap:anywhere;min-width:200px}
"""

JS = """
(function () {
  // A/B listening: starting a stem pauses the one playing and takes over its position.
  var playing = null;
  document.addEventListener("play", function (event) {
    var audio = event.target;
    if (playing && playing !== audio && !playing.paused) {
      audio.currentTime = playing.currentTime;
      playing.pause();
    }
    playing = audio;
  }, true);
  // Sortable columns: numbers by their data-v value, unknown values last.
  document.querySelectorAll("table.sortable th").forEach(function (th, index) {
    th.addEventListener("click", function () {
      var table = th.closest("table"), body = table.tBodies[0];
      var dir = th.dataset.dir === "desc" ? "asc" : "desc";
      table.querySelectorAll("th").forEach(function (h) { delete h.dataset.dir; });
      th.dataset.dir = dir;
      var key = function (row) {
        var c = row.cells[index];
        if (c.dataset.v === undefined) return c.textContent;
        return c.dataset.v === "" ? null : parseFloat(c.dataset.v);
      };
      Array.prototype.slice.call(body.rows).sort(function (a, b) {
        var x = key(a), y = key(b);
        if (x === null) return y === null ? 0 : 1;
        if (y === null) return -1;
        var c = typeof x === "number" ? x - y : String(x).localeCompare(String(y));
        return dir === "asc" ? c : -c;
      }).forEach(function (row) { body.appendChild(row); });
    });
  });
})();
"""

LISTEN_JS = """
(function () {
  var node = document.getElementById("listening-data");
  if (!node) return;
  var data = JSON.parse(node.textContent);
  var key = "stemsweep-ratings:" + data.report;
  var state = {listener: "", scores: {}};
  try {
    var saved = JSON.parse(window.localStorage.getItem(key) || "null");
    if (saved && saved.scores) state = saved;
  } catch (e) { /* storage unavailable: ratings live until the page closes */ }
  function save() {
    try { window.localStorage.setItem(key, JSON.stringify(state)); } catch (e) {}
  }
  var trials = {};
  var total = 0;
  data.trials.forEach(function (t) { trials[t.id] = t; total += t.items.length; });
  var progress = document.getElementById("listen-progress");
  function count() {
    var n = 0;
    Object.keys(state.scores).forEach(function (t) { n += Object.keys(state.scores[t]).length; });
    progress.textContent = n + " of " + total + " excerpts rated";
  }
  function show(input) {
    var scores = state.scores[input.dataset.trial] || {};
    var value = scores[input.dataset.code];
    var out = input.parentNode.querySelector("output");
    if (value === undefined) {
      input.value = 50; input.classList.remove("rated"); out.textContent = "–";
    } else {
      input.value = value; input.classList.add("rated"); out.textContent = value;
    }
  }
  var sliders = document.querySelectorAll("input.rating");
  sliders.forEach(function (input) {
    show(input);
    input.addEventListener("input", function () {
      var t = input.dataset.trial;
      (state.scores[t] = state.scores[t] || {})[input.dataset.code] = Number(input.value);
      show(input); save(); count();
    });
  });
  var listener = document.getElementById("listener");
  listener.value = state.listener || "";
  listener.addEventListener("input", function () { state.listener = listener.value; save(); });
  function label(item) {
    if (item.role === "reference") return "hidden reference";
    if (item.role === "anchor") return "low anchor";
    return item.model;
  }
  function reveal(id) {
    var card = document.querySelector('[data-trial-card="' + id + '"]');
    trials[id].items.forEach(function (item) {
      var cell = card.querySelector('[data-name="' + item.code + '"]');
      cell.textContent = label(item);
      cell.hidden = false;
    });
    card.classList.add("revealed");
  }
  document.querySelectorAll("[data-reveal]").forEach(function (button) {
    button.addEventListener("click", function () { reveal(button.dataset.reveal); });
  });
  document.getElementById("reveal-all").addEventListener("click", function () {
    Object.keys(trials).forEach(reveal);
  });
  document.getElementById("clear-ratings").addEventListener("click", function () {
    state.scores = {}; save(); sliders.forEach(show); count();
  });
  function exported() {
    var rated = data.trials.filter(function (t) { return state.scores[t.id]; });
    return {
      format: "stemsweep-ratings", version: 1, report: data.report,
      listener: state.listener || "", exported_at: new Date().toISOString(),
      trials: rated.map(function (t) {
        var scores = state.scores[t.id];
        return {
          trial: t.id, project: t.project, type: t.type,
          ratings: t.items.filter(function (i) { return scores[i.code] !== undefined; })
            .map(function (i) {
              return {code: i.code, role: i.role, model: i.model, score: scores[i.code]};
            })
        };
      })
    };
  }
  document.getElementById("export-ratings").addEventListener("click", function () {
    var text = JSON.stringify(exported(), null, 2);
    var link = document.createElement("a");
    link.href = URL.createObjectURL(new Blob([text], {type: "application/json"}));
    var who = (state.listener || "listener").replace(/[^A-Za-z0-9._-]+/g, "_");
    link.download = "stemsweep-ratings-" + who + ".json";
    document.body.appendChild(link);
    link.click();
    link.remove();
  });
  count();
})();
"""
