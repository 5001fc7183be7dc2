// The operator console's entry point: checks the session, then shows the login screen or the queue
// and case view, keeps them live (server-sent events), and switches the interface language.

import * as alerts from "./alerts.js";
import { api, setCsrf, whenUnauthorized } from "./api.js";
import { createCaseView } from "./case.js";
import { byId, setError } from "./dom.js";
import { applyTranslations, language, loadStrings, onLanguageChange, setLanguage, t } from "./i18n.js";
import { listen } from "./live.js";
import { setUpLogin, showLogin } from "./login.js";
import { createQueue } from "./queue.js";

const QUEUE_SAFETY_REFRESH_MS = 30000; // in case an event was missed while the stream reconnected
const EVENT_DEBOUNCE_MS = 100;

let me = null;
let stopListening = null;
let timers = [];
let refreshScheduled = null;
let caseToRefresh = false;

const queue = createQueue({ onOpen: openCase });
const caseView = createCaseView({
  me: () => me,
  onChange: () => queue.refresh(),
  onClose: () => { queue.select(null); rememberCase(null); },
  onError: (text) => setError(byId("queue-error"), text),
});

async function openCase(id) {
  setError(byId("queue-error"), "");
  queue.select(id);
  rememberCase(id);
  await caseView.open(id);
}

/** Keep the open case in the address (#case/12), so a reload comes back to it. */
function rememberCase(id) {
  const hash = id === null ? "" : `#case/${id}`;
  if (location.hash !== hash) history.replaceState(null, "", hash || location.pathname);
}

function caseInAddress() {
  const match = /^#case\/(\d+)$/.exec(location.hash);
  return match ? Number(match[1]) : null;
}

/** A case event: re-fetch the queue, and the open case if the event is about it. */
function onCaseEvent(event) {
  queue.notice(event.id, event.status);
  if (event.change !== "opened" && event.status !== "queued") alerts.caseSeen(event.id);
  if (event.id === caseView.caseId()) caseToRefresh = true;
  clearTimeout(refreshScheduled);
  refreshScheduled = setTimeout(() => {
    queue.refresh();
    if (caseToRefresh) caseView.refresh();
    caseToRefresh = false;
  }, EVENT_DEBOUNCE_MS);
}

function setLiveState(state) {
  const badge = byId("live-status");
  badge.dataset.state = state;
  badge.textContent = t(`live_${state}`);
  if (state === "live") queue.refresh(); // catch up on anything missed while disconnected
  if (state === "closed") checkSession();
}

async function checkSession() {
  try {
    const session = await api.get("/api/me");
    setCsrf(session.csrf);
  } catch (error) {
    if (error.status === 401) endSession();
  }
}

async function startSession(session) {
  me = session.operator;
  setCsrf(session.csrf);
  document.body.dataset.screen = "console";
  byId("login-screen").hidden = true;
  byId("console-screen").hidden = false;
  byId("me").hidden = false;
  byId("me").textContent = t("signed_in_as", { name: me.username, role: t(`role_${me.role}`) });
  byId("logout").hidden = false;
  byId("live-status").hidden = false;
  stopListening = listen({ onCase: onCaseEvent, onState: setLiveState });
  timers = [
    setInterval(() => { queue.tick(); caseView.tick(); }, 1000),
    setInterval(() => queue.refresh(), QUEUE_SAFETY_REFRESH_MS),
  ];
  await queue.refresh();
  loadCanned();
  if (["supervisor", "admin"].includes(me.role)) loadOperators();
  const id = caseInAddress();
  if (id !== null) openCase(id);
}

async function loadCanned() {
  try {
    caseView.setCanned((await api.get("/api/canned")).canned || []);
  } catch (error) {
    if (error.status !== 401) setError(byId("case-error"), t("error_canned"));
  }
}

async function loadOperators() {
  try {
    caseView.setOperators((await api.get("/api/operators")).operators || []);
  } catch {
    byId("assign-box").hidden = true; // not allowed after all: the API decides
  }
}

/** Back to the login screen (logged out, or the session expired). */
function endSession() {
  if (stopListening) stopListening();
  stopListening = null;
  for (const timer of timers) clearInterval(timer);
  timers = [];
  me = null;
  setCsrf(null);
  caseView.reset();
  queue.reset();
  alerts.resetAlerts();
  document.body.dataset.screen = "login";
  for (const id of ["me", "logout", "live-status"]) byId(id).hidden = true;
  showLogin();
}

async function logout() {
  try {
    await api.post("/api/logout");
  } finally {
    endSession();
  }
}

function setUpLanguage() {
  const select = byId("language");
  select.value = language();
  select.addEventListener("change", () => setLanguage(select.value));
  onLanguageChange(() => {
    alerts.updateTitle();
    if (!me) return;
    byId("me").textContent = t("signed_in_as", { name: me.username, role: t(`role_${me.role}`) });
    const live = byId("live-status");
    live.textContent = t(`live_${live.dataset.state}`);
    queue.render();
    caseView.render();
  });
}

async function boot() {
  try {
    await loadStrings();
  } catch {
    setError(byId("fatal"), "The console could not load its texts. Reload the page.");
    return;
  }
  applyTranslations();
  alerts.updateTitle();
  setUpLanguage();
  // Sound may only start after the operator has interacted with the page.
  for (const type of ["pointerdown", "keydown"]) document.addEventListener(type, alerts.unlockSound, { capture: true });
  whenUnauthorized(endSession);
  setUpLogin(startSession);
  byId("logout").addEventListener("click", logout);
  try {
    await startSession(await api.get("/api/me"));
  } catch (error) {
    if (error.status === 401) endSession();
    else setError(byId("fatal"), t("error_start"));
  }
}

boot();
