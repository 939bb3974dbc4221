// BeTrace web UI: rules, violations with their trace waterfall, server status.
// Plain ES module, no build step. Every request goes to the REST API of the server that served
// this page; a token, when the server asks for one (401), is kept in sessionStorage and sent
// as `Authorization: Bearer`, never in a URL.

const TOKEN_KEY = "betrace.token";
const SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"];
const main = document.getElementById("main");
let config = null;
let statusTimer = null;

// ---- DOM helpers ---------------------------------------------------------------------------

/** Builds an element: h("a", {href: "#"}, "text", child). Text is never parsed as HTML. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else if (k === "dataset") Object.assign(el.dataset, v);
    else if (k === "style") el.style.cssText = v; // CSSOM: allowed by the page's CSP, unlike a style attribute
    else if (v === true) el.setAttribute(k, "");
    else el.setAttribute(k, String(v));
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

function show(...nodes) {
  main.replaceChildren(...nodes.filter((n) => n !== null && n !== undefined && n !== false));
}

function notice(text, kind = "info") {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.className = `notice ${kind}`;
  n.hidden = !text;
  if (text && kind !== "error") setTimeout(() => { if (n.textContent === text) n.hidden = true; }, 4000);
}

function fmtTime(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  return isNaN(d) ? iso : d.toISOString().replace("T", " ").replace("Z", " UTC");
}

function sevBadge(sev) {
  return h("span", { class: `sev sev-${String(sev).toLowerCase()}` }, sev);
}

function download(name, blob) {
  const url = URL.createObjectURL(blob);
  const a = h("a", { href: url, download: name });
  document.body.append(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

// ---- API -----------------------------------------------------------------------------------

class ApiError extends Error {
  constructor(status, body) {
    const e = (body && body.error) || {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code;
    this.diagnostics = e.diagnostics || [];
  }
}

let tokenWaiters = null;

/** Shows the token dialog; resolves once a token was entered. */
function askToken(message) {
  if (!tokenWaiters) {
    tokenWaiters = [];
    const dlg = document.getElementById("token-dialog");
    const err = document.getElementById("token-error");
    err.textContent = message || "";
    err.hidden = !message;
    document.getElementById("token-input").value = "";
    if (!dlg.open) dlg.showModal();
  }
  return new Promise((resolve) => tokenWaiters.push(resolve));
}

function initTokenDialog() {
  const form = document.getElementById("token-form");
  const dlg = document.getElementById("token-dialog");
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const t = document.getElementById("token-input").value.trim();
    if (!t) return;
    sessionStorage.setItem(TOKEN_KEY, t);
    dlg.close();
    const w = tokenWaiters || [];
    tokenWaiters = null;
    updateSignOut();
    w.forEach((r) => r());
  });
  dlg.addEventListener("cancel", (ev) => ev.preventDefault());
  document.getElementById("sign-out").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    updateSignOut();
    route();
  });
}

function updateSignOut() {
  document.getElementById("sign-out").hidden = !sessionStorage.getItem(TOKEN_KEY);
}

/** fetch() against the API with the token; asks for a token on 401 and retries. */
async function request(path, { method = "GET", body, type = "application/json", raw = false } = {}) {
  for (;;) {
    const headers = {};
    const token = sessionStorage.getItem(TOKEN_KEY);
    if (token) headers["Authorization"] = `Bearer ${token}`;
    let payload;
    if (body !== undefined) {
      headers["Content-Type"] = type;
      payload = typeof body === "string" ? body : JSON.stringify(body);
    }
    const resp = await fetch(path, { method, headers, body: payload });
    if (resp.status === 401) {
      if (token) sessionStorage.removeItem(TOKEN_KEY);
      await askToken(token ? "That token was refused." : "");
      continue;
    }
    if (raw) {
      if (!resp.ok) throw new ApiError(resp.status, await resp.json().catch(() => null));
      return resp;
    }
    const text = await resp.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; }
    catch { throw new ApiError(resp.status, { error: { message: `HTTP ${resp.status}: the answer is not JSON` } }); }
    if (!resp.ok) throw new ApiError(resp.status, data);
    return data;
  }
}

