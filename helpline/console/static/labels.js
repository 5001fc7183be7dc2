// How values from the API read in the interface language: statuses, channels, topics, urgency
// categories, languages, and error messages.

import { t, tOptional } from "./i18n.js";

export const statusLabel = (status) => tOptional(`status_${status}`, status || "");
export const channelLabel = (channel) => tOptional(`channel_${channel}`, channel || "");
export const languageLabel = (language) => (language ? tOptional(`language_${language}`, language) : t("unknown"));
export const topicLabel = (topic) => (topic ? tOptional(`topic_${topic}`, topic) : t("unknown"));
export const categoryLabel = (category) => (category ? tOptional(`category_${category}`, category) : "");

/** "Urgent: violence" or "Urgent". */
export function urgentLabel(summary) {
  return summary.category
    ? t("urgent_with_category", { category: categoryLabel(summary.category) })
    : t("urgent");
}

/** What to tell the operator about a failed request: a translation of its code, else the API's reason. */
export function errorText(error) {
  if (error.code && tOptional(`error_${error.code}`, null)) return t(`error_${error.code}`);
  if (error.status === 0) return t("error_network");
  if (error.status === 403) return t("error_forbidden");
  if (error.status === 404) return t("error_not_found");
  return error.body?.error || t("error_generic");
}
