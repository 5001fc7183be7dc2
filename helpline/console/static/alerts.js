// Telling the operator a new case arrived: a short beep (Web Audio, no sound file) and the number of
// new cases in the tab title, e.g. "(2) Helpline console".

import { t } from "./i18n.js";

let audio = null;
const unseen = new Set();
let alerted = 0;

/**
 * Browsers only let a page play sound after the user interacted with it: make (or resume) the audio
 * context on the first click or key press.
 */
export function unlockSound() {
  const Context = window.AudioContext || window.webkitAudioContext;
  if (!Context) return;
  if (!audio) audio = new Context();
  if (audio.state === "suspended") audio.resume().catch(() => {});
}

/** Two short tones; silent (but harmless) when sound is not available yet. */
export function beep() {
  if (!audio || audio.state !== "running") return false;
  const start = audio.currentTime;
  for (const [offset, frequency] of [[0, 880], [0.18, 1175]]) {
    const oscillator = audio.createOscillator();
    const gain = audio.createGain();
    oscillator.type = "sine";
    oscillator.frequency.value = frequency;
    gain.gain.setValueAtTime(0.0001, start + offset);
    gain.gain.exponentialRampToValueAtTime(0.25, start + offset + 0.02);
    gain.gain.exponentialRampToValueAtTime(0.0001, start + offset + 0.15);
    oscillator.connect(gain).connect(audio.destination);
    oscillator.start(start + offset);
    oscillator.stop(start + offset + 0.16);
  }
  return true;
}

/** A case not seen before arrived: beep and count it in the title until it is opened or taken. */
export function caseArrived(id) {
  if (unseen.has(id)) return;
  unseen.add(id);
  alerted += 1;
  document.body.dataset.newCaseAlerts = String(alerted); // lets tests see the alert fired
  document.body.dataset.lastAlertSound = beep() ? "played" : "unavailable";
  updateTitle();
}

/** The operator has seen the case, or it is no longer waiting for anyone. */
export function caseSeen(id) {
  if (unseen.delete(id)) updateTitle();
}

export function isUnseen(id) {
  return unseen.has(id);
}

export function resetAlerts() {
  unseen.clear();
  updateTitle();
}

export function updateTitle() {
  document.title = unseen.size ? `(${unseen.size}) ${t("app_title")}` : t("app_title");
}