const api = {
  get: (p) => request(p),
  post: (p, body) => request(p, { method: "POST", body: body ?? {} }),
  put: (p, body) => request(p, { method: "PUT", body }),
  del: (p) => request(p, { method: "DELETE" }),
};

// ---- Rules ---------------------------------------------------------------------------------

async function rulesPage() {
  const [list, cfg, lastByRule] = await Promise.all([
    api.get("/v1/rules"), loadConfig(), api.get("/v1/ui/last-violations"),
  ]);
  const rules = list.rules;
  const last = rules.map((r) => lastByRule.rules[r.id] || null);
  const importInput = h("input", { type: "file", accept: ".yaml,.yml,.json", hidden: true, id: "import-file", onchange: importRules });
  const banner = cfg.rulesReadOnly
    ? h("p", { class: "banner", id: "read-only-banner" },
        "Rules from the file ", h("code", {}, cfg.rulesFile),
        " (--rules) are read-only here: edit the file and restart the server to change them.")
    : null;
  const rows = rules.map((r, i) => {
    const ro = r.readOnly;
    const v = last[i];
    return h("tr", { dataset: { rule: r.id } },
      h("td", {}, h("div", { class: "rule-name" }, r.name || r.id), h("div", { class: "muted mono" }, r.id),
        ro ? h("span", { class: "tag ro" }, "read-only") : null),
      h("td", {}, sevBadge(r.severity)),
      h("td", {}, h("label", { class: "switch" },
        h("input", {
          type: "checkbox", class: "toggle", checked: r.enabled, disabled: ro,
          "aria-label": `enable ${r.id}`,
          onchange: async (ev) => {
            const on = ev.target.checked;
            try {
              await api.post(`/v1/rules/${encodeURIComponent(r.id)}/${on ? "enable" : "disable"}`);
              ev.target.nextElementSibling.textContent = on ? "on" : "off";
              notice(`Rule ${r.id} ${on ? "enabled" : "disabled"}`);
            } catch (e) {
              ev.target.checked = !on;
              notice(e.message, "error");
            }
          },
        }), h("span", {}, r.enabled ? "on" : "off"))),
      h("td", {}, (r.tags || []).map((t) => h("span", { class: "tag" }, t))),
      h("td", {}, v ? h("a", { href: `#/violations/${v.id}` }, fmtTime(v.createdAt)) : h("span", { class: "muted" }, "never")),
      h("td", { class: "actions" },
        h("a", { class: "button small", href: `#/rules/edit/${encodeURIComponent(r.id)}` }, ro ? "View" : "Edit"),
        h("button", {
          type: "button", class: "small danger", disabled: ro,
          onclick: async () => {
            if (!confirm(`Delete rule ${r.id}?`)) return;
            try { await api.del(`/v1/rules/${encodeURIComponent(r.id)}`); notice(`Rule ${r.id} deleted`); route(); }
            catch (e) { notice(e.message, "error"); }
          },
        }, "Delete")));
  });
  show(
    h("div", { class: "toolbar" },
      h("h1", {}, "Rules"), h("span", { class: "spacer" }),
      h("a", { class: "button", href: "#/rules/new", id: "new-rule" }, "New rule"),
      h("button", { type: "button", onclick: () => importInput.click(), id: "import-rules" }, "Import"),
      h("button", { type: "button", onclick: exportRules, id: "export-rules" }, "Export"),
      importInput),
    banner,
    h("div", { id: "import-results" }),
    rules.length
      ? h("table", { class: "grid", id: "rules-table" },
          h("thead", {}, h("tr", {}, ["Rule", "Severity", "Enabled", "Tags", "Last violation", ""].map((c) => h("th", {}, c)))),
          h("tbody", {}, rows))
      : h("p", { class: "empty" }, "No rules yet. Create one, or import a rules file."),
  );
}

