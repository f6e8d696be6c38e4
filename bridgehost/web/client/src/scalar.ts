/**
 * Scalar/1 over a WebSocket (protocol §12): one binary message per frame
 * body. Requests carry a `rid`; the one reply with that `rid` settles the
 * request's promise (an `error` rejects it with a ScalarError). Events
 * without a `rid` and server pings go to the handlers.
 */
import { type CborMap, type CborValue, decodeMap, encodeMap } from "./cbor";

export const MAX_FRAME = 16382;

export interface ScalarEvent {
  id: Uint8Array;
  idHex: string;
  topic: string;
  seq: number;
  from: string;
  time: number;
  kind: string;
  body: string;
  nick?: string;
  origin?: string;
  ctype?: string;
  replyTo?: string;
  target?: string;
}

export interface Welcome {
  id: string;
  server: string;
  limits: { frame: number; rate: number; burst: number; subs: number };
}

export interface Meta {
  topic: string;
  seq: number;
  subscribers: number;
  history: boolean;
  title?: string;
}

export interface TopicItem {
  topic: string;
  subscribers: number;
  title?: string;
}

export interface History {
  topic: string;
  status: "ok" | "unavailable";
  events: ScalarEvent[];
  more: boolean;
}

export class ScalarError extends Error {
  constructor(
    readonly code: string,
    text: string,
    readonly retryAfter?: number,
  ) {
    super(text || code);
  }
}

export function hex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

