// The queue: cases as the API orders them (urgent first, then longest waiting), urgent ones marked
// red with their category, waiting time ticking. Filter: open, queued, mine, resolved.

import * as alerts from "./alerts.js";
import { api } from "./api.js";
import { byId, el, formatDuration, setError } from "./dom.js";
import { t } from "./i18n.js";
import { channelLabel, errorText, languageLabel, statusLabel, topicLabel, urgentLabel } from "./labels.js";

const FILTERS = ["open", "queued", "mine", "resolved"];

/**
 * The queue screen. `onOpen(id)` opens a case.
 * Returns {refresh, render, tick, notice, select, reset}.
 */
export function createQueue({ onOpen }) {
  let filter = "open";
  let cases = [];
  let fetchedAt = performance.now();
  let selectedId = null;
  let loaded = false; // cases present at login are not "new"
  const known = new Set();
  let pending = null;
  let again = false;

  for (const button of byId("queue-screen").querySelectorAll("[data-filter]")) {
    button.addEventListener("click", () => setFilter(button.dataset.filter));
  }

  function setFilter(name) {
    if (!FILTERS.includes(name)) return;
    markFilter(name);
    refresh();
  }

  function markFilter(name) {
    filter = name;
    for (const button of byId("queue-screen").querySelectorAll("[data-filter]")) {
      button.setAttribute("aria-pressed", String(button.dataset.filter === name));
    }
  }

  /** A case id was seen (in a list or an event): a new, waiting one raises the alert. */
  function notice(id, status) {
    if (known.has(id)) return;
    known.add(id);
    if (loaded && status === "queued") alerts.caseArrived(id);
  }

  /**
   * Fetch the list for the current filter. A call while a fetch is under way fetches once more after
   * it (the filter may have changed, or an event arrived), so a burst of events costs two requests.
   */
  function refresh() {
    if (pending) {
      again = true;
      return pending;
    }
    pending = (async () => {
      do {
        again = false;
        await load();
      } while (again);
    })().finally(() => { pending = null; });
    return pending;
  }

  async function load() {
    const asked = filter;
    try {
      const body = await api.get(`/api/cases?status=${encodeURIComponent(asked)}`);
      if (asked !== filter) return; // the filter changed while we waited: refresh() fetches again
      const all = body.cases || [];
      for (const summary of all) {
        notice(summary.id, summary.status);
        if (summary.status !== "queued") alerts.caseSeen(summary.id);
      }
      if (asked !== "resolved") loaded = true;
      cases = all;
      fetchedAt = performance.now();
      setError(byId("queue-error"), "");
      render();
    } catch (error) {
      if (error.status !== 401) setError(byId("queue-error"), errorText(error));
    }
  }

  function render() {
    const list = byId("queue-list");
    list.replaceChildren(...cases.map(row));
    byId("queue-empty").hidden = cases.length > 0;
    byId("queue-count").textContent = cases.length ? `(${cases.length})` : "";
    tick();
  }

  function row(summary) {
    const urgent = Boolean(summary.urgent);
    const classes = ["queue-row"];
    if (urgent) classes.push("is-urgent");
    if (summary.id === selectedId) classes.push("is-selected");
    if (alerts.isUnseen(summary.id)) classes.push("is-new");
    const unread = Number(summary.unread) || 0;
    return el("li", {},
      el("button", {
        type: "button",
        class: classes.join(" "),
        "data-testid": "queue-row",
        "aria-current": summary.id === selectedId ? "true" : null,
        dataset: { caseId: summary.id, status: summary.status, urgent: String(urgent) },
        onclick: () => onOpen(summary.id),
      },
      el("span", { class: "row-line" },
        el("span", { class: "reference", "data-testid": "queue-reference", text: summary.reference }),
        urgent ? el("span", { class: "badge badge-urgent", "data-testid": "queue-urgent", text: urgentLabel(summary) }) : null,
        alerts.isUnseen(summary.id) ? el("span", { class: "badge badge-new", text: t("queue_new") }) : null,
        el("span", { class: "waiting clock", "data-testid": "queue-waiting", title: t("col_waiting") })),
      el("span", { class: "row-line row-details" },
        el("span", { class: `status status-${summary.status}`, "data-testid": "queue-status", text: statusLabel(summary.status) }),
        el("span", { text: topicLabel(summary.topic) }),
        el("span", { text: channelLabel(summary.channel) }),
        el("span", { text: languageLabel(summary.language) }),
        el("span", { "data-testid": "queue-operator", text: summary.operator || t("operator_none") }),
        unread ? el("span", { class: "badge badge-unread", text: t("unread", { n: unread }) }) : null)));
  }

  /** Advance the waiting clocks (once a second, without asking the server). */
  function tick() {
    const elapsed = (performance.now() - fetchedAt) / 1000;
    const nodes = byId("queue-list").querySelectorAll(".queue-row");
    cases.forEach((summary, index) => {
      const clock = nodes[index]?.querySelector(".waiting");
      if (!clock) return;
      // The list does not say whether an assigned case has had its first reply (which stops the
      // clock), so only waiting cases tick here; the case view knows and ticks until the first reply.
      const ticking = summary.status === "queued";
      clock.textContent = formatDuration((Number(summary.waiting_seconds) || 0) + (ticking ? elapsed : 0));
    });
  }

  function select(id) {
    selectedId = id;
    render();
  }

  function reset() {
    cases = [];
    known.clear();
    loaded = false;
    selectedId = null;
    markFilter("open");
    render();
  }

  return { refresh, render, tick, notice, select, reset, setFilter };
}
