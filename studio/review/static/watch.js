// The watch page: plays the job's videos (through the proxy route, which answers the file
// itself where the browser plays it), draws the channel's safe area over the picture,
// counts frames (0-based, from currentTime and the video's own rate), pins notes to a
// frame, and shows the details panel of the deliverable being watched.
"use strict";

(() => {
  const root = document.getElementById("watch");
  if (!root) return;
  const jobId = root.dataset.job;
  const canNote = root.dataset.canNote === "yes";
  const video = document.getElementById("video");
  const stage = document.getElementById("stage");
  const safe = document.getElementById("safe");
  const safeToggle = document.getElementById("safe-toggle");
  const frameOut = document.getElementById("frame");
  const playButton = document.getElementById("play");
  const choices = Array.from(document.querySelectorAll(".video-choice"));
  let current = null; // {target, output, fps: [num, den], fpsText, frames, safe: [l, t, r, b] | null, kind, spec}

  const rate = () => current.fps[0] / current.fps[1];

  // The frame on screen: frame n spans [n/fps, (n+1)/fps); a hair of tolerance for the
  // float currentTime the browser reports at a frame's start.
  function frameNow() {
    if (!current) return 0;
    const n = Math.floor(video.currentTime * rate() + 1e-4);
    return Math.max(0, Math.min(current.frames - 1, n));
  }

  function showFrame() { frameOut.textContent = String(frameNow()); }

  // Seek to the middle of frame n, so the frame shown is n whatever the rounding.
  function seekFrame(n) {
    video.pause();
    const target = Math.max(0, Math.min(current.frames - 1, n));
    video.currentTime = (target + 0.5) / rate();
    frameOut.textContent = String(target);
  }

  // The overlay sits over the picture as object-fit: contain draws it in the stage.
  function drawSafe() {
    const on = current && current.safe && safeToggle.checked && video.videoWidth > 0;
    safe.hidden = !on;
    if (!on) return;
    const w = stage.clientWidth, h = stage.clientHeight;
    const scale = Math.min(w / video.videoWidth, h / video.videoHeight);
    const pw = video.videoWidth * scale, ph = video.videoHeight * scale;
    const ox = (w - pw) / 2, oy = (h - ph) / 2;
    const [l, t, r, b] = current.safe;
    safe.style.left = `${ox + l * pw}px`;
    safe.style.top = `${oy + t * ph}px`;
    safe.style.width = `${(r - l) * pw}px`;
    safe.style.height = `${(b - t) * ph}px`;
    document.getElementById("safe-label").textContent = `safe area: ${current.spec}`;
  }

  function tick() {
    showFrame();
    if (!video.paused && video.requestVideoFrameCallback) video.requestVideoFrameCallback(tick);
  }

  function choose(button) {
    for (const b of choices) b.setAttribute("aria-pressed", b === button ? "true" : "false");
    const [num, den] = (button.dataset.fps || "30/1").split("/").map(Number);
    current = {
      target: button.dataset.target, output: button.dataset.output, fps: [num, den || 1],
      fpsText: `${num}/${den || 1}`, frames: Number(button.dataset.frames) || 1, kind: button.dataset.kind,
      spec: button.dataset.spec,
      safe: button.dataset.safe ? button.dataset.safe.split(",").map(Number) : null,
    };
    document.getElementById("now-title").textContent = button.dataset.kind === "animatic"
      ? "Animatic" : `Deliverable: ${button.dataset.spec}`;
    document.getElementById("frames").textContent = String(current.frames);
    document.getElementById("fps").textContent = current.fpsText;
    video.src = button.dataset.src;
    video.load();
    frameOut.textContent = "0";
    playButton.textContent = "Play";
    const url = new URL(window.location.href);
    url.searchParams.set("video", current.target);
    history.replaceState(null, "", url);
    loadNotes();
    loadDetails();
  }

  async function loadNotes() {
    const list = document.getElementById("notes");
    const target = current.target;
    let data;
    try {
      data = await studio.api("GET", `/v1/jobs/${jobId}/notes?target=${encodeURIComponent(target)}`);
    } catch (e) { studio.say(`Could not load the notes: ${e.message}`); return; }
    if (!current || current.target !== target) return;
    list.replaceChildren();
    for (const n of data.notes) {
      const codes = n.codes.length ? ` [${n.codes.join(", ")}]` : "";
      const who = n.who.includes(":") ? n.who.split(":").slice(1).join(":") : n.who;
      const item = studio.el("li", { "data-frame": String(n.frame), "data-note": String(n.id) },
        studio.el("button", { type: "button", onclick: () => seekFrame(n.frame) },
          studio.el("strong", { text: `Frame ${n.frame}` }), `: ${n.note}${codes} (${who})`,
          n.counts ? null : studio.el("span", { class: "old", text: " on an earlier version" })));
      list.append(item);
    }
    document.getElementById("no-notes").hidden = data.notes.length > 0;
  }

  function dl(pairs) {
    const node = studio.el("dl");
    for (const [k, v] of pairs) {
      if (v === null || v === undefined || v === "") continue;
      node.append(studio.el("dt", { text: k }), studio.el("dd", { text: String(v) }));
    }
    return node;
  }

  function list(items) {
    return items.length ? studio.el("ul", {}, ...items.map((t) => studio.el("li", { text: t })))
                        : studio.el("p", { class: "hint", text: "none" });
  }

  function renderDetails(d) {
    const box = document.getElementById("details");
    box.replaceChildren();
    const spec = d.spec || {};
    box.append(studio.el("h3", { text: `Channel spec: ${d.spec_name}` }),
      dl([["Title", spec.title], ["Size", spec.width ? `${spec.width}x${spec.height}` : null],
          ["Frame rate", spec.kind === "video" ? spec.fps : null], ["Codec", spec.codec],
          ["Loudness target", spec.loudness_target !== null && spec.loudness_target !== undefined
            ? `${spec.loudness_target} LUFS` : null],
          ["True peak ceiling", spec.true_peak !== null && spec.true_peak !== undefined ? `${spec.true_peak} dBTP` : null],
          ["sha256", d.sha256]]));
    if (d.problem) box.append(studio.el("p", { class: "error", text: d.problem }));
    const p = d.probe || {};
    const v = p.video || {}, a = p.audio || {};
    box.append(studio.el("h3", { text: "Measured (ffprobe)" }),
      dl([["Container", p.container], ["Video", v.codec ? `${v.codec} ${v.profile || ""} ${v.pix_fmt || ""}` : null],
          ["Picture", v.width ? `${v.width}x${v.height}` : null], ["Frame rate", v.fps], ["Frames", v.frames],
          ["Duration", p.duration !== undefined && p.duration !== null ? `${p.duration} s` : null],
          ["Bit rate", p.bit_rate ? `${Math.round(p.bit_rate / 1000)} kb/s` : null],
          ["Audio", a.codec ? `${a.codec} ${a.sample_rate} Hz, ${a.channels} ch` : "none"],
          ["Bytes", p.bytes]]));
    const l = d.loudness;
    const loud = studio.el("section", { id: "loudness", "aria-labelledby": "loudness-title" },
      studio.el("h3", { id: "loudness-title", text: "Loudness" }));
    if (l) {
      loud.append(dl([["Integrated", `${l.integrated} LUFS (target ${l.target} LUFS${
        l.off_target !== null && l.off_target !== undefined ? `, ${l.off_target > 0 ? "+" : ""}${l.off_target} LU off` : ""})`],
        ["True peak", l.true_peak === null ? "none (silent)" : `${l.true_peak} dBTP (ceiling ${l.ceiling} dBTP)`],
        ["Loudness range", l.lra === null ? "none (silent)" : `${l.lra} LU`], ["Meter", l.meter],
        ["Silent", l.silent ? "yes: the soundtrack is silence" : null]]));
    } else {
      loud.append(studio.el("p", { class: "hint", text: "no sound measured" }));
    }
    box.append(loud);
    const table = studio.el("table", { id: "checks" },
      studio.el("caption", { class: "sr-only", text: "Spec checks" }),
      studio.el("thead", {}, studio.el("tr", {}, ...["Check", "Spec", "Measured", "Result"].map(
        (t) => studio.el("th", { scope: "col", text: t })))));
    const body = studio.el("tbody");
    for (const c of d.checks) {
      const cls = c.result === "pass" ? "result-pass" : c.result === "fail" ? "result-fail" : "result-na";
      body.append(studio.el("tr", { "data-check": c.check },
        studio.el("th", { scope: "row", text: c.check }), studio.el("td", { text: String(c.expected ?? "") }),
        studio.el("td", { text: c.measured === null ? "" : String(c.measured) }),
        studio.el("td", { class: cls, "data-field": "result", title: c.note || null,
                          text: c.result + (c.note ? ` (${c.note})` : "") })));
    }
    table.append(body);
    box.append(studio.el("h3", { text: "Spec checks" }), table);
    const lin = d.lineage || {};
    box.append(studio.el("h3", { text: "Lineage" }),
      studio.el("h4", { text: "Candidates" }), list(lin.candidates || []),
      studio.el("h4", { text: "Clips" }), list(lin.clips || []),
      studio.el("h4", { text: "Models" }), list(lin.models || []),
      studio.el("h4", { text: "Voice" }), list(lin.voices || []),
      studio.el("h4", { text: "Music" }), list(lin.music || []));
    const r = d.rights || {};
    const rights = studio.el("section", { id: "rights", "aria-labelledby": "rights-title" },
      studio.el("h3", { id: "rights-title", text: "Rights and usage" }),
      dl([["Usage class (brief)", r.usage_class]]));
    rights.append(list((r.models || []).map((m) => `model ${m.id}: ${m.licence || m.note} — allowed for ${
      m.usage_classes.length ? m.usage_classes.join(", ") : "(not in the catalog)"}`)));
    if (r.voice) rights.append(dl([["Voice", `${r.voice.id}: ${r.voice.licence} — allowed for ${(r.voice.usage_classes || []).join(", ")}`]]));
    if (r.music) rights.append(dl([["Music", `${r.music.track || r.music.source}: ${JSON.stringify(r.music.rights)}`]]));
    box.append(rights);
  }

  async function loadDetails() {
    const box = document.getElementById("details");
    if (current.kind !== "deliverable") {
      box.replaceChildren(studio.el("p", { text: "The animatic: each selected keyframe held for its beat, with the "
        + "premixed sound; a review file, not a deliverable." }),
        dl([["Frames", current.frames], ["Frame rate", current.fpsText],
            ["Safe area of", current.spec || "none"]]));
      return;
    }
    box.replaceChildren(studio.el("p", { class: "hint", text: "Loading the details…" }));
    const output = current.output;
    try {
      const d = await studio.api("GET", `/v1/jobs/${jobId}/details?deliverable=${encodeURIComponent(output)}`);
      if (current.output === output) renderDetails(d);
    } catch (e) {
      box.replaceChildren(studio.el("p", { class: "error", text: `Could not load the details: ${e.message}` }));
    }
  }

  async function addNote(ev) {
    ev.preventDefault();
    const text = document.getElementById("note-text");
    const err = document.getElementById("note-error");
    const codes = Array.from(document.querySelectorAll('input[name="codes"]:checked')).map((c) => c.value);
    const frame = frameNow();
    err.textContent = "";
    try {
      await studio.api("POST", `/v1/jobs/${jobId}/notes`, {
        target: current.target, frame, fps: current.fpsText, note: text.value, codes });
    } catch (e) {
      err.textContent = (e.data && e.data.detail) || e.message;
      return;
    }
    text.value = "";
    for (const c of document.querySelectorAll('input[name="codes"]:checked')) c.checked = false;
    studio.say(`Note added at frame ${frame}`);
    loadNotes();
  }

  for (const b of choices) b.addEventListener("click", () => choose(b));
  document.getElementById("prev-frame").addEventListener("click", () => seekFrame(frameNow() - 1));
  document.getElementById("next-frame").addEventListener("click", () => seekFrame(frameNow() + 1));
  playButton.addEventListener("click", () => {
    if (video.paused) {
      video.play().catch((e) => studio.say(`Cannot play: ${e.message}`));
    } else {
      video.pause();
    }
  });
  video.addEventListener("play", () => { playButton.textContent = "Pause"; tick(); });
  video.addEventListener("pause", () => { playButton.textContent = "Play"; showFrame(); });
  video.addEventListener("seeked", showFrame);
  video.addEventListener("timeupdate", showFrame);
  video.addEventListener("loadedmetadata", drawSafe);
  video.addEventListener("error", () => studio.say("This video cannot be played here; download it instead"));
  safeToggle.addEventListener("change", drawSafe);
  window.addEventListener("resize", drawSafe);
  if (canNote) document.getElementById("note-form").addEventListener("submit", addNote);
  // Keys: , and . step a frame (as in many players), space plays/pauses, when not typing.
  document.addEventListener("keydown", (e) => {
    if (!current || e.target.closest("input, textarea, select, button")) return;
    if (e.key === ",") { seekFrame(frameNow() - 1); e.preventDefault(); }
    else if (e.key === ".") { seekFrame(frameNow() + 1); e.preventDefault(); }
  });

  const wanted = new URL(window.location.href).searchParams.get("video");
  const first = choices.find((b) => b.dataset.target === wanted)
    || choices.find((b) => b.dataset.kind === "deliverable") || choices[0];
  if (first) choose(first);
})();
