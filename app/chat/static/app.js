// oncoboard consultation page: no build step, no external resources.
"use strict";

const NODES = [
  "intake", "extractor", "tnm_stager", "icd10_coder", "literature_searcher", "kg_verifier",
  "planner", "guideline_checker", "safety_reviewer", "locked", "report",
];
const TOKEN_KEY = "oncoboard.token";

const state = {
  i18n: { en: {}, de: {} },
  lang: "en",
  langChosen: false,
  token: sessionStorage.getItem(TOKEN_KEY) || "",
  me: null,
  report: null,
  busy: false,
};

const $ = (id) => document.getElementById(id);

function t(key, vars) {
  const table = state.i18n[state.lang] || {};
  let s = table[key] || state.i18n.en[key] || key;
  if (vars) {
    for (const [k, v] of Object.entries(vars)) s = s.split("{" + k + "}").join(String(v));
  }
  return s;
}

// Build DOM nodes without innerHTML, so case text and report strings are never parsed as markup.
function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const c of children.flat()) {
    if (c === null || c === undefined || c === false) continue;
    node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return node;
}

function showMessage(text) { $("message").textContent = text || ""; }

function applyI18n() {
  document.documentElement.lang = state.lang;
  document.title = t("page.title");
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  $("chat-input").placeholder = t("chat.placeholder");
  $("ui-lang").value = state.lang;
  renderWhoami();
  renderNodes();
  if (state.report) renderReport(state.report);
}

async function api(method, path, body) {
  if (!state.token) throw new Error(t("token.needed"));
  const init = { method, headers: { Authorization: "Bearer " + state.token } };
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const res = await fetch(path, init);
  let data = null;
  try { data = await res.json(); } catch (_) { data = null; }
  if (!res.ok) {
    let detail = data && data.detail !== undefined ? data.detail : res.statusText;
    if (typeof detail !== "string") detail = JSON.stringify(detail);
    const err = new Error(t("error.http", { status: res.status, detail }));
    err.status = res.status;
    throw err;
  }
  return data;
}

// Server-sent events over fetch (EventSource cannot send the Authorization header).
async function streamEvents(path, onEvent) {
  const res = await fetch(path, { headers: { Authorization: "Bearer " + state.token } });
  if (!res.ok || !res.body) throw new Error(t("error.http", { status: res.status, detail: res.statusText }));
  const reader = res.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let event = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) event = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trim());
      }
      if (data.length) {
        const stop = onEvent(event, JSON.parse(data.join("\n")));
        if (stop) { reader.cancel(); return; }
      }
    }
  }
}

// ---------------------------------------------------------------- token

function renderWhoami() {
  $("whoami").textContent = state.me ? t("token.signed_in", state.me) : "";
}

async function useToken(token) {
  state.token = token;
  try {
    state.me = await api("GET", "/v1/chat/me");
    sessionStorage.setItem(TOKEN_KEY, token);
    showMessage("");
  } catch (err) {
    state.me = null;
    state.token = "";
    sessionStorage.removeItem(TOKEN_KEY);
    showMessage(err.status === 401 ? t("token.invalid") : err.message);
  }
  renderWhoami();
  if (state.report) renderReport(state.report);
}

// ---------------------------------------------------------------- progress

const nodeState = {};

function renderNodes() {
  const list = $("nodes");
  list.replaceChildren(...NODES.map((name) => {
    const s = nodeState[name] || "";
    return el("li", { class: s, "data-node": name, "aria-label": t("node." + name) + (s ? " (" + s + ")" : "") },
      t("node." + name));
  }));
}

function resetNodes() {
  for (const k of Object.keys(nodeState)) delete nodeState[k];
  renderNodes();
}

