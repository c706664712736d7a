// The status tests' checker (tests/pages/test_browser_status.py, tests/platform/test_platform_status_browser.py):
// installed in every document of a Space page, it reads the page's status elements every 50 ms and records in
// sessionStorage each contradiction (badges that disagree, the sleeping banner at the wrong stage, a step spinning
// at a stage it is not, "queued", "building" or "sleep" said at another stage, "Your Space is ready") and the
// sequence of stages it saw.
(() => {
  const CURRENT = {BUILDING: ["queued", "building"], RUNNING_BUILDING: ["queued", "building"],
                   APP_STARTING: ["starting"], RUNNING_APP_STARTING: ["starting"]};
  const visible = (el) => !!(el && el.offsetParent !== null && el.getClientRects().length);
  const say = (what) => {
    const list = JSON.parse(sessionStorage.getItem("violations") || "[]");
    if (list.length < 50) { list.push(location.pathname + ": " + what); }
    sessionStorage.setItem("violations", JSON.stringify(list));
  };
  const saw = (stage) => {
    const list = JSON.parse(sessionStorage.getItem("stages") || "[]");
    if (list[list.length - 1] !== stage) { list.push(stage); sessionStorage.setItem("stages", JSON.stringify(list)); }
  };
  const check = () => {
    const badges = [...document.querySelectorAll("[data-stage-badge]")];
    if (!badges.length) { return; }
    const stages = new Set(badges.map((b) => b.getAttribute("data-stage")));
    if (stages.size > 1) { say("badges disagree: " + [...stages]); }
    const stage = badges[0].getAttribute("data-stage");
    saw(stage);
    const banner = document.querySelector("#sleep-notice");
    const asleep = stage === "SLEEPING" || stage === "STOPPED";
    if (visible(banner) !== asleep) { say("sleeping banner " + (asleep ? "missing" : "shown") + " at " + stage); }
    if (visible(banner) && (banner.innerText.toLowerCase().match(/wake/g) || []).length !== 1) {
      say("banner says wake " + banner.innerText);
    }
    const current = [...document.querySelectorAll("[data-status-stepper] li[data-state=current]")].filter(visible)
      .map((li) => li.getAttribute("data-step-name"));
    const allowed = CURRENT[stage] || [];
    current.forEach((c) => { if (allowed.indexOf(c) < 0) { say("step " + c + " spins at " + stage); } });
    if (allowed.length && !current.length) { say("no step under way at " + stage); }
    const failed = [...document.querySelectorAll("[data-status-stepper] li[data-state=failed]")].filter(visible);
    if (failed.length && !/ERROR|NO_APP_FILE/.test(stage)) { say("a failed step at " + stage); }
    const words = [...document.querySelectorAll("[data-status-headline], [data-stage-message]")].filter(visible)
      .map((n) => n.innerText).join(" | ");
    if (/Your Space is ready/.test(document.body.innerText)) { say("'Your Space is ready'"); }
    if (/queued|Waiting for a builder/i.test(words) && !/BUILDING/.test(stage)) { say("'queued' at " + stage + ": " + words); }
    if (/Building|building/.test(words) && !/BUILDING/.test(stage)) { say("'building' at " + stage + ": " + words); }
    if (/sleep/i.test(words) && !asleep) { say("'sleep' at " + stage + ": " + words); }
  };
  setInterval(check, 50);
})();
