// The jobs list: each job's state, progress and who it waits on, kept live from the
// project's event stream (/v1/stream).
"use strict";

(function () {
  const table = document.querySelector("#jobs tbody");
  if (!table) return;
  const WAITS_ON = {
    queued: "a worker", running: "its render", canceling: "its render to stop", suspending: "its render to stop",
    suspended: "someone to resume it", awaiting_selection: "an editor's picks", awaiting_approval: "sign-off",
    rejected: "changes", blocked: "an approver's override, or a fix",
  };
  const STATES = new Set(Object.keys(WAITS_ON).concat(["succeeded", "failed", "canceled", "interrupted"]));

  function row(job) {
    let tr = table.querySelector(`tr[data-job="${job.id}"]`);
    if (!tr) {
      const empty = table.querySelector("tr.empty");
      if (empty) empty.remove();
      const link = studio.el("a", { href: `/review/jobs/${job.id}`, text: job.id });
      const purpose = studio.el("div", { class: "sub", text: ((job.brief || {}).purpose || "").slice(0, 80) });
      tr = studio.el("tr", { "data-job": job.id },
        studio.el("td", {}, link, purpose), studio.el("td", { text: job.campaign }),
        studio.el("td", {}, studio.el("span", { class: "state", "data-field": "state" })),
        studio.el("td", { "data-field": "progress" }), studio.el("td", { "data-field": "waiting" }),
        studio.el("td", { text: String(job.priority) }));
      table.prepend(tr);
    }
    return tr;
  }

  function show(job) {
    const tr = row(job);
    const state = tr.querySelector('[data-field="state"]');
    state.textContent = job.state;
    state.className = `state state-${job.state}`;
    const gate = job.gate || {};
    let waiting = WAITS_ON[job.state] || "";
    if (gate.waiting_on && gate.waiting_on.length && job.state === "awaiting_selection") waiting = "picks: " + gate.waiting_on.join(", ");
    if (gate.waiting_on && gate.waiting_on.length && job.state === "awaiting_approval") waiting = "sign-off: " + gate.waiting_on.join(", ");
    if (gate.waiting_on && gate.waiting_on.length && job.state === "blocked") waiting = "release gate: " + gate.waiting_on.join(", ");
    tr.querySelector('[data-field="waiting"]').textContent = waiting;
    const p = job.progress;
    const cell = tr.querySelector('[data-field="progress"]');
    if (p && p.stages && p.stages.length) {
      const done = p.stages.filter((s) => s.state === "done" || s.state === "skipped").length;
      cell.replaceChildren(studio.el("progress", { max: String(p.stages.length), value: String(done),
                                                     "aria-label": `${job.id}: ${done} of ${p.stages.length} stages` }),
                           studio.el("span", { class: "sub", text: ` ${done}/${p.stages.length}` }));
    }
  }

  async function refresh(id) {
    try { show(await studio.api("GET", `/v1/jobs/${id}`)); } catch (e) { /* gone or not ours */ }
  }

  for (const tr of table.querySelectorAll("tr[data-job]")) refresh(tr.dataset.job);
  const me = studio.me();
  const after = document.getElementById("jobs").dataset.after || "0";
  studio.listen(`/v1/stream?after=${after}`, (type, ev) => {
    if (me && me.job && ev.job_id !== me.job) return;
    if (STATES.has(type) || type === "stage_done") refresh(ev.job_id);
  });
})();
