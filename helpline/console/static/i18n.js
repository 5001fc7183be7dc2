// The interface language (English, Chinese, Vietnamese): strings from /console/i18n.json, the choice
// remembered in localStorage.

import { localeOf } from "./dom.js";

export const LANGUAGES = ["en", "zh", "vi"];
const STORAGE_KEY = "helpline.console.language";

let strings = { en: {} };
let current = "en";
const listeners = [];

/** Load the strings and pick the language: the remembered one, else the browser's, else English. */
export async function loadStrings() {
  const response = await fetch("/console/i18n.json", { credentials: "same-origin" });
  if (!response.ok) throw new Error(`interface strings: HTTP ${response.status}`);
  strings = await response.json();
  current = rememberedLanguage() || browserLanguage() || "en";
}

function rememberedLanguage() {
  try {
    const stored = localStorage.getItem(STORAGE_KEY);
    return LANGUAGES.includes(stored) ? stored : null;
  } catch {
    return null; // storage blocked: fall back, do not fail
  }
}

function browserLanguage() {
  const tag = (navigator.language || "").slice(0, 2).toLowerCase();
  return LANGUAGES.includes(tag) ? tag : null;
}

export function language() {
  return current;
}

/** Switch the interface language, remember it, and redraw everything that carries text. */
export function setLanguage(lang) {
  if (!LANGUAGES.includes(lang)) return;
  current = lang;
  try {
    localStorage.setItem(STORAGE_KEY, lang);
  } catch {
    // not remembered; the switch still applies to this page
  }
  applyTranslations();
  for (const listener of listeners) listener(lang);
}

export function onLanguageChange(listener) {
  listeners.push(listener);
}

/** The string `key` in the current language, with `{name}` placeholders filled from `values`. */
export function t(key, values = {}) {
  const text = strings[current]?.[key] ?? strings.en?.[key] ?? key;
  return text.replace(/\{([a-z_]+)\}/g, (whole, name) => (name in values ? String(values[name]) : whole));
}

/** `t(key)` if the key exists, else `fallback` (for values from the API such as topics). */
export function tOptional(key, fallback) {
  return key in (strings.en || {}) ? t(key) : fallback;
}

/** Fill every element marked data-i18n (text), data-i18n-placeholder and data-i18n-label (aria-label). */
export function applyTranslations(root = document) {
  for (const node of root.querySelectorAll("[data-i18n]")) node.textContent = t(node.dataset.i18n);
  for (const node of root.querySelectorAll("[data-i18n-placeholder]")) node.placeholder = t(node.dataset.i18nPlaceholder);
  for (const node of root.querySelectorAll("[data-i18n-label]")) node.setAttribute("aria-label", t(node.dataset.i18nLabel));
  document.documentElement.lang = localeOf(current);
}
