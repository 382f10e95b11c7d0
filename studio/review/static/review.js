// Studio review page: what every page shares. The page calls the same /v1 API as any
// client; the session cookie signs the requests, and X-Requested-With marks them as this
// page's own (the server refuses a changing request from a session without it).
"use strict";

const studio = {
  async api(method, path, body) {
    const opts = { method, headers: { "X-Requested-With": "studio", "Accept": "application/json" },
                   credentials: "same-origin" };
    if (body !== undefined) {
      opts.headers["Content-Type"] = "application/json";
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = null;
    try { data = await r.json(); } catch (e) { data = null; }
    if (!r.ok) {
      const err = new Error((data && data.detail) || `${r.status} ${r.statusText}`);
      err.status = r.status;
      err.data = data;
      throw err;
    }
    return data;
  },

  // Server-sent events from the API: onEvent(type, record) for each; reconnects by itself
  // (EventSource sends Last-Event-ID), so nothing is missed.
  listen(path, onEvent) {
    const source = new EventSource(path, { withCredentials: true });
    source.onmessage = (e) => onEvent("message", JSON.parse(e.data));
    const seen = new Set();
    const handler = (e) => {
      if (seen.has(e.lastEventId)) return;
      seen.add(e.lastEventId);
      onEvent(e.type, JSON.parse(e.data));
    };
    for (const t of studio.EVENT_TYPES) source.addEventListener(t, handler);
    return source;
  },
  EVENT_TYPES: ["queued", "running", "canceling", "canceled", "succeeded", "failed", "interrupted",
                "suspending", "suspended", "awaiting_selection", "awaiting_approval", "rejected", "blocked",
                "stage_start", "stage_done", "progress", "picked", "annotated", "approved", "rejected_by",
                "more_requested", "noted", "overridden", "warning", "priority"],

  say(text) {
    const s = document.getElementById("status");
    if (!s) return;
    s.textContent = text;
    s.classList.add("shown");
    clearTimeout(studio._sayTimer);
    studio._sayTimer = setTimeout(() => s.classList.remove("shown"), 4000);
  },

  me() {
    const who = document.getElementById("who");
    return who ? { role: who.dataset.role, project: who.dataset.project, job: who.dataset.job || null } : null;
  },

  can(action) {
    const me = studio.me();
    if (!me) return false;
    const grants = { pick: ["editor", "admin"], submit: ["editor", "admin"], approve: ["approver", "admin"] };
    return (grants[action] || []).includes(me.role);
  },

  el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === "class") node.className = v;
      else if (k === "text") node.textContent = v;
      else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const c of children) if (c !== null && c !== undefined) node.append(c);
    return node;
  },
};
