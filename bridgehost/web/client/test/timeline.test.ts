import assert from "node:assert/strict";
import { test } from "node:test";
import type { ScalarEvent } from "../src/scalar";
import { displayName, Timeline } from "../src/timeline";

const ME = "alice@localhost";

function ev(seq: number, fields: Partial<ScalarEvent> = {}): ScalarEvent {
  const idHex = (fields.idHex ?? `e${seq}`).padEnd(64, "0");
  return {
    id: new Uint8Array(32),
    idHex,
    topic: "#room@localhost",
    seq,
    from: ME,
    time: 1000 + seq,
    kind: "text",
    body: `message ${seq}`,
    ...fields,
    ...(fields.target ? { target: fields.target.padEnd(64, "0") } : {}),
  };
}

const id = (s: string) => s.padEnd(64, "0");

test("events are kept once, in seq order, whatever order they arrive in", () => {
  const t = new Timeline("#room@localhost");
  assert.deepEqual(t.add(ev(3)), [id("e3")]);
  assert.ok(t.add(ev(1)));
  assert.ok(t.add(ev(2)));
  assert.equal(t.add(ev(2)), null, "a duplicate (live, then again from catchup) is refused");
  assert.deepEqual(
    t.events().map((e) => e.seq),
    [1, 2, 3],
  );
  assert.equal(t.newest, 3);
  assert.equal(t.oldest, 1);
  assert.deepEqual(
    t.items(ME).map((i) => i.body),
    ["message 1", "message 2", "message 3"],
  );
});

test("presence (seq 0) is never kept", () => {
  const t = new Timeline("bob@localhost");
  assert.equal(t.add(ev(0, { kind: "presence", body: "online" })), null);
  assert.equal(t.size, 0);
});

test("the latest edit by the sender replaces the text; another sender's edit is ignored", () => {
  const t = new Timeline("#room@localhost");
  t.add(ev(1, { body: "helo" }));
  assert.deepEqual(t.add(ev(2, { kind: "edit", body: "hello", target: "e1" })), [id("e2"), id("e1")]);
  t.add(ev(4, { kind: "edit", body: "hello!!", target: "e1" }));
  t.add(ev(3, { kind: "edit", body: "hello!", target: "e1" }));
  t.add(ev(5, { kind: "edit", body: "vandalised", target: "e1", from: "mallory@localhost" }));
  const items = t.items(ME);
  assert.equal(items.length, 1, "edits are not shown as events of their own");
  assert.equal(items[0].body, "hello!!");
  assert.equal(items[0].edited, true);
});

test("an edit that arrives before its target (history loaded later) still applies", () => {
  const t = new Timeline("#room@localhost");
  t.add(ev(9, { kind: "edit", body: "fixed", target: "e8" }));
  assert.equal(t.items(ME).length, 0);
  t.add(ev(8, { body: "fixd" }));
  assert.equal(t.items(ME)[0].body, "fixed");
});

test("a bridged user's edit must keep nick and origin", () => {
  const t = new Timeline("#room@localhost");
  const bridged = { from: "!irc-net@localhost", nick: "carol", origin: "irc:net/#room" };
  t.add(ev(1, { ...bridged, body: "one" }));
  t.add(ev(2, { ...bridged, nick: "dave", kind: "edit", body: "hijack", target: "e1" }));
  assert.equal(t.items(ME)[0].body, "one");
  t.add(ev(3, { ...bridged, kind: "edit", body: "two", target: "e1" }));
  assert.equal(t.items(ME)[0].body, "two");
  assert.equal(displayName(t.items(ME)[0].ev), "carol");
});

test("a deleted event is hidden; a deletion by someone else is not honoured", () => {
  const t = new Timeline("#room@localhost");
  t.add(ev(1));
  t.add(ev(2));
  t.add(ev(3, { kind: "delete", target: "e1", from: "mallory@localhost", body: "" }));
  assert.equal(t.items(ME).length, 2);
  t.add(ev(4, { kind: "delete", target: "e1", body: "" }));
  assert.deepEqual(
    t.items(ME).map((i) => i.ev.seq),
    [2],
  );
  assert.equal(t.isDeleted(id("e1")), true);
});

test("reactions are counted per key, once per person, and a withdrawn one no longer counts", () => {
  const t = new Timeline("#room@localhost");
  t.add(ev(1));
  t.add(ev(2, { kind: "react", body: "👍", target: "e1", from: "bob@localhost" }));
  t.add(ev(3, { kind: "react", body: "👍", target: "e1", from: "bob@localhost" }));
  t.add(ev(4, { kind: "react", body: "👍", target: "e1" }));
  t.add(ev(5, { kind: "react", body: "🎉", target: "e1", from: "!irc-net@localhost", nick: "carol" }));
  let item = t.items(ME)[0];
  assert.deepEqual(
    item.reactions.map((r) => [r.key, r.who]),
    [
      ["👍", ["bob", "alice"]],
      ["🎉", ["carol"]],
    ],
  );
  assert.equal(item.reactions[0].mine, id("e4"));
  const before = item.rev;
  assert.deepEqual(t.add(ev(6, { kind: "delete", target: "e4", body: "" })), [id("e6"), id("e4"), id("e1")]);
  item = t.items(ME)[0];
  assert.ok(item.rev > before, "the target is re-rendered when a reaction to it is withdrawn");
  assert.deepEqual(
    item.reactions.map((r) => [r.key, r.who.length, r.mine]),
    [
      ["👍", 1, undefined],
      ["🎉", 1, undefined],
    ],
  );
});

test("a topic event sets the title, the latest by seq wins", () => {
  const t = new Timeline("#room@localhost");
  t.add(ev(5, { kind: "topic", body: "new" }));
  t.add(ev(2, { kind: "topic", body: "old" }));
  assert.equal(t.title, "new");
  assert.equal(t.items(ME).length, 2, "topic changes are shown in the timeline");
});

test("lastOwn finds my latest shown message", () => {
  const t = new Timeline("#room@localhost");
  t.add(ev(1));
  t.add(ev(2, { from: "bob@localhost" }));
  t.add(ev(3));
  t.add(ev(4, { kind: "delete", target: "e3", body: "" }));
  assert.equal(t.lastOwn(ME)?.seq, 1);
});
