/**
 * One topic's events as a person reads them (protocol §11): the latest edit
 * shown in place of its target, deleted events hidden, reactions counted on
 * their target, topic changes kept as the title. Pure: no DOM, no socket,
 * so it is tested on its own.
 *
 * Events are kept by seq, so an event that arrives twice (live and again in
 * a catch-up after a reconnect) is kept once.
 */
import type { ScalarEvent } from "./scalar";

/** Kinds that change another event instead of being shown themselves. */
const MODIFIERS = new Set(["edit", "delete", "react"]);
/** Kinds never shown in a timeline. */
const HIDDEN = new Set(["presence", ...MODIFIERS]);

export interface Reaction {
  key: string;
  /** Display names of those who reacted, each once. */
  who: string[];
  /** The id of my own reaction with this key, so that clicking it again withdraws it. */
  mine?: string;
}

export interface Item {
  ev: ScalarEvent;
  body: string;
  ctype?: string;
  edited: boolean;
  reactions: Reaction[];
  /** Changes whenever anything shown for this item changes. */
  rev: number;
}

/** Who said it, as a person reads it: the remote nick for bridged events. */
export function displayName(ev: ScalarEvent): string {
  return ev.nick || ev.from.split("@")[0];
}

function sameSpeaker(a: ScalarEvent, b: ScalarEvent): boolean {
  return a.from === b.from && (a.nick ?? "") === (b.nick ?? "") && (a.origin ?? "") === (b.origin ?? "");
}

export class Timeline {
  title?: string;
  /** False once a catch-up said nothing older remains. */
  hasOlder = true;
  /** False for topics this session may not catch up on (another user's ID). */
  history = true;

  private seqs: number[] = [];
  private bySeq = new Map<number, ScalarEvent>();
  private byId = new Map<string, ScalarEvent>();
  private modifiers = new Map<string, ScalarEvent[]>();
  private revs = new Map<string, number>();
  private titleSeq = 0;

  constructor(readonly topic: string) {}

  /** Highest seq held: where a gap fill after a reconnect starts. */
  get newest(): number {
    return this.seqs.length ? this.seqs[this.seqs.length - 1] : 0;
  }

  /** Lowest seq held: where loading older history continues. */
  get oldest(): number {
    return this.seqs.length ? this.seqs[0] : 0;
  }

  get size(): number {
    return this.seqs.length;
  }

  has(seq: number): boolean {
    return this.bySeq.has(seq);
  }

  get(idHex: string): ScalarEvent | undefined {
    return this.byId.get(idHex);
  }

  /**
   * Take one event; returns the ids whose display changed (the event's own
   * and, for an edit, deletion or reaction, its target's), or null when the
   * event was already held or is not kept (presence has seq 0).
   */
  add(ev: ScalarEvent): string[] | null {
    if (ev.seq <= 0 || this.bySeq.has(ev.seq) || this.byId.has(ev.idHex)) return null;
    this.bySeq.set(ev.seq, ev);
    this.byId.set(ev.idHex, ev);
    this.insertSeq(ev.seq);
    const changed = [ev.idHex];
    if (ev.target && MODIFIERS.has(ev.kind)) {
      const list = this.modifiers.get(ev.target) ?? [];
      list.push(ev);
      list.sort((a, b) => a.seq - b.seq);
      this.modifiers.set(ev.target, list);
      changed.push(ev.target);
      // A deleted reaction changes what its own target shows.
      const inner = this.byId.get(ev.target);
      if (ev.kind === "delete" && inner?.kind === "react" && inner.target) changed.push(inner.target);
    }
    if (ev.kind === "topic" && ev.seq > this.titleSeq) {
      this.titleSeq = ev.seq;
      this.title = ev.body;
    }
    for (const id of changed) this.revs.set(id, (this.revs.get(id) ?? 0) + 1);
    return changed;
  }

  private insertSeq(seq: number): void {
    const s = this.seqs;
    if (!s.length || seq > s[s.length - 1]) {
      s.push(seq);
      return;
    }
    let lo = 0;
    let hi = s.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (s[mid] < seq) lo = mid + 1;
      else hi = mid;
    }
    s.splice(lo, 0, seq);
  }

  /** Whether the event was withdrawn by its own sender. */
  isDeleted(idHex: string): boolean {
    const target = this.byId.get(idHex);
    return (this.modifiers.get(idHex) ?? []).some(
      (m) => m.kind === "delete" && (!target || sameSpeaker(m, target)),
    );
  }

  /** The item a person sees for this event, or null if it is not shown. */
  item(ev: ScalarEvent, me: string): Item | null {
    if (HIDDEN.has(ev.kind) || this.isDeleted(ev.idHex)) return null;
    let body = ev.body;
    let ctype = ev.ctype;
    let edited = false;
    const reactions = new Map<string, Reaction>();
    const seen = new Set<string>();
    for (const m of this.modifiers.get(ev.idHex) ?? []) {
      if (this.isDeleted(m.idHex)) continue;
      if (m.kind === "edit" && sameSpeaker(m, ev)) {
        body = m.body;
        ctype = m.ctype;
        edited = true;
      } else if (m.kind === "react" && m.body) {
        const speaker = `${m.from}\u0000${m.nick ?? ""}\u0000${m.body}`;
        if (seen.has(speaker)) continue;
        seen.add(speaker);
        const r = reactions.get(m.body) ?? { key: m.body, who: [] };
        r.who.push(displayName(m));
        if (m.from === me && !m.nick) r.mine = m.idHex;
        reactions.set(m.body, r);
      }
    }
    return { ev, body, ctype, edited, reactions: [...reactions.values()], rev: this.revs.get(ev.idHex) ?? 0 };
  }

  /** Every shown item, oldest first. */
  items(me: string, filter?: (ev: ScalarEvent) => boolean): Item[] {
    const out: Item[] = [];
    for (const seq of this.seqs) {
      const ev = this.bySeq.get(seq)!;
      if (filter && !filter(ev)) continue;
      const item = this.item(ev, me);
      if (item) out.push(item);
    }
    return out;
  }

  /** Events in seq order (for storage and tests). */
  events(): ScalarEvent[] {
    return this.seqs.map((s) => this.bySeq.get(s)!);
  }

  /** The latest event of mine that is shown, for "edit the last message". */
  lastOwn(me: string): ScalarEvent | undefined {
    for (let i = this.seqs.length - 1; i >= 0; i--) {
      const ev = this.bySeq.get(this.seqs[i])!;
      if (ev.from === me && !ev.nick && (ev.kind === "text" || ev.kind === "action") && !this.isDeleted(ev.idHex)) {
        return ev;
      }
    }
    return undefined;
  }
}
