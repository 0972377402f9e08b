"""The page's inline style sheet and script: plain strings, so the page needs no other file.

The script does two things: A/B listening (starting a stem while another plays pauses that
one and continues at its position) and sortable columns in the table of every stem.
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
