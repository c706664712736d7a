// spaces: the live parts of the pages (stage polling, SSE logs, likes, dialogs). No framework, no build step.
// Everything here is an enhancement: each form also works without JavaScript.
(function () {
  "use strict";
  var $ = function (sel, root) { return (root || document).querySelector(sel); };
  var $$ = function (sel, root) { return Array.prototype.slice.call((root || document).querySelectorAll(sel)); };
  var stageTable = {};
  try { stageTable = JSON.parse(($("#stage-table") || {}).textContent || "{}"); } catch (e) { /* keep empty */ }

  function setBadge(el, stage) {
    var entry = stageTable[stage] || [stage, "idle"];
    el.textContent = entry[0];
    el.className = "badge badge-" + entry[1];
    el.setAttribute("data-stage", stage);
  }

  // ---- live stage: poll the runtime API (cookie-authenticated GET) --------------------------------------------
  var watch = $("[data-runtime-url]");
  if (watch) {
    var url = watch.getAttribute("data-runtime-url");
    var current = watch.getAttribute("data-stage");
    var reload = watch.getAttribute("data-reload") === "1";
    var serving = (watch.getAttribute("data-serving") || "").split(" ");
    // what the App tab shows depends only on this: the app (any serving stage) or a stage panel
    var view = function (stage) { return serving.indexOf(stage) >= 0 ? "app" : stage; };
    var busy = ["BUILDING", "APP_STARTING", "RUNNING_BUILDING", "RUNNING_APP_STARTING"];
    var tick = function () {
      if (document.hidden) { return setTimeout(tick, 4000); }
      fetch(url, { credentials: "same-origin", headers: { accept: "application/json" } })
        .then(function (r) { return r.ok ? r.json() : null; })
        .then(function (rt) {
          if (rt && rt.stage) {
            $$("[data-stage-badge]").forEach(function (b) { setBadge(b, rt.stage); });
            $$("[data-stage-message]").forEach(function (m) { m.textContent = rt.message || ""; });
            // the app is the same view asleep or awake (no reload): the sleeping banner goes once it is awake
            if (rt.stage !== "SLEEPING" && rt.stage !== "STOPPED") {
              $$("[data-while-asleep]").forEach(function (n) { n.parentNode.removeChild(n); });
            }
            if (reload && view(rt.stage) !== view(current)) { location.reload(); return; }
            current = rt.stage;
          }
          setTimeout(tick, busy.indexOf(current) >= 0 ? 2000 : 8000);
        })
        .catch(function () { setTimeout(tick, 8000); });
    };
    setTimeout(tick, 1500);
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
