// callguard supervisor console. Plain JS, no build step, no library.
// Every piece of call data is written with textContent, never as HTML, so a
// transcript holding markup renders as text (and the CSP forbids inline
// script anyway). State: the latest version of each alert by alert_id
// (updates replace their row in place), the live calls, the selection.
// Messages only mark what changed; one render per animation frame then
// adds, moves or updates just the rows that differ, keyed by call_id and
// alert_id, so a burst of alerts costs one small DOM change, not a rebuild
// of both tables per message.
"use strict";

const I18N = {
  en: {
    connecting: "connecting…", live: "live", reconnecting: "reconnecting…", language: "Language",
    logout: "Log out", login_title: "Log in", token: "Token", login: "Log in",
    login_help: "Paste a supervisor token (callguard token new --role supervisor). It is exchanged for a session cookie and not kept by the page.",
    login_failed: "Login failed", tenant: "Tenant", all: "all", severity: "Severity",
    warning_up: "warning and above", critical: "critical", warning: "warning", info: "info",
    category: "Category", agent: "Agent", open_only: "unresolved only", live_calls: "Live calls",
    risk: "Risk", call: "Call", duration: "Duration", talk: "Customer / agent", counters: "Counters",
    no_calls: "No active calls.", alert_feed: "Alerts", no_alerts: "No alerts today.",
    call_detail: "Call detail", agents_today: "Agents today", details: "Details",
    pick_call: "Select a call or an alert (Tab, then Enter).", calls_with_alerts: "Calls with alerts",
    critical_alerts: "Critical", flagged_minutes: "Minutes in flagged calls",
    high: "high", elevated: "elevated", low: "low", none: "none",
    provisional: "provisional", confirmed: "confirmed", retracted: "retracted",
    acknowledged: "acknowledged", assigned: "assigned", resolved: "resolved", unhandled: "new",
    ack: "Acknowledge", assign: "Assign", resolve: "Resolve", note: "Note", assignee: "Assignee",
    action: "Action", rule: "Rule", by: "by", repeats: "repeats", strikes: "strikes",
    stalemate: "stalemate", min: "min", status: "Status", ended: "ended", active: "active",
    timeline: "Timeline", failed: "Failed",
  },
  ja: {
    connecting: "接続中…", live: "ライブ", reconnecting: "再接続中…", language: "言語",
    logout: "ログアウト", login_title: "ログイン", token: "トークン", login: "ログイン",
    login_help: "スーパーバイザー用トークン（callguard token new --role supervisor）を貼り付けてください。セッション Cookie と交換され、ページには保存されません。",
    login_failed: "ログインできませんでした", tenant: "テナント", all: "すべて", severity: "重大度",
    warning_up: "警告以上", critical: "重大", warning: "警告", info: "情報",
    category: "カテゴリ", agent: "オペレーター", open_only: "未解決のみ", live_calls: "通話中",
    risk: "リスク", call: "通話", duration: "通話時間", talk: "顧客 / オペレーター", counters: "カウンター",
    no_calls: "通話中の通話はありません。", alert_feed: "アラート", no_alerts: "本日のアラートはありません。",
    call_detail: "通話の詳細", agents_today: "本日のオペレーター", details: "詳細",
    pick_call: "通話またはアラートを選択してください（Tab で移動し Enter）。", calls_with_alerts: "アラートのあった通話",
    critical_alerts: "重大", flagged_minutes: "対象通話の時間（分）",
    high: "高", elevated: "中", low: "低", none: "なし",
    provisional: "暫定", confirmed: "確定", retracted: "取消",
    acknowledged: "対応中", assigned: "担当割当", resolved: "解決済み", unhandled: "新規",
    ack: "確認", assign: "割り当て", resolve: "解決", note: "メモ", assignee: "担当者",
    action: "推奨対応", rule: "ルール", by: "担当", repeats: "繰り返し", strikes: "回数",
    stalemate: "膠着", min: "分", status: "状態", ended: "終了", active: "通話中",
    timeline: "経過", failed: "失敗しました",
  },
};
const RISK_ORDER = { high: 3, elevated: 2, low: 1, none: 0 };
const SEV_ORDER = { critical: 2, warning: 1, info: 0 };
const FEED_ROWS = 300;

const state = {
  lang: "en",
  alerts: new Map(),   // alert_id -> latest version
  order: [],           // alert_ids, newest first (the feed's order)
  calls: new Map(),    // call_id -> CallSummary JSON
  selectedCall: null,
  lastEventId: 0,
  events: null,
};

