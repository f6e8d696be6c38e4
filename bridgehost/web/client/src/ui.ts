/**
 * The chat page: channels and conversations in a navigation landmark, the
 * timeline of the open view, and the composer. Renders are coalesced to
 * one per animation frame; timeline articles are reused while their item
 * is unchanged, so live events append without redrawing everything.
 */
import { type Change, type Chat, isChannel, type Outgoing } from "./chat";
import { h } from "./dom";
import { looksLikeMarkdown } from "./markdown";
import { type Actions, type RenderContext, renderItem } from "./render";
import type { TopicItem } from "./scalar";
import { displayName, type Item } from "./timeline";

/** After a failed load of older history, scrolling does not retry it for this long. */
const OLDER_RETRY_MS = 10_000;

type Mode = { kind: "none" } | { kind: "reply"; item: Item } | { kind: "edit"; item: Item };

function short(id: string, domain: string): string {
  return id.endsWith(`@${domain}`) ? id.slice(0, -domain.length - 1) : id;
}

export class ChatPage {
  private view = "";
  private mode: Mode = { kind: "none" };
  private cache = new Map<string, { el: HTMLElement; rev: string }>();
  private frame = 0;
  private dirtyLists = true;
  /** While older history loads: the first event in view and its distance from the top of the
   * view, to put back when the page lands (so neither the page nor live events below move it). */
  private anchor: { view: string; key: string; offset: number } | null = null;
  /** After a failed load of older history: no automatic retry before this time (ms). */
  private olderPausedUntil = 0;
  private listing: { prefix: string; total: number; items: TopicItem[] } = { prefix: "", total: 0, items: [] };
  private listTimer: number | undefined;
  private bannerTimer: number | undefined;
  private flash = "";

  // Elements that live as long as the page.
  private banner = h("div", { class: "banner", role: "alert", hidden: true });
  private title = h("h1", { class: "view-title" });
  private subtitle = h("p", { class: "view-topic" });
  private whoami = h("span", { class: "whoami" });
  private menu = h("button", { type: "button", class: "menu", "aria-label": "Show channels", "aria-expanded": "false" }, "☰");
  private joinedList = h("ul", { class: "views" });
  private dmList = h("ul", { class: "views" });
  private allList = h("ul", { class: "all" });
  private allMore = h("button", { type: "button", class: "secondary", hidden: true }, "More channels");
  private filter = h("input", { type: "search", "aria-label": "Filter channels", placeholder: "Filter, or #new-channel" });
  private dmInput = h("input", { "aria-label": "Start a conversation with", placeholder: "user@domain" });
  private nav = h("nav", { "aria-label": "Channels", class: "sidebar", id: "sidebar" });
  private older = h("button", { type: "button", class: "older secondary" }, "Load older messages");
  private events = h("div", { class: "events" });
  private emptyNote = h("p", { class: "empty-state", hidden: true }, "No messages here yet.");
  private pending = h("div", { class: "pending" });
  private scroller = h("div", { class: "timeline", role: "log", "aria-live": "polite", tabindex: 0 });
  private modeBar = h("div", { class: "mode", hidden: true });
  private input = h("textarea", { "aria-label": "Message", rows: 1, placeholder: "Message", enterkeyhint: "send" });
  private sendButton = h("button", { type: "submit" }, "Send");
  private hint = h("p", { class: "hint", role: "status" });

  constructor(
    private root: HTMLElement,
    private chat: Chat,
    private logout: () => void,
  ) {
    this.build();
    chat.onChange((c) => this.changed(c));
    const first = chat.joined[0] ?? chat.dms[0] ?? "";
    this.open(first);
    this.schedule();
  }

  // --- layout -----------------------------------------------------------------------

