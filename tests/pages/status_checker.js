// The status tests' checker (tests/pages/test_browser_status.py, tests/platform/test_platform_status_browser.py):
// installed in every document of a Space page, it reads the page's status elements every 50 ms and records in
// sessionStorage each contradiction (badges that disagree, the sleeping banner at the wrong stage, a step spinning
// at a stage it is not, "queued", "building" or "sleep" said at another stage, "Your Space is ready") and the
// sequence of stages it saw. In the App tab's frame, the proxy's waiting page (same markers) posts what it says
// to the page around it, which records a contradiction when the two disagree for longer than the two live feeds
// (the hub's stream, the waiting page's poll) take to catch up, FRAME_LAG_MS; "frames" lists what the frame said.
(() => {
  const FRAME_LAG_MS = 3000;
  const texts = (root, sel) => [...root.querySelectorAll(sel)].map((n) => n.innerText.trim());
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
  const inFrame = window.top !== window;
  let frame = null;  // {stage, label, headline, message, at}: the frame's last word
  let apartSince = 0;
  if (!inFrame) {
    window.addEventListener("message", (ev) => {
      const said = ev.data && ev.data.spacesFrameStatus;
      if (!said) { return; }
      frame = {...said, at: Date.now()};
      const list = JSON.parse(sessionStorage.getItem("frames") || "[]");
      const line = said.stage + " | " + said.label + " | " + said.headline + " | " + said.message;
      if (list[list.length - 1] !== line && list.length < 50) {
        list.push(line); sessionStorage.setItem("frames", JSON.stringify(list));
      }
    });
  }
  const frameCheck = () => {  // in the frame: say what this waiting page says, every tick
    const badge = document.querySelector("[data-stage-badge]");
    if (!badge) { return; }
    parent.postMessage({spacesFrameStatus: {stage: badge.getAttribute("data-stage"), label: badge.innerText.trim(),
      headline: texts(document, "[data-status-headline]")[0] || "",
      message: texts(document, "[data-stage-message]")[0] || ""}}, "*");
  };
  const compareFrame = (stage, badge) => {  // around the frame: does the page say the same?
    if (!frame || Date.now() - frame.at > 500 || !document.querySelector("#app-frame")) { apartSince = 0; return; }
    const shown = (sel) => [...document.querySelectorAll(sel)].filter(visible).map((n) => n.innerText.trim());
    const heads = shown("[data-status-headline]"), msgs = shown("[data-stage-message]");
    const same = frame.stage === stage && frame.label === badge.innerText.trim()
      && heads.includes(frame.headline) && msgs.includes(frame.message);
    if (same) { apartSince = 0; return; }
    apartSince = apartSince || Date.now();
    if (Date.now() - apartSince > FRAME_LAG_MS) {
      say("the frame says " + JSON.stringify([frame.stage, frame.label, frame.headline, frame.message]) +
          " while the page says " + JSON.stringify([stage, badge.innerText.trim(), heads, msgs]));
      apartSince = 0;
    }
  };
  const check = () => {
    // a document still being parsed has its badge but not yet the stepper below it: not a contradiction
    if (document.readyState === "loading") { return; }
    if (inFrame) { frameCheck(); return; }
    const badges = [...document.querySelectorAll("[data-stage-badge]")];
    if (!badges.length) { return; }
    const stages = new Set(badges.map((b) => b.getAttribute("data-stage")));
    if (stages.size > 1) { say("badges disagree: " + [...stages]); }
    const stage = badges[0].getAttribute("data-stage");
    saw(stage);
    const banner = document.querySelector("#sleep-notice");
    const asleep = stage === "SLEEPING" || stage === "STOPPED";
    if (visible(banner) !== asleep) { say("sleeping banner " + (asleep ? "missing" : "shown") + " at " + stage); }
    compareFrame(stage, badges[0]);
    if (visible(banner) && (banner.innerText.toLowerCase().match(/wak(e|ing)/g) || []).length !== 1) {
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
