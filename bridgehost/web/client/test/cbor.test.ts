import assert from "node:assert/strict";
import { test } from "node:test";
import { CborError, decodeMap, encodeMap } from "../src/cbor";

const hex = (b: Uint8Array) => Buffer.from(b).toString("hex");

test("byte strings are CBOR byte strings, integers are integers, lengths definite", () => {
  const body = encodeMap({ t: "msg", target: new Uint8Array([1, 2, 3]), rid: 500, absent: undefined });
  // a3 = map(3); keys sorted shortest first: "t", "rid", "target"
  assert.equal(hex(body), "a36174636d736763726964190 1f4667461726765744301 0203".replace(/ /g, ""));
});

test("floats, bigints and other objects are refused before encoding", () => {
  assert.throws(() => encodeMap({ t: "ping", time: 1.5 }), CborError);
  assert.throws(() => encodeMap({ t: "ping", time: Number.MAX_SAFE_INTEGER + 2 }), CborError);
  assert.throws(() => encodeMap({ t: "x", d: new Date() as never }), CborError);
});

test("decoding refuses tags, indefinite lengths, duplicate keys, trailing bytes and non-maps", () => {
  const bad = [
    "a16174c11a00000000", // tag 1
    "bf617461 78ff".replace(/ /g, ""), // indefinite map
    "a2617401617402", // duplicate key
    "a1617401 00".replace(/ /g, ""), // trailing byte
    "820102", // an array
    "a101 02".replace(/ /g, ""), // integer key
  ];
  for (const h of bad) assert.throws(() => decodeMap(Buffer.from(h, "hex")), Error, h);
  assert.deepEqual(decodeMap(Buffer.from("a1617401", "hex")), { t: 1 });
});

test("a decoded byte string is a Uint8Array", () => {
  const m = decodeMap(encodeMap({ id: new Uint8Array(32).fill(7) }));
  assert.ok(m.id instanceof Uint8Array);
  assert.equal((m.id as Uint8Array).length, 32);
});
