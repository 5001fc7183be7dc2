// One modal question at a time (an escalation reason, a resolution outcome, a confirmation), in a
// <dialog> rather than window.prompt so it is translated, styled and testable.

import { byId } from "./dom.js";

/**
 * Ask the operator. With `label`, a text is required; with `checkbox` ({label, note, disabled}), a
 * box to tick. Returns {text, checked} when confirmed, null when cancelled.
 */
export function ask({ title, message = "", label = "", checkbox = null }) {
  const dialog = byId("ask-dialog");
  const input = byId("ask-input");
  const box = byId("ask-check");
  byId("ask-title").textContent = title;
  byId("ask-message").textContent = message;
  byId("ask-message").hidden = !message;
  byId("ask-label").textContent = label;
  byId("ask-label").hidden = !label;
  input.hidden = !label;
  input.required = Boolean(label);
  input.value = "";
  byId("ask-check-row").hidden = !checkbox;
  box.checked = false;
  box.disabled = Boolean(checkbox?.disabled);
  byId("ask-check-label").textContent = checkbox?.label || "";
  byId("ask-check-note").textContent = checkbox?.note || "";
  byId("ask-check-note").hidden = !checkbox?.note;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => {
      const text = input.value.trim();
      const confirmed = dialog.returnValue === "confirm" && (!label || text);
      resolve(confirmed ? { text, checked: box.checked && !box.disabled } : null);
    }, { once: true });
    dialog.showModal();
    if (label) input.focus();
  });
}