const $ = (id) => document.getElementById(id);
const t = (key) => (I18N[state.lang] && I18N[state.lang][key]) || I18N.en[key] || key;

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(props || {})) {
    if (k === "class") node.className = v;
    else if (k === "text") node.textContent = v;
    else if (k.startsWith("data-") || k.startsWith("aria-") || k === "role" || k === "tabindex") node.setAttribute(k, v);
    else node[k] = v;
  }
  for (const c of children) if (c != null) node.append(c);
  return node;
}

function applyLanguage() {
  document.documentElement.lang = state.lang;
  $("lang").value = state.lang;
  for (const node of document.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  renderAll();
  if (state.selectedCall) showCall(state.selectedCall);
}

async function api(path, options) {
  const opts = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
  if (opts.body !== undefined) opts.headers["Content-Type"] = "application/json";
  const response = await fetch(path, opts);
  let body = null;
  try { body = await response.json(); } catch (_) { body = null; }
  if (!response.ok) {
    const error = new Error((body && body.message) || response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

// ---- start, login ----

async function start() {
  const saved = localStorage.getItem("callguard.lang");
  state.lang = saved || ((navigator.language || "en").startsWith("ja") ? "ja" : "en");
  $("lang").addEventListener("change", () => {
    state.lang = $("lang").value;
    localStorage.setItem("callguard.lang", state.lang);
    applyLanguage();
  });
  $("login-form").addEventListener("submit", login);
  $("logout").addEventListener("click", logout);
  for (const id of ["f-tenant", "f-severity", "f-category", "f-agent", "f-open"]) {
    $(id).addEventListener("change", renderAll);
  }
  $("tab-detail").addEventListener("click", () => showTab("detail"));
  $("tab-agents").addEventListener("click", () => showTab("agents"));
  document.addEventListener("keydown", shortcuts);
  applyLanguage();
  try {
    const who = await api("/api/v1/session");
    signedIn(who);
  } catch (e) {
    if (e.status === 401) showLogin(); else setConnection("down", e.message);
  }
}

function showLogin() {
  $("login").hidden = false;
  $("app").hidden = true;
  $("token").focus();
}

async function login(event) {
  event.preventDefault();
  $("login-error").textContent = "";
  try {
    const who = await api("/api/v1/session", { method: "POST", body: JSON.stringify({ token: $("token").value }) });
    $("token").value = "";
    signedIn(who);
  } catch (e) {
    $("login-error").textContent = t("login_failed") + ": " + e.message;
  }
}

async function logout() {
  try { await api("/api/v1/session", { method: "DELETE" }); } catch (_) { /* gone anyway */ }
  location.reload();
}

function signedIn(who) {
  const p = who.principal;
  $("who").textContent = p.name + " (" + p.role + ", " + p.tenant + ")";
  $("logout").hidden = !!who.open;
  $("login").hidden = true;
  $("app").hidden = false;
  loadAlerts().then(openEvents).catch((e) => setConnection("down", e.message));
  refreshCalls();
  setInterval(refreshCalls, 2000);
  setInterval(refreshAgents, 15000);
}

function midnight() {
  const d = new Date();
  d.setHours(0, 0, 0, 0);
  return d.toISOString();
}

// ---- data ----

async function loadAlerts() {
  let after = 0;
  for (;;) {
    const page = await api("/api/v1/alerts?since=" + encodeURIComponent(midnight()) + "&after_event_id=" + after + "&limit=1000");
    for (const a of page.alerts) take(a);
    after = page.last_event_id;
    if (page.alerts.length < 1000) break;
  }
  state.lastEventId = Math.max(state.lastEventId, after);
  renderAll();
}

function openEvents() {
  // The browser resumes by itself with Last-Event-ID after a drop; the
  // server replays from the durable log, so nothing is missed or doubled.
  const source = new EventSource("/api/v1/events?after_event_id=" + state.lastEventId);
  state.events = source;
  source.onopen = () => setConnection("live");
  source.onerror = () => setConnection("down");
  source.onmessage = (message) => {
    const alert = JSON.parse(message.data);
    if (take(alert)) {
      state.lastEventId = Math.max(state.lastEventId, alert.event_id);
      markCall(alert);
      if (state.selectedCall === alert.call_id) showCall(alert.call_id);
      scheduleCalls();
    }
  };
}

function setConnection(kind, detail) {
  const node = $("connection");
  node.className = "conn " + kind;
  node.textContent = kind === "live" ? t("live") : t("reconnecting") + (detail ? " " + detail : "");
}

// Keeps the newest version of an alert (the feed re-renders on the next
// frame); returns whether it changed.
function take(alert) {
  const known = state.alerts.get(alert.alert_id);
  if (known && known.event_id >= alert.event_id) return false;
  if (!known) {
    // A new alert's id is almost always the highest: found at once.
    const order = state.order;
    let lo = 0, hi = order.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (order[mid] > alert.alert_id) lo = mid + 1; else hi = mid; }
    order.splice(lo, 0, alert.alert_id);
  }
  state.alerts.set(alert.alert_id, alert);
  schedule("feed");
  return true;
}

const dirty = { calls: false, feed: false };
let frame = 0;

// Renders a part on the next animation frame, once however many messages
// asked for it.
function schedule(part) {
  dirty[part] = true;
  if (!frame) frame = requestAnimationFrame(flush);
}

function flush() {
  frame = 0;
  if (dirty.calls) { dirty.calls = false; renderCalls(); }
  if (dirty.feed) { dirty.feed = false; renderFeed(); }
}

// A call turns red the moment its alert arrives, before the next poll.
function markCall(alert) {
  const call = state.calls.get(alert.call_id);
  if (!call || alert.status === "retracted") return;
  const risk = alert.severity === "critical" ? "high" : alert.severity === "warning" ? "elevated" : "low";
  if (RISK_ORDER[risk] > RISK_ORDER[call.risk]) {
    call.risk = risk;
    schedule("calls");
  }
}

let callsTimer = null;
function scheduleCalls() {
  if (!callsTimer) callsTimer = setTimeout(() => { callsTimer = null; refreshCalls(); }, 250);
}

async function refreshCalls() {
  try {
    const body = await api("/api/v1/calls");
    state.calls = new Map(body.calls.map((c) => [c.call_id, c]));
    schedule("calls");
    renderFilterOptions();
  } catch (e) {
    if (e.status === 401) showLogin();
  }
}

async function refreshAgents() {
  if ($("agents").hidden) return;
  try {
    const body = await api("/api/v1/agents?since=" + encodeURIComponent(midnight()));
    const tbody = $("agents").querySelector("tbody");
    tbody.replaceChildren(...body.agents.map((a) => el("tr", { "data-agent-id": a.agent_id },
      el("td", { text: a.agent_id || "—" }), el("td", { text: String(a.calls_with_alerts) }),
      el("td", { text: String(a.critical_alerts) }), el("td", { text: String(a.flagged_minutes) }))));
  } catch (_) { /* shown on the next refresh */ }
}

// ---- filters ----

function filters() {
  return {
    tenant: $("f-tenant").value, severity: $("f-severity").value, category: $("f-category").value,
    agent: $("f-agent").value, open: $("f-open").checked,
  };
}

function passes(alert, f) {
  return (!f.tenant || alert.tenant === f.tenant)
    && (!f.severity || SEV_ORDER[alert.severity] >= SEV_ORDER[f.severity])
    && (!f.category || alert.category === f.category)
    && (!f.agent || alert.agent_id === f.agent)
    && (!f.open || !alert.handling || alert.handling.state !== "resolved");
}

function renderFilterOptions() {
  const sets = { "f-tenant": new Set(), "f-category": new Set(), "f-agent": new Set() };
  for (const a of state.alerts.values()) {
    sets["f-tenant"].add(a.tenant); sets["f-category"].add(a.category); sets["f-agent"].add(a.agent_id);
  }
  for (const c of state.calls.values()) { sets["f-tenant"].add(c.tenant); sets["f-agent"].add(c.agent_id); }
  for (const [id, values] of Object.entries(sets)) {
    const select = $(id);
    const have = new Set([...select.options].map((o) => o.value));
    for (const v of [...values].filter((v) => v && !have.has(v)).sort()) select.append(el("option", { value: v, text: v }));
  }
}

// ---- rendering ----

function renderAll() {
  renderCalls();
  renderFeed();
  renderFilterOptions();
}

function minutes(ms) {
  const s = Math.floor(ms / 1000);
  return Math.floor(s / 60) + ":" + String(s % 60).padStart(2, "0");
}

// Puts exactly `nodes` into `parent`, in order, moving only the nodes out
// of place (a new alert goes in at the top and nothing else moves); keeps
// keyboard focus on the row it was on.
function place(parent, nodes) {
  const focused = document.activeElement;
  const keep = new Set(nodes);
  for (const child of [...parent.children]) if (!keep.has(child)) child.remove();
  nodes.forEach((node, i) => {
    const at = parent.children[i];
    if (at !== node) parent.insertBefore(node, at || null);
  });
  if (focused && focused !== document.activeElement && focused.isConnected) focused.focus();
}

const callRows = new Map(); // call_id -> <tr>, reused while the call is listed

function renderCalls() {
  const f = filters();
  const calls = [...state.calls.values()]
    .filter((c) => (!f.tenant || c.tenant === f.tenant) && (!f.agent || c.agent_id === f.agent))
    .sort((a, b) => RISK_ORDER[b.risk] - RISK_ORDER[a.risk] || b.alerts_total - a.alerts_total || a.call_id.localeCompare(b.call_id));
  const listed = new Set(calls.map((c) => c.call_id));
  for (const id of callRows.keys()) if (!listed.has(id)) callRows.delete(id);
  const rows = calls.map((c) => {
    let row = callRows.get(c.call_id);
    if (!row) {
      row = el("tr", { tabindex: "0", "data-call-id": c.call_id }, el("td"), el("td"), el("td"), el("td"), el("td"), el("td"));
      row.addEventListener("click", () => showCall(c.call_id));
      row.addEventListener("keydown", (e) => { if (e.key === "Enter") showCall(c.call_id); });
      callRows.set(c.call_id, row);
    }
    fillCallRow(row, c);
    return row;
  });
  place($("calls").querySelector("tbody"), rows);
  $("calls-empty").hidden = rows.length > 0;
}

// Writes only the cells and attributes whose text changed.
function fillCallRow(row, c) {
  const repeats = c.demand_repeats.reduce((n, d) => Math.max(n, d.count), 0);
  const counters = [t("repeats") + " " + repeats, t("strikes") + " " + c.strikes];
  if (c.stalemate_since_ms != null) counters.push(t("stalemate") + " " + Math.floor((c.last_event_ms - c.stalemate_since_ms) / 60000) + t("min"));
  const texts = [t(c.risk), c.call_id, c.agent_id || "—", minutes(c.last_event_ms),
    minutes(c.customer_talk_ms) + " / " + minutes(c.agent_talk_ms), counters.join(" · ")];
  texts.forEach((text, i) => { if (row.cells[i].textContent !== text) row.cells[i].textContent = text; });
  const cls = "risk-" + c.risk + (state.selectedCall === c.call_id ? " selected" : "");
  if (row.className !== cls) row.className = cls;
  if (row.dataset.risk !== c.risk) row.dataset.risk = c.risk;
}

function handlingText(alert) {
  const h = alert.handling;
  if (!h) return t("unhandled");
  let text = t(h.state) + " (" + h.by + ")";
  if (h.assignee) text += " → " + h.assignee;
  return text;
}

function alertSummary(alert) {
  const ev = alert.evidence && alert.evidence[0];
  return [
    el("div", { class: "row1" },
      el("span", { class: "sev", text: t(alert.severity) }),
      el("span", { class: "category", text: alert.category }),
      el("span", { class: "badge status", text: t(alert.status) }),
      el("span", { class: "badge handling handling-" + (alert.handling ? alert.handling.state : "none"), text: handlingText(alert) }),
      el("span", { class: "muted", text: alert.call_id + " · " + (alert.agent_id || "—") + " · " + new Date(alert.raised_at).toLocaleTimeString() })),
    el("div", { class: "excerpt", text: ev ? ev.excerpt : "" }),
    el("div", { class: "muted", text: t("action") + ": " + alert.action }),
  ];
}

const feedRows = new Map(); // alert_id -> <li>, reused while the alert is listed

function renderFeed() {
  const f = filters();
  const list = [];
  for (const id of state.order) {
    const a = state.alerts.get(id);
    if (passes(a, f) && list.push(a) === FEED_ROWS) break;
  }
  const listed = new Set(list.map((a) => a.alert_id));
  for (const id of feedRows.keys()) if (!listed.has(id)) feedRows.delete(id);
  const items = list.map((a) => {
    let li = feedRows.get(a.alert_id);
    if (!li) {
      li = el("li", { tabindex: "0", "data-alert-id": String(a.alert_id), "data-call-id": a.call_id });
      li.addEventListener("click", () => showCall(a.call_id));
      li.addEventListener("keydown", (e) => { if (e.key === "Enter") showCall(a.call_id); });
      feedRows.set(a.alert_id, li);
    }
    // A new version (status, handling) or language: this row only.
    const version = state.lang + ":" + a.event_id;
    if (li.dataset.version !== version) {
      li.dataset.version = version;
      li.className = "sev-" + a.severity + " status-" + a.status;
      li.dataset.status = a.status;
      li.dataset.handling = a.handling ? a.handling.state : "none";
      li.replaceChildren(...alertSummary(a));
    }
    return li;
  });
  place($("feed"), items);
  $("feed-empty").hidden = items.length > 0;
}

function showTab(which) {
  $("tab-detail").setAttribute("aria-selected", String(which === "detail"));
  $("tab-agents").setAttribute("aria-selected", String(which === "agents"));
  $("detail").hidden = which !== "detail";
  $("agents").hidden = which !== "agents";
  if (which === "agents") refreshAgents();
}

async function showCall(callId) {
  state.selectedCall = callId;
  showTab("detail");
  schedule("calls");
  let body;
  try {
    body = await api("/api/v1/calls/" + encodeURIComponent(callId));
  } catch (e) {
    $("detail").replaceChildren(el("p", { class: "error", text: e.message }));
    return;
  }
  if (state.selectedCall !== callId) return;
  const latest = new Map();
  for (const a of body.alerts) { take(a); latest.set(a.alert_id, state.alerts.get(a.alert_id) || a); }
  const parts = [el("h3", { text: t("call") + " " + callId })];
  if (body.call) {
    const c = body.call;
    parts.push(el("dl", { class: "summary" },
      el("dt", { text: t("status") }), el("dd", { text: t(c.status) }),
      el("dt", { text: t("risk") }), el("dd", { text: t(c.risk) }),
      el("dt", { text: t("agent") }), el("dd", { text: c.agent_id || "—" }),
      el("dt", { text: t("duration") }), el("dd", { text: minutes(c.last_event_ms) }),
      el("dt", { text: t("talk") }), el("dd", { text: minutes(c.customer_talk_ms) + " / " + minutes(c.agent_talk_ms) })));
  }
  parts.push(el("h4", { text: t("timeline") }));
  const items = [...latest.values()].sort((a, b) => a.at_ms - b.at_ms).map((a) => {
    const li = el("li", { class: "sev-" + a.severity, "data-alert-id": String(a.alert_id) },
      el("div", { class: "row1" },
        el("strong", { text: minutes(a.at_ms) }),
        el("span", { class: "sev", text: t(a.severity) }),
        el("span", { text: a.category }),
        el("span", { class: "badge", text: t(a.status) }),
        el("span", { class: "badge", text: handlingText(a) })),
      ...a.evidence.map((e) => el("div", { class: "excerpt", text: e.speaker + ": " + e.excerpt })),
      el("div", { class: "muted", text: t("rule") + ": " + a.rule + " · " + t("action") + ": " + a.action }),
      a.handling && a.handling.note ? el("div", { class: "muted", text: t("note") + ": " + a.handling.note }) : null,
      actions(a));
    return li;
  });
  parts.push(el("ol", { class: "timeline" }, ...items));
  $("detail").replaceChildren(...parts);
}

function actions(alert) {
  const note = el("input", { type: "text", placeholder: t("note"), "aria-label": t("note") + " #" + alert.alert_id, "data-field": "note" });
  const assignee = el("input", { type: "text", placeholder: t("assignee"), "aria-label": t("assignee") + " #" + alert.alert_id, "data-field": "assignee" });
  const status = el("span", { class: "error", role: "status" });
  const button = (action, label) => {
    const b = el("button", { type: "button", text: t(label), "data-action": action });
    b.addEventListener("click", async () => {
      status.textContent = "";
      try {
        const body = await api("/api/v1/alerts/" + alert.alert_id + "/" + action, {
          method: "POST", body: JSON.stringify({ note: note.value, assignee: assignee.value }),
        });
        if (take(body.alert)) showCall(alert.call_id);
      } catch (e) {
        status.textContent = t("failed") + ": " + e.message;
      }
    });
    return b;
  };
  return el("div", { class: "act" }, note, assignee,
    el("div", { class: "buttons" }, button("ack", "ack"), button("assign", "assign"), button("resolve", "resolve"), status));
}

// "/" goes to the filters, "c" to the calls, "f" to the alert feed,
// Escape back out of a text field.
function shortcuts(e) {
  const typing = e.target && (e.target.tagName === "INPUT" || e.target.tagName === "SELECT");
  if (typing) { if (e.key === "Escape") e.target.blur(); return; }
  if (e.key === "/") { e.preventDefault(); $("f-tenant").focus(); }
  else if (e.key === "c") { const r = $("calls").querySelector("tbody tr"); if (r) r.focus(); }
  else if (e.key === "f") { const r = $("feed").querySelector("li"); if (r) r.focus(); }
  else if ((e.key === "j" || e.key === "k") && e.target && e.target.matches("#feed li, #calls tbody tr")) {
    const next = e.key === "j" ? e.target.nextElementSibling : e.target.previousElementSibling;
    if (next) next.focus();
  }
}

document.addEventListener("DOMContentLoaded", start);