  private build(): void {
    this.menu.addEventListener("click", () => this.toggleMenu());
    this.filter.addEventListener("input", () => {
      window.clearTimeout(this.listTimer);
      this.listTimer = window.setTimeout(() => void this.refreshListing(0), 200);
    });
    this.allMore.addEventListener("click", () => void this.refreshListing(this.listing.items.length));
    const dmForm = h(
      "form",
      {
        class: "dm-form",
        onsubmit: (e: Event) => {
          e.preventDefault();
          const raw = this.dmInput.value.trim().toLowerCase();
          if (!raw) return;
          const id = raw.includes("@") ? raw : `${raw}@${this.chat.domain}`;
          if (!/^[a-z0-9._-]{1,64}@[a-z0-9.-]+$/.test(id)) {
            this.say(`${raw} is not a user ID (like alice@${this.chat.domain})`);
            return;
          }
          this.dmInput.value = "";
          this.chat.openDm(id);
          this.open(id);
        },
      },
      this.dmInput,
      h("button", { type: "submit", class: "secondary" }, "Open"),
    );
    this.nav.append(
      h("section", {}, h("h2", {}, "Joined"), this.joinedList),
      h("section", {}, h("h2", {}, "Direct messages"), this.dmList, dmForm),
      h("section", {}, h("h2", {}, "All channels"), this.filter, this.allList, this.allMore),
    );
    this.older.addEventListener("click", () => void this.loadOlder(true));
    this.scroller.append(this.older, this.emptyNote, this.events, this.pending);
    this.scroller.addEventListener("scroll", () => {
      if (this.scroller.scrollTop < 80) void this.loadOlder(false);
    });
    this.input.addEventListener("keydown", (e) => this.onKey(e));
    this.input.addEventListener("input", () => this.autosize());
    const composer = h(
      "form",
      {
        class: "composer",
        onsubmit: (e: Event) => {
          e.preventDefault();
          this.submit();
        },
      },
      this.modeBar,
      h("div", { class: "row" }, this.input, this.sendButton),
      this.hint,
    );
    const header = h(
      "header",
      { class: "topbar" },
      this.menu,
      h("div", { class: "heading" }, this.title, this.subtitle),
      this.whoami,
      h("button", { type: "button", class: "secondary", onclick: () => this.logout() }, "Log out"),
    );
    this.root.replaceChildren(
      h("div", { class: "chat" }, header, this.banner, h("div", { class: "frame" }, this.nav, h("main", { class: "main" }, this.scroller, composer))),
    );
  }

  private toggleMenu(force?: boolean): void {
    const open = force ?? !this.nav.classList.contains("open");
    this.nav.classList.toggle("open", open);
    this.menu.setAttribute("aria-expanded", String(open));
  }

  // --- state -> DOM ------------------------------------------------------------------

  private changed(c: Change): void {
    if (c.what === "lists" || c.what === "presence" || c.what === "state") this.dirtyLists = true;
    if (c.what === "state" && this.chat.state === "online") void this.refreshListing(0);
    this.schedule();
  }

  private schedule(): void {
    if (!this.frame) this.frame = window.requestAnimationFrame(() => this.render());
  }

  private render(): void {
    this.frame = 0;
    this.renderBanner();
    if (this.dirtyLists) {
      this.dirtyLists = false;
      this.renderLists();
    }
    this.renderHeader();
    this.renderTimeline();
  }

  private renderBanner(): void {
    const c = this.chat;
    window.clearTimeout(this.bannerTimer);
    if (c.state === "online" || c.state === "logged-out") {
      this.banner.hidden = true;
      return;
    }
    this.banner.hidden = false;
    if (c.state === "connecting") {
      this.banner.replaceChildren(c.lastError ? "Connection lost. Reconnecting…" : "Connecting…");
      return;
    }
    const seconds = Math.max(0, Math.ceil((c.retryAt - Date.now()) / 1000));
    this.banner.replaceChildren(
      `Connection lost${c.lastError ? ` (${c.lastError})` : ""}. Reconnecting in ${seconds} s… `,
      h("button", { type: "button", class: "secondary", onclick: () => c.retryNow() }, "Reconnect now"),
    );
    this.bannerTimer = window.setTimeout(() => this.renderBanner(), 1000);
  }