async function followJob(jobId) {
  $("progress").hidden = false;
  $("progress-note").textContent = t("progress.queued");
  let started = false;
  const watchdog = setTimeout(async () => {
    if (started) return;
    try {
      const job = await api("GET", "/v1/jobs/" + encodeURIComponent(jobId));
      if (job.status === "queued") $("progress-note").textContent = t("progress.no_worker");
    } catch (_) { /* the stream reports failures */ }
  }, 8000);
  try {
    await streamEvents("/v1/jobs/" + encodeURIComponent(jobId) + "/events", (event, data) => {
      if (event === "node_start") {
        started = true;
        $("progress-note").textContent = "";
        nodeState[data.name] = "running";
        renderNodes();
      } else if (event === "node_end") {
        nodeState[data.name] = "done";
        renderNodes();
      } else if (event === "report") {
        // A locked run pauses inside the lock step until a chief decides.
        if (data.status === "locked") nodeState.locked = "running";
        showReport(data);
        return true;
      } else if (event === "failed" || event === "timeout") {
        showMessage(t("progress.failed", { error: data.error || data.detail || data.status }));
        return true;
      }
      return false;
    });
  } finally {
    clearTimeout(watchdog);
  }
}

// ---------------------------------------------------------------- case input

async function readCase() {
  const file = $("case-file").files[0];
  let text = $("case-text").value;
  let body = null;
  if (file && !text.trim()) text = await file.text();
  const trimmed = text.trim();
  if (!trimmed) return null;
  if (trimmed.startsWith("{")) {
    try { body = JSON.parse(trimmed); } catch (_) { body = null; }
  }
  if (!body || typeof body.text !== "string") body = { text };
  const lang = $("case-lang").value;
  if (lang !== "auto") body.lang = lang;
  body.mode = "async";
  return body;
}

async function submitCase(ev) {
  ev.preventDefault();
  if (state.busy) return;
  showMessage("");
  const body = await readCase();
  if (!body) { showMessage(t("case.empty")); return; }
  state.busy = true;
  $("case-submit").disabled = true;
  resetNodes();
  $("report").hidden = true;
  $("chat").hidden = true;
  try {
    const accepted = await api("POST", "/v1/consultations", body);
    await followJob(accepted.job_id);
  } catch (err) {
    showMessage(err.message);
  } finally {
    state.busy = false;
    $("case-submit").disabled = false;
  }
}

async function openCase(ev) {
  ev.preventDefault();
  const id = $("open-id").value.trim();
  if (!id) return;
  showMessage("");
  try {
    showReport(await api("GET", "/v1/consultations/" + encodeURIComponent(id)));
  } catch (err) {
    showMessage(err.message);
  }
}

// ---------------------------------------------------------------- report

function showReport(report) {
  const caseChanged = !state.report || state.report.case_id !== report.case_id;
  state.report = report;
  if (!state.langChosen && (report.language === "en" || report.language === "de")) {
    state.lang = report.language;
    applyI18n();
  } else {
    renderReport(report);
  }
  $("report").hidden = false;
  $("chat").hidden = report.status === "rejected";
  if (caseChanged) $("chat-log").replaceChildren();
}

function role() { return state.me ? state.me.role : null; }
function canModify() { return role() === "attending" || role() === "chief"; }

function renderBanner(report) {
  const banner = $("banner");
  banner.className = "banner";
  banner.hidden = true;
  if (report.status === "locked") {
    banner.textContent = t("banner.locked");
    banner.classList.add("locked");
    banner.hidden = false;
  } else if (report.approval) {
    const approved = report.approval.decision === "approved";
    banner.textContent = t(approved ? "banner.approved" : "banner.rejected", { by: report.approval.by });
    banner.classList.add(approved ? "released" : "rejected");
    banner.hidden = false;
  }
  $("decision-form").hidden = !(report.status === "locked" && role() === "chief");
}

function tnmText(tnm) {
  const cats = [tnm.t, tnm.n, tnm.m].filter(Boolean);
  if (!cats.length) return "TNM n/a";
  return (tnm.prefix || "") + cats.join(" ");
}

