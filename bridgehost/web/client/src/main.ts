/** Entry point: log in (or reuse the stored login), then chat. */
import { Chat } from "./chat";
import { fetchInfo, revoke, type ServerInfo, showLogin } from "./login";
import { forgetLogin, type Login, loadLogin, saveLogin } from "./storage";
import { ChatPage } from "./ui";

function socketUrl(): string {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}/scalar`;
}

async function run(root: HTMLElement, notice = ""): Promise<void> {
  let info: ServerInfo | null = null;
  try {
    info = await fetchInfo();
  } catch (err) {
    notice ||= `Cannot reach the server: ${(err as Error).message}`;
  }
  let login: Login | null = loadLogin();
  if (!login) {
    login = await showLogin(root, info, notice);
    saveLogin(login);
  }
  const chat = new Chat(socketUrl(), login);
  const current = login;
  let done = false;
  const logout = (why = "") => {
    if (done) return;
    done = true;
    chat.stop();
    forgetLogin();
    if (current.kind === "user" && !why) void revoke(current.token).catch(() => undefined);
    void run(root, why);
  };
  chat.onChange((c) => {
    if (c.what === "state" && chat.state === "logged-out" && chat.lastError) logout(chat.lastError);
  });
  new ChatPage(root, chat, () => logout());
  chat.start();
}

const root = document.getElementById("root");
if (root) void run(root);
