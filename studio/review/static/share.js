// The job page's share links (editors of the project only; the template loads this file
// for them alone): make a link with one role for an outside reviewer, shown once with a
// Copy button, and list and revoke the job's links. Calls /v1/jobs/{id}/shares.
"use strict";

(() => {
  const JOB = document.getElementById("job").dataset.job;
  const form = document.getElementById("share-form");
  const errorBox = document.getElementById("share-error");
  const made = document.getElementById("share-made");
  const urlBox = document.getElementById("share-url");
  const days = document.getElementById("share-days");
  const body = document.querySelector("#shares tbody");
  const ROLE = { viewer: "Viewer", editor: "Editor", approver: "Approver" };
  const when = (t) => String(t || "").replace("T", " ").slice(0, 16);
  const who = (w) => String(w || "").split(":").slice(1).join(":") || String(w || "");

  function cell(text, attrs = {}) {
    const td = document.createElement("td");
    td.textContent = text;
    for (const [k, v] of Object.entries(attrs)) td.setAttribute(k, v);
    return td;
  }

  function stateOf(s) {
    if (s.revoked_at) return `revoked ${when(s.revoked_at)}`;
    return new Date(s.expires_at) <= new Date() ? "expired" : "live";
  }

  function show(shares) {
    body.replaceChildren();
    if (!shares.length) {
      const tr = document.createElement("tr");
      tr.className = "empty";
      tr.append(cell("No share links yet.", { colspan: "6" }));
      body.append(tr);
      return;
    }
    for (const s of shares) {
      const tr = document.createElement("tr");
      tr.dataset.share = s.id;
      const state = stateOf(s);
      const act = document.createElement("td");
      if (state === "live") {
        const b = document.createElement("button");
        b.type = "button";
        b.textContent = "Revoke";
        b.setAttribute("aria-label", `Revoke the link for ${s.name || s.id}`);
        b.addEventListener("click", () => revoke(s));
        act.append(b);
      }
      tr.append(cell(s.name || "(no name)"), cell(ROLE[s.role] || s.role), cell(who(s.created_by)),
        cell(when(s.expires_at)), cell(state, { "data-field": "state" }), act);
      body.append(tr);
    }
  }

  function fail(what, e) {
    const d = e.data || {};
    errorBox.textContent = `${what}: ${d.detail || e.message}${d.fix ? ` (${d.fix})` : ""}`;
    errorBox.hidden = false;
  }

  async function load() {
    try {
      show((await studio.api("GET", `/v1/jobs/${JOB}/shares`)).shares);
    } catch (e) {
      fail("Could not list the share links", e);
    }
  }

  async function revoke(s) {
    errorBox.hidden = true;
    try {
      await studio.api("POST", `/v1/jobs/${JOB}/shares/${encodeURIComponent(s.id)}/revoke`);
      studio.say(`Revoked the link for ${s.name || s.id}: its sessions have ended.`);
      await load();
      document.getElementById("share-h").focus();
    } catch (e) {
      fail("Could not revoke the link", e);
    }
  }

  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    errorBox.hidden = true;
    days.removeAttribute("aria-invalid");
    const n = Number(days.value);
    const max = Number(days.max);
    if (!days.value || !Number.isFinite(n) || n <= 0 || n > max) {
      errorBox.textContent = `Days it works: ${days.value || "(empty)"} is not a number of days from 1 to ${max}; ` +
        `give how long the reviewer needs (the link can be revoked sooner).`;
      errorBox.hidden = false;
      days.setAttribute("aria-invalid", "true");
      days.focus();
      return;
    }
    const name = document.getElementById("share-name").value.trim();
    const role = document.getElementById("share-role").value;
    try {
      const s = await studio.api("POST", `/v1/jobs/${JOB}/shares`, { role, name, days: n });
      urlBox.value = new URL(s.url, window.location.origin).href;
      document.getElementById("share-for").textContent = `${name || "a reviewer"} (${ROLE[role]})`;
      made.hidden = false;
      urlBox.focus();
      urlBox.select();
      studio.say("Link made: copy it now, it is not shown again.");
      form.reset();
      await load();
    } catch (e) {
      fail("Could not make the link", e);
    }
  });

  document.getElementById("share-copy").addEventListener("click", async () => {
    try {
      await navigator.clipboard.writeText(urlBox.value);
      studio.say("Copied the link.");
    } catch (e) {
      urlBox.select();
      studio.say("Could not copy: the link is selected, copy it with the keyboard.");
    }
  });

  load();
})();
