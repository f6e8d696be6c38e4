/**
 * The chat session behind the page: one Scalar connection at a time,
 * reconnected with backoff, and everything the person sees kept across
 * reconnects. After each reconnect it subscribes again, fills every gap
 * with `catchup` after the newest seq it holds (so nothing is missed, and
 * what arrives twice is kept once, by seq), and re-sends the publishes the
 * server never answered with their original nonce (§10: each lands once).
 *
 * No DOM here: the page listens to `onChange` and reads the state.
 */
import type { CborMap } from "./cbor";
import { type Meta, ScalarError, type ScalarEvent, ScalarSocket, type TopicItem } from "./scalar";
import { type Login, loadList, loadSentDms, saveList, saveSentDms } from "./storage";
import { Timeline } from "./timeline";

export type ConnState = "connecting" | "online" | "offline" | "logged-out";

export type Change =
  | { what: "state" }
  | { what: "lists" }
  | { what: "presence"; user: string }
  | { what: "timeline"; topic: string }
  | { what: "outbox" };

export interface Outgoing {
  nonce: string;
  topic: string;
  body: string;
  kind: string;
  ctype?: string;
  replyTo?: string;
  target?: string;
  state: "queued" | "sending" | "failed";
  error?: string;
}

export type Send = Pick<Outgoing, "topic" | "body" | "kind" | "ctype" | "replyTo" | "target">;

/** Catch-up page size; gap fills page until done, at most MAX_FILL_PAGES pages. */
const PAGE = 200;
const MAX_FILL_PAGES = 25;
const FIRST_PAGE = 50;
const BACKOFF_MS = [500, 1000, 2000, 4000, 8000, 15000, 30000];

export function isChannel(topic: string): boolean {
  return topic.startsWith("#");
}

export function isUser(topic: string): boolean {
  return !topic.startsWith("#") && !topic.startsWith("!");
}