async function exportRules() {
  try {
    const resp = await request("/v1/rules/export", { raw: true });
    download("betrace-rules.yaml", await resp.blob());
  } catch (e) { notice(e.message, "error"); }
}

async function importRules(ev) {
  const file = ev.target.files[0];
  if (!file) return;
  const text = await file.text();
  try {
    const r = await request("/v1/rules/import", { method: "POST", body: text, type: "application/yaml" });
    await rulesPage();
    const box = document.getElementById("import-results");
    box.replaceChildren(
      h("p", { class: r.failed ? "banner error" : "banner" },
        `Imported ${file.name}: ${r.created} created, ${r.updated} updated, ${r.failed} failed.`),
      h("ul", {}, r.results.filter((x) => x.status === "error")
        .map((x) => h("li", {}, h("code", {}, x.id || "?"), " ", x.message || ""))),
    );
  } catch (e) { notice(`Import failed: ${e.message}`, "error"); }
}

function debounce(fn, ms) {
  let t;
  return (...a) => { clearTimeout(t); t = setTimeout(() => fn(...a), ms); };
}

/** The line of `text` holding byte-ish offset `line` (1-based), with a caret under `column`. */
function excerpt(text, line, column, width) {
  const src = text.split("\n")[line - 1] ?? "";
  const pad = " ".repeat(Math.max(0, column - 1));
  return h("pre", { class: "excerpt" },
    h("span", { class: "muted" }, `${String(line).padStart(3)} | `), src, "\n",
    h("span", { class: "muted" }, "    | "), pad, h("span", { class: "caret" }, "^".repeat(Math.max(1, width))));
}

function renderDiagnostics(box, text, diags, editor) {
  box.replaceChildren(
    ...diags.map((d) => {
      const width = Math.max(1, Math.min(d.end - d.start, (text.split("\n")[d.line - 1] ?? "").length - d.column + 1));
      return h("li", { class: "diag", dataset: { line: d.line, column: d.column, code: d.code } },
        h("button", {
          type: "button", class: "link pos",
          onclick: () => { editor.focus(); editor.setSelectionRange(d.start, Math.max(d.start, d.end)); },
        }, `${d.line}:${d.column}`),
        " ", h("span", { class: "code" }, d.code), " ", h("span", { class: "msg" }, d.message),
        excerpt(text, d.line, d.column, width),
        d.help ? h("div", { class: "help" }, "help: ", d.help) : null);
    }),
  );
}

