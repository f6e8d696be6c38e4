/**
 * The login screen: a password login (the server answers with a revocable
 * token, kept in localStorage; the password is never stored) or, when the
 * server allows guests, a guest session.
 */
import { h } from "./dom";
import type { Login } from "./storage";

export interface ServerInfo {
  domain: string;
  guests: boolean;
}

export async function fetchInfo(): Promise<ServerInfo> {
  const r = await fetch("api/info", { headers: { Accept: "application/json" } });
  if (!r.ok) throw new Error(`the server answered ${r.status}`);
  const info = (await r.json()) as Partial<ServerInfo>;
  return { domain: String(info.domain ?? ""), guests: info.guests === true };
}

async function passwordLogin(user: string, password: string): Promise<Login> {
  const r = await fetch("api/login", {
    method: "POST",
    headers: { "Content-Type": "application/json", Accept: "application/json" },
    body: JSON.stringify({ user, password, label: `browser: ${navigator.userAgent.slice(0, 80)}` }),
  });
  let answer: { id?: string; token?: string; error?: string } = {};
  try {
    answer = (await r.json()) as typeof answer;
  } catch {
    // Not JSON: fall through to the status below.
  }
  if (!r.ok || !answer.id || !answer.token) {
    throw new Error(answer.error ?? `login failed (${r.status})`);
  }
  return { kind: "user", id: answer.id, token: answer.token };
}

export async function revoke(token: string): Promise<void> {
  await fetch("api/logout", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ token }),
  });
}

/** Show the login form in `root`; resolves with the login the person chose. */
export function showLogin(root: HTMLElement, info: ServerInfo | null, notice: string): Promise<Login> {
  return new Promise((resolve) => {
    const error = h("p", { class: "error", role: "alert" }, notice);
    const user = h("input", { name: "user", autocomplete: "username", required: true, placeholder: "alice" });
    const password = h("input", { name: "password", type: "password", autocomplete: "current-password", required: true });
    const submit = h("button", { type: "submit" }, "Log in");
    const form = h(
      "form",
      {
        class: "login-form",
        onsubmit: async (e: Event) => {
          e.preventDefault();
          submit.disabled = true;
          error.textContent = "";
          try {
            resolve(await passwordLogin(user.value.trim(), password.value));
          } catch (err) {
            error.textContent = (err as Error).message;
            password.value = "";
            password.focus();
          } finally {
            submit.disabled = false;
          }
        },
      },
      h("label", {}, "User", user),
      h("label", {}, "Password", password),
      submit,
    );
    const guest =
      info?.guests &&
      h("button", { type: "button", class: "secondary", onclick: () => resolve({ kind: "guest" }) }, "Continue as guest");
    root.replaceChildren(
      h(
        "main",
        { class: "login" },
        h("h1", {}, "bridgehost chat"),
        info?.domain ? h("p", { class: "domain" }, `Server ${info.domain}`) : null,
        form,
        guest,
        error,
      ),
    );
    user.focus();
  });
}