  private viewButton(view: string, label: string, extra?: Node): HTMLElement {
    const unread = this.chat.unread.get(view) ?? 0;
    return h(
      "button",
      {
        type: "button",
        class: "view",
        "aria-current": view === this.view ? "page" : undefined,
        onclick: () => this.open(view),
      },
      extra ?? null,
      h("span", { class: "name" }, label),
      unread ? h("span", { class: "unread", "aria-label": `${unread} unread` }, String(unread)) : null,
    );
  }

  private renderLists(): void {
    const c = this.chat;
    this.whoami.textContent = c.me;
    this.joinedList.replaceChildren(
      ...c.joined.map((t) =>
        h(
          "li",
          {},
          this.viewButton(t, short(t, c.domain)),
          h("button", { type: "button", class: "leave", "aria-label": `Leave ${t}`, onclick: () => this.leave(t) }, "×"),
        ),
      ),
    );
    if (!c.joined.length) this.joinedList.replaceChildren(h("li", { class: "empty" }, "No channels yet: pick one below."));
    this.dmList.replaceChildren(
      ...c.dms.map((u) => {
        const state = c.presence.get(u) ?? "unknown";
        const dot = h("span", { class: `presence ${state}`, role: "img", "aria-label": state, title: state });
        return h(
          "li",
          {},
          this.viewButton(u, short(u, c.domain), dot),
          h("button", { type: "button", class: "leave", "aria-label": `Close ${u}`, onclick: () => this.leave(u) }, "×"),
        );
      }),
    );
    const { items, total } = this.listing;
    const typed = this.filterPrefix();
    const canCreate = typed.length > 1 && /^#[a-z0-9._-]{1,64}$/.test(typed) && !items.some((i) => i.topic === `${typed}@${c.domain}`);
    const rows: HTMLElement[] = items.map((i) =>
        h(
          "li",
          {},
          h(
            "button",
            { type: "button", class: "channel", onclick: () => void this.join(i.topic) },
            h("span", { class: "name" }, short(i.topic, c.domain)),
            h("span", { class: "count", "aria-label": `${i.subscribers} here` }, String(i.subscribers)),
            i.title ? h("span", { class: "title" }, i.title) : null,
          ),
        ),
    );
    if (canCreate) {
      const id = `${typed}@${c.domain}`;
      rows.push(h("li", {}, h("button", { type: "button", class: "channel create", onclick: () => void this.join(id) }, `Join ${typed}`)));
    }
    this.allList.replaceChildren(...rows);
    this.allMore.hidden = items.length >= total;
    if (this.flash) this.hint.textContent = this.flash;
  }

  private renderHeader(): void {
    const c = this.chat;
    if (!this.view) {
      this.title.textContent = "bridgehost chat";
      this.subtitle.textContent = "Pick a channel or start a conversation.";
      this.input.disabled = this.sendButton.disabled = true;
      return;
    }
    this.input.disabled = this.sendButton.disabled = false;
    this.title.textContent = short(this.view, c.domain);
    if (isChannel(this.view)) {
      this.subtitle.textContent = c.timeline(this.view).title ?? "";
    } else {
      const state = c.presence.get(this.view);
      this.subtitle.textContent = `Direct messages with ${this.view}${state ? ` · ${state}` : ""}`;
    }
    document.title = `${short(this.view, c.domain)} · bridgehost chat`;
  }

  private context(): RenderContext {
    const c = this.chat;
    const timelines = c.viewTimelines(this.view);
    const actions: Actions = {
      reply: (item) => this.setMode({ kind: "reply", item }),
      edit: (item) => this.setMode({ kind: "edit", item }),
      react: (item, key) => c.send({ topic: item.ev.topic, body: key, kind: "react", target: item.ev.idHex }),
      unreact: (id) => {
        const t = timelines.find((tl) => tl.get(id));
        if (t) c.send({ topic: t.topic, body: "", kind: "delete", target: id });
      },
      delete: (item) => c.send({ topic: item.ev.topic, body: "", kind: "delete", target: item.ev.idHex }),
    };
    return {
      me: c.me,
      canReact: isChannel(this.view),
      actions,
      lookup: (id) => {
        for (const t of timelines) {
          const ev = t.get(id);
          if (ev) return t.item(ev, c.me);
        }
        return null;
      },
    };
  }