async function ruleEditor(id) {
  const cfg = await loadConfig();
  const rule = id
    ? await api.get(`/v1/rules/${encodeURIComponent(id)}`)
    : { id: "", name: "", description: "", expression: "", severity: "MEDIUM", tags: [], enabled: true };
  const ro = !!rule.readOnly;
  const f = {
    id: h("input", { name: "id", value: rule.id, disabled: !!id, placeholder: "default: the name", pattern: "[A-Za-z0-9._:-]+" }),
    name: h("input", { name: "name", value: rule.name || "", disabled: ro }),
    description: h("input", { name: "description", value: rule.description || "", disabled: ro }),
    severity: h("select", { name: "severity", disabled: ro },
      SEVERITIES.map((s) => h("option", { value: s, selected: s === rule.severity }, s))),
    tags: h("input", { name: "tags", value: (rule.tags || []).join(", "), disabled: ro, placeholder: "comma separated" }),
    enabled: h("input", { type: "checkbox", name: "enabled", checked: rule.enabled, disabled: ro }),
    expression: h("textarea", { name: "expression", id: "expression", rows: 10, spellcheck: "false", disabled: ro, class: "mono" }),
  };
  f.expression.value = rule.expression || "";
  const status = h("span", { id: "validity", class: "muted" });
  const diagBox = h("ul", { id: "diagnostics", class: "diagnostics" });
  let seq = 0;
  const validate = async () => {
    const text = f.expression.value;
    const mine = ++seq;
    if (!text.trim()) { status.textContent = ""; diagBox.replaceChildren(); return; }
    try {
      const r = await api.post("/v1/rules/validate", { expression: text });
      if (mine !== seq) return;
      status.textContent = r.valid ? `valid (${r.form} form)` : `${r.diagnostics.length} problem(s)`;
      status.className = r.valid ? "ok" : "error";
      renderDiagnostics(diagBox, text, r.diagnostics, f.expression);
    } catch (e) {
      if (mine === seq) { status.textContent = e.message; status.className = "error"; }
    }
  };
  f.expression.addEventListener("input", debounce(validate, 250));
  const saveError = h("p", { class: "error", id: "save-error", hidden: true });
  const save = async (ev) => {
    ev.preventDefault();
    const body = {
      name: f.name.value.trim() || undefined,
      description: f.description.value,
      expression: f.expression.value,
      severity: f.severity.value,
      tags: f.tags.value.split(",").map((t) => t.trim()).filter(Boolean),
      enabled: f.enabled.checked,
    };
    try {
      if (id) await api.put(`/v1/rules/${encodeURIComponent(id)}`, { ...body, id });
      else await api.post("/v1/rules", f.id.value.trim() ? { ...body, id: f.id.value.trim() } : body);
      notice(`Rule ${id || f.id.value || body.name} saved`);
      location.hash = "#/rules";
    } catch (e) {
      saveError.hidden = false;
      saveError.textContent = e.message;
      if (e.diagnostics.length) renderDiagnostics(diagBox, f.expression.value, e.diagnostics, f.expression);
    }
  };
  const field = (label, input, hint) => h("label", { class: "field" }, h("span", {}, label), input, hint ? h("small", { class: "muted" }, hint) : null);
  show(
    h("div", { class: "toolbar" }, h("h1", {}, id ? (ro ? `Rule ${id}` : `Edit ${id}`) : "New rule"),
      h("span", { class: "spacer" }), h("a", { href: "#/rules" }, "Back to rules")),
    ro ? h("p", { class: "banner", id: "read-only-banner" }, "This rule comes from ", h("code", {}, cfg.rulesFile || "the rules file"), " and is read-only.") : null,
    h("form", { class: "editor", id: "rule-form", onsubmit: save },
      h("div", { class: "fields" },
        field("Id", f.id), field("Name", f.name), field("Severity", f.severity),
        field("Tags", f.tags), field("Description", f.description),
        h("label", { class: "field check" }, f.enabled, h("span", {}, "Enabled"))),
      h("label", { class: "field wide" }, h("span", {}, "Expression ", status), f.expression),
      diagBox,
      saveError,
      ro ? null : h("div", { class: "actions" }, h("button", { type: "submit", id: "save-rule" }, "Save")),
    ),
    testPanel(() => f.expression.value),
  );
  if (rule.expression) validate();
}

