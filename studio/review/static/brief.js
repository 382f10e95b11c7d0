// The brief form (/review/new). The fields come from the brief's JSON Schema
// (GET /v1/schemas/brief): a label from each field's title, help from its description and
// default, the input from its type, enum and limits; arrays of objects (beats, characters)
// become lists to add to, remove from and reorder. Fields that name catalog entries
// (channels, style pack, models, voice) offer the entries of GET /v1/catalog with their key
// figures. The brief is POSTed to /v1/jobs as JSON; a 422's problems are shown beside the
// inputs their field paths name ("beats[1].duration"), the rest above the form. A YAML
// file can be uploaded instead; its problems are listed with their line numbers.
"use strict";

(function () {
  const form = document.getElementById("brief-form");
  if (!form) return;
  const project = form.dataset.project;
  let schema = null;
  let catalog = null;
  let root = null;
  let serial = 0;

  const HIDDEN = new Set(["schema"]); // the document's kind (Brief.1): never the producer's to change
  const READ_ONLY = { project: () => project };
  // Which fields stay in view; the others go under "More options" (required ones, and
  // prose a producer writes: long text).
  const inView = (name, s, required) => required || (s.type === "string" && (s.maxLength || 0) >= 1000);

  // -- the schema ------------------------------------------------------------------------
  function resolve(s) {
    if (s && s.$ref) {
      const def = schema.$defs[s.$ref.split("/").pop()];
      const own = Object.assign({}, s);
      delete own.$ref;
      return Object.assign({}, def, { defTitle: def.title }, own, { title: own.title });
    }
    return s || {};
  }
  // {inner, nullable}: Optional[X] is anyOf [X, null] in pydantic's schema.
  function unwrap(s) {
    s = resolve(s);
    if (Array.isArray(s.anyOf)) {
      let others = s.anyOf.filter((a) => a.type !== "null");
      // One text, or one per locale ({en-GB: ..., fr-FR: ...}): the form writes the one
      // text every locale shares; a brief in several locales gives its own in YAML.
      if (others.length === 2 && others.some((a) => a.type === "string") && others.some((a) => a.type === "object")) {
        others = others.filter((a) => a.type === "string");
      }
      if (others.length === 1) {
        const inner = Object.assign({}, resolve(others[0]));
        for (const k of ["title", "description", "default", "maxLength"]) if (s[k] !== undefined) inner[k] = s[k];
        return { s: inner, nullable: s.anyOf.some((a) => a.type === "null") };
      }
    }
    return { s, nullable: false };
  }
  function titleOf(name, s) {
    const text = s.title || name.replace(/_/g, " ");
    return text.charAt(0).toUpperCase() + text.slice(1).toLowerCase();
  }
  function helpOf(s, extra) {
    const parts = [];
    if (s.description) parts.push(s.description.charAt(0).toUpperCase() + s.description.slice(1) + ".");
    if (extra) parts.push(extra);
    const d = s.default;
    if (d !== undefined && d !== null && d !== "" && typeof d !== "object") {
      parts.push(`Default: ${d === true ? "yes" : d === false ? "no" : d}.`);
    }
    if (s.minimum !== undefined || s.maximum !== undefined || s.exclusiveMinimum !== undefined ||
        s.exclusiveMaximum !== undefined) {
      const lo = s.minimum !== undefined ? `at least ${s.minimum}` :
        s.exclusiveMinimum !== undefined ? `more than ${s.exclusiveMinimum}` : "";
      const hi = s.maximum !== undefined ? `at most ${s.maximum}` :
        s.exclusiveMaximum !== undefined ? `less than ${s.exclusiveMaximum}` : "";
      parts.push(`${[lo, hi].filter(Boolean).join(", ")}.`.replace(/^./, (c) => c.toUpperCase()));
    }
    return parts.join(" ");
  }

  // -- building blocks ---------------------------------------------------------------------
  const el = (...a) => studio.el(...a);
  const newId = (name) => `f-${String(name).replace(/[^A-Za-z0-9_-]/g, "-")}-${++serial}`;

  // A field's wrapper: data-path (set by setPath), its error slot, its help.
  function wrapper(tag, name, label, help, required, forId) {
    const w = el(tag, { class: tag === "fieldset" ? "field group" : "field" });
    const star = required ? el("span", { class: "req", "aria-hidden": "true", text: " *" }) : null;
    if (tag === "fieldset") w.append(el("legend", {}, label, star));
    else w.append(el("label", { for: forId }, label, star));
    const helpId = `${forId}-help`;
    w.helpEl = help ? el("p", { class: "help", id: helpId, text: help }) : null;
    w.errorEl = el("p", { class: "field-error", id: `${forId}-error`, hidden: true });
    w.helpId = help ? helpId : "";
    return w;
  }
  function describe(ctl, ids) {
    const list = ids.filter(Boolean).join(" ");
    if (list) ctl.setAttribute("aria-describedby", list);
    ctl.dataset.describedby = list;
    ctl.classList.add("ctl");
  }

  // A scalar field: text, long text, number, choice, yes/no, lines (a list of strings),
  // "key: value" lines (a mapping of strings) or a fixed number of numbers (a tuple).
  function scalarNode(name, raw, required) {
    const { s, nullable } = unwrap(raw);
    const id = newId(name);
    const label = titleOf(name, s);
    const node = { name };
    let help = helpOf(s);
    let ctl;
    let w;
    if (s.enum) {
      ctl = el("select", { id });
      if (!required || s.default !== undefined) {
        ctl.append(el("option", { value: "", text: s.default != null ? `default (${s.default})` : "(none)" }));
      }
      for (const v of s.enum) ctl.append(el("option", { value: v, text: v }));
      node.collect = () => (ctl.value === "" ? undefined : ctl.value);
    } else if (s.type === "boolean" && !nullable) {
      ctl = el("input", { id, type: "checkbox" });
      ctl.checked = s.default === true;
      node.collect = () => (ctl.checked === (s.default === true) ? undefined : ctl.checked);
    } else if (s.type === "boolean") {
      ctl = el("select", { id }, el("option", { value: "", text: "default" }),
        el("option", { value: "true", text: "yes" }), el("option", { value: "false", text: "no" }));
      node.collect = () => (ctl.value === "" ? undefined : ctl.value === "true");
    } else if (s.type === "integer" || s.type === "number") {
      const lo = s.minimum !== undefined ? s.minimum : s.exclusiveMinimum;
      const hi = s.maximum !== undefined ? s.maximum : s.exclusiveMaximum;
      ctl = el("input", { id, type: "number", min: lo, max: hi, step: s.type === "integer" ? "1" : "any",
        inputmode: s.type === "integer" ? "numeric" : "decimal" });
      node.collect = () => (ctl.value.trim() === "" ? undefined : Number(ctl.value));
    } else if (s.type === "array" && Array.isArray(s.prefixItems)) {
      return tupleNode(name, s, required, nullable);
    } else if (s.type === "array") {
      ctl = el("textarea", { id, rows: "2" });
      help = [help, "One per line."].filter(Boolean).join(" ");
      node.collect = () => {
        const items = ctl.value.split("\n").map((x) => x.trim()).filter(Boolean);
        return items.length ? items : (required ? [] : undefined);
      };
    } else if (s.type === "object") {
      ctl = el("textarea", { id, rows: "2" });
      help = [help, "One per line, as name: value."].filter(Boolean).join(" ");
      node.collect = () => {
        const out = {};
        for (const line of ctl.value.split("\n")) {
          if (!line.trim()) continue;
          const at = line.indexOf(":");
          const key = (at < 0 ? line : line.slice(0, at)).trim();
          out[key] = at < 0 ? "" : line.slice(at + 1).trim();
        }
        return Object.keys(out).length ? out : undefined;
      };
    } else {
      const long = (s.maxLength || 0) >= 1000;
      ctl = long ? el("textarea", { id, rows: "3" }) : el("input", { id, type: "text", autocomplete: "off" });
      node.collect = () => (ctl.value.trim() === "" ? (required ? "" : undefined) : ctl.value);
    }
    if (READ_ONLY[name]) {
      ctl.value = READ_ONLY[name]();
      ctl.readOnly = true;
      help = [help, "The project you are signed in to."].filter(Boolean).join(" ");
    }
    if (required) ctl.setAttribute("aria-required", "true");
    w = wrapper("div", name, label, help, required, id);
    describe(ctl, [w.helpId]);
    w.append(ctl, w.errorEl);
    if (w.helpEl) w.append(w.helpEl);
    node.w = w;
    node.ctl = ctl;
    node.setPath = (p) => { w.dataset.path = p; };
    return node;
  }

  function tupleNode(name, s, required, nullable) {
    const id = newId(name);
    const w = wrapper("fieldset", name, titleOf(name, s), helpOf(s), required, id);
    if (w.helpEl) w.append(w.helpEl);
    const names = s.prefixItems.length === 2 ? ["x", "y"] : s.prefixItems.map((_, i) => String(i + 1));
    const parts = s.prefixItems.map((item, i) => {
      const pid = `${id}-${i}`;
      const input = el("input", { id: pid, type: "number", step: "any", inputmode: "decimal" });
      describe(input, [w.helpId]);
      const box = el("div", { class: "field inline" }, el("label", { for: pid, text: names[i] }), input);
      box.errorEl = el("p", { class: "field-error", id: `${pid}-error`, hidden: true });
      box.helpId = w.helpId;
      box.append(box.errorEl);
      w.append(box);
      return { box, input };
    });
    w.append(w.errorEl);
    return {
      name, w,
      setPath(p) { w.dataset.path = p; parts.forEach((x, i) => { x.box.dataset.path = `${p}[${i}]`; }); },
      collect() {
        const values = parts.map((x) => x.input.value.trim());
        if (values.every((v) => v === "")) return nullable ? undefined : [];
        return values.map((v) => (v === "" ? null : Number(v)));
      },
    };
  }

  // An object: its fields in the schema's order, the ones out of view under "More options".
  function objectNode(name, raw, required, label) {
    const s = resolve(raw);
    const id = newId(name || "brief");
    const w = name === null ? el("div", { class: "brief-fields" }) :
      wrapper("fieldset", name, label || titleOf(name, s), helpOf(s), required, id);
    if (name !== null) {
      // A problem with the whole object (an unknown field in it) moves focus here.
      w.classList.add("object");
      w.tabIndex = -1;
      describe(w, [w.helpId]);
      w.classList.remove("ctl");
    }
    if (w.helpEl) w.append(w.helpEl);
    if (w.errorEl) w.append(w.errorEl);
    const need = new Set(s.required || []);
    const children = [];
    const more = el("details", { class: "more" },
      el("summary", { text: name === null ? "More options" : `More for ${label || titleOf(name, s)}` }));
    for (const [key, prop] of Object.entries(s.properties || {})) {
      if (HIDDEN.has(key)) continue;
      const child = fieldNode(key, prop, need.has(key));
      children.push(child);
      const { s: inner } = unwrap(prop);
      (inView(key, inner, need.has(key)) || name !== null && !s.required ? w : more).append(child.w);
    }
    if (more.children.length > 1) w.append(more);
    return {
      name, w, children, more,
      setPath(p) {
        if (name !== null) w.dataset.path = p;
        for (const c of children) c.setPath(p ? `${p}.${c.name}` : c.name);
      },
      collect() {
        const out = {};
        for (const c of children) {
          const v = c.collect();
          if (v !== undefined) out[c.name] = v;
        }
        return name === null || required || Object.keys(out).length ? out : undefined;
      },
    };
  }

  // A list of objects (beats, characters): add, remove, move up and down, each item
  // labelled with its number.
  function listNode(name, raw, required) {
    const s = resolve(raw);
    const itemSchema = resolve(s.items);
    const noun = (itemSchema.defTitle || itemSchema.title || "item");
    const id = newId(name);
    const w = wrapper("fieldset", name, titleOf(name, s), helpOf(s), required, id);
    w.classList.add("list");
    w.tabIndex = -1; // a problem with the whole list (e.g. the spot too long) moves focus here
    describe(w, [w.helpId]);
    w.classList.remove("ctl");
    if (w.helpEl) w.append(w.helpEl);
    w.append(w.errorEl);
    const box = el("ol", { class: "items" });
    const min = s.minItems || 0;
    const items = [];
    const add = el("button", { type: "button", class: "add", text: `Add ${noun.toLowerCase()}` });
    w.append(box, add);
    let path = name;

    function renumber() {
      items.forEach((it, i) => {
        const n = i + 1;
        it.legendText.textContent = `${noun} ${n}`;
        it.up.lastChild.textContent = ` (${noun.toLowerCase()} ${n})`;
        it.down.lastChild.textContent = ` (${noun.toLowerCase()} ${n})`;
        it.remove.lastChild.textContent = ` (${noun.toLowerCase()} ${n})`;
        it.up.disabled = i === 0;
        it.down.disabled = i === items.length - 1;
        it.remove.disabled = items.length <= min;
        it.node.more.querySelector("summary").textContent = `More for ${noun.toLowerCase()} ${n}`;
      });
      // The problems shown name the old positions ("beats[0]..."): they no longer fit.
      if (root) clearProblems();
      node.setPath(path);
    }
    function button(text, onclick) {
      return el("button", { type: "button", class: "small", onclick }, text,
        el("span", { class: "sr-only" }));
    }
    function move(it, by, fromButton) {
      const i = items.indexOf(it);
      const j = i + by;
      if (j < 0 || j >= items.length) return;
      items.splice(i, 1);
      items.splice(j, 0, it);
      if (by < 0) box.insertBefore(it.li, items[j + 1].li);
      else box.insertBefore(it.li, items[j - 1].li.nextSibling);
      renumber();
      // Keep the keyboard where it was: on the same button, or its twin at an end.
      (fromButton.disabled ? (fromButton === it.up ? it.down : it.up) : fromButton).focus();
      studio.say(`${noun} moved to position ${j + 1} of ${items.length}`);
    }
    function addItem(focus) {
      const n = items.length + 1;
      const itemNode = objectNode(`${name}-item`, itemSchema, true, `${noun} ${n}`);
      const legend = itemNode.w.querySelector("legend");
      const legendText = el("span", { text: `${noun} ${n}` });
      legend.replaceChildren(legendText);
      const it = { node: itemNode, legendText };
      it.up = button("Move up", () => move(it, -1, it.up));
      it.down = button("Move down", () => move(it, 1, it.down));
      it.remove = button("Remove", () => {
        const i = items.indexOf(it);
        items.splice(i, 1);
        it.li.remove();
        renumber();
        const next = items[Math.min(i, items.length - 1)];
        (next && !next.remove.disabled ? next.remove : add).focus();
        studio.say(`${noun} ${i + 1} removed`);
      });
      it.remove.classList.add("danger-outline");
      legend.after(el("div", { class: "item-tools" }, it.up, it.down, it.remove));
      // A new beat gets an id nobody has yet (b01, b02, ...), as the example briefs name them.
      const idField = itemNode.children.find((c) => c.name === "id" && c.ctl);
      if (idField && name === "beats") {
        const taken = new Set(items.map((x) => x.node.children.find((c) => c.name === "id").ctl.value));
        let k = n;
        while (taken.has(`b${String(k).padStart(2, "0")}`)) k += 1;
        idField.ctl.value = `b${String(k).padStart(2, "0")}`;
      }
      it.li = el("li", {}, itemNode.w);
      items.push(it);
      box.append(it.li);
      renumber();
      if (focus) itemNode.w.querySelector("input, textarea, select").focus();
    }
    add.addEventListener("click", () => addItem(true));
    const node = {
      name, w, items,
      setPath(p) {
        path = p;
        w.dataset.path = p;
        items.forEach((it, i) => it.node.setPath(`${p}[${i}]`));
      },
      collect() {
        const out = items.map((it) => it.node.collect());
        return out.length || required ? out : undefined;
      },
    };
    for (let i = 0; i < Math.max(min, 0); i++) addItem(false);
    return node;
  }

  // -- catalog fields ------------------------------------------------------------------------
  const rate = (fps) => {
    const [a, b] = String(fps).split("/").map(Number);
    const r = b ? a / b : a;
    return Number.isInteger(r) ? String(r) : r.toFixed(3).replace(/0+$/, "");
  };
  const seconds = (x) => (x >= 3600 ? `${+(x / 3600).toFixed(2)} h` : x >= 60 ? `${+(x / 60).toFixed(2)} min` : `${x} s`);
  const bytes = (n) => (n >= 1e9 ? `${+(n / 1e9).toFixed(1)} GB` : n >= 1e6 ? `${+(n / 1e6).toFixed(1)} MB` : `${+(n / 1e3).toFixed(1)} kB`);
  function safe(a) {
    const v = [a.top, a.right, a.bottom, a.left].map((x) => Math.round(x * 1000) / 10);
    return v.every((x) => x === v[0]) ? `safe area ${v[0]}%` : `safe area ${v.join("/")}% (top/right/bottom/left)`;
  }
  function figures(spec) {
    // A reduced ratio reads well when small (16:9, 6:5); 728x90's 364:45 reads better as 8.09:1.
    const [an, ad] = spec.aspect.split(":").map(Number);
    const aspect = Math.max(an, ad) > 32 ? `${+(an / ad).toFixed(2)}:1` : spec.aspect;
    const f = [`${spec.width}×${spec.height} (${aspect})`];
    if (spec.kind === "video") {
      f.push(`${rate(spec.fps)} fps`);
      if (spec.active_aspect) f.push(`picture ${spec.active_aspect}`);
      if (spec.max_duration) f.push(`${spec.min_duration ? seconds(spec.min_duration) + " to " : "up to "}${seconds(spec.max_duration)}`);
      else if (spec.min_duration) f.push(`at least ${seconds(spec.min_duration)}`);
      if (spec.loudness_target != null) f.push(`${spec.loudness_target} LUFS` + (spec.true_peak != null ? `, ${spec.true_peak} dBTP` : ""));
      f.push(`${spec.codec.toUpperCase()} in ${spec.container.toUpperCase()}`);
      if (spec.captions_burn_in) f.push("captions burnt in");
    } else {
      f.push(spec.container.toUpperCase());
    }
    if (spec.max_file_size) f.push(`at most ${bytes(spec.max_file_size)}`);
    f.push(safe(spec.safe_area));
    return f.join(" · ");
  }

  function choiceGroup(name, raw, required, type, parts, render) {
    const { s } = unwrap(raw);
    const id = newId(name);
    const w = wrapper("fieldset", name, titleOf(name, s), helpOf(s), required, id);
    w.classList.add("choices");
    if (w.helpEl) w.append(w.helpEl);
    w.append(w.errorEl);
    const inputs = [];
    for (const [heading, entries] of parts) {
      if (!entries.length) continue;
      const list = el("div", { class: "choice-list" });
      for (const entry of entries) {
        const cid = newId(`${name}-${entry.name}`);
        const input = el("input", { id: cid, type, name: id, value: entry.name });
        const { label, details, detailId } = render(entry, cid);
        describe(input, [detailId, w.helpId]);
        inputs.push(input);
        list.append(el("div", { class: "choice" }, input,
          el("div", { class: "choice-text" }, el("label", { for: cid }, ...label), details)));
      }
      w.append(...(heading ? [el("h3", { text: heading })] : []), list);
    }
    return { name, w, inputs, setPath(p) { w.dataset.path = p; } };
  }

  function channelsNode(name, raw, required) {
    const video = catalog.specs.filter((x) => x.kind === "video");
    const stills = catalog.specs.filter((x) => x.kind === "still");
    const render = (spec, cid) => ({
      label: [el("span", { class: "choice-name", text: spec.name }), ` ${spec.title}`],
      details: el("p", { class: "figures", id: `${cid}-figures`, text: `${spec.kind} · ${figures(spec)}` }),
      detailId: `${cid}-figures`,
    });
    const node = choiceGroup(name, raw, required, "checkbox", [["Video", video], ["Stills", stills]], render);
    node.collect = () => node.inputs.filter((i) => i.checked).map((i) => i.value);
    return node;
  }

  function styleNode(name, raw, required) {
    const render = (style, cid) => {
      const swatches = el("span", { class: "swatches", role: "img",
        "aria-label": `palette ${style.palette.join(", ")}` });
      for (const hex of style.palette) {
        const sw = el("span", { class: "swatch", "aria-hidden": "true" });
        sw.style.backgroundColor = hex; // CSSOM, which the page's CSP allows (no style="")
        swatches.append(sw);
      }
      const grade = style.lut ? `grade ${style.lut}` : "no grade";
      const details = el("div", { class: "figures", id: `${cid}-about` }, swatches,
        el("p", { text: `${style.description}. Camera ${style.camera}; ${grade}.` }));
      return { label: [el("span", { class: "choice-name", text: style.name }), ` ${style.title}`], details,
        detailId: `${cid}-about` };
    };
    const node = choiceGroup(name, raw, required, "radio", [[null, catalog.styles]], render);
    node.collect = () => {
      const on = node.inputs.find((i) => i.checked);
      return on ? on.value : undefined;
    };
    return node;
  }

  function registryNode(name, raw, required, entries, describeEntry) {
    const node = scalarNode(name, { ...raw, anyOf: undefined, type: "string" }, required);
    const { s } = unwrap(raw);
    const select = el("select", { id: node.ctl.id, "aria-describedby": node.ctl.getAttribute("aria-describedby") });
    const lead = (s.description || "").split("default: ")[1];
    select.append(el("option", { value: "", text: lead ? `default (${lead})` : "default" }));
    for (const e of entries) select.append(el("option", { value: e.id, text: describeEntry(e) }));
    describe(select, [node.w.helpId]);
    node.ctl.replaceWith(select);
    node.ctl = select;
    node.collect = () => (select.value === "" ? undefined : select.value);
    return node;
  }
  const licensed = (e) => `licensed for ${e.usage_classes.join(", ")}`;
  const CATALOG_FIELDS = {
    channels: channelsNode,
    style_pack: styleNode,
    keyframe_model: (n, r, q) => registryNode(n, r, q, catalog.models.filter((m) =>
      ["text-to-image", "image-to-image"].includes(m.kind)), (m) => `${m.id}: ${m.title} (${m.kind}; ${licensed(m)})`),
    clip_model: (n, r, q) => registryNode(n, r, q, catalog.models.filter((m) => m.kind === "image-to-video"),
      (m) => `${m.id}: ${m.title} (${licensed(m)})`),
    voice: (n, r, q) => registryNode(n, r, q, catalog.voices, (v) => `${v.id}: ${v.title} (${v.language}; ${licensed(v)})`),
  };

  function fieldNode(name, raw, required) {
    if (CATALOG_FIELDS[name] && catalog) return CATALOG_FIELDS[name](name, raw, required);
    const { s } = unwrap(raw);
    if (s.type === "array" && s.items && resolve(s.items).properties) return listNode(name, s, required);
    if (s.properties) return objectNode(name, s, required);
    return scalarNode(name, raw, required);
  }

  // -- problems ------------------------------------------------------------------------------
  const summary = document.getElementById("brief-problems");
  const summaryList = document.getElementById("brief-problems-list");
  const summaryTitle = document.getElementById("brief-problems-title");

  function clearOne(w) {
    w.classList.remove("has-error");
    w.errorEl.hidden = true;
    w.errorEl.replaceChildren();
    for (const c of controlsOf(w)) {
      c.removeAttribute("aria-invalid");
      if (c.dataset.describedby) c.setAttribute("aria-describedby", c.dataset.describedby);
      else c.removeAttribute("aria-describedby");
    }
  }
  function clearProblems() {
    for (const w of form.querySelectorAll("[data-path].has-error")) clearOne(w);
    summary.hidden = true;
    summaryList.replaceChildren();
  }
  // A field's problem goes once its value changes (the next submit says whether it is fixed).
  form.addEventListener("input", (e) => {
    const w = e.target.closest && e.target.closest("[data-path].has-error");
    if (w) clearOne(w);
  });
  // A wrapper's own controls (not those of the fields inside it); a list has none but
  // itself (focusable, described by its error).
  function controlsOf(w) {
    const own = [...w.querySelectorAll(".ctl")].filter((c) => c.closest("[data-path]") === w);
    if (own.length) return own;
    if (w.classList.contains("list") || w.classList.contains("object")) return [w];
    return [...w.querySelectorAll(".ctl")]; // a tuple: its parts
  }
  function targetOf(path) {
    let p = path || "";
    while (p) {
      const w = form.querySelector(`[data-path="${CSS.escape(p)}"]`);
      if (w) return w;
      const cut = p.replace(/(\.[^.[]+|\[\d+\])$/, "");
      if (cut === p) break;
      p = cut;
    }
    return null;
  }
  function showProblems(detail, problems) {
    clearProblems();
    const loose = [];
    const marked = [];
    for (const p of problems) {
      const w = p.field ? targetOf(p.field) : null;
      if (!w || !w.errorEl) { loose.push(p); continue; }
      w.classList.add("has-error");
      w.errorEl.hidden = false;
      w.errorEl.append(el("span", { class: "problem", text: p.text || p.message }));
      for (const c of controlsOf(w)) {
        c.setAttribute("aria-invalid", "true");
        c.setAttribute("aria-describedby", [w.errorEl.id, c.dataset.describedby].filter(Boolean).join(" "));
      }
      for (let d = w.closest("details"); d; d = d.parentElement.closest("details")) d.open = true;
      marked.push(w);
    }
    summaryTitle.textContent = detail || "The brief was not accepted";
    for (const p of loose) summaryList.append(el("li", { text: p.text || p.message }));
    if (marked.length) {
      summaryList.append(el("li", { class: "hint", text: marked.length === 1 ? "The problem is shown beside its field." :
        `${marked.length} fields show their problems beside them.` }));
    }
    summary.hidden = false;
    // Focus the first problem on the page: the list above the form when it has problems
    // of its own, else the first field with one.
    const first = marked.map((w) => controlsOf(w)[0]).filter(Boolean)
      .sort((a, b) => (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING ? -1 : 1))[0];
    (loose.length || !first ? summary : first).focus();
    studio.say(detail || "The brief was not accepted");
  }

  // -- submit ----------------------------------------------------------------------------------
  async function submit(event) {
    event.preventDefault();
    const button = document.getElementById("brief-submit");
    button.disabled = true;
    form.setAttribute("aria-busy", "true");
    clearProblems();
    const brief = root.collect();
    try {
      const job = await studio.api("POST", "/v1/jobs", brief);
      studio.say(`Submitted as ${job.id}`);
      window.location.assign(`/review/jobs/${encodeURIComponent(job.id)}`);
    } catch (err) {
      const data = err.data || {};
      const problems = data.problems && data.problems.length ? data.problems :
        [{ field: null, text: data.fix ? `${err.message} — ${data.fix}` : err.message }];
      showProblems(data.detail || err.message, problems);
      button.disabled = false;
    } finally {
      form.removeAttribute("aria-busy");
    }
  }

  // -- the YAML upload --------------------------------------------------------------------------
  function upload() {
    const uform = document.getElementById("upload-form");
    const file = document.getElementById("upload-file");
    const box = document.getElementById("upload-problems");
    const list = document.getElementById("upload-problems-list");
    const title = document.getElementById("upload-problems-title");
    const show = (heading, problems) => {
      title.textContent = heading;
      list.replaceChildren(...problems.map((p) => el("li", {},
        p.line ? el("span", { class: "line", text: `line ${p.line}: ` }) : null, p.text || p.message)));
      box.hidden = false;
      file.setAttribute("aria-invalid", "true");
      file.setAttribute("aria-describedby", "upload-problems-title upload-problems-list upload-help");
      box.focus();
      studio.say(heading);
    };
    uform.addEventListener("submit", async (event) => {
      event.preventDefault();
      box.hidden = true;
      file.removeAttribute("aria-invalid");
      file.setAttribute("aria-describedby", "upload-help");
      const chosen = file.files && file.files[0];
      if (!chosen) {
        show("Choose a YAML file first", []);
        file.focus();
        return;
      }
      const r = await fetch("/v1/jobs", { method: "POST", credentials: "same-origin", body: chosen,
        headers: { "Content-Type": "application/yaml", "X-Requested-With": "studio", "Accept": "application/json" } });
      let data = {};
      try { data = await r.json(); } catch (e) { data = {}; }
      if (r.ok) {
        studio.say(`Submitted as ${data.id}`);
        window.location.assign(`/review/jobs/${encodeURIComponent(data.id)}`);
        return;
      }
      const problems = data.problems && data.problems.length ? data.problems :
        [{ text: data.fix ? `${data.detail} — ${data.fix}` : (data.detail || `${r.status} ${r.statusText}`) }];
      show(data.detail || "The file was not accepted", problems);
    });
  }

  // -- start -------------------------------------------------------------------------------------
  async function start() {
    try {
      [schema, catalog] = await Promise.all([studio.api("GET", "/v1/schemas/brief"), studio.api("GET", "/v1/catalog")]);
    } catch (err) {
      document.getElementById("brief-loading").textContent = `The form cannot load: ${err.message}`;
      return;
    }
    root = objectNode(null, schema, true);
    root.setPath("");
    form.replaceChildren(root.w,
      el("div", { class: "actions" }, el("button", { type: "submit", class: "primary", id: "brief-submit", text: "Submit brief" })));
    form.removeAttribute("aria-busy");
    form.addEventListener("submit", submit);
    form.dataset.ready = "true";
  }
  upload();
  start();
})();
