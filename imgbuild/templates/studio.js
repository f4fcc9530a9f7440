// The review studio's keyboard and mouse. Everything it shows comes from the server's templates;
// this only moves the selection, swaps in fresh fragments and posts decisions with the token.
"use strict";
(() => {
  const token = document.querySelector('meta[name="imgbuild-token"]').content;
  const queue = document.getElementById("queue");
  const pane = document.getElementById("pane");
  const panel = document.getElementById("decide");
  const overlay = document.getElementById("overlay");
  const status = document.getElementById("status");
  const note = document.getElementById("note");
  const override = document.getElementById("override");
  let cards = () => [...queue.querySelectorAll("article.qcard")];
  let current = cards().findIndex((c) => c.classList.contains("selected"));
  let picks = [];          // candidate labels picked on this asset, newest last
  let pendingSet = null;   // "2" after the keys 2 and ".": waiting for the image number
  let decision = null;     // "approve" | "reject" while the panel is open

  const asset = () => (pane.querySelector("#asset") || {}).dataset?.asset;
  const figures = () => [...pane.querySelectorAll("figure.big.cand")];
  const say = (text, error = false) => { status.textContent = text; status.classList.toggle("error", error); };

  async function show(index) {
    const all = cards();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    const id = all[current].dataset.asset;
    const answer = await fetch("/asset/" + encodeURIComponent(id));
    if (!answer.ok) { say("could not load " + id, true); return; }
    swapIn(await answer.text());
    picks = [];
    history.replaceState(null, "", "?" + new URLSearchParams([...new URLSearchParams(location.search)].filter(([k]) => k !== "asset").concat([["asset", id]])));
  }

  function swapIn(html) {
    const box = document.createElement("div");
    box.innerHTML = html;
    const fresh = box.querySelector('[data-part="card"] article');
    const old = cards()[current];
    for (const c of cards()) c.classList.remove("selected");
    if (old && fresh) old.replaceWith(fresh);
    (fresh || old)?.classList.add("selected");
    (fresh || old)?.scrollIntoView({ block: "nearest" });
    pane.replaceChildren(...box.querySelector('[data-part="pane"]').childNodes);
  }

  function pick(label) {
    const fig = figures().find((f) => f.dataset.candidate === label) ||
      figures().find((f) => f.dataset.candidate.startsWith(label + "."));
    if (!fig) { say("no candidate " + label + " on this asset", true); return; }
    picks = picks.filter((p) => p !== fig.dataset.candidate).concat([fig.dataset.candidate]);
    for (const f of figures()) {
      f.classList.toggle("picked", f === fig);
      f.classList.toggle("compare", picks.length > 1 && f.dataset.candidate === picks[picks.length - 2]);
    }
    say("candidate " + fig.dataset.candidate + " picked");
  }
  const picked = () => picks[picks.length - 1];

  function openOverlay(figs, compare) {
    overlay.replaceChildren(...figs.map((f) => {
      const box = document.createElement("figure");
      const img = document.createElement("img");
      img.src = f.dataset.full || f.querySelector("img")?.src;
      const cap = document.createElement("figcaption");
      cap.textContent = (f.dataset.candidate ? "#" + f.dataset.candidate : f.dataset.role) + " — Esc closes";
      box.append(cap, img);
      return box;
    }));
    overlay.classList.toggle("compare", compare);
    overlay.hidden = false;
    overlay.focus();
  }
  const figureOf = (label) => figures().find((f) => f.dataset.candidate === label);

  function zoom() {
    const fig = figureOf(picked()) || figures()[0];
    if (fig) openOverlay([fig], false);
  }
  function compare() {
    if (picks.length < 2) {
      // One pick: beside the approved image it was edited from, or the first reference.
      const other = pane.querySelector('figure.ref[data-role="approved"]') || pane.querySelector("figure.ref") ||
        figures().find((f) => f.dataset.candidate !== picked());
      const fig = figureOf(picked()) || figures()[0];
      if (fig && other) openOverlay([fig, other], true); else say("pick two candidates to compare", true);
      return;
    }
    openOverlay([figureOf(picks[picks.length - 2]), figureOf(picked())], true);
  }

  function openPanel(kind) {
    if (!picked()) { say("pick a candidate first (1–9)", true); return; }
    decision = kind;
    document.getElementById("decide-kind").textContent = kind;
    document.getElementById("decide-candidate").textContent = picked();
    document.getElementById("decide-asset").textContent = asset();
    for (const li of panel.querySelectorAll(".items li")) setItem(li, kind === "approve" ? "pass" : "");
    for (const input of panel.querySelectorAll(".item-note")) input.value = "";
    note.value = ""; override.checked = false;
    document.getElementById("decide-error").textContent = "";
    panel.hidden = false;
  }
  function closePanel() { panel.hidden = true; decision = null; }
  function setItem(li, result) {
    li.dataset.result = result;
    li.querySelector(".result").textContent = result === "pass" ? "✓ pass" : result === "fail" ? "✗ fail" : "not stated";
  }
  function toggleItem(n) {
    const li = panel.querySelectorAll(".items li")[n - 1];
    if (!li) return;
    const next = decision === "approve" ? (li.dataset.result === "pass" ? "fail" : "pass")
      : ({ "": "fail", fail: "pass", pass: "" })[li.dataset.result];
    setItem(li, next);
  }

  async function post(url, body) {
    const answer = await fetch(url, {
      method: "POST", headers: { "Content-Type": "application/json", "X-Imgbuild-Token": token },
      body: JSON.stringify(body),
    });
    return [answer.ok, await answer.json()];
  }

  async function record() {
    const checklist = {};
    for (const li of panel.querySelectorAll(".items li")) {
      checklist[li.dataset.item] = { result: li.dataset.result, note: li.querySelector(".item-note").value };
    }
    const [ok, answer] = await post("/api/decide", {
      decision, asset: asset(), candidate: picked(), checklist, note: note.value, override: override.checked,
    });
    if (!ok) { document.getElementById("decide-error").textContent = answer.error; say(answer.error, true); return; }
    closePanel();
    await show(current);  // fresh from the records, then the news
    say(answer.message.split("\n")[0]);
  }
  async function undoLast() {
    const [ok, answer] = await post("/api/undo", {});
    if (!ok) { say(answer.error, true); return; }
    const at = cards().findIndex((c) => c.dataset.asset === answer.asset);
    await show(at >= 0 ? at : current);
    say(answer.message);
  }

  panel.addEventListener("submit", (e) => { e.preventDefault(); record(); });
  document.getElementById("cancel").addEventListener("click", closePanel);
  panel.querySelectorAll(".items li").forEach((li, i) => li.querySelector(".result").addEventListener("click", () => toggleItem(i + 1)));
  queue.addEventListener("click", (e) => {
    const card = e.target.closest("article.qcard");
    if (!card) return;
    e.preventDefault();
    show(cards().indexOf(card));
  });
  pane.addEventListener("click", (e) => {
    const fig = e.target.closest("figure.big.cand");
    if (fig && !e.target.closest("a")) pick(fig.dataset.candidate);
  });
  overlay.addEventListener("click", () => { overlay.hidden = true; });

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target.matches("input:not([type=checkbox]), textarea, select");
    if (e.key === "Escape") {
      if (!overlay.hidden) overlay.hidden = true;
      else if (typing) e.target.blur();
      else if (!panel.hidden) closePanel();
      e.preventDefault();
      return;
    }
    if (typing) {
      if (e.key === "Enter" && !e.shiftKey && !panel.hidden) { e.preventDefault(); record(); }
      return;
    }
    if (!overlay.hidden || !KEYS.test(e.key)) return;
    e.preventDefault();
    // One key at a time, each after the view the previous one asked for has arrived, so keys
    // typed ahead of the network act on the asset they were meant for.
    const key = e.key;
    busy = busy.then(() => act(key)).catch((error) => say(String(error), true));
  });

  const KEYS = /^([1-9.jkzcaruon]|Enter|Arrow(Up|Down|Left|Right))$/;
  let busy = Promise.resolve();
  async function act(key) {
    if (!panel.hidden) {
      if (/^[1-9]$/.test(key)) toggleItem(Number(key));
      else if (key === "o") override.checked = !override.checked;
      else if (key === "n") note.focus();
      else if (key === "Enter") await record();
      return;
    }
    if (pendingSet !== null && /^[1-9]$/.test(key)) { pick(pendingSet + "." + key); pendingSet = null; }
    else if (/^[1-9]$/.test(key)) { pick(key); pendingSet = null; }
    else if (key === "." && picked()) pendingSet = picked().split(".")[0];
    else if (key === "j" || key === "ArrowDown" || key === "ArrowRight") await show(current + 1);
    else if (key === "k" || key === "ArrowUp" || key === "ArrowLeft") await show(current - 1);
    else if (key === "z") zoom();
    else if (key === "c") compare();
    else if (key === "a") openPanel("approve");
    else if (key === "r") openPanel("reject");
    else if (key === "u") await undoLast();
  }
  // The rest of the queue, after the first screen: appended as it arrives, in order.
  async function loadRest() {
    let more = queue.dataset.more;
    while (more) {
      const answer = await fetch("/queue?" + more);
      if (!answer.ok) { say("could not load the rest of the queue", true); return; }
      queue.insertAdjacentHTML("beforeend", await answer.text());
      more = answer.headers.get("X-Imgbuild-More");
    }
    queue.dataset.more = "";
    document.body.dataset.queueLoaded = "1";
  }

  document.body.dataset.ready = "1";  // the page is interactive: its key handler is in place
  performance.mark("imgbuild-ready");
  loadRest();
})();