const SAMPLE_SPANS = JSON.stringify([
  { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b7", name: "checkout", serviceName: "shop", startTime: "1700000000000000000", endTime: "1700000000030000000" },
  { traceId: "4bf92f3577b34da6a3ce929d0e0e4736", spanId: "00f067aa0ba902b8", parentSpanId: "00f067aa0ba902b7", name: "payment", serviceName: "shop", status: "error", startTime: "1700000000001000000", endTime: "1700000000021000000" },
], null, 2);

/** `{otlp}`, `{spans}` or `{span}` from pasted JSON. */
function traceBody(value) {
  if (Array.isArray(value)) return { spans: value };
  if (value && typeof value === "object") {
    if (value.resourceSpans) return { otlp: value };
    if (Array.isArray(value.spans)) return { spans: value.spans };
    return { span: value };
  }
  throw new Error("paste a JSON object or list");
}

function testPanel(expression) {
  const input = h("textarea", { id: "test-spans", rows: 8, spellcheck: "false", class: "mono" });
  input.value = SAMPLE_SPANS;
  const out = h("div", { id: "test-result" });
  const run = async () => {
    let body;
    try { body = traceBody(JSON.parse(input.value)); }
    catch (e) { out.replaceChildren(h("p", { class: "error" }, `Not JSON: ${e.message}`)); return; }
    try {
      const r = await api.post("/v1/rules/test", { expression: expression(), ...body });
      out.replaceChildren(
        h("p", { class: r.matches ? "error" : "ok", id: "test-verdict" },
          r.matches ? "Violation: " : "No violation", r.matches ? r.violation.message : "",
          h("span", { class: "muted" }, ` (${r.evaluationTimeMs.toFixed(3)} ms)`)),
        r.violation ? h("pre", { class: "json" }, JSON.stringify(r.violation, null, 2)) : null);
    } catch (e) {
      out.replaceChildren(h("p", { class: "error" }, e.message));
    }
  };
  return h("section", { class: "panel" },
    h("h2", {}, "Test this rule"),
    h("p", { class: "muted" }, "Paste OTLP/JSON (an export request with resourceSpans) or simple-JSON spans (a list, or one span)."),
    input,
    h("div", { class: "actions" }, h("button", { type: "button", id: "run-test", onclick: run }, "Run test")),
    out);
}

// ---- Violations ----------------------------------------------------------------------------

function violationQuery(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v) q.set(k, v);
  return q;
}

async function violationsPage(params) {
  const rules = await api.get("/v1/rules").then((r) => r.rules).catch(() => []);
  const f = {
    ruleId: h("select", { name: "ruleId" }, h("option", { value: "" }, "any rule"),
      rules.map((r) => h("option", { value: r.id, selected: params.get("ruleId") === r.id }, r.id))),
    severity: h("select", { name: "severity" }, h("option", { value: "" }, "any severity"),
      SEVERITIES.map((s) => h("option", { value: s, selected: params.get("severity") === s }, s))),
    traceId: h("input", { name: "traceId", value: params.get("traceId") || "", placeholder: "trace id (32 hex)", size: 34, class: "mono" }),
    startTime: h("input", { name: "startTime", type: "datetime-local", step: 1, value: toLocal(params.get("startTime")) }),
    endTime: h("input", { name: "endTime", type: "datetime-local", step: 1, value: toLocal(params.get("endTime")) }),
  };
  const filters = () => violationQuery({
    ruleId: f.ruleId.value, severity: f.severity.value, traceId: f.traceId.value.trim(),
    startTime: fromLocal(f.startTime.value), endTime: fromLocal(f.endTime.value),
  });
  const apply = (ev) => { ev.preventDefault(); location.hash = `#/violations?${filters()}`; };
  const list = h("div", { id: "violations-list" });
  const csv = async () => {
    const q = filters(); q.set("format", "csv"); q.set("limit", "1000");
    try {
      const resp = await request(`/v1/violations?${q}`, { raw: true });
      download("betrace-violations.csv", await resp.blob());
    } catch (e) { notice(e.message, "error"); }
  };
  show(
    h("div", { class: "toolbar" }, h("h1", {}, "Violations"), h("span", { class: "spacer" }),
      h("button", { type: "button", id: "download-csv", onclick: csv }, "Download CSV")),
    h("form", { class: "filters", id: "filters", onsubmit: apply },
      f.ruleId, f.severity, f.traceId,
      h("label", {}, "from ", f.startTime), h("label", {}, "to ", f.endTime),
      h("button", { type: "submit", id: "apply-filters" }, "Apply"),
      h("a", { href: "#/violations", class: "button secondary" }, "Clear")),
    list,
  );
  const cursors = [];
  const load = async (cursor) => {
    const q = filters(); q.set("limit", params.get("limit") || "50");
    if (cursor) q.set("cursor", cursor);
    let page;
    try { page = await api.get(`/v1/violations?${q}`); }
    catch (e) { list.replaceChildren(h("p", { class: "error" }, e.message)); return; }
    const rows = page.violations.map((v) => h("tr", { dataset: { id: v.id }, class: "clickable", onclick: () => { location.hash = `#/violations/${v.id}`; } },
      h("td", { class: "nowrap" }, fmtTime(v.createdAt)),
      h("td", { class: "rule" }, v.ruleId),
      h("td", {}, sevBadge(v.severity)),
      h("td", { class: "mono" }, v.traceId),
      h("td", {}, h("a", { href: `#/violations/${v.id}` }, v.message))));
    list.replaceChildren(
      rows.length
        ? h("table", { class: "grid", id: "violations-table" },
            h("thead", {}, h("tr", {}, ["Created", "Rule", "Severity", "Trace", "Message"].map((c) => h("th", {}, c)))),
            h("tbody", {}, rows))
        : h("p", { class: "empty" }, "No violations match."),
      h("div", { class: "pager" },
        h("button", { type: "button", id: "prev-page", disabled: cursors.length === 0, onclick: () => { cursors.pop(); load(cursors[cursors.length - 1]); } }, "Newer"),
        h("span", { class: "muted" }, `page ${cursors.length + 1}`),
        h("button", { type: "button", id: "next-page", disabled: !page.nextCursor, onclick: () => { cursors.push(page.nextCursor); load(page.nextCursor); } }, "Older")));
  };
  await load(null);
}