function renderReport(report) {
  renderBanner(report);
  const body = $("report-body");
  const parts = [];
  parts.push(el("div", { class: "meta" },
    el("span", {}, t("report.case") + ": ", el("code", { id: "case-id", text: report.case_id })),
    el("span", {}, t("report.status") + ": ",
      el("span", { id: "report-status", class: "status " + report.status, text: report.status })),
    el("span", {}, t("report.trace") + ": ", el("code", { text: report.trace_id || "—" }))));
  if (report.error) parts.push(el("p", { class: "message", text: t("report.error", { error: report.error }) }));
  if (!report.oncology && !report.error) parts.push(el("p", { text: t("report.nononc") }));

  for (const tumor of report.tumors) {
    parts.push(el("h3", { text: t("report.tumours") }));
    parts.push(el("p", { class: "tumour" },
      el("strong", { class: "site", text: tumor.site + (tumor.subsite ? " (" + tumor.subsite + ")" : "") }),
      ", " + (tumor.histology || "—") + (tumor.laterality ? ", " + tumor.laterality : "") + " — ",
      el("span", { class: "tnm", text: tnmText(tumor.tnm) }), ", " + t("report.stage") + " ",
      el("strong", { class: "stage", text: tumor.tnm.stage_group || "n/a" }),
      tumor.other_staging && tumor.other_staging.bclc ? ", BCLC " + tumor.other_staging.bclc : ""));
    if (tumor.tnm.rationale.length) {
      parts.push(el("ul", { class: "rationale", "aria-label": t("report.rationale") },
        tumor.tnm.rationale.map((line) => el("li", { text: line }))));
    }
  }

  if (report.icd10.length) {
    parts.push(el("h3", { text: t("report.codes") }));
    parts.push(el("table", { class: "codes" },
      el("thead", {}, el("tr", {}, ["report.code", "report.role", "report.description", "report.rule"]
        .map((k) => el("th", { scope: "col", text: t(k) })))),
      el("tbody", {}, report.icd10.map((c) => el("tr", {},
        el("td", {}, el("code", { text: c.code + (c.system === "ICD-10-CM" ? " (CM)" : "") })),
        el("td", { text: c.role }), el("td", { text: c.description }), el("td", { text: c.rule }))))));
  }

  if (report.biomarkers.length) {
    parts.push(el("h3", { text: t("report.biomarkers") }));
    parts.push(el("ul", { class: "biomarkers" },
      report.biomarkers.map((b) => el("li", { text: b.name + ": " + b.result + " (" + b.status + ")" }))));
  }

  if (report.schemes.length) {
    parts.push(el("h3", { text: t("report.schemes") }));
    const titles = Object.fromEntries(report.evidence.map((e) => [e.id, e]));
    parts.push(el("div", { class: "schemes" }, report.schemes.map((s, i) => renderScheme(report, s, i, titles))));
  }

  if (report.compliance) {
    const c = report.compliance;
    parts.push(el("h3", { text: t("report.compliance") }));
    parts.push(el("p", { id: "compliance" }, el("strong", { text: c.passed ? "✓ " : "✗ " }),
      t("report.compliance.line", c)));
    if (c.findings.length) parts.push(el("ul", {}, c.findings.map((f) => el("li", { text: f }))));
  }

  parts.push(el("h3", { text: t("report.safety") + ": " + report.safety.status }));
  if (report.safety.findings.length) {
    parts.push(el("ul", { class: "safety" }, report.safety.findings.map((f) => el("li", {},
      el("span", { class: "sev-" + f.severity, text: f.severity }),
      " " + (f.drug ? f.drug + ": " : "") + f.reason + " (" + f.basis + ")"))));
  }
  if (report.review_reasons && report.review_reasons.length) {
    parts.push(el("h3", { text: t("report.review") }));
    parts.push(el("ul", {}, report.review_reasons.map((r) => el("li", { text: r }))));
  }
  if (report.evidence.length) {
    parts.push(el("h3", { text: t("report.evidence") }));
    parts.push(el("ul", { class: "evidence" }, report.evidence.map((e) => el("li", {},
      el("code", { text: e.id }), " " + e.title + " (" + [e.year, e.level].filter(Boolean).join(", ") + ")"))));
  }
  body.replaceChildren(...parts);
}

