// stasis report: renders data/index.js and data/job-NNNNN.js (written by stasis from the run
// record) into this page. Data files are loaded with <script> tags because file:// pages may
// not fetch(); each calls stasisReport.index(...) or stasisReport.job(...). While the run
// is live the index is polled and only task files not seen yet are loaded.
// Every value from the data is put in the page as text (textContent), never as markup.
(function () {
  "use strict";
  var POLL_MS = 2000;
  var state = { index: null, jobs: {}, pending: {}, failedIndex: false, timer: null };
  var openDetails = {};

  function load(src, onerror) {
    var s = document.createElement("script");
    s.src = src;
    s.onload = function () { s.remove(); };
    s.onerror = function () { s.remove(); onerror(); };
    document.head.appendChild(s);
  }

  function loadIndex() {
    load("data/index.js?t=" + Date.now(), function () {
      state.failedIndex = true;
      maybeRender();
    });
  }

  window.stasisReport = {
    index: function (data) {
      state.index = data;
      state.failedIndex = false;
      (data.jobs || []).forEach(function (row) {
        if (!(row.id in state.jobs) && !state.pending[row.id]) {
          state.pending[row.id] = true;
          load(row.file, function () {
            delete state.pending[row.id];
            state.jobs[row.id] = { missing: true, cases: [], problems: [] };
            maybeRender();
          });
        }
      });
      maybeRender();
    },
    job: function (data) {
      delete state.pending[data.id];
      state.jobs[data.id] = data;
      maybeRender();
    }
  };

  function maybeRender() {
    if (Object.keys(state.pending).length !== 0) return;
    try {
      render();
    } catch (e) {
      // Never an empty page: say what went wrong where the report would be.
      var main = document.getElementById("main");
      var p = document.createElement("div");
      p.className = "problem";
      p.textContent = "The report could not be drawn: " + e + (e && e.stack ? "\n" + e.stack : "");
      main.insertBefore(p, main.firstChild);
      document.body.setAttribute("data-state", "error");
    }
  }

  // ---- small DOM helpers -------------------------------------------------------------
  function el(tag, attrs, children) {
    var e = document.createElement(tag);
    if (attrs) {
      Object.keys(attrs).forEach(function (k) {
        var v = attrs[k];
        if (v === null || v === undefined) return;
        if (k === "text") e.textContent = String(v);
        else if (k === "class") e.className = v;
        else e.setAttribute(k, v);
      });
    }
    (children || []).forEach(function (c) {
      if (c === null || c === undefined) return;
      e.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return e;
  }
  function badge(status) {
    return el("span", { class: "badge s-" + status, text: String(status).replace("_", " ") });
  }
  function dur(ms) {
    if (ms === null || ms === undefined) return "";
    if (ms < 1000) return ms + " ms";
    var s = ms / 1000;
    if (s < 60) return s.toFixed(1) + " s";
    var m = Math.floor(s / 60);
    if (m < 60) return m + "m " + Math.floor(s % 60) + "s";
    return Math.floor(m / 60) + "h " + (m % 60) + "m";
  }
  function fileLink(link, label, kind) {
    if (!link) return el("span", { class: "muted", text: "—" });
    if (!link.exists) {
      return el("span", { class: "muted", title: link.path, "data-missing": kind, text: label + " (missing)" });
    }
    var a = el("a", { href: link.href, title: link.path, text: label });
    a.setAttribute("data-" + kind, link.path);
    return a;
  }
  function section(id, title, children) {
    return el("section", { id: id }, [el("h2", { text: title })].concat(children));
  }
  function keepOpen(d, key) {
    d.setAttribute("data-key", key);
    if (openDetails[key]) d.open = true;
    d.addEventListener("toggle", function () { openDetails[key] = d.open; });
    return d;
  }
  function table(headers, rows) {
    var thead = el("thead", null, [el("tr", null, headers.map(function (h) {
      return el("th", { class: h.num ? "num" : null, text: h.label || h });
    }))]);
    return el("table", null, [thead, el("tbody", null, rows)]);
  }
  function td(v, cls) {
    if (v instanceof Node) return el("td", { class: cls }, [v]);
    return el("td", { class: cls, text: v === null || v === undefined ? "" : v });
  }

  // ---- sections ----------------------------------------------------------------------
  function header(ix) {
    document.title = ix.release + " — stasis report";
    var head = document.getElementById("head");
    head.textContent = "";
    head.appendChild(el("h1", { id: "title" }, [ix.release || "(unnamed release)", " ", badge(ix.status)]));
    var sub = [
      "delivery " + ix.delivery,
      "started " + ix.start_time,
      (ix.end_time ? "took " : "running for ") + dur(ix.duration_ms),
      "stasis " + ix.stasis_version
    ];
    if (ix.live) sub.push("live: refreshing every " + POLL_MS / 1000 + " s");
    head.appendChild(el("p", { id: "subtitle", text: sub.join(" · ") }));
    var t = ix.totals;
    function tile(n, label, cls) {
      return el("div", { class: "tile " + (cls || "") }, [el("b", { text: n }), el("span", { text: label })]);
    }
    head.appendChild(el("div", { class: "tiles" }, [
      tile(t.tests, "test cases"),
      tile(t.passed, "passed", "ok"),
      tile(t.failures, "failed"),
      tile(t.errors, "errors"),
      tile(t.skipped, "skipped"),
      tile(ix.blocks_failed + " / " + ix.blocks, "tasks failed"),
      tile(ix.max_parallelism + (ix.cpu_limit ? " / " + ix.cpu_limit : ""), "max parallel")
    ]));
  }

  function failures(ix) {
    var items = [];
    ix.jobs.forEach(function (row) {
      var job = state.jobs[row.id] || { cases: [] };
      var failing = (job.cases || []).filter(function (c) { return c.s === "failed" || c.s === "error"; });
      failing.forEach(function (c, i) {
        var d = el("div", { class: "failure" + (c.s === "error" ? " error" : ""), "data-failure": row.name + "::" + c.c + "::" + c.n }, [
          el("div", { class: "where" }, [badge(c.s), " test block " + row.name + (c.c ? " · " + c.c : "")]),
          el("div", { class: "name mono", text: c.n }),
          c.m ? el("div", { class: "msg", text: c.m }) : null,
          c.x ? keepOpen(el("details", null, [el("summary", { text: "details" }), el("pre", { text: c.x })]), "fx-" + row.id + "-" + i) : null,
          el("div", null, [fileLink(row.log, "task log", "log"), " · ", fileLink(row.junit, "results XML", "junit")])
        ]);
        items.push(d);
      });
      if (row.outcome === "fail" && failing.length === 0) {
        var why = row.signal ? "ended by signal " + row.signal : row.return_code !== null ? "exit " + row.return_code : "did not run";
        if (row.stop_reason) why += " (" + row.stop_reason.replace("_", " ") + ")";
        items.push(el("div", { class: "failure", "data-failure": row.name }, [
          el("div", { class: "where" }, [badge("fail"), " test block " + row.name + " (" + row.pool + ")"]),
          el("div", { class: "msg", text: "the task failed: " + why + (row.counts ? "" : "; it has no test cases") }),
          job.log_tail ? el("pre", { text: lastLines(job.log_tail, 12) }) : null,
          el("div", null, [fileLink(row.log, "task log", "log")])
        ]));
      }
    });
    // The tests stage fails because tasks failed: those are listed above already.
    var taskFailed = ix.jobs.some(function (j) { return j.outcome === "fail"; });
    var failedStages = ix.stages.filter(function (s) { return s.status === "fail" && !(s.name === "tests" && taskFailed); });
    failedStages.forEach(function (s) {
      items.push(el("div", { class: "failure", "data-failure": "stage " + s.name }, [
        el("div", { class: "where" }, [badge("fail"), " stage " + s.name]),
        el("pre", { text: s.error || "failed" })
      ]));
    });
    if (items.length === 0) {
      items.push(el("p", { class: "ok", text: ix.status === "in_progress" ? "No failures so far." : "No failures." }));
    }
    return section("failures", "Failures (" + items.filter(function (i) { return i.classList.contains("failure"); }).length + ")", items);
  }

  function lastLines(text, n) {
    var lines = text.replace(/\n$/, "").split("\n");
    return lines.slice(Math.max(0, lines.length - n)).join("\n");
  }

  function problems(ix) {
    var list = (ix.problems || []).slice();
    ix.jobs.forEach(function (row) {
      var job = state.jobs[row.id];
      if (job && job.missing) list.push("[test:" + row.name + "] its data file " + row.file + " is missing");
    });
    if (list.length === 0) return null;
    return section("problems", "What is missing (" + list.length + ")", list.map(function (p) {
      return el("div", { class: "problem", text: p });
    }));
  }

  function blocks(ix) {
    if (ix.jobs.length === 0) {
      return section("blocks", "Test blocks", [el("p", { class: "muted", text: "No test task ran (yet)." })]);
    }
    var rows = [];
    ix.jobs.forEach(function (row) {
      var c = row.counts;
      rows.push(el("tr", { "data-job": row.name }, [
        td(row.name), td(row.pool), td(badge(row.outcome)),
        td(row.signal ? "signal " + row.signal : row.return_code, "num"), td(dur(row.duration_ms), "num"),
        td(c ? c.tests : "—", "num"), td(c ? c.passed : "", "num"), td(c ? c.failures : "", "num"),
        td(c ? c.errors : "", "num"), td(c ? c.skipped : "", "num"),
        td(el("span", null, [fileLink(row.log, "log", "log"), " ", row.junit ? fileLink(row.junit, "xml", "junit") : null]))
      ]));
      var job = state.jobs[row.id];
      if (job && job.cases && job.cases.length) {
        var d = keepOpen(el("details", null, [el("summary", { text: job.cases.length + " test cases" })]), "cases-" + row.id);
        var fill = function () {
          if (d.querySelector("table")) return;
          d.appendChild(table(["", "class", "name", { label: "time", num: true }, "message"], job.cases.map(function (k) {
            return el("tr", null, [td(badge(k.s)), td(k.c), td(k.n), td(k.t.toFixed(3), "num"), td(k.m)]);
          })));
        };
        d.addEventListener("toggle", fill);
        if (d.open) fill();
        rows.push(el("tr", null, [el("td", { colspan: "11" }, [d])]));
      } else if (row.junit_warning) {
        rows.push(el("tr", null, [el("td", { colspan: "11", class: "muted", text: row.junit_warning })]));
      }
    });
    return section("blocks", "Test blocks (" + ix.jobs.length + " tasks)", [table(
      ["test block", "pool", "outcome", { label: "exit", num: true }, { label: "duration", num: true },
        { label: "tests", num: true }, { label: "pass", num: true }, { label: "fail", num: true },
        { label: "error", num: true }, { label: "skip", num: true }, "files"], rows)]);
  }

  function steps(id, title, list, empty) {
    if (list.length === 0) return section(id, title, [el("p", { class: "muted", text: empty })]);
    return section(id, title, [table(["name", "status", { label: "duration", num: true }, "detail"], list.map(function (s) {
      var detail = [];
      if (s.error) detail.push(el("pre", { text: s.error }));
      s.facts.forEach(function (f) { detail.push(el("div", { class: "mono", text: f })); });
      if (s.outputs.length) {
        detail.push(keepOpen(el("details", null, [el("summary", { text: s.outputs.length + " file(s) written" })].concat(
          s.outputs.map(function (o) { return el("div", null, [fileLink(o, o.path, "output")]); }))), id + "-" + s.name));
      }
      // A stage the run left out has no duration; its reason is what the row says.
      var performed = s.status === "success" || s.status === "fail";
      if (s.reason) detail.unshift(el("div", { class: "reason", "data-reason": "", text: s.reason }));
      if (s.status === "running") detail.push(el("div", { class: "muted", text: "under way" }));
      if (s.status === "pending") detail.push(el("div", { class: "muted", text: "not reached yet" }));
      return el("tr", { "data-step": s.name, "data-status": s.status, class: performed ? "" : "left-out" },
        [td(s.name), td(badge(s.status)), td(performed ? dur(s.duration_ms) : "—", "num"), el("td", null, detail)]);
    }))]);
  }

  function timeline(ix) {
    var total = Math.max(ix.duration_ms, 1);
    ix.jobs.forEach(function (j) { total = Math.max(total, j.end_ms); });
    var jobs = ix.jobs.slice().sort(function (a, b) { return a.start_ms - b.start_ms; });
    // Lanes: the earliest free one, so the rows show how many tasks ran at once.
    var laneEnds = [];
    var placed = jobs.map(function (j) {
      var lane = laneEnds.findIndex(function (end) { return end <= j.start_ms; });
      if (lane < 0) { lane = laneEnds.length; laneEnds.push(0); }
      laneEnds[lane] = j.end_ms;
      return { job: j, lane: lane };
    });
    var W = 1000, left = 90, laneH = Math.max(4, Math.min(16, Math.floor(240 / Math.max(1, laneEnds.length))));
    var stageY = 16, lanesY = stageY + 22, H = lanesY + laneEnds.length * laneH + 24;
    var x = function (ms) { return left + (W - left - 10) * ms / total; };
    var NS = "http://www.w3.org/2000/svg";
    function s(tag, attrs, text) {
      var e = document.createElementNS(NS, tag);
      Object.keys(attrs).forEach(function (k) { e.setAttribute(k, attrs[k]); });
      if (text !== undefined) { var t = document.createElementNS(NS, "title"); t.textContent = text; e.appendChild(t); }
      return e;
    }
    var svg = s("svg", { viewBox: "0 0 " + W + " " + H, width: "100%", role: "img", "aria-label": "timeline" });
    var colour = { success: "#1f7a3a", fail: "#b42318", fail_ignored: "#6b7280", skipped: "#9ca3af" };
    var label = function (y, text) { var t = s("text", { x: 4, y: y }); t.textContent = text; svg.appendChild(t); };
    label(stageY + 10, "stages");
    ix.stages.filter(function (st) { return st.status === "success" || st.status === "fail"; }).forEach(function (st) {
      svg.appendChild(s("rect", { x: x(st.start_ms), y: stageY, width: Math.max(1, x(st.start_ms + st.duration_ms) - x(st.start_ms)), height: 14, fill: colour[st.status] || "#1d4ed8", opacity: 0.6 },
        st.name + ": " + st.status + ", " + dur(st.duration_ms)));
    });
    label(lanesY + 10, "tasks (" + laneEnds.length + " at most)");
    placed.forEach(function (p) {
      var j = p.job;
      svg.appendChild(s("rect", { x: x(j.start_ms), y: lanesY + p.lane * laneH, width: Math.max(1, x(j.end_ms) - x(j.start_ms)), height: laneH - 1, fill: colour[j.outcome] || "#1d4ed8", "data-task": j.name },
        j.name + " (" + j.pool + "): " + j.outcome + ", " + dur(j.duration_ms)));
    });
    var axis = s("text", { x: left, y: H - 6 }); axis.textContent = "0"; svg.appendChild(axis);
    var end = s("text", { x: W - 10, y: H - 6, "text-anchor": "end" }); end.textContent = dur(total); svg.appendChild(end);
    return section("timeline", "Timeline (parallelism over time; " + ix.n_proc + " CPUs)", [svg]);
  }

  function deployed(ix) {
    if (ix.deployed.length === 0) {
      var stage = ix.stages.filter(function (s) { return s.name === "deploy"; })[0];
      var text = !stage ? "Nothing was deployed: the record has no deploy stage."
        : stage.status === "success" || stage.status === "fail" ? "The deploy stage deployed nothing."
        : "Nothing was deployed: the deploy stage was " + stage.status.replace("_", " ") + (stage.reason ? " (" + stage.reason + ")." : ".");
      return section("deployed", "Deployed", [el("p", { class: "muted", text: text })]);
    }
    return section("deployed", "Deployed", [table(["target", "what", "where"], ix.deployed.map(function (d) {
      return el("tr", null, [td(d.target), td(d.subject, "mono"), td(d.location, "mono")]);
    }))]);
  }

  function logs(ix) {
    if (ix.jobs.length === 0) return null;
    var items = ix.jobs.map(function (row) {
      var job = state.jobs[row.id] || {};
      var kids = [el("summary", null, [row.name + " (" + row.pool + ") ", badge(row.outcome), " ", fileLink(row.log, "full log", "log")])];
      if (job.log_tail) kids.push(el("pre", { text: job.log_tail }));
      else kids.push(el("p", { class: "muted", text: "Only the logs of failed tasks are shown here; open the full log." }));
      return keepOpen(el("details", null, kids), "log-" + row.id);
    });
    return section("logs", "Logs", items);
  }

  function render() {
    var main = document.getElementById("main");
    if (!state.index) {
      if (state.failedIndex) {
        main.textContent = "";
        main.appendChild(el("div", { class: "problem", text: "data/index.js could not be loaded: this report directory has no run data. Render it with `stasis report RUN.json`." }));
        document.body.setAttribute("data-state", "no-data");
      }
      return;
    }
    var ix = state.index;
    header(ix);
    var scroll = window.scrollY;
    main.textContent = "";
    [failures(ix), problems(ix), blocks(ix),
      steps("stages", "Stages", ix.stages, "No stage has finished yet."),
      timeline(ix),
      steps("clones", "Sources", ix.clones, "No repository was cloned."),
      deployed(ix), logs(ix),
      el("p", { class: "muted", text: "Generated " + ix.generated + " from the run record." })
    ].forEach(function (s) { if (s) main.appendChild(s); });
    window.scrollTo(0, scroll);
    document.body.setAttribute("data-state", ix.live ? "live" : "rendered");
    document.dispatchEvent(new CustomEvent("stasis:rendered"));
    clearTimeout(state.timer);
    if (ix.live) state.timer = setTimeout(loadIndex, POLL_MS);
  }

  loadIndex();
})();