function toLocal(v) {
  if (!v) return "";
  const d = new Date(/^\d+(\.\d+)?$/.test(v) ? Number(v) * 1000 : v);
  if (isNaN(d)) return "";
  const p = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}T${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())}`;
}

function fromLocal(v) {
  if (!v) return "";
  const d = new Date(v);
  return isNaN(d) ? "" : d.toISOString();
}

function spanList(title, refs, cls) {
  return h("div", { class: "refs" }, h("h3", {}, `${title} (${refs.length})`),
    refs.length
      ? h("ul", {}, refs.map((r) => h("li", { class: cls }, h("code", {}, r.spanId), " ", r.name, r.service ? h("span", { class: "muted" }, ` · ${r.service}`) : null)))
      : h("p", { class: "muted" }, "none"));
}

async function violationDetail(id) {
  const [v, cfg] = await Promise.all([api.get(`/v1/violations/${encodeURIComponent(id)}`), loadConfig()]);
  const trace = await api.get(`/api/traces/${v.traceId}`).catch(() => null);
  const link = cfg.traceUrl
    ? h("a", { href: cfg.traceUrl.replaceAll("{traceId}", encodeURIComponent(v.traceId)), target: "_blank", rel: "noopener noreferrer", id: "trace-link" }, "Open in the tracing backend")
    : null;
  const dl = (pairs) => h("dl", { class: "facts" }, pairs.flatMap(([k, val]) => [h("dt", {}, k), h("dd", {}, val)]));
  show(
    h("div", { class: "toolbar" }, h("h1", {}, "Violation"), h("span", { class: "spacer" }), h("a", { href: "#/violations" }, "Back to violations")),
    h("p", { class: "message", id: "violation-message" }, v.message),
    dl([
      ["Rule", h("span", {}, h("a", { href: `#/rules/edit/${encodeURIComponent(v.ruleId)}` }, v.ruleName || v.ruleId), h("span", { class: "muted" }, ` version ${v.ruleVersion}`))],
      ["Severity", sevBadge(v.severity)],
      ["Failed clause", h("code", { id: "failed-clause" }, v.failedClause)],
      ["Created", fmtTime(v.createdAt)],
      ["Trace", h("span", {}, h("code", {}, v.traceId), " ", link)],
      ["Completion", `${v.completionReason}${v.partial ? " (partial trace)" : ""}`],
      ["Signature", v.signature
        ? h("span", { id: "signature", class: v.verified ? "ok" : "error" }, v.verified ? "✓ verified" : "✗ does not verify with this server's key")
        : h("span", { id: "signature", class: "muted" }, "unsigned")],
      ["Id", h("code", {}, v.id)],
    ]),
    h("div", { class: "two" },
      spanList("Trigger spans", v.triggerSpans || [], "trigger"),
      spanList("Offending spans", v.offendingSpans || [], "offending")),
    v.truncated ? h("p", { class: "muted" }, "The span lists were cut at the engine's limit.") : null,
    h("h2", {}, "Trace"),
    trace && trace.spans.length ? waterfall(trace, v) : h("p", { class: "muted" }, "No span summaries are stored for this trace."),
  );
}

