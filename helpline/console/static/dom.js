// Small DOM helpers. Text is always set through text nodes or textContent: nothing here parses HTML,
// so a worker's message can never become markup in the console.

/** The element with this id. */
export function byId(id) {
  return document.getElementById(id);
}

/**
 * Make an element. `attrs`: "class", "text" (textContent), "dataset" (an object), `on<event>` (a
 * listener), anything else an attribute (skipped when null, undefined or false). Children: nodes or
 * text.
 */
export function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (name === "class") node.className = value;
    else if (name === "text") node.textContent = value;
    else if (name === "dataset") Object.assign(node.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") node.addEventListener(name.slice(2), value);
    else node.setAttribute(name, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Show or hide an element (the `hidden` attribute). */
export function show(node, visible) {
  node.hidden = !visible;
}

/** Show `text` in an error line, or hide the line when `text` is empty. */
export function setError(node, text) {
  node.textContent = text || "";
  node.hidden = !text;
}

/** A duration as a ticking clock: "4:05", "1:02:09", "2d 3:04:05". */
export function formatDuration(totalSeconds) {
  const seconds = Math.max(0, Math.floor(totalSeconds));
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  const rest = String(seconds % 60).padStart(2, "0");
  const clock = hours || days ? `${hours}:${String(minutes).padStart(2, "0")}:${rest}` : `${minutes}:${rest}`;
  return days ? `${days}d ${clock}` : clock;
}

const LOCALES = { en: "en-GB", zh: "zh-CN", vi: "vi-VN" };

/** The BCP 47 tag for one of our language codes (for `lang` attributes and dates). */
export function localeOf(language) {
  return LOCALES[language] || language || "en";
}

/** A time from the API (ISO 8601, UTC) in the operator's local time; the date too if not today. */
export function formatTime(iso, language) {
  if (!iso) return "";
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  const sameDay = date.toDateString() === new Date().toDateString();
  const options = sameDay ? { hour: "2-digit", minute: "2-digit" }
    : { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit" };
  return date.toLocaleString(localeOf(language), options);
}