function renderScheme(report, scheme, index, titles) {
  const lit = scheme.bases.literature.map((id) => el("li", {}, el("code", { text: id }),
    titles[id] ? " " + titles[id].title : ""));
  const card = el("article", { class: "scheme", "data-kind": scheme.kind, "aria-label": scheme.title },
    el("span", { class: "kind", text: (index + 1) + " · " + scheme.kind }),
    el("h4", { text: scheme.title }),
    scheme.limited_evidence ? el("span", { class: "limited", text: t("report.limited") }) : null,
    el("ul", { class: "treatments" }, scheme.treatments.map((tr) => el("li", {},
      el("strong", { text: tr.name }), ": " + [tr.dose || t("report.dose"), tr.schedule].filter(Boolean).join(", ")))),
    el("p", { class: "rationale", text: scheme.rationale }),
    el("dl", {},
      el("dt", { text: t("report.bases.patient") }),
      el("dd", { text: scheme.bases.patient_data.join("; ") || t("report.bases.none") }),
      el("dt", { text: t("report.bases.literature") }),
      el("dd", {}, lit.length ? el("ul", {}, lit) : t("report.bases.none")),
      el("dt", { text: t("report.bases.model") }),
      el("dd", { text: scheme.bases.model_reasoning || t("report.bases.none") })));
  if (canModify() && report.status !== "locked" && report.status !== "rejected") {
    const button = el("button", { type: "button", class: "secondary", text: t("action.modify"),
      "aria-label": t("action.modify") + ": " + scheme.title });
    button.addEventListener("click", () => { button.replaceWith(modifyForm(report, scheme)); });
    card.append(button);
  }
  return card;
}

function modifyForm(report, scheme) {
  const id = "modify-" + scheme.kind;
  const lines = scheme.treatments.map((tr) =>
    [tr.drugs.length ? tr.drugs.join(" + ") : tr.name, tr.dose || "", tr.schedule || ""].join(" | "));
  const treatments = el("textarea", { id: id + "-treatments", rows: 3 });
  treatments.value = lines.join("\n");
  const reason = el("input", { id: id + "-reason", type: "text", required: true, "aria-required": "true" });
  const note = el("p", { class: "note", role: "status" });
  // Our own check (novalidate) so the message is in the page, read out by the status region.
  const form = el("form", { class: "modify", novalidate: true },
    el("label", { for: id + "-treatments", text: t("action.modify.treatments") }), treatments,
    el("label", { for: id + "-reason", text: t("action.modify.reason") }), reason,
    el("button", { type: "submit", text: t("action.modify.save") }),
    el("button", { type: "button", class: "secondary", text: t("action.cancel"),
      onclick: () => renderReport(state.report) }),
    note);
  form.addEventListener("submit", async (ev) => {
    ev.preventDefault();
    if (reason.value.trim().length < 3) {
      note.textContent = t("action.reason_needed");
      reason.setAttribute("aria-invalid", "true");
      reason.focus();
      return;
    }
    reason.removeAttribute("aria-invalid");
    const items = treatments.value.split("\n").map((l) => l.trim()).filter(Boolean).map((line) => {
      const [drugs, dose, schedule] = line.split("|").map((x) => (x || "").trim());
      const list = drugs.split("+").map((d) => d.trim()).filter(Boolean);
      return { name: list.join(" + "), drugs: list, dose: dose || null, schedule: schedule || null };
    });
    try {
      const updated = await api("POST", "/v1/consultations/" + encodeURIComponent(report.case_id) +
        "/schemes/" + scheme.kind, { treatments: items, reason: reason.value.trim() });
      showReport(updated);
      showMessage("");
    } catch (err) {
      note.textContent = err.message;
    }
  });
  setTimeout(() => treatments.focus(), 0);
  return form;
}