/** Spans as rows under their parents, bars placed on the trace's time axis. */
function waterfall(trace, v) {
  const trig = new Set((v.triggerSpans || []).map((r) => r.spanId));
  const off = new Set((v.offendingSpans || []).map((r) => r.spanId));
  const spans = trace.spans.map((s) => ({ ...s, start: BigInt(s.startTime), end: BigInt(s.endTime) }));
  const byId = new Map(spans.map((s) => [s.spanId, s]));
  const kids = new Map();
  const roots = [];
  for (const s of spans) {
    if (s.parentSpanId && byId.has(s.parentSpanId)) {
      if (!kids.has(s.parentSpanId)) kids.set(s.parentSpanId, []);
      kids.get(s.parentSpanId).push(s);
    } else roots.push(s);
  }
  const order = [];
  const seen = new Set();
  const walk = (s, depth) => {
    if (seen.has(s.spanId)) return;
    seen.add(s.spanId);
    order.push([s, depth]);
    for (const c of kids.get(s.spanId) || []) walk(c, depth + 1);
  };
  roots.forEach((r) => walk(r, 0));
  const t0 = spans.reduce((m, s) => (s.start < m ? s.start : m), spans[0].start);
  const t1 = spans.reduce((m, s) => (s.end > m ? s.end : m), spans[0].end);
  const total = Number(t1 - t0) || 1;
  const ms = (ns) => `${(Number(ns) / 1e6).toFixed(3)} ms`;
  const rows = order.map(([s, depth]) => {
    const role = trig.has(s.spanId) ? "trigger" : off.has(s.spanId) ? "offending" : "";
    const left = (Number(s.start - t0) / total) * 100;
    const width = Math.max(0.3, (Number(s.end - s.start) / total) * 100);
    return h("tr", { class: `span-row ${role ? "proving " + role : ""}`, dataset: { spanId: s.spanId } },
      h("td", { class: "span-name", style: `padding-left:${0.5 + depth * 1.1}rem` },
        h("span", { class: "span-label" }, s.name), role ? h("span", { class: `tag ${role}` }, role) : null),
      h("td", {}, s.serviceName),
      h("td", { class: "num" }, ms(s.start - t0)),
      h("td", { class: "num" }, ms(s.end - s.start)),
      h("td", {}, h("span", { class: `status status-${s.status}` }, s.status)),
      h("td", { class: "bar-cell" }, h("div", { class: "bar-track" },
        h("div", { class: `bar ${s.status === "error" ? "bar-error" : ""} ${role}`, style: `left:${left.toFixed(3)}%;width:${Math.min(width, 100 - left).toFixed(3)}%`, title: `${s.name}: ${ms(s.end - s.start)}` }))));
  });
  return h("div", {},
    h("table", { class: "grid waterfall", id: "waterfall" },
      h("thead", {}, h("tr", {}, ["Span", "Service", "Start", "Duration", "Status", `Timeline (${ms(t1 - t0)})`].map((c) => h("th", {}, c)))),
      h("tbody", {}, rows)),
    trace.truncated ? h("p", { class: "muted", id: "waterfall-truncated" }, `Showing ${trace.spans.length} of ${trace.totalSpans} spans (the proving spans first).`) : null);
}

// ---- Status --------------------------------------------------------------------------------

/** Prometheus text → [{name, labels, value}]. */
function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{([^}]*)\})?\s+(\S+)/.exec(line);
    if (!m) continue;
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]] = l[2];
    out.push({ name: m[1], labels, value: Number(m[3]) });
  }
  return out;
}

