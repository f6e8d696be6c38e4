/**
 * CBOR for Scalar frames (protocol §1, §10) through cborg.
 *
 * What we send is what the server accepts: a map with text keys, definite
 * lengths, byte strings for Uint8Array, integers only (a float or a tag is
 * refused by the server, so the encoder refuses them first), no `undefined`
 * (absent optional fields are left out, never null).
 */
import { decode, encode } from "cborg";

export type CborValue =
  | null
  | boolean
  | number
  | string
  | Uint8Array
  | CborValue[]
  | { [key: string]: CborValue | undefined };

export type CborMap = { [key: string]: CborValue | undefined };

export class CborError extends Error {}

function check(value: unknown, path: string): void {
  if (value === null || typeof value === "boolean" || typeof value === "string") return;
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new CborError(`${path}: ${value} is not an integer`);
    return;
  }
  if (value instanceof Uint8Array) return;
  if (Array.isArray(value)) {
    value.forEach((item, i) => check(item, `${path}[${i}]`));
    return;
  }
  if (typeof value === "object" && Object.getPrototypeOf(value) === Object.prototype) {
    for (const [key, item] of Object.entries(value as Record<string, unknown>)) {
      if (item !== undefined) check(item, `${path}.${key}`);
    }
    return;
  }
  throw new CborError(`${path}: cannot encode ${typeof value}`);
}

/** One frame body: the map's CBOR (undefined members omitted). */
export function encodeMap(map: CborMap): Uint8Array<ArrayBuffer> {
  check(map, "frame");
  return encode(map, { ignoreUndefinedProperties: true }) as Uint8Array<ArrayBuffer>;
}

/**
 * A frame body back to a map. Tags, indefinite lengths, duplicate keys,
 * non-text keys and trailing bytes are errors; integers past 2^53 become
 * BigInt (and then fail our field checks, as a server never sends them).
 */
export function decodeMap(body: Uint8Array): CborMap {
  const value: unknown = decode(body, {
    useMaps: false,
    rejectDuplicateMapKeys: true,
    allowIndefinite: false,
    allowUndefined: false,
    tags: [],
  });
  if (value === null || typeof value !== "object" || Array.isArray(value) || value instanceof Uint8Array) {
    throw new CborError("a frame body must be a CBOR map");
  }
  return value as CborMap;
}
