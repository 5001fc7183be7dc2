// The case view: the whole transcript (worker, bot, operator and system turns), the consent decision,
// the reply window, a reply box with canned replies in the worker's language, private notes, and the
// actions (claim, ask consent, escalate, resolve, hand back, reassign).

import * as alerts from "./alerts.js";
import { api } from "./api.js";
import { ask } from "./dialog.js";
import { byId, el, formatDuration, formatTime, localeOf, setError } from "./dom.js";
import { language, t, tOptional } from "./i18n.js";
import { channelLabel, errorText, languageLabel, statusLabel, topicLabel, urgentLabel } from "./labels.js";

const AUTHORS = ["worker", "bot", "operator", "system"];
const WORKER_LANGUAGES = ["zh", "vi"];
const SEES_ALL = ["supervisor", "admin"];

/**
 * The case screen. `me()` is the logged-in operator; `onChange()` runs after an action changed a
 * case (the queue re-fetches); `onClose()` after the view closes; `onError(text)` reports a case that
 * could not be opened. Returns {open, refresh, render, tick, close, caseId, setCanned, setOperators, reset}.
 */
export function createCaseView({ me, onChange, onClose, onError }) {
  let caseId = null;
  let current = null;
  let fetchedAt = 0;
  let canned = [];
  let transcriptKey = "";
  let replyOpen = null;
  const drafts = new Map();
  const replyText = byId("reply-text");
  const caseError = byId("case-error");

  byId("case-close").addEventListener("click", () => close());
  byId("action-claim").addEventListener("click", () => act("claim"));
  byId("action-consent").addEventListener("click", askConsent);
  byId("action-escalate").addEventListener("click", escalate);
  byId("action-resolve").addEventListener("click", resolve);
  byId("action-handback").addEventListener("click", handBack);
  byId("action-assign").addEventListener("click", assign);
  byId("canned").addEventListener("change", insertCanned);
  byId("reply-form").addEventListener("submit", (event) => { event.preventDefault(); sendReply(); });
  replyText.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) { event.preventDefault(); sendReply(); }
  });
  byId("note-form").addEventListener("submit", (event) => { event.preventDefault(); addNote(); });

  async function open(id) {
    if (caseId !== null) drafts.set(caseId, replyText.value);
    caseId = id;
    current = null;
    transcriptKey = "";
    replyText.value = drafts.get(id) || "";
    byId("note-text").value = "";
    setError(caseError, "");
    alerts.caseSeen(id);
    await refresh();
  }

  /** Re-fetch the open case (after an event about it, or an action). */
  async function refresh() {
    if (caseId === null) return;
    const id = caseId;
    try {
      const data = await api.get(`/api/cases/${encodeURIComponent(id)}`);
      if (id !== caseId) return;
      show(data);
    } catch (error) {
      if (id !== caseId || error.status === 401) return;
      if (current) {
        setError(caseError, errorText(error));
      } else {
        close();
        onError(errorText(error));
      }
    }
  }

  function show(data) {
    current = data;
    fetchedAt = performance.now();
    byId("case-screen").hidden = false;
    byId("case-placeholder").hidden = true;
    render();
  }

  function close() {
    if (caseId !== null) drafts.set(caseId, replyText.value);
    caseId = null;
    current = null;
    byId("case-screen").hidden = true;
    byId("case-placeholder").hidden = false;
    onClose();
  }

  // ----- drawing -----

  function render() {
    if (!current) return;
    const c = current;
    byId("case-reference").textContent = c.reference;
    const status = byId("case-status");
    status.textContent = statusLabel(c.status);
    status.className = `status status-${c.status}`;
    status.dataset.status = c.status;
    const urgent = byId("case-urgent");
    urgent.hidden = !c.urgent;
    urgent.textContent = c.urgent ? urgentLabel(c) : "";
    byId("case-channel").textContent = channelLabel(c.channel);
    byId("case-language").textContent = languageLabel(c.language);
    byId("case-topic").textContent = topicLabel(c.topic);
    byId("case-operator").textContent = c.operator || t("operator_none");
    byId("case-reason").textContent = c.reason ? tOptional(`reason_${c.reason}`, c.reason) : t("unknown");
    renderConsent();
    renderTranscript();
    renderNotes();
    renderAudit();
    renderCanned();
    replyOpen = null; // force the controls to be redrawn by tick()
    tick();
  }

  function renderConsent() {
    const banner = byId("case-consent");
    const state = current.consent || (current.consent_asked ? "asked" : "none");
    banner.dataset.consent = state;
    banner.className = `consent consent-${state}`;
    banner.replaceChildren(
      el("strong", { class: "consent-label", text: t("consent_label") }),
      el("span", { class: "consent-value", "data-testid": "consent-value", text: t(`consent_${state}`) }));
  }

  function renderTranscript() {
    const messages = current.messages || [];
    const key = `${language()}|${messages.map((m) => m.id).join(",")}`;
    if (key === transcriptKey) return;
    const list = byId("transcript");
    const firstDraw = transcriptKey === "";
    const atBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 48;
    list.replaceChildren(...messages.map(messageItem));
    if (!messages.length) list.append(el("li", { class: "empty", text: t("transcript_empty") }));
    transcriptKey = key;
    if (firstDraw || atBottom) list.scrollTop = list.scrollHeight;
  }

  function messageItem(message) {
    const author = AUTHORS.includes(message.author) ? message.author : "system";
    const meta = [];
    if (message.language) meta.push(t("meta_language", { language: languageLabel(message.language) }));
    if (message.topic) meta.push(t("meta_topic", { topic: topicLabel(message.topic) }));
    if (message.direction === "out" && message.status) meta.push(tOptional(`delivery_${message.status}`, message.status));
    const kind = message.kind && message.kind !== "text" ? tOptional(`kind_${message.kind}`, `[${message.kind}]`) : null;
    const urgent = message.urgent_category
      ? el("span", { class: "badge badge-urgent", text: urgentLabel({ category: message.urgent_category }) }) : null;
    return el("li", {
      class: `message message-${author}`,
      "data-testid": "message",
      dataset: { author, direction: message.direction || "" },
    },
    el("div", { class: "message-head" },
      el("span", { class: "message-author", text: t(`author_${author}`) }),
      el("time", { datetime: message.at, text: formatTime(message.at, language()) }),
      urgent,
      meta.length ? el("span", { class: "message-meta", "data-testid": "message-meta", title: message.intent || null,
        text: meta.join(" · ") }) : null),
    kind ? el("span", { class: "message-kind", text: kind }) : null,
    message.text ? el("p", { class: "message-text", lang: localeOf(message.language || current.language), text: message.text })
      : null);
  }

  function renderNotes() {
    const notes = current.notes || [];
    byId("notes").replaceChildren(...notes.map((note) => el("li", { class: "note", "data-testid": "note" },
      el("div", { class: "note-head" },
        el("span", { class: "note-author", text: note.author }),
        el("time", { datetime: note.at, text: formatTime(note.at, language()) })),
      el("p", { class: "note-text", text: note.text }))));
  }

  function renderAudit() {
    // Every read is audited, so one operator's consecutive reads are shown as one line with a count.
    const rows = [];
    for (const entry of current.audit || []) {
      const last = rows[rows.length - 1];
      if (last && last.action === entry.action && last.actor === entry.actor && !entry.detail && !last.detail) {
        last.count += 1;
        last.at = entry.at;
      } else {
        rows.push({ ...entry, count: 1 });
      }
    }
    byId("audit").replaceChildren(...rows.map((entry) => el("li", { "data-testid": "audit-entry" },
      el("time", { datetime: entry.at, text: formatTime(entry.at, language()) }),
      el("span", { class: "audit-actor", text: entry.actor }),
      el("span", { text: tOptional(`audit_${entry.action}`, entry.action) + (entry.count > 1 ? ` ×${entry.count}` : "") }),
      entry.detail ? el("span", { class: "audit-detail", text: entry.detail }) : null)));
  }

  function workerLanguage() {
    return WORKER_LANGUAGES.includes(current?.language) ? current.language : WORKER_LANGUAGES[0];
  }

  function renderCanned() {
    const lang = workerLanguage();
    const select = byId("canned");
    select.replaceChildren(
      el("option", { value: "", text: t("canned_choose", { language: languageLabel(lang) }) }),
      ...canned.map((reply) => el("option", {
        value: reply.key, title: reply.text[lang], text: reply.title[language()] || reply.title.en,
      })));
  }

  /** The reply window now: {open, left (seconds or null = no limit), reason}. */
  function replyWindow() {
    const limits = current.window || {};
    if (!limits.open) return { open: false, reason: limits.reason || t("window_reason_unknown") };
    if (limits.seconds_left === null || limits.seconds_left === undefined) return { open: true, left: null };
    const left = limits.seconds_left - (performance.now() - fetchedAt) / 1000;
    return left > 0 ? { open: true, left } : { open: false, reason: t("window_expired") };
  }

  /** Advance the clocks (waiting time, reply window) and close the reply box when the window ends. */
  function tick() {
    if (!current) return;
    const elapsed = (performance.now() - fetchedAt) / 1000;
    const stopped = current.status === "resolved" || Boolean(current.first_reply_at); // the wait ends at the first reply
    const waiting = (Number(current.waiting_seconds) || 0) + (stopped ? 0 : elapsed);
    byId("case-waiting").textContent = formatDuration(waiting);
    const state = replyWindow();
    const windowNode = byId("case-window");
    windowNode.textContent = state.open
      ? (state.left === null ? t("window_open") : t("window_left", { time: formatDuration(state.left) }))
      : t("window_closed", { reason: state.reason });
    windowNode.dataset.open = String(state.open);
    windowNode.classList.toggle("is-closing", state.open && state.left !== null && state.left < 3600);
    if (state.open !== replyOpen) {
      replyOpen = state.open;
      updateControls(state);
    }
  }

  function updateControls(state = replyWindow()) {
    const c = current;
    const operator = me();
    const supervisor = SEES_ALL.includes(operator.role);
    const mine = Boolean(c.operator) && c.operator === operator.username;
    const resolved = c.status === "resolved";
    const canWork = !resolved && (mine || supervisor);
    // Only a waiting, unassigned case can be claimed; a supervisor moves the others with "reassign".
    byId("action-claim").hidden = c.status !== "queued" || Boolean(c.operator);
    byId("action-consent").disabled = !canWork;
    byId("action-escalate").disabled = !canWork || c.status === "escalated";
    byId("action-resolve").disabled = !canWork;
    byId("action-handback").disabled = !canWork;
    byId("assign-box").hidden = !supervisor || resolved;
    byId("action-assign").disabled = !supervisor || resolved;
    const canReply = canWork && state.open;
    for (const id of ["reply-text", "reply-send", "canned"]) byId(id).disabled = !canReply;
    let hint;
    if (resolved) hint = t("reply_hint_resolved");
    else if (!state.open) hint = t("window_closed", { reason: state.reason });
    else if (!canWork) hint = t("reply_hint_claim");
    else hint = t("reply_hint_language", { language: languageLabel(workerLanguage()) });
    byId("reply-hint").textContent = hint;
  }

  // ----- actions -----

  async function act(action, body = {}) {
    if (caseId === null) return false;
    const id = caseId;
    setError(caseError, "");
    const buttons = byId("case-screen").querySelectorAll(".actions button");
    for (const button of buttons) button.disabled = true;
    try {
      const result = await api.post(`/api/cases/${encodeURIComponent(id)}/${action}`, body);
      if (id === caseId) {
        if (result && result.id === id && Array.isArray(result.messages)) show(result);
        else await refresh();
      }
      onChange();
      return true;
    } catch (error) {
      if (error.status !== 401) setError(caseError, errorText(error));
      await refresh();
      return false;
    } finally {
      if (current) updateControls();
    }
  }

  async function askConsent() {
    const answer = await ask({ title: t("consent_ask_title"), message: t("consent_ask_message") });
    if (answer) await act("consent/ask");
  }

  async function escalate() {
    // Naming the worker to the factory needs their recorded consent (the API refuses it otherwise).
    const agreed = ["yes", "anonymous"].includes(current.consent);
    const answer = await ask({
      title: t("escalate_title"),
      label: t("escalate_reason"),
      checkbox: {
        label: t("escalate_contact_factory"),
        note: agreed ? t(`consent_${current.consent}`) : t("escalate_contact_needs_consent"),
        disabled: !agreed,
      },
    });
    if (answer) await act("escalate", { reason: answer.text, contact_factory: answer.checked });
  }

  async function resolve() {
    const answer = await ask({ title: t("resolve_title"), label: t("resolve_outcome") });
    if (answer) await act("resolve", { outcome: answer.text });
  }

  async function handBack() {
    const answer = await ask({ title: t("handback_title"), message: t("handback_message") });
    if (answer) await act("handback");
  }

  async function assign() {
    const operator = byId("assign-operator").value;
    if (operator) await act("assign", { operator });
  }

  function insertCanned() {
    const select = byId("canned");
    const reply = canned.find((item) => item.key === select.value);
    select.value = "";
    if (!reply) return;
    const text = reply.text[workerLanguage()];
    const { selectionStart: start, selectionEnd: end, value } = replyText;
    const before = value.slice(0, start);
    const glue = before && !before.endsWith("\n") ? "\n" : "";
    replyText.setRangeText(glue + text, start, end, "end");
    replyText.focus();
  }

  async function sendReply() {
    const text = replyText.value.trim();
    if (!text || caseId === null || byId("reply-send").disabled) return;
    const id = caseId;
    byId("reply-send").disabled = true;
    setError(caseError, "");
    try {
      await api.post(`/api/cases/${encodeURIComponent(id)}/messages`, { text });
      if (id === caseId) replyText.value = "";
      drafts.delete(id);
      await refresh();
      onChange();
    } catch (error) {
      if (error.status !== 401) setError(caseError, errorText(error));
      await refresh();
    } finally {
      if (current) updateControls();
    }
  }

  async function addNote() {
    const input = byId("note-text");
    const text = input.value.trim();
    if (!text || caseId === null) return;
    const id = caseId;
    byId("note-add").disabled = true;
    setError(caseError, "");
    try {
      await api.post(`/api/cases/${encodeURIComponent(id)}/notes`, { text });
      if (id === caseId) input.value = "";
      await refresh();
    } catch (error) {
      if (error.status !== 401) setError(caseError, errorText(error));
    } finally {
      byId("note-add").disabled = false;
    }
  }

  // ----- set-up from outside -----

  function setCanned(replies) {
    canned = replies;
    if (current) renderCanned();
  }

  function setOperators(operators) {
    byId("assign-operator").replaceChildren(
      el("option", { value: "", text: t("assign_choose") }),
      ...operators.map((operator) => el("option", { value: operator.username, text: `${operator.username} (${operator.role})` })));
  }

  function reset() {
    drafts.clear();
    if (caseId !== null) close();
  }

  return {
    open, refresh, render, tick, close, reset, setCanned, setOperators,
    caseId: () => caseId,
  };
}
