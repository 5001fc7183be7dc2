// The login screen: username and password; says why a login failed (bad credentials, locked account).

import { api } from "./api.js";
import { byId, setError } from "./dom.js";
import { t } from "./i18n.js";

/** Wire the login form; `onLoggedIn({operator, csrf})` runs after a successful login. */
export function setUpLogin(onLoggedIn) {
  const form = byId("login-form");
  const submit = form.querySelector("button[type=submit]");
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    setError(byId("login-error"), "");
    submit.disabled = true;
    try {
      const session = await api.post("/api/login", {
        username: byId("login-username").value.trim(),
        password: byId("login-password").value,
      });
      byId("login-password").value = "";
      onLoggedIn(session);
    } catch (error) {
      byId("login-password").value = "";
      setError(byId("login-error"), loginError(error));
      byId("login-password").focus();
    } finally {
      submit.disabled = false;
    }
  });
}

function loginError(error) {
  if (error.code === "locked" || error.status === 423) {
    const minutes = Math.max(1, Math.ceil((Number(error.body.retry_after) || 60) / 60));
    return t("login_locked", { minutes });
  }
  if (error.code === "bad_credentials" || error.status === 401) return t("login_bad_credentials");
  if (error.status === 0) return t("error_network");
  return t("login_failed");
}

/** Show the login screen with an empty form. */
export function showLogin() {
  byId("login-screen").hidden = false;
  byId("console-screen").hidden = true;
  byId("login-username").focus();
}