export function unhex(text: string): Uint8Array {
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

function str(m: CborMap, key: string): string | undefined {
  const v = m[key];
  return typeof v === "string" ? v : undefined;
}

function int(m: CborMap, key: string): number | undefined {
  const v = m[key];
  return typeof v === "number" && Number.isSafeInteger(v) ? v : undefined;
}

function id32(m: CborMap, key: string): string | undefined {
  const v = m[key];
  return v instanceof Uint8Array && v.length === 32 ? hex(v) : undefined;
}

/** An event map from the wire, or null when it lacks what every event has. */
export function parseEvent(m: CborMap): ScalarEvent | null {
  const id = m.id;
  const topic = str(m, "topic");
  const seq = int(m, "seq");
  const from = str(m, "from");
  const time = int(m, "time");
  if (!(id instanceof Uint8Array) || id.length !== 32 || !topic || seq === undefined || !from) {
    return null;
  }
  return {
    id,
    idHex: hex(id),
    topic,
    seq,
    from,
    time: time ?? 0,
    kind: str(m, "kind") ?? "text",
    body: str(m, "body") ?? "",
    nick: str(m, "nick"),
    origin: str(m, "origin"),
    ctype: str(m, "ctype"),
    replyTo: id32(m, "reply_to"),
    target: id32(m, "target"),
  };
}

function parseHistory(m: CborMap): History {
  const raw = Array.isArray(m.events) ? m.events : [];
  const events: ScalarEvent[] = [];
  for (const item of raw) {
    if (item && typeof item === "object" && !Array.isArray(item) && !(item instanceof Uint8Array)) {
      const ev = parseEvent(item as CborMap);
      if (ev) events.push(ev);
    }
  }
  return {
    topic: str(m, "topic") ?? "",
    status: str(m, "status") === "unavailable" ? "unavailable" : "ok",
    events,
    more: m.more === true,
  };
}

export interface Handlers {
  event(ev: ScalarEvent): void;
  closed(reason: string): void;
}

interface Pending {
  resolve(m: CborMap): void;
  reject(e: Error): void;
}

/** How long a request may wait for its reply before the connection is presumed dead. */
const REQUEST_TIMEOUT_MS = 30_000;
/** Idle time after which we ping; no answer within the request timeout closes. */
const PING_EVERY_MS = 25_000;

export class ScalarSocket {
  private nextRid = 1;
  private pending = new Map<number, Pending>();
  private closedReason: string | null = null;
  private pingTimer: number | undefined;

  private constructor(
    private ws: WebSocket,
    private handlers: Handlers,
  ) {
    ws.binaryType = "arraybuffer";
    ws.addEventListener("message", (e) => this.onMessage(e));
    ws.addEventListener("close", (e) => this.onClose(e.reason || `closed (${e.code})`));
    ws.addEventListener("error", () => this.onClose("connection error"));
    this.pingTimer = window.setInterval(() => this.keepAlive(), PING_EVERY_MS);
  }

  /** Open the WebSocket; resolves once it is open, rejects if it never opens. */
  static open(url: string, handlers: Handlers): Promise<ScalarSocket> {
    return new Promise((resolve, reject) => {
      const ws = new WebSocket(url);
      const failed = () => reject(new ScalarError("unreachable", "cannot reach the server"));
      ws.addEventListener("error", failed, { once: true });
      ws.addEventListener(
        "open",
        () => {
          ws.removeEventListener("error", failed);
          resolve(new ScalarSocket(ws, handlers));
        },
        { once: true },
      );
    });
  }

  get isOpen(): boolean {
    return this.closedReason === null;
  }

  /** Send a request and wait for its one reply. */
  request(map: CborMap): Promise<CborMap> {
    if (this.closedReason !== null) {
      return Promise.reject(new ScalarError("closed", this.closedReason));
    }
    const rid = this.nextRid++;
    if (this.nextRid >= 2 ** 32) this.nextRid = 1;
    const body = encodeMap({ ...map, rid });
    if (body.length > MAX_FRAME) {
      return Promise.reject(new ScalarError("too-large", "that message is too long to send"));
    }
    return new Promise<CborMap>((resolve, reject) => {
      const timer = window.setTimeout(() => {
        if (this.pending.delete(rid)) {
          reject(new ScalarError("timeout", "the server did not answer"));
          this.close("no answer from the server");
        }
      }, REQUEST_TIMEOUT_MS);
      this.pending.set(rid, {
        resolve: (m) => {
          window.clearTimeout(timer);
          resolve(m);
        },
        reject: (e) => {
          window.clearTimeout(timer);
          reject(e);
        },
      });
      this.ws.send(body);
    });
  }

  async ident(auth: { id?: string; method?: string; secret?: string }): Promise<Welcome> {
    const req: CborMap = { t: "ident", v: 1, client: "bridgehost-web/0.1" };
    if (auth.id) req.id = auth.id;
    if (auth.method && auth.secret !== undefined) {
      req.auth = { method: auth.method, secret: auth.secret };
    }
    const m = await this.request(req);
    const limits = (m.limits ?? {}) as CborMap;
    return {
      id: str(m, "id") ?? "",
      server: str(m, "server") ?? "",
      limits: {
        frame: int(limits, "frame") ?? MAX_FRAME,
        rate: int(limits, "rate") ?? 1,
        burst: int(limits, "burst") ?? 1,
        subs: int(limits, "subs") ?? 100,
      },
    };
  }

  async sub(topic: string): Promise<Meta> {
    const m = await this.request({ t: "sub", topic });
    return {
      topic: str(m, "topic") ?? topic,
      seq: int(m, "seq") ?? 0,
      subscribers: int(m, "subscribers") ?? 0,
      history: m.history === true,
      title: str(m, "title"),
    };
  }

  async unsub(topic: string): Promise<void> {
    await this.request({ t: "unsub", topic });
  }

  async topics(prefix: string, offset: number, limit: number): Promise<{ total: number; items: TopicItem[] }> {
    const req: CborMap = { t: "topics", offset, limit };
    if (prefix) req.prefix = prefix;
    const m = await this.request(req);
    const items: TopicItem[] = [];
    for (const raw of Array.isArray(m.items) ? m.items : []) {
      const item = raw as CborMap;
      const topic = str(item, "topic");
      if (topic) items.push({ topic, subscribers: int(item, "subscribers") ?? 0, title: str(item, "title") });
    }
    return { total: int(m, "total") ?? items.length, items };
  }

  async catchup(topic: string, cursor: { after?: number; before?: number }, limit = 50): Promise<History> {
    const m = await this.request({ t: "catchup", topic, limit, ...cursor });
    return parseHistory(m);
  }

  /** Publish; resolves with the echoed event once the server has stored it. */
  async publish(msg: CborMap): Promise<ScalarEvent> {
    const m = await this.request({ ...msg, t: "msg" });
    const ev = parseEvent(m);
    if (!ev) throw new ScalarError("bad-message", "the server's echo was not an event");
    return ev;
  }

  close(reason = "bye"): void {
    if (this.closedReason !== null) return;
    try {
      this.ws.send(encodeMap({ t: "bye", reason }));
    } catch {
      // The socket may already be closing; the close below is what matters.
    }
    this.ws.close(1000);
    this.onClose(reason);
  }

  private keepAlive(): void {
    if (this.closedReason !== null) return;
    this.request({ t: "ping", time: Date.now() }).catch(() => undefined);
  }

  private onMessage(e: MessageEvent): void {
    if (!(e.data instanceof ArrayBuffer)) return;
    let m: CborMap;
    try {
      m = decodeMap(new Uint8Array(e.data));
    } catch (err) {
      console.warn("undecodable frame from the server", err);
      return;
    }
    const t = str(m, "t");
    const rid = int(m, "rid");
    if (t === "ping") {
      const pong: CborMap = { t: "pong" };
      if (m.time !== undefined) pong.time = m.time as CborValue;
      if (rid !== undefined) pong.rid = rid;
      this.ws.send(encodeMap(pong));
      return;
    }
    if (t === "bye") {
      this.onClose(str(m, "reason") ?? "bye");
      this.ws.close(1000);
      return;
    }
    const waiting = rid === undefined ? undefined : this.pending.get(rid);
    if (t === "event") {
      const ev = parseEvent(m);
      if (ev) this.handlers.event(ev);
    }
    if (waiting && rid !== undefined) {
      this.pending.delete(rid);
      if (t === "error") {
        waiting.reject(new ScalarError(str(m, "code") ?? "internal", str(m, "text") ?? "", int(m, "retry_after")));
      } else {
        waiting.resolve(m);
      }
    } else if (t === "error") {
      console.warn("server error", m.code, m.text);
    }
  }

  private onClose(reason: string): void {
    if (this.closedReason !== null) return;
    this.closedReason = reason;
    window.clearInterval(this.pingTimer);
    const failure = new ScalarError("closed", reason);
    for (const p of this.pending.values()) p.reject(failure);
    this.pending.clear();
    this.handlers.closed(reason);
  }
}
