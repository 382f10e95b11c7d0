// The job page: state and progress, each beat's candidates (pick by keyboard or mouse),
// compare two (side by side and a wipe), notes with reason codes, more candidates steered
// by a note, sign-off by role on the release's content hash, the deliverables (with their QC
// verdict, report and signature), a blocked release's violations (overridden by an approver
// as legal) and QC failures, and the decision log. Everything comes from the /v1 API and stays live from the job's event
// stream. Controls a role may not use are never built (the API refuses them anyway).
"use strict";

(function () {
  const root = document.getElementById("job");
  if (!root) return;
  const JOB = root.dataset.job;
  const APPROVALS = JSON.parse(root.dataset.approvals || "[]");
  const REASONS = JSON.parse(root.dataset.reasons || "[]");
  const LABEL = Object.fromEntries(REASONS.map((r) => [r.code, r.label]));
  const canPick = studio.can("pick");  // editors: pick, annotate, more
  const canApprove = studio.can("approve");
  const el = studio.el;

  const WAITS_ON = {
    queued: "a worker", running: "its render", canceling: "its render to stop", suspending: "its render to stop",
    suspended: "someone to resume it", awaiting_selection: "an editor's picks", awaiting_approval: "sign-off",
    rejected: "changes", blocked: "an approver's override, or a fix",
  };
  // When a pick or more candidates are taken (studio.gates), and when a sign-off is.
  const PICKABLE = new Set(["awaiting_selection", "awaiting_approval", "rejected", "succeeded"]);
  const MORE_OK = new Set(["awaiting_selection", "awaiting_approval", "rejected", "succeeded", "queued", "suspended"]);
  const SIGNABLE = new Set(["awaiting_approval", "rejected"]);

  let job = null;        // GET /v1/jobs/{id}
  let sheet = null;      // the last candidates the job showed (kept while it renders again)
  let decisions = [];
  let outputs = null;    // GET /v1/jobs/{id}/outputs once delivered
  const compare = [];    // up to two {id, beat, n, url, score}
  const active = {};     // beat -> index of the card holding the sheet's tab stop

  const short = (h) => (h ? String(h).slice(0, 12) : "");
  const who = (w) => String(w || "").split(":").slice(1).join(":") || String(w || "");
  const when = (t) => String(t || "").replace("T", " ").slice(0, 19);

  // -- errors and messages -------------------------------------------------------------
  const errorBox = document.getElementById("action-error");
  function fail(what, e) {
    const data = e.data || {};
    const text = `${what}: ${data.detail || e.message}${data.fix ? ` (${data.fix})` : ""}`;
    errorBox.textContent = text;
    errorBox.hidden = false;
    studio.say(text);
  }
  function ok(text) {
    errorBox.hidden = true;
    errorBox.textContent = "";
    studio.say(text);
  }

  // -- loading -------------------------------------------------------------------------
  let timer = null;
  let loading = false;
  let again = false;
  function schedule(delay) {
    if (timer) return;
    timer = setTimeout(() => { timer = null; refresh(); }, delay === undefined ? 250 : delay);
  }
  async function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const [j, c, d] = await Promise.all([
        studio.api("GET", `/v1/jobs/${JOB}`), studio.api("GET", `/v1/jobs/${JOB}/candidates`),
        studio.api("GET", `/v1/jobs/${JOB}/decisions`)]);
      job = j;
      decisions = d.decisions;
      if (c.beats && c.beats.length) sheet = c;
      if (j.state === "succeeded" && j.run_id && (!outputs || outputs.run_id !== j.run_id)) {
        outputs = await studio.api("GET", `/v1/jobs/${JOB}/outputs`);
      }
      show();
    } catch (e) {
      fail("Could not load the job", e);
    } finally {
      loading = false;
      if (again) { again = false; schedule(0); }
    }
  }

  function show() {
    showHeader();
    showRelease();
    showSheets();
    showCompare();
    showSignOff();
    showLog();
    root.dataset.state = job.state;  // for people's scripts and the tests: what the page shows now
  }

  // -- header: state, waiting on, progress -----------------------------------------------
  function showHeader() {
    const state = document.getElementById("job-state");
    state.textContent = job.state;
    state.className = `state state-${job.state}`;
    const gate = job.gate || {};
    let waiting = WAITS_ON[job.state] || "nothing";
    if (job.state === "awaiting_selection" && gate.waiting_on && gate.waiting_on.length) {
      waiting = `an editor's picks for beat ${gate.waiting_on.join(", ")}`;
    } else if (job.state === "awaiting_approval" && gate.waiting_on && gate.waiting_on.length) {
      waiting = `sign-off: ${gate.waiting_on.join(", ")}`;
    } else if (job.state === "blocked" && gate.waiting_on && gate.waiting_on.length) {
      waiting = `the release gate: ${gate.waiting_on.join(", ")}`;
    }
    document.getElementById("job-waiting").textContent = waiting;
    const stages = (job.progress && job.progress.stages) || [];
    const done = stages.filter((s) => s.state === "done" || s.state === "skipped").length;
    const bar = document.getElementById("job-progress");
    bar.max = Math.max(stages.length, 1);
    bar.value = done;
    document.getElementById("job-progress-text").textContent = stages.length
      ? `${done} of ${stages.length} stages` + (job.progress.attempt ? ` (attempt ${job.progress.attempt})` : "") : "not started";
    document.getElementById("stages").replaceChildren(...stages.map((s) => {
      const amount = s.total ? ` ${Math.round(s.done)}/${Math.round(s.total)}` : "";
      return el("li", { class: `stage stage-${s.state}` }, el("span", { class: "stage-name", text: s.stage }),
                el("span", { class: "stage-state", text: ` ${s.state}${amount}` }));
    }));
    const err = document.getElementById("job-error");
    err.hidden = !job.error;
    err.textContent = job.error || "";
  }

  // -- the release gate: a blocked job's violations (overridden as legal) and QC failures --
  let releaseKey = "";
  function showRelease() {
    const sec = document.getElementById("release");
    const gate = job.gate || {};
    const blocked = job.state === "blocked" && gate.gate === "release";
    sec.hidden = !blocked;
    if (!blocked) { releaseKey = ""; return; }
    const key = JSON.stringify([gate.run_id, (gate.violations || []).map((v) => [v.rule, v.component, !!v.overridden_by]),
                                (gate.qc || []).length]);
    if (key === releaseKey) return;  // unchanged: a reason being typed stays
    releaseKey = key;
    // One entry per rule and component: an override covers every deliverable it reaches.
    const groups = new Map();
    for (const v of gate.violations || []) {
      const k = `${v.rule} ${v.component}`;
      if (!groups.has(k)) groups.set(k, Object.assign({}, v, { specs: [] }));
      groups.get(k).specs.push(v.locale ? `${v.spec} (${v.locale})` : v.spec);
    }
    document.getElementById("violations").replaceChildren(...(groups.size
      ? [...groups.values()].map((v, i) => violationCard(v, i)) : [el("p", { class: "sub", text: "None." })]));
    const qc = gate.qc || [];
    document.getElementById("qc-failures").replaceChildren(qc.length
      ? el("ul", { class: "qc-failures" }, ...qc.map((q) => el("li", { "data-spec": q.spec, "data-check": q.check },
        el("strong", { text: `${q.spec}${q.locale ? ` (${q.locale})` : ""}: ${q.check}` }),
        ` failed${q.at && q.at.length ? ` at ${q.at.join(", ")}` : ""}: ${q.finding}. `,
        q.fix ? el("span", { text: `Fix: ${q.fix}. ` }) : null,
        q.html_url ? el("a", { href: q.html_url, target: "_blank", rel: "noopener",
                               text: `QC report of ${q.spec}${q.locale ? ` (${q.locale})` : ""}` }) : null)))
      : el("p", { class: "sub", text: "None." }));
  }

  function violationCard(v, i) {
    const id = `violation-${i}`;
    const signed = v.overridden_by;
    const card = el("article", { class: "violation card", "data-rule": v.rule, "data-component": v.component,
                                 "aria-labelledby": `${id}-h` },
      el("h4", { id: `${id}-h`, text: `${v.rule}: ${v.component}` }),
      facts([["Deliverables", v.specs.join(", "), "specs"], ["Rule", v.rule, "rule"],
             ["Component", v.name && v.name !== v.component ? `${v.component} (${v.name})` : v.component, "component"],
             ["What is wrong", v.reason, "reason"], ["Fix", v.fix, "fix"],
             ["Overridden by", signed ? `${signed.approver} (${signed.role}) at ${when(signed.at)}: “${signed.reason}”`
               : "nobody yet", "overridden-by"]]));
    if (canApprove && !signed) {
      const reason = el("textarea", { id: `${id}-reason`, maxlength: "2000", rows: "2", required: true,
                                      "aria-describedby": "release-hint" });
      const form = el("form", { class: "override", novalidate: true },
        el("label", { for: `${id}-reason`, text: `Reason for overriding ${v.rule} for ${v.component} (required)` }),
        reason,
        el("div", { class: "acts" }, el("button", { type: "submit", class: "danger", text: "Override as legal" })));
      form.addEventListener("submit", (e) => { e.preventDefault(); override(v, reason); });
      card.append(form);
    }
    return card;
  }

  async function override(v, reason) {
    const text = reason.value.trim();
    if (!text) {
      reason.setAttribute("aria-invalid", "true");
      fail(`Override of ${v.rule} for ${v.component}`, new Error("give the reason: it is kept with your sign-off"));
      reason.focus();
      return;
    }
    reason.removeAttribute("aria-invalid");
    try {
      const r = await studio.api("POST", `/v1/jobs/${JOB}/overrides`, { rule: v.rule, component: v.component, reason: text });
      job = r.job;
      ok(`Overrode ${v.rule} for ${v.component}` + (r.moved ? `: the job is now ${r.moved}.` : "."));
    } catch (e) {
      fail(`Override of ${v.rule} for ${v.component}`, e);
    }
    schedule(0);
  }

  // -- the candidates ------------------------------------------------------------------
  function beatSection(beat) {
    let sec = document.querySelector(`#beats section.beat[data-beat="${CSS.escape(beat)}"]`);
    if (!sec) {
      sec = el("section", { class: "beat", "data-beat": beat, "aria-labelledby": `beat-${beat}-h` },
        el("h3", { id: `beat-${beat}-h`, text: `Beat ${beat}` }),
        el("p", { class: "beat-status sub", "data-field": "status" }));
      document.getElementById("beats").append(sec);
    }
    return sec;
  }

  // The candidate a beat's sheet marks: the latest pick on one of its keyframes (the gate's
  // own fields are what it stopped with: a pick made while it waits is in the decisions),
  // else what the gate says was picked or used in the render.
  function pickOf(b) {
    const bySha = new Map(b.candidates.filter((c) => c.sha256).map((c) => [c.sha256, c.id]));
    for (let k = decisions.length - 1; k >= 0; k--) {
      const d = decisions[k];
      if (d.kind === "pick" && d.beat === b.beat && bySha.has(d.content_sha256)) return bySha.get(d.content_sha256);
    }
    return null;
  }
  function marked(b) { return pickOf(b) || b.picked || b.selected || null; }

  function notesFor(cand) {
    return decisions.filter((d) => d.kind === "annotate" && !d.target && cand.sha256 && d.content_sha256 === cand.sha256);
  }

  function showSheets() {
    const note = document.getElementById("sheet-note");
    if (!sheet) {
      note.textContent = PICKABLE.has(job.state) || ["failed", "canceled"].includes(job.state)
        ? "This job has no candidates to show." : "The candidates appear here once the job has made them.";
      return;
    }
    const fresh = (job.gate || {}).beats && job.gate.beats.length;
    note.textContent = fresh ? "" : `The job is ${job.state}: these are the candidates it last showed; they update when it comes back.`;
    for (const b of sheet.beats) showBeat(b);
  }

  function showBeat(b) {
    const sec = beatSection(b.beat);
    const n = b.candidates.length;
    const pickedId = marked(b);
    const pickedAt = b.candidates.findIndex((c) => c.id === pickedId);
    const waiting = job.state === "awaiting_selection" && ((job.gate || {}).waiting_on || []).includes(b.beat);
    sec.querySelector('[data-field="status"]').textContent = pickedAt >= 0
      ? `${pickOf(b) || b.picked ? "Picked" : "Used in the render"}: candidate ${pickedAt + 1} of ${n}.`
      : (waiting ? `Waiting for a pick: ${n} candidates.` : `${n} candidates.`);

    let grid = sec.querySelector(".sheet");
    const ids = b.candidates.map((c) => c.id).join(" ");
    if (!grid || grid.dataset.ids !== ids) {
      const hadFocus = grid && grid.contains(document.activeElement);
      const cards = b.candidates.map((c, i) => card(b, c, i));
      const row = el("div", { role: "row", class: "cards" }, ...cards);
      const fresh = el("div", { class: "sheet", role: "grid", "data-ids": ids, "aria-labelledby": `beat-${b.beat}-h`,
                                "aria-describedby": "sheet-keys" }, row);
      fresh.addEventListener("keydown", (e) => onKey(e, b.beat));
      fresh.addEventListener("focusin", (e) => {
        const cell = e.target.closest(".cand");
        if (cell) setActive(b.beat, Number(cell.dataset.i), false);
      });
      if (grid) grid.replaceWith(fresh); else sec.querySelector('[data-field="status"]').after(fresh);
      grid = fresh;
      if (!(b.beat in active) || active[b.beat] >= n) active[b.beat] = pickedAt >= 0 ? pickedAt : 0;
      setActive(b.beat, active[b.beat], hadFocus);
      if (canPick) {
        editorForms(sec, b);
        annotateOptions(sec.querySelector("select.ann-cand"), b);  // the candidates' ids are per run
      }
    }
    // In place (focus and typing kept): what is picked, what is compared, the notes.
    const pickable = canPick && PICKABLE.has(job.state);
    b.candidates.forEach((c, i) => {
      const cell = grid.querySelector(`.cand[data-i="${i}"]`);
      cell._cand = c;
      const isPicked = c.id === pickedId;
      const cmp = compare.findIndex((x) => x.id === c.id);
      cell.classList.toggle("picked", isPicked);
      cell.setAttribute("aria-current", isPicked ? "true" : "false");
      cell.setAttribute("aria-label", `Beat ${b.beat}, candidate ${i + 1} of ${n}` +
        (c.score != null ? `, score ${c.score.toFixed(2)}` : "") + (isPicked ? ", picked" : "") +
        (cmp >= 0 ? `, in the comparison as ${"AB"[cmp]}` : ""));
      cell.querySelector(".badge-picked").hidden = !isPicked;
      const cb = cell.querySelector(".badge-compare");
      cb.hidden = cmp < 0;
      cb.textContent = cmp >= 0 ? `Compare ${"AB"[cmp]}` : "";
      cell.querySelector("button.compare").setAttribute("aria-pressed", cmp >= 0 ? "true" : "false");
      const pick = cell.querySelector("button.pick");
      if (pick) {
        pick.setAttribute("aria-pressed", isPicked ? "true" : "false");
        pick.disabled = !pickable;
      }
      const reason = c.reason || (isPicked && b.reason) || "";
      cell.querySelector(".reason").textContent = reason ? `Scorer: ${reason}` : "";
      const notes = notesFor(c);
      cell.querySelector(".notes").replaceChildren(...notes.map((d) => el("li", {},
        el("span", { class: "codes", text: d.codes.map((x) => LABEL[x] || x).join(", ") }),
        d.note ? el("span", { text: `${d.codes.length ? ": " : ""}${d.note}` }) : null,
        el("span", { class: "sub", text: ` (${who(d.who)})` }))));
    });
    if (canPick) {
      for (const btn of sec.querySelectorAll("form.more button")) btn.disabled = !MORE_OK.has(job.state);
    }
  }

  function card(b, c, i) {
    const n = i + 1;
    const what = `candidate ${n} of beat ${b.beat}`;
    const score = c.score != null ? `Score ${c.score.toFixed(2)}` : "No score";
    const acts = el("div", { class: "acts" });
    if (canPick) {
      acts.append(el("button", { type: "button", class: "pick", tabindex: "-1", "aria-label": `Pick ${what}`,
                                 "aria-pressed": "false", text: "Pick", onclick: () => pick(b.beat, i) }));
    }
    acts.append(el("button", { type: "button", class: "compare", tabindex: "-1", "aria-label": `Compare ${what}`,
                               "aria-pressed": "false", text: "Compare", onclick: () => toggleCompare(b.beat, i) }));
    if (canPick) {
      acts.append(el("button", { type: "button", class: "annotate", tabindex: "-1", "aria-label": `Annotate ${what}`,
                                 text: "Annotate", onclick: () => openNote(b.beat, i) }));
    }
    const info = el("button", { type: "button", class: "details", tabindex: "-1", "aria-label": `Details of ${what}`,
                                "aria-haspopup": "dialog", text: "Details" });
    info.addEventListener("click", () => openDetails(b.beat, i, info));
    acts.append(info);
    return el("div", { class: "cand", role: "gridcell", tabindex: "-1", "data-i": String(i), "data-id": c.id },
      el("figure", {},
        el("img", { src: c.image_url, alt: `Keyframe of ${what}`, width: "384", height: "216", loading: "lazy" }),
        el("figcaption", {},
          el("div", { class: "cand-head" },
            el("span", { class: "num", text: `${n}` }),
            el("span", { class: "badge badge-picked", text: "Picked", hidden: true }),
            el("span", { class: "badge badge-compare", hidden: true }),
            el("span", { class: "score", text: score })),
          el("p", { class: "reason" }),
          el("ul", { class: "notes", "aria-label": `Notes on ${what}` }))),
      acts);
  }

  function cellsOf(beat) {
    return [...document.querySelectorAll(`section.beat[data-beat="${CSS.escape(beat)}"] .sheet .cand`)];
  }

  // The roving tab stop: only the active card of a sheet is in the Tab order.
  function setActive(beat, i, focus) {
    const cells = cellsOf(beat);
    if (!cells.length) return;
    i = Math.max(0, Math.min(cells.length - 1, i));
    active[beat] = i;
    cells.forEach((c, k) => c.setAttribute("tabindex", k === i ? "0" : "-1"));
    if (focus) cells[i].focus();
  }

  function onKey(e, beat) {
    const cell = e.target.closest(".cand");
    if (!cell || e.target !== cell || e.altKey || e.ctrlKey || e.metaKey) return;
    const i = Number(cell.dataset.i);
    const count = cellsOf(beat).length;
    let handled = true;
    if (e.key === "ArrowRight" || e.key === "ArrowDown") setActive(beat, (i + 1) % count, true);
    else if (e.key === "ArrowLeft" || e.key === "ArrowUp") setActive(beat, (i - 1 + count) % count, true);
    else if (e.key === "Home") setActive(beat, 0, true);
    else if (e.key === "End") setActive(beat, count - 1, true);
    else if (e.key === "Enter" && canPick) pick(beat, i);
    else if (/^[1-9]$/.test(e.key) && canPick) {
      const k = Number(e.key) - 1;
      if (k < count) { setActive(beat, k, true); pick(beat, k); } else studio.say(`Beat ${beat} has ${count} candidates`);
    } else if (e.key === "c" || e.key === "C" || e.key === " ") toggleCompare(beat, i);
    else if ((e.key === "a" || e.key === "A") && canPick) openNote(beat, i);
    else if (e.key === "d" || e.key === "D") openDetails(beat, i, cell);
    else handled = false;
    if (handled) e.preventDefault();
  }

  function beatOf(beat) { return sheet && sheet.beats.find((b) => b.beat === beat); }

  async function pick(beat, i) {
    const b = beatOf(beat);
    if (!b || !canPick) return;
    const c = b.candidates[i];
    if (!PICKABLE.has(job.state)) {
      studio.say(`The job is ${job.state}: picks are taken when it waits at a gate or has delivered.`);
      return;
    }
    if (marked(b) === c.id) { studio.say(`Candidate ${i + 1} is already beat ${beat}'s pick.`); return; }
    try {
      const r = await studio.api("POST", `/v1/jobs/${JOB}/picks`, { beat, candidate: c.id });
      decisions.push(r.decision);  // shown at once; the refresh brings the whole log
      job = r.job;
      const rest = (r.job.gate || {}).waiting_on || [];
      ok(`Picked candidate ${i + 1} for beat ${beat}` + (r.moved ? `: the job is now ${r.moved}.`
        : rest.length ? `: still to pick: ${rest.join(", ")}.` : "."));
      show();
    } catch (e) {
      fail(`Pick for beat ${beat}`, e);
    }
    schedule();
  }

  // -- notes (reason codes) and more candidates ------------------------------------------
  function annotateOptions(sel, b) {
    const keep = sel.value;
    sel.replaceChildren(...b.candidates.map((c, i) => el("option", { value: c.id, text: `Candidate ${i + 1}` })));
    if ([...sel.options].some((o) => o.value === keep)) sel.value = keep;
  }

  function editorForms(sec, b) {
    if (sec.querySelector("form.annotate")) return;
    const id = `b-${b.beat}`;
    const codes = REASONS.map((r) => el("div", { class: "check" },
      el("input", { type: "checkbox", id: `${id}-code-${r.code}`, name: "codes", value: r.code }),
      el("label", { for: `${id}-code-${r.code}`, text: r.label })));
    const sel = el("select", { id: `${id}-ann-cand`, class: "ann-cand", name: "candidate" });
    annotateOptions(sel, b);
    const ann = el("form", { class: "annotate", "aria-labelledby": `${id}-ann-h` },
      el("label", { for: `${id}-ann-cand`, text: "Candidate" }), sel,
      el("fieldset", { class: "reason-codes" }, el("legend", { text: "Reason codes" }), ...codes),
      el("label", { for: `${id}-ann-note`, text: "Note" }),
      el("textarea", { id: `${id}-ann-note`, name: "note", maxlength: "2000", rows: "2" }),
      el("button", { type: "submit", text: "Save the note" }));
    ann.addEventListener("submit", (e) => { e.preventDefault(); annotate(b.beat, ann); });
    const more = el("form", { class: "more", "aria-labelledby": `${id}-more-h` },
      el("label", { for: `${id}-more-note`, text: "Your note for the new candidates (it steers their prompt; new seeds)" }),
      el("textarea", { id: `${id}-more-note`, name: "note", maxlength: "500", rows: "2", required: true }),
      el("button", { type: "submit", text: "Regenerate this beat with my note" }));
    more.addEventListener("submit", (e) => { e.preventDefault(); askMore(b.beat, more); });
    // Folded until wanted (Annotate opens the note): the sheet stays in view.
    sec.append(el("div", { class: "forms" },
      el("details", { class: "card note-box" }, el("summary", { id: `${id}-ann-h`, text: `Note on a candidate of beat ${b.beat}` }), ann),
      el("details", { class: "card more-box" }, el("summary", { id: `${id}-more-h`, text: `More like this: new candidates for beat ${b.beat}` }), more)));
  }

  function openNote(beat, i) {
    const b = beatOf(beat);
    const sec = beatSection(beat);
    const sel = sec.querySelector("select.ann-cand");
    if (!b || !sel) return;
    sel.value = b.candidates[i].id;
    sec.querySelector("details.note-box").open = true;
    sec.querySelector('form.annotate input[type="checkbox"]').focus();
  }

  async function annotate(beat, form) {
    const candidate = form.querySelector("select").value;
    const codes = [...form.querySelectorAll('input[name="codes"]:checked')].map((x) => x.value);
    const note = form.querySelector("textarea").value.trim();
    const n = form.querySelector("select").selectedIndex + 1;
    try {
      await studio.api("POST", `/v1/jobs/${JOB}/annotations`, { candidate, codes, note });
      for (const x of form.querySelectorAll('input[name="codes"]')) x.checked = false;
      form.querySelector("textarea").value = "";
      ok(`Noted on candidate ${n} of beat ${beat}.`);
    } catch (e) {
      fail(`Note on beat ${beat}`, e);
    }
    schedule(0);
  }

  async function askMore(beat, form) {
    const note = form.querySelector("textarea").value.trim();
    try {
      const r = await studio.api("POST", `/v1/jobs/${JOB}/more`, { beat, note });
      form.querySelector("textarea").value = "";
      ok(`More candidates asked for beat ${beat}: they join the sheet when the job comes back` +
         (r.moved ? ` (it is now ${r.moved}).` : "."));
    } catch (e) {
      fail(`More candidates for beat ${beat}`, e);
    }
    schedule(0);
  }

  // -- the details panel: a candidate's recipe, prompt, score, lineage, decisions, rights --
  // A modal <dialog>: the focus goes to its heading, Escape or Close shuts it and the focus
  // goes back to what opened it (the Details button, or the card D was pressed on).
  const panel = document.getElementById("details");
  const panelBody = document.getElementById("details-body");
  const panelHead = document.getElementById("details-h");
  let opener = null;   // {el, beat, id}: where the focus goes back to
  let showing = null;  // the candidate id the panel shows (a late answer for another is dropped)

  function facts(rows) {
    const list = el("dl", { class: "facts-list" });
    for (const [label, value, field] of rows) {
      if (value === null || value === undefined || value === "") continue;
      list.append(el("dt", { text: label }),
        el("dd", field ? { "data-field": field } : {}, value instanceof Node ? value : String(value)));
    }
    return list;
  }

  // A hash shown short, the whole of it in its title and copied by its Copy button.
  function hashOf(full, what) {
    if (!full) return null;
    const copy = el("button", { type: "button", class: "small copy", "aria-label": `Copy the full ${what}`, text: "Copy" });
    copy.addEventListener("click", async () => {
      try {
        await navigator.clipboard.writeText(full);
        studio.say(`Copied the ${what}: ${full}`);
      } catch (e) {
        studio.say(`Could not copy; the ${what} is ${full}`);
      }
    });
    return el("span", { class: "hash-row" },
      el("code", { class: "hash", title: full, "data-full": full, text: short(full) }), " ", copy);
  }

  function section(title, ...children) {
    return el("section", { class: "details-part" }, el("h3", { text: title }), ...children);
  }

  function showDetails(d, n) {
    const r = d.recipe || {};
    const p = r.prompt || {};
    const s = d.score;
    const rights = d.rights || {};
    const used = (d.lineage || {}).used_by || [];
    const allowed = (m) => (m.in_catalog
      ? `${m.licence || "no licence recorded"}; allowed for ${m.usage_classes.join(", ") || "no usage class"}` +
        (m.usage_classes.includes(rights.usage_class) ? ` (this brief's ${rights.usage_class}: yes)`
          : ` (this brief's ${rights.usage_class}: no)`)
      : m.note || "not in the model catalog");
    panelBody.replaceChildren(
      section("Recipe", facts([
        ["Backend", r.backend, "backend"], ["Model", r.model_id, "model"],
        ["Weights sha256", hashOf(r.weights_sha256, "weights sha256") || "none (no weights: a built-in backend)", "weights"],
        ["Seed", r.seed, "seed"], ["Steps", r.steps ?? "none (this backend takes no steps)", "steps"],
        ["Size", r.width && r.height ? `${r.width}×${r.height}` : null, "size"],
        ["Code version", r.code_version, "code-version"],
        ["Recipe hash", hashOf(r.recipe_hash, "recipe hash"), "recipe-hash"],
        ["Keyframe sha256", hashOf(d.keyframe_sha256, "keyframe sha256"), "keyframe"]])),
      section("Prompt", facts([
        ["Positive", p.positive || "(none)", "positive"], ["Negative", p.negative || "(none)", "negative"],
        ["Prompt hash", hashOf(p.hash, "prompt hash"), "prompt-hash"]])),
      section("Score", s ? facts([
        ["Total", s.total != null ? Number(s.total).toFixed(2) : null, "score"], ["Scorer", s.scorer, "scorer"],
        ["Reason", s.reason || "(none given)", "reason"]])
        : el("p", { class: "sub", text: "Not scored." })),
      section("Lineage: the deliverables that use it", used.length
        ? el("ul", { class: "used-by", "data-field": "used-by" }, ...used.map((u) => el("li", {},
          el("a", { href: `/review/jobs/${JOB}/watch?video=${encodeURIComponent(`deliverable:${u.spec}`)}`,
                    text: `${u.spec} (${u.kind})` }),
          " ", el("code", { class: "hash", title: u.sha256, text: short(u.sha256) }),
          el("span", { class: "sub", text: ` ${when(u.created_at)}` }))))
        : el("p", { class: "sub", "data-field": "used-by", text: "No deliverable uses it yet." })),
      section("Decisions on it", (d.decisions || []).length
        ? el("ul", { class: "cand-decisions", "data-field": "decisions" }, ...d.decisions.map((x) => el("li", {},
          el("strong", { text: x.kind }),
          x.codes && x.codes.length ? `: ${x.codes.map((c) => LABEL[c] || c).join(", ")}` : "",
          x.note ? ` “${x.note}”` : "", el("span", { class: "sub", text: ` ${who(x.who)}, ${when(x.created_at)}` }))))
        : el("p", { class: "sub", "data-field": "decisions", text: "No decisions on it." })),
      section("Rights and usage", facts([["Usage class (the brief's)", rights.usage_class, "usage-class"]]),
        el("ul", { class: "rights", "data-field": "models" }, ...(rights.models || []).map((m) => el("li", {},
          el("strong", { text: `${m.id}: ` }), allowed(m))))));
    panel.dataset.candidate = d.id;
    panel.dataset.loaded = "true";
    studio.say(`Details of candidate ${n} of beat ${d.beat} loaded.`);
  }

  async function openDetails(beat, i, from) {
    const b = beatOf(beat);
    if (!b) return;
    const c = b.candidates[i];
    opener = { el: from, beat, id: c.id };
    showing = c.id;
    panelHead.textContent = `Details: candidate ${i + 1} of beat ${beat}`;
    panel.dataset.loaded = "false";
    panelBody.replaceChildren(el("p", { class: "sub", text: "Loading the details…" }));
    if (!panel.open) panel.showModal();
    panelHead.focus();
    try {
      const d = await studio.api("GET", `/v1/jobs/${JOB}/details?candidate=${encodeURIComponent(c.id)}`);
      if (showing === c.id && panel.open) showDetails(d, i + 1);
    } catch (e) {
      if (showing === c.id) {
        panelBody.replaceChildren(el("p", { class: "error", role: "alert",
          text: `Could not load the details: ${(e.data && e.data.detail) || e.message}` }));
      }
    }
  }

  panel.addEventListener("close", () => {
    showing = null;
    const back = opener;
    opener = null;
    if (!back) return;
    // The sheet may have been rebuilt while the panel was open: then its card for the same
    // candidate (or the beat's first) takes the focus.
    if (back.el && back.el.isConnected) { back.el.focus(); return; }
    const cells = cellsOf(back.beat);
    const k = cells.findIndex((x) => x.dataset.id === back.id);
    if (cells.length) setActive(back.beat, k >= 0 ? k : 0, true);
  });
  document.getElementById("details-close").addEventListener("click", () => panel.close());

  // -- compare: side by side and a wipe --------------------------------------------------
  function toggleCompare(beat, i) {
    const b = beatOf(beat);
    if (!b) return;
    const c = b.candidates[i];
    const at = compare.findIndex((x) => x.id === c.id);
    if (at >= 0) compare.splice(at, 1);
    else {
      compare.push({ id: c.id, beat, n: i + 1, url: c.image_url, score: c.score });
      if (compare.length > 2) compare.shift();
    }
    studio.say(compare.length === 2 ? "Comparing two candidates: see Compare below." : `${compare.length} of 2 chosen to compare.`);
    for (const x of sheet.beats) showBeat(x);
    showCompare();
  }

  const describe = (x) => `beat ${x.beat}, candidate ${x.n}` + (x.score != null ? ` (score ${x.score.toFixed(2)})` : "");

  function showCompare() {
    const views = document.getElementById("compare-views");
    const hint = document.getElementById("compare-hint");
    if (compare.length < 2) {
      views.hidden = true;
      hint.textContent = compare.length ? `Chosen: ${describe(compare[0])}. Choose one more with its Compare toggle.`
        : "Choose two candidates with their Compare toggles (or C in a sheet).";
      return;
    }
    const [a, b] = compare;
    hint.textContent = `A: ${describe(a)}. B: ${describe(b)}.`;
    const side = document.getElementById("side");
    if (side.dataset.pair !== `${a.id} ${b.id}`) {
      side.dataset.pair = `${a.id} ${b.id}`;
      side.replaceChildren(...[["A", a], ["B", b]].map(([k, x]) => el("figure", {},
        el("img", { src: x.url, alt: `${k}: keyframe of ${describe(x)}`, width: "480", height: "270" }),
        el("figcaption", { text: `${k}: ${describe(x)}` }))));
      document.getElementById("wipe-a").src = a.url;
      document.getElementById("wipe-b").src = b.url;
    }
    views.hidden = false;
    wipe();
  }

  function wipe() {
    if (compare.length < 2) return;
    const input = document.getElementById("wipe-pos");
    const x = Number(input.value);
    // CSSOM, not a style attribute: the page's CSP allows no inline styles.
    document.getElementById("wipe-a").style.clipPath = `inset(0 ${100 - x}% 0 0)`;
    document.getElementById("wipe-line").style.left = `${x}%`;
    input.setAttribute("aria-valuetext", `${x}% of A, ${100 - x}% of B`);
    document.getElementById("wipe-desc").textContent =
      `Left of the line: A, ${describe(compare[0])}; right of it: B, ${describe(compare[1])}; the line is at ${x}%.`;
  }
  document.getElementById("wipe-pos").addEventListener("input", wipe);
  document.getElementById("compare-clear").addEventListener("click", () => {
    compare.length = 0;
    if (sheet) for (const x of sheet.beats) showBeat(x);
    showCompare();
    document.getElementById("compare-h").focus();
  });
  document.getElementById("compare-h").setAttribute("tabindex", "-1");

  // -- sign-off ------------------------------------------------------------------------
  let roleKey = "";
  function showSignOff() {
    const sec = document.getElementById("signoff");
    const gate = job.gate || {};
    const release = gate.content_sha256;
    const shown = release && (SIGNABLE.has(job.state) || job.state === "succeeded");
    sec.hidden = !shown;
    if (!shown) { roleKey = ""; return; }
    const code = document.getElementById("release-hash");
    code.textContent = short(release);
    code.setAttribute("title", release);
    code.dataset.full = release;
    showDeliverables(gate.deliverables || []);

    const box = document.getElementById("roles");
    const key = `${release} ${job.state}`;
    if (roleKey !== key) {
      roleKey = key;
      box.replaceChildren(...APPROVALS.map((role) => rolePanel(role, SIGNABLE.has(job.state) && canApprove)));
    }
    for (const role of APPROVALS) {
      const panel = box.querySelector(`[data-role="${CSS.escape(role)}"]`);
      const mine = decisions.filter((d) => (d.kind === "approve" || d.kind === "reject") && d.role === role);
      const now = mine.filter((d) => d.content_sha256 === release);
      const last = now[now.length - 1];
      const stale = mine.filter((d) => !d.counts && d.content_sha256 !== release);
      const status = panel.querySelector(".role-status");
      status.textContent = last
        ? `${last.kind === "approve" ? "Approved" : "Rejected"} by ${who(last.who)} at ${when(last.created_at)}` +
          (last.note ? `: “${last.note}”` : "")
        : "Not signed off on this release yet.";
      status.className = `role-status ${last ? (last.kind === "approve" ? "ok" : "error") : "sub"}`;
      const re = panel.querySelector(".reapproval");
      const needed = !last && stale.length > 0;
      re.hidden = !needed;
      if (needed) {
        const old = stale[stale.length - 1];
        re.querySelector(".why").textContent = ` ${role} ${old.kind === "approve" ? "approved" : "rejected"} an earlier ` +
          `release (${short(old.content_sha256)}) on ${when(old.created_at)}; the content has changed since, so that ` +
          "sign-off no longer counts.";
      }
    }
  }

  function rolePanel(role, controls) {
    const id = `sign-${role}`;
    const panel = el("section", { class: "role card", "data-role": role, "aria-labelledby": `${id}-h` },
      el("h3", { id: `${id}-h`, text: `Sign-off: ${role}` }),
      el("p", { class: "reapproval", hidden: true },
        el("strong", { class: "badge badge-warn", text: "Re-approval needed" }), el("span", { class: "why" })),
      el("p", { class: "role-status sub" }));
    if (controls) {
      const note = el("textarea", { id: `${id}-note`, maxlength: "2000", rows: "2" });
      panel.append(el("label", { for: `${id}-note`, text: `Note for the ${role} sign-off` }), note,
        el("div", { class: "acts" },
          el("button", { type: "button", class: "primary", text: `Approve as ${role}`,
                         onclick: () => sign(role, "approve", note) }),
          el("button", { type: "button", class: "danger", text: `Reject as ${role}`,
                         onclick: () => sign(role, "reject", note) })));
    }
    return panel;
  }

  async function sign(role, decision, note) {
    const release = (job.gate || {}).content_sha256;
    try {
      const r = await studio.api("POST", `/v1/jobs/${JOB}/approvals`,
                                 { role, decision, content_sha256: release, note: note.value.trim() });
      note.value = "";
      job = r.job;
      ok(`${decision === "approve" ? "Approved" : "Rejected"} release ${short(release)} as ${role}` +
         (r.moved ? `: the job is now ${r.moved}.` : "."));
    } catch (e) {
      fail(`Sign-off as ${role}`, e);
    }
    schedule(0);
  }

  function showDeliverables(list) {
    const files = (outputs && outputs.outputs) || [];
    const delivered = job.state === "succeeded";
    document.getElementById("deliverables").replaceChildren(...list.map((d) => {
      const facts = [d.kind, d.width && d.height ? `${d.width}×${d.height}` : null, d.fps ? `${d.fps} fps` : null,
                     d.duration != null ? `${Number(d.duration).toFixed(2)} s` : null,
                     d.size != null ? `${(d.size / 1e6).toFixed(2)} MB` : null].filter(Boolean).join(" · ");
      const out = delivered && files.find((f) => f.role === "deliverable" && f.spec === d.spec &&
                                                 (!d.sha256 || f.sha256 === d.sha256));
      const name = out ? el("a", { href: out.url, class: "deliverable", download: out.name, text: `${d.spec}: ${out.name}` })
        : el("span", { class: "deliverable", text: d.spec });
      return el("li", { "data-spec": d.spec }, name, el("span", { class: "sub", text: ` ${facts}` }),
        el("code", { class: "hash", title: d.sha256 || "", text: ` ${short(d.sha256)}` }),
        delivered ? null : el("span", { class: "sub", text: " (downloads once delivered)" }),
        releaseFacts(d, delivered ? files : []));
    }));
  }

  // What the release gate found and did for a deliverable: its QC verdict (with the HTML
  // report, once delivered), the policy's verdict and whether it is signed (C2PA).
  function releaseFacts(d, files) {
    const qc = d.qc;
    const prov = d.provenance || {};
    if (!qc && !d.policy && !d.provenance) return null;
    const report = qc && qc.html && files.find((f) => f.path === qc.html);
    const warned = qc && qc.warned && qc.warned.length ? ` (warnings: ${qc.warned.map((w) => w.check).join(", ")})` : "";
    return el("div", { class: "release-facts" },
      qc ? el("span", { class: "qc", "data-field": "qc" }, `QC: ${qc.verdict}${warned}`,
        report ? " " : null,
        report ? el("a", { href: report.url, target: "_blank", rel: "noopener", text: `QC report of ${d.spec}` }) : null)
        : null,
      d.policy ? el("span", { class: "policy", "data-field": "policy",
                              text: ` · policy ${d.policy.name} v${d.policy.version}: ${d.policy.passed ? "passed" : "not passed"}` })
        : null,
      el("span", { class: "signed", "data-field": "signed",
                   text: prov.signed ? ` · signed (C2PA) by ${prov.signer}` : ` · not signed${prov.why ? `: ${prov.why}` : ""}` }));
  }

  // -- the decision log ----------------------------------------------------------------
  function candidateNumber(d) {
    if (!sheet) return null;
    for (const b of sheet.beats) {
      const i = b.candidates.findIndex((c) => c.id === d.candidate_id || (c.sha256 && c.sha256 === d.content_sha256));
      if (b.beat === d.beat && i >= 0) return i + 1;
    }
    return null;
  }

  function showLog() {
    const body = document.querySelector("#decisions tbody");
    if (!decisions.length) return;
    body.replaceChildren(...decisions.map((d) => {
      let on = d.role ? `sign-off ${d.role}` : d.beat ? `beat ${d.beat}` : "";
      if (d.kind === "override") on = `release gate: ${d.target} (as ${d.role})`;  // RULE COMPONENT
      else if (d.target) on = [on, d.target.replace(":", " ")].filter(Boolean).join(", ");  // a frame note (the watch page)
      if (d.frame != null) on += `, frame ${d.frame}${d.fps ? ` at ${d.fps} fps` : ""}`;
      const n = (d.kind === "pick" || d.kind === "annotate") && !d.target ? candidateNumber(d) : null;
      if (n) on += `, candidate ${n}`;
      else if (d.candidate_id) on += `, ${d.candidate_id}`;
      const what = [d.kind, d.codes && d.codes.length ? d.codes.map((x) => LABEL[x] || x).join(", ") : null,
                    d.note ? `“${d.note}”` : null].filter(Boolean).join(": ");
      return el("tr", { "data-kind": d.kind, "data-counts": String(d.counts) },
        el("td", { text: what }), el("td", { text: on }), el("td", { text: who(d.who) }),
        el("td", {}, el("time", { datetime: d.created_at, text: when(d.created_at) })),
        el("td", {}, el("code", { class: "hash", title: d.content_sha256, text: short(d.content_sha256) })),
        el("td", { class: d.counts ? "ok" : "error", text: d.counts ? "yes" : "no: made on other content" }));
    }));
  }

  // -- live ----------------------------------------------------------------------------
  refresh();
  studio.listen(`/v1/jobs/${JOB}/stream?after=${root.dataset.after || "0"}`, () => schedule());
})();