function nonce(): string {
  const bytes = new Uint8Array(16);
  crypto.getRandomValues(bytes);
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function unhexBytes(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export class Chat {
  state: ConnState = "connecting";
  /** Why the last connection ended, shown in the banner. */
  lastError = "";
  /** When the next reconnect attempt starts (ms since epoch), while offline. */
  retryAt = 0;
  me = "";
  domain = "";
  joined: string[] = [];
  dms: string[] = [];
  presence = new Map<string, string>();
  unread = new Map<string, number>();
  outbox: Outgoing[] = [];
  /** The view (channel or DM partner) the person is looking at: its events count as read. */
  current = "";

  private timelines = new Map<string, Timeline>();
  private sock: ScalarSocket | null = null;
  private attempt = 0;
  private retryTimer: number | undefined;
  private pumping = false;
  private stopped = false;
  private loadingOlder = new Set<string>();
  private listeners: ((c: Change) => void)[] = [];
  private storeKey = "";

  constructor(
    private url: string,
    private login: Login,
  ) {
    if (login.kind === "user") this.adopt(login.id);
  }

  onChange(fn: (c: Change) => void): void {
    this.listeners.push(fn);
  }

  private emit(c: Change): void {
    for (const fn of this.listeners) fn(c);
  }

  /** Take on an identity: its remembered channels, conversations and sent DMs. */
  private adopt(id: string): void {
    this.me = id;
    this.domain = id.split("@")[1] ?? "";
    this.storeKey = this.login.kind === "user" ? id : "guest";
    this.joined = loadList(this.storeKey, "joined");
    this.dms = loadList(this.storeKey, "dms");
    if (this.login.kind === "user") {
      for (const ev of loadSentDms(this.storeKey)) this.timeline(ev.topic).add(ev);
    }
  }

  timeline(topic: string): Timeline {
    let t = this.timelines.get(topic);
    if (!t) {
      t = new Timeline(topic);
      // Only the owner may catch up on a user's topic; what I sent to others I keep myself.
      if (isUser(topic) && topic !== this.me) {
        t.history = false;
        t.hasOlder = false;
      }
      this.timelines.set(topic, t);
    }
    return t;
  }

  // --- connection ---------------------------------------------------------------

  start(): void {
    this.stopped = false;
    void this.connect();
    window.addEventListener("online", () => this.retryNow());
  }

  /** Log out: close for good. */
  stop(): void {
    this.stopped = true;
    this.lastError = "";
    window.clearTimeout(this.retryTimer);
    this.sock?.close("logout");
    this.sock = null;
    this.setState("logged-out");
  }

  retryNow(): void {
    if (this.state !== "offline" || this.stopped) return;
    window.clearTimeout(this.retryTimer);
    void this.connect();
  }

  private setState(state: ConnState): void {
    this.state = state;
    this.emit({ what: "state" });
  }

  private async connect(): Promise<void> {
    this.setState("connecting");
    let sock: ScalarSocket;
    try {
      sock = await ScalarSocket.open(this.url, {
        event: (ev) => this.onEvent(ev),
        closed: (reason) => this.onClosed(sock, reason),
      });
    } catch (err) {
      this.scheduleRetry((err as Error).message);
      return;
    }
    this.sock = sock;
    try {
      const auth =
        this.login.kind === "user" ? { id: this.login.id, method: "token", secret: this.login.token } : {};
      const welcome = await sock.ident(auth);
      if (welcome.id !== this.me) this.adopt(welcome.id);
      await this.resync(sock);
    } catch (err) {
      if (err instanceof ScalarError && err.code === "auth-failed") {
        this.stopped = true;
        this.lastError = "Your login has expired or was revoked. Please log in again.";
        sock.close("auth-failed");
        this.setState("logged-out");
        return;
      }
      if (err instanceof ScalarError && err.code === "rate-limited" && err.retryAfter) {
        this.attempt = Math.max(this.attempt, 3);
      }
      sock.close("resync failed");
      return;
    }
    if (this.sock !== sock) return;
    this.attempt = 0;
    this.lastError = "";
    this.setState("online");
    void this.pump();
  }

  private onClosed(sock: ScalarSocket, reason: string): void {
    if (this.sock !== sock) return;
    this.sock = null;
    for (const o of this.outbox) if (o.state === "sending") o.state = "queued";
    if (this.stopped) return;
    this.scheduleRetry(reason);
  }

  private scheduleRetry(reason: string): void {
    if (this.stopped) return;
    const base = BACKOFF_MS[Math.min(this.attempt, BACKOFF_MS.length - 1)];
    this.attempt++;
    const delay = Math.round(base * (0.75 + Math.random() * 0.5));
    this.lastError = reason;
    this.retryAt = Date.now() + delay;
    this.setState("offline");
    window.clearTimeout(this.retryTimer);
    this.retryTimer = window.setTimeout(() => void this.connect(), delay);
  }

  /** After ident: subscribe to everything again and fill every gap. */
  private async resync(sock: ScalarSocket): Promise<void> {
    const topics = [this.me, ...this.joined, ...this.dms.filter((d) => d !== this.me)];
    const metas = await Promise.all(
      topics.map((t) =>
        sock.sub(t).catch((err: unknown) => {
          if (err instanceof ScalarError && ["forbidden", "no-such-topic", "bad-topic"].includes(err.code)) {
            this.dropView(t, `${t}: ${err.message}`);
            return null;
          }
          throw err;
        }),
      ),
    );
    for (const meta of metas) if (meta) this.applyMeta(meta);
    const fills = [this.me, ...this.joined];
    await Promise.all(fills.map((t) => this.fill(sock, t)));
  }

  private applyMeta(meta: Meta): void {
    const t = this.timeline(meta.topic);
    if (meta.title !== undefined && !t.title) t.title = meta.title;
    if (!meta.history) {
      t.history = false;
      t.hasOlder = false;
    }
  }

  private dropView(topic: string, why: string): void {
    this.joined = this.joined.filter((t) => t !== topic);
    this.dms = this.dms.filter((t) => t !== topic);
    this.saveLists();
    this.lastError = why;
    this.emit({ what: "lists" });
  }

  /** Everything after the newest held event, or the latest page for a timeline not yet loaded. */
  private async fill(sock: ScalarSocket, topic: string): Promise<void> {
    const t = this.timeline(topic);
    if (!t.history) return;
    if (t.newest === 0) {
      const h = await sock.catchup(topic, {}, FIRST_PAGE);
      if (h.status === "unavailable") {
        t.history = false;
        t.hasOlder = false;
      } else {
        t.hasOlder = h.more;
      }
      this.addAll(topic, h.events, false);
      return;
    }
    for (let page = 0; page < MAX_FILL_PAGES; page++) {
      const h = await sock.catchup(topic, { after: t.newest }, PAGE);
      this.addAll(topic, h.events, true);
      if (!h.more || h.events.length === 0) return;
    }
    // Too much was missed to page through: start again from the latest page (older loads on scroll).
    const fresh = new Timeline(topic);
    this.timelines.set(topic, fresh);
    const h = await sock.catchup(topic, {}, FIRST_PAGE);
    fresh.hasOlder = h.more;
    this.addAll(topic, h.events, false);
  }

  private addAll(topic: string, events: ScalarEvent[], live: boolean): void {
    let changed = false;
    for (const ev of events) changed = this.take(ev, live) || changed;
    if (!changed) this.emit({ what: "timeline", topic });
  }

  /** Load one page older than what the timeline holds (on scroll up). */
  async loadOlder(topic: string): Promise<void> {
    const t = this.timeline(topic);
    const sock = this.sock;
    if (!sock || this.state !== "online" || !t.history || !t.hasOlder || this.loadingOlder.has(topic)) return;
    this.loadingOlder.add(topic);
    try {
      const h = await sock.catchup(topic, t.oldest ? { before: t.oldest } : {}, FIRST_PAGE);
      t.hasOlder = h.more && h.events.length > 0;
      if (h.status === "unavailable") t.history = t.hasOlder = false;
      for (const ev of h.events) this.take(ev, false);
    } finally {
      this.loadingOlder.delete(topic);
      this.emit({ what: "timeline", topic });
    }
  }

  isLoadingOlder(topic: string): boolean {
    return this.loadingOlder.has(topic);
  }

  // --- events -------------------------------------------------------------------

  private onEvent(ev: ScalarEvent): void {
    if (ev.kind === "presence") {
      this.presence.set(ev.topic, ev.body);
      this.emit({ what: "presence", user: ev.topic });
      return;
    }
    this.take(ev, true);
  }

  /** Add one event to its timeline; true if it was new (and a change was emitted). */
  private take(ev: ScalarEvent, live: boolean): boolean {
    const t = this.timeline(ev.topic);
    if (!t.add(ev)) return false;
    let view = ev.topic;
    if (ev.topic === this.me && ev.from !== this.me) {
      view = ev.from;
      if (!this.dms.includes(ev.from)) this.openDm(ev.from);
    }
    if (isUser(ev.topic) && ev.topic !== this.me && ev.from === this.me && this.login.kind === "user") {
      saveSentDms(this.storeKey, this.sentDms());
    }
    const shown = ev.kind === "text" || ev.kind === "action" || ev.kind === "notice";
    if (live && shown && ev.from !== this.me && view !== this.current) {
      this.unread.set(view, (this.unread.get(view) ?? 0) + 1);
      this.emit({ what: "lists" });
    }
    this.emit({ what: "timeline", topic: ev.topic });
    return true;
  }

  private sentDms(): ScalarEvent[] {
    const out: ScalarEvent[] = [];
    for (const [topic, t] of this.timelines) {
      if (isUser(topic) && topic !== this.me) out.push(...t.events().filter((e) => e.from === this.me));
    }
    return out.sort((a, b) => a.time - b.time);
  }

  // --- views ---------------------------------------------------------------------

  private saveLists(): void {
    saveList(this.storeKey, "joined", this.joined);
    saveList(this.storeKey, "dms", this.dms);
  }

  /** Join a channel: subscribe (needed to publish) and load its latest page. */
  async join(channel: string): Promise<void> {
    const topic = channel.toLowerCase();
    if (!this.joined.includes(topic)) {
      this.joined.push(topic);
      this.saveLists();
      this.emit({ what: "lists" });
    }
    const sock = this.sock;
    if (!sock || this.state !== "online") return;
    try {
      this.applyMeta(await sock.sub(topic));
      await this.fill(sock, topic);
    } catch (err) {
      if (err instanceof ScalarError && err.code !== "closed") this.dropView(topic, `${topic}: ${err.message}`);
      else throw err;
    }
  }

  async leave(topic: string): Promise<void> {
    this.joined = this.joined.filter((t) => t !== topic);
    this.dms = this.dms.filter((t) => t !== topic);
    this.saveLists();
    this.emit({ what: "lists" });
    if (this.sock && this.state === "online") await this.sock.unsub(topic).catch(() => undefined);
  }

  /** Open a conversation with a user: watch their presence; DMs arrive on my own topic. */
  openDm(user: string): void {
    const id = user.toLowerCase();
    if (!this.dms.includes(id)) {
      this.dms.push(id);
      this.saveLists();
      this.emit({ what: "lists" });
      const sock = this.sock;
      if (sock && this.state === "online" && id !== this.me) {
        sock.sub(id).then(
          (meta) => this.applyMeta(meta),
          (err: unknown) => {
            if (err instanceof ScalarError && err.code !== "closed") this.dropView(id, `${id}: ${err.message}`);
          },
        );
      }
    }
  }

  async listTopics(prefix: string, offset: number): Promise<{ total: number; items: TopicItem[] }> {
    if (!this.sock || this.state !== "online") return { total: 0, items: [] };
    return this.sock.topics(prefix, offset, 100);
  }

  /** The timelines a view shows: a channel's own, or both halves of a conversation. */
  viewTimelines(view: string): Timeline[] {
    if (isChannel(view) || view === this.me) return [this.timeline(view)];
    return [this.timeline(this.me), this.timeline(view)];
  }

  markRead(view: string): void {
    this.current = view;
    if (this.unread.delete(view)) this.emit({ what: "lists" });
  }

  // --- publishing ------------------------------------------------------------------

  /** Queue a publish; it is sent now or after the next reconnect, with one nonce for all tries. */
  send(msg: Send): void {
    this.outbox.push({ ...msg, nonce: nonce(), state: "queued" });
    this.emit({ what: "outbox" });
    void this.pump();
  }

  retry(n: string): void {
    const o = this.outbox.find((x) => x.nonce === n);
    if (o && o.state === "failed") {
      o.state = "queued";
      o.error = undefined;
      this.emit({ what: "outbox" });
      void this.pump();
    }
  }

  discard(n: string): void {
    this.outbox = this.outbox.filter((x) => x.nonce !== n);
    this.emit({ what: "outbox" });
  }

  /** Send queued publishes one at a time, in order. */
  private async pump(): Promise<void> {
    if (this.pumping) return;
    this.pumping = true;
    try {
      for (;;) {
        const sock = this.sock;
        const o = this.outbox.find((x) => x.state === "queued");
        if (!o || !sock || this.state !== "online") return;
        o.state = "sending";
        this.emit({ what: "outbox" });
        const map: CborMap = { topic: o.topic, body: o.body, kind: o.kind, nonce: o.nonce };
        if (o.ctype) map.ctype = o.ctype;
        if (o.replyTo) map.reply_to = unhexBytes(o.replyTo);
        if (o.target) map.target = unhexBytes(o.target);
        try {
          const ev = await sock.publish(map);
          this.outbox = this.outbox.filter((x) => x !== o);
          this.take(ev, true);
        } catch (err) {
          const e = err as ScalarError;
          if (e.code === "closed" || e.code === "timeout") {
            o.state = "queued";
            return;
          }
          if (e.code === "rate-limited") {
            o.state = "queued";
            await new Promise((r) => window.setTimeout(r, e.retryAfter ?? 1000));
          } else {
            o.state = "failed";
            o.error = e.message;
          }
        }
        this.emit({ what: "outbox" });
      }
    } finally {
      this.pumping = false;
    }
  }
}
