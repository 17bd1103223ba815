// The Manifold dashboard (docs/dashboard.md). Plain script, no build step: state and metrics come
// as server-sent events from /events, log lines from /events/logs. Everything that comes from apps
// (names, log lines, crash reasons) goes into the page as text (textContent), never as markup.
'use strict';
(function () {
  var COLORS = ['#2f7ed8', '#e4572e', '#17a35a', '#a05195', '#f0a202', '#5f6b7a', '#00a6a6', '#c3423f'];
  var HOUR = 3600;
  var LOG_MAX = 500;

  var appsEl = document.getElementById('apps');
  var statusEl = document.getElementById('status');
  var logApp = document.getElementById('log-app');
  var logSource = document.getElementById('log-source');
  var logDyno = document.getElementById('log-dyno');
  var logPause = document.getElementById('log-pause');
  var logLines = document.getElementById('log-lines');

  /** app name → { section, parts: {formation, dynos, releases, traffic, memory} } */
  var sections = new Map();
  /** chart key → { plot, el } */
  var charts = new Map();
  var lastState = null;
  var lastMetrics = null;

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  }

  function row(cells, cls) {
    var tr = el('tr', cls);
    cells.forEach(function (c) {
      tr.appendChild(c instanceof Node ? wrapCell(c) : el('td', null, c));
    });
    return tr;
  }

  function wrapCell(node) {
    var td = el('td');
    td.appendChild(node);
    return td;
  }

  function table(head, rows, cls) {
    var t = el('table', cls);
    var th = el('tr');
    head.forEach(function (h) { th.appendChild(el('th', null, h)); });
    var thead = el('thead');
    thead.appendChild(th);
    t.appendChild(thead);
    var tb = el('tbody');
    rows.forEach(function (r) { tb.appendChild(r); });
    t.appendChild(tb);
    return t;
  }

  function ago(ms) {
    var s = Math.max(0, Math.round(ms / 1000));
    if (s < 60) return s + 's';
    if (s < 3600) return Math.floor(s / 60) + 'm ' + (s % 60) + 's';
    if (s < 86400) return Math.floor(s / 3600) + 'h ' + Math.floor((s % 3600) / 60) + 'm';
    return Math.floor(s / 86400) + 'd ' + Math.floor((s % 86400) / 3600) + 'h';
  }

  function when(ms) {
    var d = new Date(ms);
    return d.toLocaleString();
  }

  function bytes(n) {
    if (n === null || n === undefined) return '';
    if (n < 1024 * 1024) return (n / 1024).toFixed(0) + ' KB';
    if (n < 1024 * 1024 * 1024) return (n / 1024 / 1024).toFixed(1) + ' MB';
    return (n / 1024 / 1024 / 1024).toFixed(2) + ' GB';
  }

  // ---- state: apps, formation, dynos, releases ----

  function sectionOf(name) {
    var s = sections.get(name);
    if (s) return s;
    var section = el('section', 'app panel');
    section.dataset.app = name;
    var head = el('div', 'app-head');
    head.appendChild(el('h2', null, name));
    var link = el('a', 'url');
    head.appendChild(link);
    var release = el('span', 'release');
    head.appendChild(release);
    section.appendChild(head);
    var formation = el('p', 'formation');
    section.appendChild(formation);
    var dynos = el('div', 'dynos');
    section.appendChild(dynos);
    var traffic = el('div', 'charts traffic');
    section.appendChild(traffic);
    var memory = el('div', 'charts memory');
    section.appendChild(memory);
    var releasesBox = el('details', 'releases');
    releasesBox.appendChild(el('summary', null, 'Releases'));
    var releases = el('div');
    releasesBox.appendChild(releases);
    section.appendChild(releasesBox);
    s = { section: section, link: link, release: release, formation: formation, dynos: dynos, traffic: traffic, memory: memory, releases: releases };
    sections.set(name, s);
    return s;
  }

  function renderApp(app) {
    var s = sectionOf(app.name);
    // only http(s) addresses become links; the daemon builds them, this is belt and braces
    if (/^https?:\/\//.test(app.url)) s.link.href = app.url;
    s.link.textContent = app.url;
    s.release.textContent = 'v' + app.release;
    s.formation.textContent = app.formation.length
      ? 'Formation: ' + app.formation.map(function (f) { return f.type + '=' + f.quantity + ':' + f.size; }).join('  ')
      : 'Nothing deployed';
    var now = Date.now();
    var rows = app.dynos.map(function (d) {
      var state = el('span', 'state state-' + d.state, d.state);
      var up = el('span', 'uptime', ago(now - d.since));
      up.dataset.since = String(d.since);
      var reason = d.reason ? d.reason + (d.restartAt ? ' (restart in ' + ago(d.restartAt - now) + ')' : '') : '';
      var tr = row([d.name, state, d.host, up, String(d.crashes), reason, 'v' + d.release, d.size], 'dyno');
      tr.dataset.dyno = d.name;
      tr.dataset.state = d.state;
      return tr;
    });
    s.dynos.replaceChildren(rows.length ? table(['Dyno', 'State', 'Host', 'In state for', 'Crashes', 'Crash reason', 'Release', 'Size'], rows, 'dyno-table') : el('p', 'empty', 'No dynos'));
    var rel = app.releases.map(function (r) {
      // the release's recorded author; '-' for one stored before authors were kept
      var tr = row(['v' + r.version + (r.current ? ' (current)' : ''), r.description, r.by || '-', when(r.createdAt)], 'rel');
      return tr;
    });
    s.releases.replaceChildren(table(['Version', 'What', 'Who', 'When'], rel, 'release-table'));
    return s.section;
  }

  function renderState(state) {
    lastState = state;
    var names = state.apps.map(function (a) { return a.name; });
    sections.forEach(function (s, name) {
      if (names.indexOf(name) < 0) {
        dropCharts(name + '/');
        s.section.remove();
        sections.delete(name);
      }
    });
    if (state.apps.length === 0) {
      appsEl.replaceChildren(el('p', 'empty', 'No apps yet: manifold apps:create NAME, then manifold deploy DIR -a NAME'));
    } else {
      var nodes = state.apps.map(renderApp);
      // keep the order without moving sections that are in place (moving one resets its charts' layout)
      var existing = Array.prototype.slice.call(appsEl.children);
      if (existing.length !== nodes.length || nodes.some(function (n, i) { return existing[i] !== n; })) appsEl.replaceChildren.apply(appsEl, nodes);
    }
    updateLogApps(names);
    if (lastMetrics) renderMetrics(lastMetrics);
  }

  // uptimes move every second without a message from the daemon
  setInterval(function () {
    var now = Date.now();
    document.querySelectorAll('.uptime').forEach(function (e) { e.textContent = ago(now - Number(e.dataset.since)); });
  }, 1000);

  // ---- charts ----

  function dropCharts(prefix) {
    charts.forEach(function (c, key) {
      if (key.indexOf(prefix) === 0) {
        c.plot.destroy();
        c.box.remove();
        charts.delete(key);
      }
    });
  }

  /**
   * The last hour, or less while the data is younger (at least 2 minutes): a daemon started a minute
   * ago shows its minute, not a sliver at the right edge of an empty hour.
   */
  function xRange(u, dataMin) {
    var now = Date.now() / 1000;
    var lo = now - 120;
    if (dataMin !== null && dataMin !== undefined && dataMin < lo) lo = Math.max(dataMin, now - HOUR);
    // a little room on the right, so the newest point is not cut in half
    return [lo, now + (now - lo) * 0.02];
  }

  function chart(key, parent, title, series, yFmt) {
    var c = charts.get(key);
    if (c) return c;
    var box = el('div', 'chart');
    box.dataset.chart = key;
    box.appendChild(el('h3', null, title));
    var target = el('div');
    box.appendChild(target);
    parent.appendChild(box);
    var opts = {
      width: Math.max(260, Math.min(460, parent.clientWidth / 3 - 16)),
      height: 150,
      scales: { x: { time: true, range: xRange }, y: { range: function (u, min, max) { return [0, max > 0 ? max * 1.1 : 1]; } } },
      axes: [{}, { size: 72, values: function (u, vals) { return vals.map(yFmt); } }],
      legend: { live: false },
      cursor: { drag: { x: false, y: false } },
      series: [{}].concat(series.map(function (s, i) {
        // uPlot draws the points themselves only while they are sparse (a fresh series)
        return { label: s.label, stroke: s.color || COLORS[i % COLORS.length], width: s.width || 1.5, dash: s.dash, spanGaps: false };
      })),
    };
    var data = [[]].concat(series.map(function () { return []; }));
    c = { plot: new uPlot(opts, data, target), box: box, labels: series.map(function (s) { return s.label; }) };
    charts.set(key, c);
    return c;
  }

  function setData(c, data) {
    c.plot.setData(data);
    // how many samples the chart holds, for people and for the tests
    var n = 0;
    for (var i = 1; i < data.length; i++) data[i].forEach(function (v) { if (v !== null && v !== undefined) n++; });
    c.box.dataset.points = String(data[0].length ? n : 0);
  }

  /** Tick labels: whole numbers, one decimal for small fractions (0.5 req/s). */
  function num(v) {
    if (v === null) return '';
    return Math.abs(v) < 10 && v % 1 !== 0 ? v.toFixed(1) : v.toFixed(0);
  }

  function renderTraffic(name, s, tr) {
    var t = tr || { t: [], rps: [], p50: [], p95: [], p99: [], codes: {} };
    var thr = chart(name + '/rps', s.traffic, 'Throughput (req/s)', [{ label: 'req/s' }], num);
    setData(thr, [t.t, t.rps]);
    var lat = chart(name + '/latency', s.traffic, 'Service time (ms)', [{ label: 'p50' }, { label: 'p95' }, { label: 'p99' }], num);
    setData(lat, [t.t, t.p50, t.p95, t.p99]);
    var codes = Object.keys(t.codes).sort();
    var key = name + '/errors';
    var err = charts.get(key);
    // the H-codes seen decide the series: a new one rebuilds the chart
    if (err && err.labels.join(',') !== (codes.length ? codes.join(',') : 'none')) dropCharts(key);
    err = chart(key, s.traffic, 'Errors by H-code (per bucket)', (codes.length ? codes : ['none']).map(function (c) { return { label: c }; }), num);
    setData(err, [t.t].concat(codes.length ? codes.map(function (c) { return t.codes[c]; }) : [t.t.map(function () { return 0; })]));
  }

  function renderMemory(name, s, list) {
    // shown before the charts are made: a hidden box has no width to size them by
    s.memory.classList.toggle('none', list.length === 0);
    var seen = {};
    list.forEach(function (m) {
      var key = name + '/mem/' + m.dyno;
      seen[key] = true;
      var c = chart(key, s.memory, 'Memory ' + m.dyno + ' (quota ' + bytes(m.quota) + ', ' + m.source + ')', [{ label: 'total' }, { label: 'rss' }, { label: 'quota', color: '#c3423f', dash: [6, 4], width: 1 }], bytes);
      setData(c, [m.t, m.total, m.rss, m.t.map(function () { return m.quota; })]);
    });
    charts.forEach(function (c, key) {
      if (key.indexOf(name + '/mem/') === 0 && !seen[key]) {
        c.plot.destroy();
        c.box.remove();
        charts.delete(key);
      }
    });
  }

  function renderMetrics(m) {
    lastMetrics = m;
    if (typeof uPlot === 'undefined') return;
    sections.forEach(function (s, name) {
      renderTraffic(name, s, m.traffic[name]);
      renderMemory(name, s, m.memory.filter(function (x) { return x.app === name; }));
    });
  }

  // the x range ends now: move it along even when no new data comes
  setInterval(function () {
    charts.forEach(function (c) { c.plot.setData(c.plot.data); });
  }, 10000);

  // ---- live state ----

  function connectState() {
    var es = new EventSource('/events');
    es.addEventListener('open', function () { statusEl.textContent = 'live'; statusEl.className = 'status live'; });
    es.addEventListener('error', function () { statusEl.textContent = 'reconnecting…'; statusEl.className = 'status down'; });
    es.addEventListener('state', function (e) { renderState(JSON.parse(e.data)); });
    es.addEventListener('metrics', function (e) { renderMetrics(JSON.parse(e.data)); });
  }

  // ---- logs ----

  var logStream = null;

  function updateLogApps(names) {
    var current = Array.prototype.map.call(logApp.options, function (o) { return o.value; });
    if (current.join('\n') === names.join('\n')) return;
    var chosen = logApp.value;
    logApp.replaceChildren.apply(logApp, names.map(function (n) {
      var o = el('option', null, n);
      o.value = n;
      return o;
    }));
    if (names.indexOf(chosen) >= 0) logApp.value = chosen;
    if (logApp.value !== chosen) openLogs();
  }

  function addLine(data) {
    if (logPause.checked) return;
    var li = el('li');
    var l;
    try {
      l = JSON.parse(data);
    } catch (e) {
      l = null;
    }
    if (l && typeof l === 'object') {
      li.className = 'src-' + (l.source === 'app' ? 'app' : 'manifold');
      li.appendChild(el('span', 'time', l.time.slice(11, 23) + ' '));
      li.appendChild(el('span', 'who', l.source + '[' + l.dyno + ']: '));
      li.appendChild(el('span', 'msg', l.message));
    } else {
      // the daemon's own notices (lines dropped for a slow reader) come as plain text
      li.className = 'notice';
      li.textContent = data;
    }
    var stick = logLines.scrollTop + logLines.clientHeight >= logLines.scrollHeight - 4;
    logLines.appendChild(li);
    while (logLines.childElementCount > LOG_MAX) logLines.firstElementChild.remove();
    if (stick) logLines.scrollTop = logLines.scrollHeight;
  }

  function openLogs() {
    if (logStream) logStream.close();
    logStream = null;
    logLines.replaceChildren();
    if (!logApp.value) return;
    var q = new URLSearchParams({ app: logApp.value, source: logSource.value, dyno: logDyno.value.trim(), n: '200' });
    logStream = new EventSource('/events/logs?' + q.toString());
    logStream.addEventListener('reset', function () { logLines.replaceChildren(); });
    logStream.addEventListener('message', function (e) { addLine(e.data); });
  }

  logApp.addEventListener('change', openLogs);
  logSource.addEventListener('change', openLogs);
  logDyno.addEventListener('change', openLogs);

  window.addEventListener('resize', function () {
    charts.forEach(function (c) {
      var w = Math.max(260, Math.min(460, c.box.parentNode.clientWidth / 3 - 16));
      c.plot.setSize({ width: w, height: 150 });
    });
  });

  connectState();
})();
