/**
 * One timeline item as an `article`: who (the remote nick and the network
 * it came through, for bridged events), when, the reply it answers, the
 * body (markdown rendered safely, links clickable), its reactions and the
 * actions a person may take on it.
 */
import { h } from "./dom";
import { bodyFragment } from "./markdown";
import type { ScalarEvent } from "./scalar";
import { displayName, type Item } from "./timeline";

export const QUICK_REACTIONS = ["👍", "❤️", "😂", "🎉", "😮", "👀"];

export interface Actions {
  reply(item: Item): void;
  react(item: Item, key: string): void;
  unreact(reactionId: string): void;
  edit(item: Item): void;
  delete(item: Item): void;
}

export interface RenderContext {
  me: string;
  /** The item a reply refers to, when it is loaded. */
  lookup(idHex: string): Item | null;
  /** Which actions this view offers (reactions are for channels). */
  canReact: boolean;
  actions: Actions;
}

function clock(ms: number): HTMLTimeElement {
  const d = new Date(ms);
  const text = d.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  return h("time", { datetime: d.toISOString(), title: d.toLocaleString() }, text);
}

function snippet(text: string, max = 80): string {
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > max ? `${line.slice(0, max - 1)}…` : line;
}

function who(ev: ScalarEvent): HTMLElement {
  const name = h("span", { class: "who", title: ev.nick ? `${ev.nick} via ${ev.from}` : ev.from }, displayName(ev));
  return name;
}

/** The network a bridged event came from (`irc:libera` of `irc:libera/#python`); all of it on hover. */
function via(ev: ScalarEvent): HTMLElement | null {
  if (!ev.origin) return null;
  const network = ev.origin.split("/")[0];
  return h("span", { class: "via", title: `${ev.origin}, relayed by ${ev.from}` }, network);
}

function isOwn(ev: ScalarEvent, me: string): boolean {
  return ev.from === me && !ev.nick;
}

function reactions(item: Item, ctx: RenderContext): HTMLElement | null {
  if (!item.reactions.length) return null;
  return h(
    "div",
    { class: "reactions" },
    item.reactions.map((r) =>
      h(
        "button",
        {
          type: "button",
          class: "reaction",
          "aria-pressed": r.mine ? "true" : "false",
          "aria-label": `${r.key} ${r.who.length}: ${r.who.join(", ")}`,
          title: r.who.join(", "),
          onclick: () => (r.mine ? ctx.actions.unreact(r.mine) : ctx.actions.react(item, r.key)),
        },
        h("span", { class: "key" }, r.key),
        h("span", { class: "count" }, String(r.who.length)),
      ),
    ),
  );
}

function actions(item: Item, ctx: RenderContext): HTMLElement {
  const ev = item.ev;
  const own = isOwn(ev, ctx.me);
  const picker = h(
    "div",
    { class: "picker", role: "group", "aria-label": "Pick a reaction", hidden: true },
    QUICK_REACTIONS.map((key) =>
      h("button", { type: "button", "aria-label": `React with ${key}`, onclick: () => ctx.actions.react(item, key) }, key),
    ),
  );
  const bar = h(
    "div",
    { class: "actions", role: "group", "aria-label": "Message actions" },
    h("button", { type: "button", onclick: () => ctx.actions.reply(item) }, "Reply"),
    ctx.canReact &&
      h(
        "button",
        {
          type: "button",
          "aria-expanded": "false",
          onclick: (e: Event) => {
            const open = picker.hidden;
            picker.hidden = !open;
            (e.currentTarget as HTMLElement).setAttribute("aria-expanded", String(open));
          },
        },
        "React",
      ),
    own && ev.kind !== "topic" && h("button", { type: "button", onclick: () => ctx.actions.edit(item) }, "Edit"),
    own && h("button", { type: "button", onclick: () => ctx.actions.delete(item) }, "Delete"),
  );
  return h("div", { class: "tools" }, bar, picker);
}

function replyQuote(item: Item, ctx: RenderContext): HTMLElement | null {
  const target = item.ev.replyTo;
  if (!target) return null;
  const quoted = ctx.lookup(target);
  return h(
    "div",
    { class: "reply-quote" },
    quoted
      ? [h("span", { class: "who" }, displayName(quoted.ev)), " ", snippet(quoted.body)]
      : "in reply to an earlier message",
  );
}

export function renderItem(item: Item, ctx: RenderContext): HTMLElement {
  const ev = item.ev;
  const classes = ["event", `kind-${ev.kind}`];
  if (isOwn(ev, ctx.me)) classes.push("own");
  if (ev.origin) classes.push("bridged");
  let line: (Node | string | null)[];
  switch (ev.kind) {
    case "action":
      line = [h("span", { class: "star" }, "* "), who(ev), " ", h("span", { class: "body" }, bodyFragment(item.body, item.ctype))];
      break;
    case "topic":
      line = [who(ev), " changed the topic to ", h("q", { class: "body" }, item.body)];
      break;
    case "join":
      line = [who(ev), " joined", item.body ? ` (${item.body})` : ""];
      break;
    case "part":
      line = [who(ev), " left", item.body ? ` (${item.body})` : ""];
      break;
    default:
      line = [];
  }
  const meta = h(
    "div",
    { class: "meta" },
    line.length ? null : who(ev),
    via(ev),
    clock(ev.time),
    item.edited && h("span", { class: "edited" }, "(edited)"),
  );
  const body = line.length
    ? h("div", { class: "line" }, line)
    : h("div", { class: item.ctype === "text/markdown" ? "body md" : "body" }, bodyFragment(item.body, item.ctype));
  return h(
    "article",
    { class: classes.join(" "), "data-id": ev.idHex, "data-seq": ev.seq, tabindex: 0 },
    meta,
    replyQuote(item, ctx),
    body,
    reactions(item, ctx),
    ev.kind === "join" || ev.kind === "part" ? null : actions(item, ctx),
  );
}