async function decide(decision) {
  const report = state.report;
  if (!report) return;
  const reason = $("decision-reason").value.trim();
  try {
    const updated = await api("POST", "/v1/consultations/" + encodeURIComponent(report.case_id) + "/decision",
      { decision, reason: reason || null });
    $("decision-reason").value = "";
    if (nodeState.locked) {
      nodeState.locked = "done";
      nodeState.report = "done";
      renderNodes();
    }
    showReport(updated);
    showMessage("");
  } catch (err) {
    showMessage(err.message);
  }
}

// ---------------------------------------------------------------- chat

function renderReply(reply) {
  const node = el("div", { class: "msg board" }, el("strong", { text: t("chat.board") + ": " }), reply.answer);
  if (reply.diff) {
    node.append(el("table", { class: "diff", "aria-label": t("chat.diff") },
      el("caption", { text: t("chat.diff") }),
      el("thead", {}, el("tr", {}, ["chat.field", "chat.before", "chat.after"]
        .map((k) => el("th", { scope: "col", text: t(k) })))),
      el("tbody", {}, reply.diff.rows.map((r) => el("tr", { class: r.changed ? "changed" : "" },
        el("td", { text: r.label }), el("td", { text: r.before }), el("td", { text: r.after }))))));
  }
  if (reply.sources.length) {
    node.append(el("p", { class: "sources" }, t("chat.sources") + ": " +
      reply.sources.map((s) => s.label + " [" + s.ref + "]").join("; ")));
  }
  return node;
}

async function sendChat(ev) {
  ev.preventDefault();
  const input = $("chat-input");
  const message = input.value.trim();
  if (!message || !state.report) return;
  const log = $("chat-log");
  log.append(el("div", { class: "msg you" }, el("strong", { text: t("chat.you") + ": " }), message));
  input.value = "";
  $("chat-send").disabled = true;
  try {
    const reply = await api("POST", "/v1/consultations/" + encodeURIComponent(state.report.case_id) + "/chat",
      { message, lang: state.lang });
    log.append(renderReply(reply));
  } catch (err) {
    log.append(el("div", { class: "msg board" }, err.message));
  } finally {
    $("chat-send").disabled = false;
    log.scrollTop = log.scrollHeight;
    input.focus();
  }
}

// ---------------------------------------------------------------- start

async function start() {
  try {
    const res = await fetch("/chat/static/i18n.json");
    state.i18n = await res.json();
  } catch (_) { /* English keys stay visible; the page still works */ }
  const browser = (navigator.language || "en").slice(0, 2);
  state.lang = browser === "de" ? "de" : "en";
  applyI18n();
  $("ui-lang").addEventListener("change", () => {
    state.lang = $("ui-lang").value;
    state.langChosen = true;
    applyI18n();
  });
  $("token-form").addEventListener("submit", (ev) => { ev.preventDefault(); useToken($("token").value.trim()); });
  $("token-forget").addEventListener("click", () => {
    sessionStorage.removeItem(TOKEN_KEY);
    state.token = "";
    state.me = null;
    $("token").value = "";
    renderWhoami();
    if (state.report) renderReport(state.report);
  });
  $("case-form").addEventListener("submit", submitCase);
  $("open-form").addEventListener("submit", openCase);
  $("approve").addEventListener("click", () => decide("approved"));
  $("reject").addEventListener("click", () => decide("rejected"));
  $("chat-form").addEventListener("submit", sendChat);
  if (state.token) await useToken(state.token);
}

document.addEventListener("DOMContentLoaded", start);
