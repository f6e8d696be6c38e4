#!/usr/bin/env node
// A bridgehost plugin in plain JavaScript (Node.js, no packages): bridges its
// Scalar channels to a TCP port that speaks lines of text, like linebridge.py.
//
// Everything it needs is the environment bridgehost sets and Scalar/1 frames
// on stdin/stdout: a 2-byte little-endian length, then one CBOR map
// (docs/plugins.md). The small CBOR codec below covers what Scalar uses:
// maps, arrays, text, bytes, integers, true/false/null.
//
//   accounts:
//     lines:
//       type: exec
//       command: [node, examples/plugins/linebridge.js]
//       config: {listen: "127.0.0.1:7700"}
"use strict";

const net = require("net");

const MAX_FRAME = 16382;

// --- CBOR (the subset Scalar/1 allows) -------------------------------------------

function head(major, n) {
  if (n < 24) return Buffer.from([(major << 5) | n]);
  if (n < 0x100) return Buffer.from([(major << 5) | 24, n]);
  if (n < 0x10000) { const b = Buffer.alloc(3); b[0] = (major << 5) | 25; b.writeUInt16BE(n, 1); return b; }
  if (n < 0x100000000) { const b = Buffer.alloc(5); b[0] = (major << 5) | 26; b.writeUInt32BE(n, 1); return b; }
  const b = Buffer.alloc(9); b[0] = (major << 5) | 27; b.writeBigUInt64BE(BigInt(n), 1); return b;
}

function encode(value) {
  if (value === null || value === undefined) return Buffer.from([0xf6]);
  if (value === false) return Buffer.from([0xf4]);
  if (value === true) return Buffer.from([0xf5]);
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error("Scalar has no floats");
    return value >= 0 ? head(0, value) : head(1, -1 - value);
  }
  if (typeof value === "string") { const b = Buffer.from(value, "utf8"); return Buffer.concat([head(3, b.length), b]); }
  if (Buffer.isBuffer(value) || value instanceof Uint8Array) return Buffer.concat([head(2, value.length), Buffer.from(value)]);
  if (Array.isArray(value)) return Buffer.concat([head(4, value.length), ...value.map(encode)]);
  const keys = Object.keys(value).filter((k) => value[k] !== undefined);
  return Buffer.concat([head(5, keys.length), ...keys.flatMap((k) => [encode(k), encode(value[k])])]);
}

function decode(buf) {
  let at = 0;
  function length(info) {
    if (info < 24) return info;
    const size = { 24: 1, 25: 2, 26: 4, 27: 8 }[info];
    if (!size) throw new Error("unsupported CBOR length");
    let n = 0;
    for (let i = 0; i < size; i++) n = n * 256 + buf[at + i];
    at += size;
    return n;
  }
  function item() {
    const initial = buf[at++];
    const major = initial >> 5, n = length(initial & 31);
    switch (major) {
      case 0: return n;
      case 1: return -1 - n;
      case 2: at += n; return buf.subarray(at - n, at);
      case 3: at += n; return buf.toString("utf8", at - n, at);
      case 4: return Array.from({ length: n }, item);
      case 5: { const m = {}; for (let i = 0; i < n; i++) { const k = item(); m[k] = item(); } return m; }
      case 7: if (n === 20) return false; if (n === 21) return true; if (n === 22) return null;
    }
    throw new Error("unsupported CBOR item");
  }
  return item();
}

// --- the Scalar session on stdin/stdout ----------------------------------------------

const log = (level, text) => process.stderr.write(`${level} ${text}\n`);
let nextRid = 1;
const pending = new Map();

function send(message) {
  const body = encode(message);
  if (body.length > MAX_FRAME) throw new Error("message too large for one frame");
  const header = Buffer.alloc(2);
  header.writeUInt16LE(body.length);
  process.stdout.write(Buffer.concat([header, body]));
}

function request(message) {
  const rid = nextRid++;
  return new Promise((resolve, reject) => {
    pending.set(rid, (reply) => (reply.t === "error" ? reject(new Error(`${reply.code}: ${reply.text}`)) : resolve(reply)));
    send({ ...message, rid });
  });
}

function readFrames(onFrame, onEnd) {
  let buffered = Buffer.alloc(0);
  process.stdin.on("data", (chunk) => {
    buffered = Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2) {
      const length = buffered.readUInt16LE(0);
      if (buffered.length < 2 + length) break;
      const frame = decode(buffered.subarray(2, 2 + length));
      buffered = buffered.subarray(2 + length);
      onFrame(frame);
    }
  });
  process.stdin.on("end", () => onEnd("stdin closed"));
}

// --- the plugin -------------------------------------------------------------------------

async function main() {
  const me = process.env.BRIDGEHOST_ID;
  const links = JSON.parse(process.env.BRIDGEHOST_LINKS || "[]");
  const config = JSON.parse(process.env.BRIDGEHOST_CONFIG || "{}");
  const listen = config.listen || "127.0.0.1:7700";
  const [host, port] = [listen.slice(0, listen.lastIndexOf(":")), Number(listen.slice(listen.lastIndexOf(":") + 1))];
  const peers = new Set();
  let server = null;

  const stop = (reason) => {
    log("INFO", `session ended (${reason}); exiting`);
    for (const peer of peers) peer.destroy();
    if (server) server.close();
    process.exit(0);
  };

  readFrames((frame) => {
    if (frame.t === "bye") return stop(frame.reason || "bye");
    if (frame.t === "ping") return send({ t: "pong", time: frame.time || 0 });
    if (frame.rid !== undefined && pending.has(frame.rid)) {
      const resolve = pending.get(frame.rid);
      pending.delete(frame.rid);
      return resolve(frame);
    }
    if (frame.t === "event") {
      for (const link of links) {
        if (frame.topic !== link.channel || link.direction === "in") continue;
        if (frame.origin === link.origin || frame.kind === "presence") continue;
        const who = frame.nick || frame.from.split("@")[0];
        for (const line of (frame.body || "").split("\n")) {
          for (const peer of peers) peer.write(`<${who}> ${line}\n`);
        }
      }
    } else if (frame.t === "error") {
      log("WARNING", `bridgehost: ${frame.code}: ${frame.text}`);
    }
  }, stop);

  const welcome = await request({ t: "ident", v: 1, id: me });
  log("INFO", `session open as ${welcome.id}`);
  for (const channel of new Set(links.map((link) => link.channel))) {
    await request({ t: "sub", topic: channel });
  }

  server = net.createServer((socket) => {
    peers.add(socket);
    const nick = `tcp-${socket.remotePort}`;
    let partial = "";
    socket.on("data", async (data) => {
      const lines = (partial + data.toString("utf8")).split("\n");
      partial = lines.pop();
      for (const raw of lines) {
        const text = raw.replace(/\r$/, "");
        for (const link of links) {
          if (text && link.direction !== "out") {
            await request({ t: "msg", topic: link.channel, body: text, nick, origin: link.origin });
          }
        }
      }
    });
    socket.on("close", () => peers.delete(socket));
    socket.on("error", () => peers.delete(socket));
  });
  server.listen(port, host, async () => {
    log("INFO", `listening on ${host}:${port}`);
    await request({ t: "status", links: links.map((link) => ({ target: link.target, state: "up" })) });
  });
}

main().catch((error) => {
  log("ERROR", error.stack || String(error));
  process.exit(1);
});
