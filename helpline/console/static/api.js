// The console API (see the API contract): JSON in and out, the session cookie, and the CSRF token
// on every POST.

export class ApiError extends Error {
  constructor(status, body) {
    super(body.error || `HTTP ${status}`);
    this.status = status;
    this.code = body.code || null;
    this.body = body;
  }
}

let csrfToken = null;
let unauthorizedHandler = () => {};

/** The CSRF token from /api/login or /api/me, sent with every POST. */
export function setCsrf(token) {
  csrfToken = token;
}

/** Called when a request answers 401 (the session ended): the console shows the login form. */
export function whenUnauthorized(handler) {
  unauthorizedHandler = handler;
}

async function request(method, path, body) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  let response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
      cache: "no-store",
    });
  } catch {
    throw new ApiError(0, { code: "network" });
  }
  let data = {};
  if (response.status !== 204) {
    try {
      data = await response.json();
    } catch {
      data = {};
    }
  }
  if (!response.ok) {
    const error = new ApiError(response.status, data || {});
    if (response.status === 401 && path !== "/api/login" && path !== "/api/me") unauthorizedHandler();
    throw error;
  }
  return data;
}

export const api = {
  get: (path) => request("GET", path),
  post: (path, body = {}) => request("POST", path, body),
};
