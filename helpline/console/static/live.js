// Live updates: GET /api/events (server-sent events). Each `case` event makes the console re-fetch
// what it shows; EventSource reconnects by itself after a network drop.

const RETRY_AFTER_CLOSE_MS = 5000;

/**
 * Listen for case events. `onCase(data)` gets each event's data; `onState(state)` gets "live",
 * "reconnecting" or "closed" (the server refused the stream, e.g. the session ended).
 * Returns a function that stops listening.
 */
export function listen({ onCase, onState }) {
  let source = null;
  let retry = null;
  let stopped = false;

  function open() {
    source = new EventSource("/api/events", { withCredentials: true });
    source.addEventListener("open", () => onState("live"));
    source.addEventListener("case", (event) => {
      let data;
      try {
        data = JSON.parse(event.data);
      } catch {
        return; // a malformed event changes nothing; the next refresh shows the truth
      }
      onCase(data);
    });
    source.addEventListener("error", () => {
      if (stopped) return;
      if (source.readyState === EventSource.CLOSED) {
        onState("closed");
        retry = setTimeout(open, RETRY_AFTER_CLOSE_MS);
      } else {
        onState("reconnecting");
      }
    });
  }

  open();
  return () => {
    stopped = true;
    clearTimeout(retry);
    if (source) source.close();
  };
}
