// Drover dashboard: the page's only script. Optional: every page works
// without it (forms post, links navigate); with it, pages update live.
//
// - One EventSource per tab follows the page named by <body data-live>;
//   each `patch` event replaces the innerHTML of the regions it names
//   (HTML rendered and escaped by the server).
// - A region holding ticked checkboxes is not replaced while they are
//   ticked (the person is choosing jobs); the newest HTML is applied once
//   they are all unticked.
// - <time data-ago> and [data-since] show relative times, refreshed here
//   rather than by the server, so unchanged regions stay unchanged.
// - Buttons with data-confirm / data-confirm-selected ask first.
'use strict';

(function () {
  var held = {};

  function relative(ms) {
    var s = Math.round(Math.abs(ms) / 1000);
    if (s < 60) return s + ' s';
    var m = Math.floor(s / 60);
    if (m < 60) return m + ' min ' + (s % 60) + ' s';
    var h = Math.floor(m / 60);
    if (h < 48) return h + ' h ' + (m % 60) + ' min';
    return Math.floor(h / 24) + ' d ' + (h % 24) + ' h';
  }

  function refreshTimes(root) {
    var now = Date.now();
    root.querySelectorAll('time[data-ago]').forEach(function (el) {
      var t = Date.parse(el.getAttribute('datetime'));
      if (isNaN(t)) return;
      var d = now - t;
      el.textContent = d >= 0 ? relative(d) + ' ago' : 'in ' + relative(d);
    });
    root.querySelectorAll('[data-since]').forEach(function (el) {
      var t = Date.parse(el.getAttribute('data-since'));
      if (!isNaN(t)) el.textContent = 'for ' + relative(Math.max(0, now - t));
    });
  }

  function selecting(region) {
    return region.querySelector('input[type=checkbox][name=id]:checked') !== null;
  }

  function apply(id, html) {
    var region = document.getElementById(id);
    if (!region) return;
    if (selecting(region)) {
      held[id] = html;
      region.setAttribute('data-stale', 'true');
      return;
    }
    delete held[id];
    region.removeAttribute('data-stale');
    region.innerHTML = html;
    refreshTimes(region);
  }

  function status(text) {
    var el = document.getElementById('live-status');
    if (el) el.textContent = text;
  }

  function follow(path) {
    var es = new EventSource('/ui/live?path=' + encodeURIComponent(path));
    es.addEventListener('open', function () { status('live'); });
    es.addEventListener('patch', function (e) {
      JSON.parse(e.data).forEach(function (p) { apply(p.id, p.html); });
      status('live');
    });
    es.addEventListener('live-error', function () { status('cannot reach Redis; retrying'); });
    es.addEventListener('live-ok', function () { status('live'); });
    es.addEventListener('signed-out', function () {
      es.close();
      window.location.href = '/login?expired=1&next=' + encodeURIComponent(path);
    });
    es.addEventListener('error', function () { status('reconnecting'); });
  }

  document.addEventListener('change', function (e) {
    var t = e.target;
    if (t.matches && t.matches('input[data-select-all]')) {
      var form = t.closest('form');
      form.querySelectorAll('input[type=checkbox][name=id]').forEach(function (c) { c.checked = t.checked; });
    }
    // Unticking the last box lets a held update in.
    var region = t.closest && t.closest('[id^=live-]');
    if (region && held[region.id] !== undefined && !selecting(region)) apply(region.id, held[region.id]);
  });

  document.addEventListener('click', function (e) {
    var b = e.target.closest && e.target.closest('button');
    if (!b) return;
    var ask = b.getAttribute('data-confirm');
    if (b.hasAttribute('data-confirm-selected')) {
      var n = b.form.querySelectorAll('input[type=checkbox][name=id]:checked').length;
      if (n === 0) { e.preventDefault(); window.alert('Select some jobs first.'); return; }
      ask = b.getAttribute('data-confirm-selected').replace('selected', n + (n === 1 ? ' job' : ' jobs'));
    }
    if (ask && !window.confirm(ask)) e.preventDefault();
  });

  document.addEventListener('DOMContentLoaded', function () {
    refreshTimes(document);
    setInterval(function () { refreshTimes(document); }, 5000);
    var path = document.body.getAttribute('data-live');
    if (path && window.EventSource) follow(path);
  });
})();
