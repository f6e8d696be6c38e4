/**
 * What the page remembers across reloads, in localStorage: the login (a
 * revocable token the server issued, never the password), the channels and
 * conversations a user opened, and the direct messages they sent (those are
 * stored under the recipient's ID, which only the recipient may catch up on).
 */
import type { ScalarEvent } from "./scalar";
import { hex, unhex } from "./scalar";

export type Login = { kind: "user"; id: string; token: string } | { kind: "guest" };

const LOGIN = "bridgehost.login";
const SENT_DM_LIMIT = 500;

function read<T>(key: string, fallback: T): T {
  try {
    const raw = localStorage.getItem(key);
    return raw === null ? fallback : (JSON.parse(raw) as T);
  } catch {
    return fallback;
  }
}

function write(key: string, value: unknown): void {
  try {
    localStorage.setItem(key, JSON.stringify(value));
  } catch {
    // Storage full or disabled: the page still works, it only forgets more on reload.
  }
}

export function loadLogin(): Login | null {
  const login = read<Login | null>(LOGIN, null);
  if (login?.kind === "guest") return login;
  if (login?.kind === "user" && typeof login.id === "string" && typeof login.token === "string") return login;
  return null;
}

export function saveLogin(login: Login): void {
  write(LOGIN, login);
}

export function forgetLogin(): void {
  const login = loadLogin();
  localStorage.removeItem(LOGIN);
  if (login?.kind === "user") {
    for (const key of Object.keys(localStorage)) {
      if (key.startsWith(`bridgehost.${login.id}.`)) localStorage.removeItem(key);
    }
  }
}

/** Per-user lists (joined channels, conversations); guests keep theirs under "guest". */
export function loadList(user: string, name: string): string[] {
  const list = read<unknown>(`bridgehost.${user}.${name}`, []);
  return Array.isArray(list) ? list.filter((x): x is string => typeof x === "string") : [];
}

export function saveList(user: string, name: string, list: string[]): void {
  write(`bridgehost.${user}.${name}`, list);
}

type StoredEvent = Omit<ScalarEvent, "id"> & { id?: undefined };

export function loadSentDms(user: string): ScalarEvent[] {
  const list = read<StoredEvent[]>(`bridgehost.${user}.sent`, []);
  if (!Array.isArray(list)) return [];
  return list
    .filter((e) => e && typeof e.idHex === "string" && typeof e.topic === "string" && typeof e.seq === "number")
    .map((e) => ({ ...e, id: unhex(e.idHex) }));
}

export function saveSentDms(user: string, events: ScalarEvent[]): void {
  const kept = events.slice(-SENT_DM_LIMIT).map((e) => ({ ...e, id: undefined, idHex: e.idHex || hex(e.id) }));
  write(`bridgehost.${user}.sent`, kept);
}