  private items(): Item[] {
    const c = this.chat;
    if (!this.view) return [];
    if (isChannel(this.view) || this.view === c.me) return c.timeline(this.view).items(c.me);
    const received = c.timeline(c.me).items(c.me, (ev) => ev.from === this.view);
    const sent = c.timeline(this.view).items(c.me, (ev) => ev.from === c.me);
    return [...received, ...sent].sort((a, b) => a.ev.time - b.ev.time || a.ev.seq - b.ev.seq);
  }

  private renderTimeline(): void {
    const c = this.chat;
    const sc = this.scroller;
    const atBottom = sc.scrollHeight - sc.scrollTop - sc.clientHeight < 60;
    const ctx = this.context();
    const items = this.items();
    const live = new Set<string>();
    let prev: Element | null = null;
    for (const item of items) {
      const key = item.ev.idHex;
      const replyRev = item.ev.replyTo ? (ctx.lookup(item.ev.replyTo)?.rev ?? -1) : 0;
      const rev = `${item.rev}:${replyRev}:${c.me}`;
      let entry = this.cache.get(key);
      if (!entry || entry.rev !== rev) {
        const el = renderItem(item, ctx);
        entry?.el.replaceWith(el);
        entry = { el, rev };
        this.cache.set(key, entry);
      }
      live.add(key);
      const expected: Element | null = prev ? prev.nextElementSibling : this.events.firstElementChild;
      if (expected !== entry.el) this.events.insertBefore(entry.el, expected);
      prev = entry.el;
    }
    let extra = prev ? prev.nextElementSibling : this.events.firstElementChild;
    while (extra) {
      const next = extra.nextElementSibling;
      extra.remove();
      extra = next;
    }
    for (const key of [...this.cache.keys()]) if (!live.has(key)) this.cache.delete(key);
    this.renderPending();
    this.emptyNote.hidden = !this.view || items.length > 0 || this.pending.childElementCount > 0;
    const timelines = this.view ? c.viewTimelines(this.view) : [];
    const main = timelines[0];
    const canLoad = !!main && main.history && main.hasOlder && isChannelOrMe(this.view, c.me);
    this.older.hidden = !canLoad;
    this.older.disabled = !!main && c.isLoadingOlder(main.topic);
    this.older.textContent = this.older.disabled ? "Loading…" : "Load older messages";
    const loading = !!main && c.isLoadingOlder(main.topic);
    if (this.anchor && (this.anchor.view !== this.view || !loading)) {
      // The page landed (or the view changed): put the reader's event back where it was.
      const anchor = this.anchor;
      this.anchor = null;
      const el = anchor.view === this.view ? this.cache.get(anchor.key)?.el : undefined;
      if (el) sc.scrollTop += el.getBoundingClientRect().top - sc.getBoundingClientRect().top - anchor.offset;
    } else if (!this.anchor && atBottom) {
      sc.scrollTop = sc.scrollHeight;
    }
    // A timeline too short to scroll can never be scrolled up, and a reader still at the top
    // after a page arrived sends no new scroll event: load more in both cases.
    const nearTop = sc.scrollHeight <= sc.clientHeight + 80 || sc.scrollTop < 80;
    if (canLoad && !loading && c.state === "online" && nearTop) void this.loadOlder(false);
  }

  /** The first event at least partly in view, and how far its top is below the view's top. */
  private firstInView(): { key: string; offset: number } | null {
    const top = this.scroller.getBoundingClientRect().top;
    let best: { key: string; offset: number } | null = null;
    for (const [key, entry] of this.cache) {
      const box = entry.el.getBoundingClientRect();
      if (box.bottom > top && (!best || box.top - top < best.offset)) best = { key, offset: box.top - top };
    }
    return best;
  }