async function statusPage() {
  clearInterval(statusTimer);
  const draw = async () => {
    const [resp, st] = await Promise.all([request("/metrics", { raw: true }), api.get("/v1/ui/status")]);
    const ms = parseMetrics(await resp.text());
    const get = (name) => ms.filter((m) => m.name === name);
    const one = (name) => get(name).reduce((a, m) => a + m.value, 0);
    const by = (name, label) => {
      const acc = new Map();
      for (const m of get(name)) acc.set(m.labels[label], (acc.get(m.labels[label]) || 0) + m.value);
      return [...acc.entries()].sort((a, b) => String(a[0]).localeCompare(String(b[0])));
    };
    const table = (id, title, pairs, empty) => h("section", { class: "card", id },
      h("h2", {}, title),
      pairs.length
        ? h("table", { class: "kv" }, pairs.map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "num" }, v))))
        : h("p", { class: "muted" }, empty));
    const err = st.lastExportError;
    if (!location.hash.startsWith("#/status")) return;
    show(
      h("div", { class: "toolbar" }, h("h1", {}, "Status"), h("span", { class: "spacer" }), h("span", { class: "muted" }, "from /metrics, every 5 s")),
      h("div", { class: "cards" },
        table("status-received", "Spans received since start", by("betrace_spans_received_total", "transport"), "none"),
        table("status-rejected", "Spans rejected since start", by("betrace_spans_rejected_total", "reason"), "none"),
        table("status-buffer", "Trace buffer", [
          ["buffered traces", one("betrace_buffered_traces")],
          ["buffered spans", one("betrace_buffered_spans")],
          ["spans waiting for evaluation", one("betrace_pending_evaluation_spans")],
          ["late spans", one("betrace_late_spans_total")],
          ["rules active", one("betrace_rules_active")],
        ]),
        table("status-violations", "Violations per rule since start", by("betrace_violations_total", "rule_id"), "no violations yet"),
        h("section", { class: "card", id: "status-export" }, h("h2", {}, "Export"),
          h("table", { class: "kv" },
            h("tr", {}, h("th", {}, "enabled"), h("td", {}, st.exportEnabled ? "yes" : "no (no OTLP endpoint)")),
            h("tr", {}, h("th", {}, "queue depth"), h("td", { class: "num" }, one("betrace_export_queue_depth"))),
            by("betrace_export_spans_total", "result").map(([k, v]) => h("tr", {}, h("th", {}, k), h("td", { class: "num" }, v)))),
          err ? h("p", { class: "error", id: "last-export-error" }, `Last error ${fmtTime(err.at)}: ${err.message}`)
            : h("p", { class: "muted", id: "last-export-error" }, "No export error."))));
  };
  await draw();
  statusTimer = setInterval(() => draw().catch((e) => notice(e.message, "error")), 5000);
}

// ---- Router --------------------------------------------------------------------------------

async function loadConfig() {
  if (!config) {
    config = await api.get("/v1/ui/config");
    document.getElementById("server-info").textContent = `v${config.version} · ${config.storage}`;
  }
  return config;
}

async function route() {
  clearInterval(statusTimer);
  const hash = location.hash || "#/rules";
  const [path, query] = hash.slice(1).split("?");
  const parts = path.split("/").filter(Boolean).map(decodeURIComponent);
  const page = parts[0] || "rules";
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.page === page);
  try {
    if (page === "rules" && parts[1] === "new") await ruleEditor(null);
    else if (page === "rules" && parts[1] === "edit") await ruleEditor(parts[2]);
    else if (page === "rules") await rulesPage();
    else if (page === "violations" && parts[1]) await violationDetail(parts[1]);
    else if (page === "violations") await violationsPage(new URLSearchParams(query || ""));
    else if (page === "status") await statusPage();
    else show(h("p", { class: "error" }, `No page ${hash}`));
  } catch (e) {
    show(h("p", { class: "error", id: "page-error" }, e.message));
  }
}

initTokenDialog();
updateSignOut();
window.addEventListener("hashchange", route);
route();
