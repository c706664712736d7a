// spaces: the live parts of the pages (status stream, SSE logs, likes, dialogs). No framework, no build step.
// Everything here is an enhancement: each form also works without JavaScript.
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };

  // ---- status: every badge, banner, stepper and message of a Space page, from its live stage stream ------------
  // (GET /api/spaces/{id}/status, spaces.domain.status): the page computes no status of its own
  var show = function (el, on) { if (on) { el.removeAttribute("hidden"); } else { el.setAttribute("hidden", ""); } };
  var STEPS = ["queued", "building", "starting", "running"];

  function stepState(st, name) {  // the same rule as spaces.domain.status.step_states
    var at = STEPS.indexOf(st.step), i = STEPS.indexOf(name);
    if (i < at || (i === at && !st.busy && !st.failed)) { return "done"; }
    if (i === at) { return st.failed ? "failed" : "current"; }
    return "todo";
  }

  function paintBadge(b, st) {
    b.textContent = st.label;
    b.className = "badge badge-" + st.tone;
    b.setAttribute("data-stage", st.stage);
    b.setAttribute("title", st.stage);
  }

  function renderStatus(st) {
    $$("[data-stage-badge]").forEach(function (b) { paintBadge(b, st); });
    $$("[data-status-headline]").forEach(function (n) { n.textContent = st.headline; });
    $$("[data-stage-message]").forEach(function (n) { n.textContent = st.message || ""; });
    $$("[data-status-phase]").forEach(function (n) { n.textContent = st.phase || ""; });
    $$("[data-status-stepper] [data-step-name]").forEach(function (li) {
      var state = stepState(st, li.getAttribute("data-step-name"));
      li.setAttribute("data-state", state);
      if (state === "current") { li.setAttribute("aria-current", "step"); } else { li.removeAttribute("aria-current"); }
    });
    $$("[data-status-banner]").forEach(function (n) { show(n, !!st.banner); });
    $$("[data-status-strip]").forEach(function (n) { show(n, st.busy); });
  }

  var watch = $("[data-status-url]");
  if (watch && window.EventSource) {
    var body = $("[data-status-view]");  // the App tab: its body is drawn for one view (see below)
    var stream = new EventSource(watch.getAttribute("data-status-url"));
    stream.addEventListener("status", function (ev) {
      var st;
      try { st = JSON.parse(ev.data); } catch (e) { return; }
      // the App tab's body (the app, the stepper, the error, paused) is the server's to draw: a new one reloads
      if (body && st.view !== body.getAttribute("data-status-view")) { stream.close(); location.reload(); return; }
      renderStatus(st);
      watch.setAttribute("data-stage", st.stage);
    });
    stream.addEventListener("gone", function () { stream.close(); });
  }

  // the list pages' cards: the same status by Space, one stream per MANY_MAX cards (the most one stream watches,
  // spaces.hub.api.status.MANY_MAX: it keeps the URL short), so every card of a page follows (a page holds at most
  // 200: two streams)
  var MANY_MAX = 100;
  var cards = {};
  $$("[data-card-stage]").forEach(function (b) {
    var id = b.getAttribute("data-card-stage");
    (cards[id] = cards[id] || []).push(b);
  });
  var listed = Object.keys(cards);
  var paintCards = function (ev) {
    var st;
    try { st = JSON.parse(ev.data); } catch (e) { return; }
    (cards[st.id] || []).forEach(function (b) { paintBadge(b, st); });
  };
  for (var at = 0; window.EventSource && at < listed.length; at += MANY_MAX) {
    var batch = listed.slice(at, at + MANY_MAX);
    new EventSource("/api/status/spaces?ids=" + batch.map(encodeURIComponent).join(","))
      .addEventListener("status", paintCards);
  }

  // ---- logs over SSE -------------------------------------------------------------------------------------------
  $$("[data-logs-url]").forEach(function (pane) {
    var out = $("pre", pane);
    var status = $(".log-status", pane);
    var es = new EventSource(pane.getAttribute("data-logs-url"));
    var nearBottom = function () { return out.scrollHeight - out.scrollTop - out.clientHeight < 40; };
    es.onopen = function () {
      out.textContent = "";  // every (re)connection replays the stored lines from the start
      pane.setAttribute("data-state", "live");
      status.textContent = "live";
    };
    es.onmessage = function (ev) {
      if (!ev.data) { return; }  // keep-alive
      var item;
      try { item = JSON.parse(ev.data); } catch (e) { return; }
      var stick = nearBottom();
      var line = document.createElement("span");
      var ts = document.createElement("span");
      ts.className = "ts";
      ts.textContent = (item.timestamp || "").replace("T", " ").slice(11, 19);
      line.appendChild(ts);
      line.appendChild(document.createTextNode(item.data || ""));
      out.appendChild(line);
      pane.setAttribute("data-lines", String(out.childNodes.length));
      if (stick) { out.scrollTop = out.scrollHeight; }
    };
    es.addEventListener("end", function () {  // the build is over: no reconnection, no replay
      es.close();
      pane.setAttribute("data-state", "done");
      status.textContent = "finished";
    });
    es.onerror = function () {
      pane.setAttribute("data-state", "error");
      status.textContent = "reconnecting…";
    };
  });

  // ---- likes -----------------------------------------------------------------------------------------------------
  $$("form[data-like]").forEach(function (form) {
    form.addEventListener("submit", function (ev) {
      ev.preventDefault();
      fetch(form.action, { method: "POST", body: new FormData(form), credentials: "same-origin",
                           headers: { accept: "application/json" } })
        .then(function (r) { if (!r.ok) { throw new Error(String(r.status)); } return r.json(); })
        .then(function (res) {
          var btn = $("button", form);
          btn.setAttribute("aria-pressed", res.liked ? "true" : "false");
          $("[data-like-count]", form).textContent = String(res.likes);
          $("input[name=like]", form).value = res.liked ? "0" : "1";
        })
        .catch(function () { form.submit(); });
    });
  });

  // ---- dialogs, confirmations, copy buttons, filters ------------------------------------------------------------
  $$("[data-open-dialog]").forEach(function (btn) {
    btn.addEventListener("click", function (ev) {
      var dialog = document.getElementById(btn.getAttribute("data-open-dialog"));
      if (dialog && typeof dialog.showModal === "function") { ev.preventDefault(); dialog.showModal(); }
    });
  });
  $$("[data-close-dialog]").forEach(function (btn) {
    btn.addEventListener("click", function () { btn.closest("dialog").close(); });
  });
  $$("[data-confirm-value]").forEach(function (input) {
    var button = $("[data-confirm-button]", input.form);
    var accepted = [input.getAttribute("data-confirm-value"), input.getAttribute("data-confirm-alt")];
    var check = function () { button.disabled = accepted.indexOf(input.value.trim()) < 0; };
    input.addEventListener("input", check);
    check();
  });
  $$("[data-copy]").forEach(function (btn) {
    btn.addEventListener("click", function () {
      var text = (document.getElementById(btn.getAttribute("data-copy")) || {}).textContent || "";
      if (navigator.clipboard) { navigator.clipboard.writeText(text.trim()); }
      var label = btn.textContent;
      btn.textContent = "Copied";
      setTimeout(function () { btn.textContent = label; }, 1500);
    });
  });
  $$("form[data-autosubmit] select").forEach(function (sel) {
    sel.addEventListener("change", function () { sel.form.submit(); });
  });
  // New Space: a template decides the SDK
  var tpl = $("select[name=template]");
  if (tpl) {
    var syncSdk = function () {
      var opt = tpl.options[tpl.selectedIndex];
      var sdk = opt && opt.getAttribute("data-sdk");
      $$("input[name=sdk]").forEach(function (r) {
        // data-why: this server cannot run that SDK now (no Docker engine); it stays off whatever is chosen
        r.disabled = r.hasAttribute("data-why") || (!!sdk && r.value !== sdk);
        if (sdk && r.value === sdk) { r.checked = true; }
      });
    };
    tpl.addEventListener("change", syncSdk);
    syncSdk();
  }
})();