  private renderPending(): void {
    const mine = this.chat.outbox.filter((o) => this.viewOf(o) === this.view && o.kind !== "react" && o.kind !== "delete");
    this.pending.replaceChildren(...mine.map((o) => this.pendingArticle(o)));
    const failed = this.chat.outbox.filter((o) => o.state === "failed" && (o.kind === "react" || o.kind === "delete"));
    for (const o of failed) {
      this.say(`Could not ${o.kind}: ${o.error ?? "failed"}`);
      this.chat.discard(o.nonce);
    }
  }

  private viewOf(o: Outgoing): string {
    return o.topic;
  }

  private pendingArticle(o: Outgoing): HTMLElement {
    const status =
      o.state === "failed"
        ? [
            h("span", { class: "error" }, `Not sent: ${o.error ?? "failed"}`),
            h("button", { type: "button", class: "secondary", onclick: () => this.chat.retry(o.nonce) }, "Retry"),
            h("button", { type: "button", class: "secondary", onclick: () => this.chat.discard(o.nonce) }, "Discard"),
          ]
        : h("span", { class: "sending" }, this.chat.state === "online" ? "Sending…" : "Waiting for the connection…");
    return h(
      "article",
      { class: `event pending-event ${o.state}`, "aria-busy": o.state === "failed" ? undefined : "true" },
      h("div", { class: "meta" }, h("span", { class: "who" }, short(this.chat.me, this.chat.domain)), status),
      h("div", { class: "body" }, o.kind === "edit" ? `(edit) ${o.body}` : o.body),
    );
  }

  // --- actions --------------------------------------------------------------------------

  private open(view: string): void {
    this.view = view;
    this.chat.markRead(view);
    this.setMode({ kind: "none" });
    this.cache.clear();
    this.events.replaceChildren();
    this.dirtyLists = true;
    this.toggleMenu(false);
    this.schedule();
    window.requestAnimationFrame(() => {
      this.scroller.scrollTop = this.scroller.scrollHeight;
    });
    if (view && !isChannel(view)) this.chat.openDm(view);
    if (view) this.input.focus({ preventScroll: true });
  }

  private async join(topic: string): Promise<void> {
    this.filter.value = "";
    this.open(topic);
    await this.chat.join(topic);
    void this.refreshListing(0);
  }

  private leave(view: string): void {
    void this.chat.leave(view);
    if (this.view === view) this.open(this.chat.joined[0] ?? this.chat.dms[0] ?? "");
  }

  /** One page of older history; `asked` (the button) also retries right after a failure. */
  private async loadOlder(asked: boolean): Promise<void> {
    const c = this.chat;
    const view = this.view;
    if (!view || !isChannelOrMe(view, c.me)) return;
    if (!c.timeline(view).hasOlder || c.isLoadingOlder(view)) return;
    if (!asked && Date.now() < this.olderPausedUntil) return;
    const place = this.scroller.scrollHeight > this.scroller.clientHeight ? this.firstInView() : null;
    const loading = c.loadOlder(view);
    // Only a load that really started (online, history kept) holds the reader's place.
    if (place && c.isLoadingOlder(view)) this.anchor = { view, ...place };
    try {
      await loading;
    } catch {
      this.olderPausedUntil = Date.now() + OLDER_RETRY_MS;
      this.say("Could not load older messages; the button tries again.");
    }
  }

  private filterPrefix(): string {
    const raw = this.filter.value.trim().toLowerCase();
    if (!raw) return "";
    return raw.startsWith("#") ? raw : `#${raw}`;
  }

