// Gatehouse admin API docs page: renders /openapi.json and sends requests
// ("Try it"). Plain DOM code, no dependencies; every text from the
// document goes in through textContent, never as HTML.
"use strict";

(function () {
  const TOKEN_KEY = "gatehouse.admin.token";
  const METHODS = ["get", "post", "put", "patch", "delete"];
  // The API's base: the page is served at <base>/docs.
  const BASE = location.pathname.replace(/\/docs\/?$/, "");

  let spec = null;

  function el(tag, attrs, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k === "class") e.className = v;
      else if (k === "text") e.textContent = v;
      else if (k.startsWith("on")) e.addEventListener(k.slice(2), v);
      else e.setAttribute(k, v === true ? "" : String(v));
    }
    for (const c of children) {
      if (c === undefined || c === null || c === false) continue;
      e.append(c instanceof Node ? c : document.createTextNode(String(c)));
    }
    return e;
  }

  // --- schemas ---------------------------------------------------------

  function refName(ref) {
    return ref.split("/").pop();
  }

  function resolve(schema) {
    let s = schema || {};
    for (let i = 0; i < 32 && s.$ref; i++) {
      const parts = s.$ref.replace(/^#\//, "").split("/");
      let t = spec;
      for (const p of parts) t = t ? t[p.replace(/~1/g, "/").replace(/~0/g, "~")] : undefined;
      if (!t) return {};
      s = t;
    }
    return s;
  }

  // A short type text: "string", "integer | null", "Service", "array of string".
  function typeText(schema) {
    if (!schema || typeof schema !== "object") return "any";
    if (schema.$ref) return refName(schema.$ref);
    if (schema.const !== undefined) return JSON.stringify(schema.const);
    if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
    const alts = schema.anyOf || schema.oneOf;
    if (alts) return alts.map(typeText).join(" | ");
    let t = schema.type;
    if (Array.isArray(t)) {
      return t.map((x) => (x === "array" ? typeText({ ...schema, type: "array" }) : x)).join(" | ");
    }
    if (t === "array") return "array of " + typeText(schema.items);
    if (t === "object" && schema.additionalProperties && typeof schema.additionalProperties === "object" && !schema.properties) {
      return "map of " + typeText(schema.additionalProperties);
    }
    if (!t && schema.properties) t = "object";
    if (schema.format) return (t || "any") + " (" + schema.format + ")";
    return t || "any";
  }

  // The named schemas a schema points at (directly, or through arrays,
  // maps and alternatives), to offer as nested views.
  function refsOf(schema, out) {
    if (!schema || typeof schema !== "object") return out;
    if (schema.$ref) out.add(refName(schema.$ref));
    for (const k of ["anyOf", "oneOf", "allOf"]) (schema[k] || []).forEach((s) => refsOf(s, out));
    if (schema.items) refsOf(schema.items, out);
    if (schema.additionalProperties && typeof schema.additionalProperties === "object") refsOf(schema.additionalProperties, out);
    return out;
  }

  // A readable view of a schema: its description and a table of fields
  // (name, type, required, description); named sub-schemas open on demand.
  function schemaView(schema, seen, untitled) {
    seen = seen || new Set();
    const wrap = el("div", { class: "schema" });
    let s = schema;
    if (s && s.$ref) {
      const name = refName(s.$ref);
      seen = new Set(seen).add(name);
      if (!untitled) wrap.append(el("div", { class: "schema-name", text: name }));
      s = resolve(s);
    }
    if (s.description) wrap.append(el("p", { class: "desc", text: s.description }));
    const alts = s.anyOf || s.oneOf;
    if (alts && !s.properties) {
      wrap.append(el("p", {}, "One of: ", el("code", { text: alts.map(typeText).join(" | ") })));
      nestedRefs(wrap, refsOf(s, new Set()), seen);
      return wrap;
    }
    const props = s.properties || {};
    const names = Object.keys(props);
    if (names.length === 0) {
      wrap.append(el("p", {}, "Type: ", el("code", { text: typeText(s) })));
      nestedRefs(wrap, refsOf(s, new Set()), seen);
      return wrap;
    }
    const required = new Set(s.required || []);
    const table = el("table", { class: "fields" },
      el("thead", {}, el("tr", {}, el("th", { text: "field" }), el("th", { text: "type" }), el("th", { text: "description" }))));
    const body = el("tbody");
    const refs = new Set();
    for (const n of names) {
      const p = props[n];
      refsOf(p, refs);
      const desc = [p.description || resolve(p).description || ""];
      if (p.default !== undefined) desc.push("Default: " + JSON.stringify(p.default) + ".");
      body.append(el("tr", { "data-field": n },
        el("td", { class: "field" }, n, required.has(n) ? el("span", { class: "req", text: "required" }) : null),
        el("td", { class: "type", text: typeText(p) }),
        el("td", { class: "desc", text: desc.join(" ").trim() })));
    }
    table.append(body);
    wrap.append(table);
    if (s.additionalProperties === false) wrap.append(el("p", { class: "summary", text: "No other fields are allowed." }));
    nestedRefs(wrap, refs, seen);
    return wrap;
  }

  function nestedRefs(wrap, refs, seen) {
    for (const name of refs) {
      if (seen.has(name)) continue;
      const d = el("details", { class: "nested" }, el("summary", { text: name }));
      let filled = false;
      d.addEventListener("toggle", () => {
        if (d.open && !filled) {
          filled = true;
          d.append(schemaView({ $ref: "#/components/schemas/" + name }, seen, true));
        }
      });
      wrap.append(d);
    }
  }

  // A minimal instance of a schema: its required fields only.
  function minimal(schema, depth) {
    depth = depth || 0;
    const s = resolve(schema);
    if (depth > 8) return null;
    if (s.example !== undefined) return s.example;
    if (s.default !== undefined) return s.default;
    if (s.const !== undefined) return s.const;
    if (s.enum) return s.enum[0];
    const alts = s.anyOf || s.oneOf;
    if (alts) return minimal(alts.find((a) => resolve(a).type !== "null") || alts[0], depth + 1);
    const t = Array.isArray(s.type) ? s.type.find((x) => x !== "null") : s.type;
    switch (t || (s.properties ? "object" : "")) {
      case "object": {
        const o = {};
        for (const n of s.required || []) o[n] = minimal((s.properties || {})[n], depth + 1);
        return o;
      }
      case "array": return [];
      case "string": return "";
      case "integer": case "number": return 0;
      case "boolean": return false;
      default: return null;
    }
  }

  // --- rendering -------------------------------------------------------

  function opKey(method, path) {
    return method.toUpperCase() + " " + path;
  }

  function render() {
    const main = document.getElementById("ops");
    const nav = document.getElementById("tags");
    main.textContent = "";
    nav.textContent = "";
    const groups = new Map();
    for (const t of spec.tags || []) groups.set(t.name, []);
    for (const [path, item] of Object.entries(spec.paths || {})) {
      for (const m of METHODS) {
        const op = item[m];
        if (!op) continue;
        const tag = (op.tags && op.tags[0]) || "other";
        if (!groups.has(tag)) groups.set(tag, []);
        groups.get(tag).push([m, path, op]);
      }
    }
    for (const [tag, ops] of groups) {
      if (ops.length === 0) continue;
      const id = "tag-" + tag.replace(/[^A-Za-z0-9_-]/g, "-");
      nav.append(el("a", { href: "#" + id, text: tag }));
      const section = el("section", { class: "tag", id, "data-tag": tag }, el("h2", { text: tag }));
      for (const [m, path, op] of ops) section.append(operation(m, path, op));
      main.append(section);
    }
    applyFilter();
  }

  function operation(method, path, op) {
    const details = el("details", { class: "op", "data-op": opKey(method, path) });
    const open = Array.isArray(op.security) && op.security.length === 0;
    details.append(el("summary", {},
      el("span", { class: "method " + method, text: method.toUpperCase() }),
      el("span", { class: "path", text: path }),
      el("span", { class: "summary", text: op.summary || "" }),
      open ? el("span", { class: "lock", text: "no token needed" }) : null));
    let built = false;
    details.addEventListener("toggle", () => {
      if (details.open && !built) {
        built = true;
        details.append(operationBody(method, path, op));
      }
    });
    return details;
  }

  function operationBody(method, path, op) {
    const body = el("div", { class: "body" });
    const params = op.parameters || [];
    if (params.length) {
      body.append(el("h3", { text: "Parameters" }));
      const tb = el("tbody");
      for (const p of params) {
        tb.append(el("tr", {},
          el("td", { class: "field" }, p.name, p.required ? el("span", { class: "req", text: "required" }) : null),
          el("td", { class: "type", text: p.in + " · " + typeText(p.schema) }),
          el("td", { class: "desc", text: p.description || "" })));
      }
      body.append(el("table", {}, el("thead", {}, el("tr", {}, el("th", { text: "name" }), el("th", { text: "in · type" }), el("th", { text: "description" }))), tb));
    }
    const media = op.requestBody && op.requestBody.content && op.requestBody.content["application/json"];
    if (media) {
      body.append(el("h3", { text: "Request body" }));
      body.append(el("div", { class: "request-schema" }, schemaView(media.schema || {})));
    }
    const codes = Object.keys(op.responses || {});
    if (codes.length) {
      body.append(el("h3", { text: "Responses" }));
      const ul = el("ul", { class: "responses" });
      for (const c of codes) {
        const r = op.responses[c];
        const schema = r.content && r.content[Object.keys(r.content)[0]].schema;
        ul.append(el("li", {}, el("code", { text: c }), " ", r.description || "", schema ? el("span", { class: "type", text: " → " + typeText(schema) }) : null));
      }
      body.append(ul);
    }
    body.append(tryIt(method, path, op, media));
    return body;
  }

  function tryIt(method, path, op, media) {
    const form = el("form", { class: "try", novalidate: true });
    form.append(el("h3", { text: "Try it" }));
    const grid = el("div", { class: "params" });
    const inputs = [];
    for (const p of op.parameters || []) {
      const id = "p-" + Math.random().toString(36).slice(2);
      const input = el("input", { id, name: "param-" + p.name, "data-in": p.in, "data-name": p.name, placeholder: p.in + (p.required ? ", required" : "") });
      if (p.name === "ws") input.value = "default";
      inputs.push(input);
      grid.append(el("label", { for: id, text: p.name }), input);
    }
    if (inputs.length) form.append(grid);
    let textarea = null;
    if (media) {
      const example = media.example !== undefined ? media.example : minimal(media.schema || {});
      const id = "b-" + Math.random().toString(36).slice(2);
      textarea = el("textarea", { id, name: "body", class: "json", spellcheck: "false" });
      textarea.value = JSON.stringify(example, null, 2);
      form.append(el("label", { for: id, text: "JSON body" }), textarea);
    }
    const send = el("button", { type: "submit", class: "send", text: "Send" });
    const note = el("span", { class: "error note" });
    form.append(el("div", { class: "actions" }, send, note));
    const result = el("div", { class: "result hidden" },
      el("div", { class: "status" }),
      el("h3", { text: "Headers" }), el("pre", { class: "headers" }),
      el("h3", { text: "Body" }), el("pre", { class: "response" }));
    form.append(result);
    form.addEventListener("submit", async (ev) => {
      ev.preventDefault();
      note.textContent = "";
      let url = path;
      const query = new URLSearchParams();
      const headers = {};
      for (const i of inputs) {
        const v = i.value;
        const where = i.dataset.in;
        if (where === "path") {
          if (v === "") { note.textContent = "Fill in " + i.dataset.name + "."; i.focus(); return; }
          url = url.replace("{" + i.dataset.name + "}", encodeURIComponent(v));
        } else if (v !== "") {
          if (where === "query") query.append(i.dataset.name, v);
          else if (where === "header") headers[i.dataset.name] = v;
        }
      }
      const qs = query.toString();
      const init = { method: method.toUpperCase(), headers, cache: "no-store" };
      const token = document.getElementById("token").value.trim();
      if (token) headers.Authorization = "Bearer " + token;
      if (textarea) {
        try {
          JSON.parse(textarea.value);
        } catch (e) {
          note.textContent = "The body is not valid JSON: " + e.message;
          return;
        }
        headers["Content-Type"] = "application/json";
        init.body = textarea.value;
      }
      send.disabled = true;
      try {
        const resp = await fetch(BASE + url + (qs ? "?" + qs : ""), init);
        const text = await resp.text();
        showResult(result, resp, text);
      } catch (e) {
        note.textContent = "Request failed: " + e.message;
      } finally {
        send.disabled = false;
      }
    });
    return form;
  }

  function showResult(result, resp, text) {
    result.classList.remove("hidden");
    const status = result.querySelector(".status");
    status.textContent = resp.status + " " + resp.statusText;
    status.className = "status " + (resp.ok ? "ok" : "err");
    status.dataset.status = String(resp.status);
    const lines = [];
    resp.headers.forEach((v, k) => lines.push(k + ": " + v));
    result.querySelector(".headers").textContent = lines.sort().join("\n");
    let shown = text;
    try {
      if (text) shown = JSON.stringify(JSON.parse(text), null, 2);
    } catch (_) {
      shown = text;
    }
    result.querySelector(".response").textContent = shown || "(empty)";
  }

  function applyFilter() {
    const q = document.getElementById("filter").value.trim().toLowerCase();
    for (const d of document.querySelectorAll("details.op")) {
      const text = d.querySelector("summary").textContent.toLowerCase();
      d.classList.toggle("hidden", q !== "" && !text.includes(q));
    }
  }

  // --- start -----------------------------------------------------------

  function start() {
    const token = document.getElementById("token");
    token.value = sessionStorage.getItem(TOKEN_KEY) || "";
    token.addEventListener("input", () => sessionStorage.setItem(TOKEN_KEY, token.value.trim()));
    document.getElementById("filter").addEventListener("input", applyFilter);
    fetch(BASE + "/openapi.json", { cache: "no-store" })
      .then((r) => {
        if (!r.ok) throw new Error("GET /openapi.json answered " + r.status);
        return r.json();
      })
      .then((doc) => {
        spec = doc;
        if (doc.info && doc.info.title) document.querySelector("header h1").textContent = doc.info.title;
        render();
        document.body.dataset.ready = "true";
      })
      .catch((e) => {
        const main = document.getElementById("ops");
        main.textContent = "";
        main.append(el("p", { class: "error", text: "Could not load the API description: " + e.message }));
        throw e;
      });
  }

  start();
})();