  private async refreshListing(offset: number): Promise<void> {
    const prefix = this.filterPrefix();
    try {
      const page = await this.chat.listTopics(prefix, offset);
      const items = offset ? [...this.listing.items, ...page.items] : page.items;
      this.listing = { prefix, total: page.total, items };
    } catch (err) {
      this.say(`Could not list channels: ${(err as Error).message}`);
    }
    this.dirtyLists = true;
    this.schedule();
  }

  private say(text: string): void {
    this.flash = text;
    this.hint.textContent = text;
  }

  private setMode(mode: Mode): void {
    this.mode = mode;
    if (mode.kind === "none") {
      this.modeBar.hidden = true;
      this.modeBar.replaceChildren();
      return;
    }
    const cancel = h("button", { type: "button", class: "secondary", onclick: () => this.setMode({ kind: "none" }) }, "Cancel");
    const label =
      mode.kind === "reply"
        ? `Replying to ${displayName(mode.item.ev)}: ${mode.item.body.slice(0, 60)}`
        : "Editing your message";
    this.modeBar.replaceChildren(h("span", {}, label), cancel);
    this.modeBar.hidden = false;
    if (mode.kind === "edit") {
      this.input.value = mode.item.body;
      this.autosize();
    }
    this.input.focus();
  }

  private onKey(e: KeyboardEvent): void {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      this.submit();
    } else if (e.key === "Escape" && this.mode.kind !== "none") {
      e.preventDefault();
      if (this.mode.kind === "edit") this.input.value = "";
      this.setMode({ kind: "none" });
    } else if (e.key === "ArrowUp" && !this.input.value && this.view) {
      const last = this.chat.viewTimelines(this.view).map((t) => t.lastOwn(this.chat.me)).filter((x) => x)
        .sort((a, b) => b!.time - a!.time)[0];
      const item = last ? this.chat.timeline(last.topic).item(last, this.chat.me) : null;
      if (item) {
        e.preventDefault();
        this.setMode({ kind: "edit", item });
      }
    }
  }

  private autosize(): void {
    this.input.style.height = "auto";
    this.input.style.height = `${Math.min(this.input.scrollHeight, 200)}px`;
  }

  private submit(): void {
    const c = this.chat;
    const raw = this.input.value;
    if (!this.view || !raw.trim()) return;
    const topic = this.view;
    let body = raw.replace(/\s+$/, "");
    let kind = "text";
    if (this.mode.kind !== "edit" && body.startsWith("/") && !body.startsWith("//")) {
      const [, cmd, rest = ""] = /^\/(\S+)\s?([\s\S]*)$/.exec(body) ?? [];
      if (cmd === "me") {
        kind = "action";
        body = rest;
      } else if (cmd === "topic" && isChannel(topic)) {
        kind = "topic";
        body = rest.trim();
      } else if (cmd === "join") {
        const name = rest.trim().toLowerCase();
        const id = name.includes("@") ? name : `${name.startsWith("#") ? name : `#${name}`}@${c.domain}`;
        this.input.value = "";
        void this.join(id);
        return;
      } else {
        this.say(`Unknown command /${cmd ?? ""}. Commands: /me, /topic, /join (start with // to send a slash).`);
        return;
      }
      if (!body && kind === "action") return;
    } else if (body.startsWith("//")) {
      body = body.slice(1);
    }
    const ctype = kind === "text" || kind === "action" ? (looksLikeMarkdown(body) ? "text/markdown" : undefined) : undefined;
    if (this.mode.kind === "edit") {
      const target = this.mode.item.ev;
      if (body !== this.mode.item.body) c.send({ topic: target.topic, body, kind: "edit", target: target.idHex, ctype });
    } else {
      const replyTo = this.mode.kind === "reply" ? this.mode.item.ev.idHex : undefined;
      c.send({ topic, body, kind, ctype, replyTo });
    }
    this.input.value = "";
    this.autosize();
    this.say("");
    this.setMode({ kind: "none" });
    this.scroller.scrollTop = this.scroller.scrollHeight;
  }
}

function isChannelOrMe(view: string, me: string): boolean {
  return isChannel(view) || view === me;
}
