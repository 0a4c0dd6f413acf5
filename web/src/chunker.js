// Files cut into chunks in the page for an upload, exactly where the command-line client
// cuts them (docs/FORMAT.md, "Chunks"), so a file added here and backed up by the client
// (or the other way round) is stored once: FastCDC 2020 with normalization level 1, sizes
// 256 KiB / 1 MiB / 4 MiB, its gear table keyed by a seed from the library's newest epoch
// key. The 64-bit hash is kept as two 32-bit halves; JavaScript has no fast 64-bit integer.

import { blake3 } from "@noble/hashes/blake3.js";
import { md5 } from "@noble/hashes/legacy.js";

import { utf8 } from "./blob.js";

export const MIN_CHUNK = 256 * 1024;
export const AVG_CHUNK = 1024 * 1024;
export const MAX_CHUNK = 4 * 1024 * 1024;
/** FastCDC's masks for an average of 1 MiB at normalization level 1: its 2 MiB mask (harder
 * to meet) before the average size, its 512 KiB mask after. */
const MASK_BEFORE = 0x0000d91767537000n;
const MASK_AFTER = 0x0000d91707537000n;
/** How much of a file is read at once. */
const READ_BYTES = 8 * 1024 * 1024;

const U64 = (1n << 64n) - 1n;

/** A 64-bit value as its [low, high] 32-bit halves. */
function halves(value) {
  return [Number(value & 0xffffffffn), Number((value >> 32n) & 0xffffffffn)];
}

/** The chunker's seed of epoch key `epochKey`, as the client derives it (never zero). */
export function chunkerSeed(epochKey) {
  const derived = blake3(epochKey, { context: utf8("ibackup 2026-12 epoch chunker seed") });
  const seed = new DataView(derived.buffer, derived.byteOffset, 8).getBigUint64(0, true);
  return seed === 0n ? 1n : seed;
}

/**
 * FastCDC's gear table and its shifted twin, keyed by `seed`: entry i is the first 8 bytes
 * (big-endian) of the MD5 of 64 bytes of value i, XORed with the seed (the shifted table:
 * the entry shifted left by one, XORed with the seed shifted left by one). Each table is
 * kept as its low and its high halves.
 */
export function gearTable(seed) {
  const table = { low: new Uint32Array(256), high: new Uint32Array(256), lowShifted: new Uint32Array(256), highShifted: new Uint32Array(256) };
  for (let i = 0; i < 256; i++) {
    const digest = md5(new Uint8Array(64).fill(i));
    const entry = new DataView(digest.buffer, digest.byteOffset, 8).getBigUint64(0, false);
    [table.low[i], table.high[i]] = halves(entry ^ seed);
    [table.lowShifted[i], table.highShifted[i]] = halves(((entry << 1n) & U64) ^ ((seed << 1n) & U64));
  }
  return table;
}

/** The gear table of epoch key `epochKey`. */
export function epochGear(epochKey) {
  return gearTable(chunkerSeed(epochKey));
}

/**
 * Where the chunk starting at `start` ends: `data` holds at least MAX_CHUNK bytes from
 * `start`, or the file's end (`end`). Two bytes a step, as FastCDC 2020: the hash shifted
 * by two plus the shifted table's entry, tested against the shifted mask, then plus the
 * plain table's entry, tested against the plain mask; the harder masks until the average
 * size, the easier ones after it.
 */
function cut(gear, data, start, end) {
  let remaining = end - start;
  if (remaining <= MIN_CHUNK) return end;
  let center = AVG_CHUNK;
  if (remaining > MAX_CHUNK) remaining = MAX_CHUNK;
  else if (remaining < center) center = remaining;
  const hash = { low: 0, high: 0 };
  const before = scan(gear, data, hash, start + MIN_CHUNK, start + (center & ~1), BEFORE);
  if (before >= 0) return before;
  const after = scan(gear, data, hash, start + (center & ~1), start + (remaining & ~1), AFTER);
  return after >= 0 ? after : start + remaining;
}

const BEFORE = masks(MASK_BEFORE);
const AFTER = masks(MASK_AFTER);

function masks(mask) {
  const [low, high] = halves(mask);
  const [lowShifted, highShifted] = halves(mask << 1n);
  return { low, high, lowShifted, highShifted };
}

/** Runs the hash over the byte pairs from `from` to `to` (both even offsets from the
 * chunk's start); returns where to cut, or -1. */
function scan(gear, data, hash, from, to, mask) {
  const { low: gLow, high: gHigh, lowShifted: sLow, highShifted: sHigh } = gear;
  const { low: mLow, high: mHigh, lowShifted: mLowShifted, highShifted: mHighShifted } = mask;
  let { low, high } = hash;
  for (let at = from; at < to; at += 2) {
    let byte = data[at];
    high = (high << 2) | (low >>> 30);
    let sum = ((low << 2) >>> 0) + sLow[byte];
    low = sum >>> 0;
    high = (high + sHigh[byte] + (sum > 0xffffffff ? 1 : 0)) | 0;
    if ((low & mLowShifted) === 0 && (high & mHighShifted) === 0) return at;
    byte = data[at + 1];
    sum = low + gLow[byte];
    low = sum >>> 0;
    high = (high + gHigh[byte] + (sum > 0xffffffff ? 1 : 0)) | 0;
    if ((low & mLow) === 0 && (high & mHigh) === 0) return at + 1;
  }
  hash.low = low;
  hash.high = high;
  return -1;
}

/** The chunks of `file` (a File or Blob), in order, each a Uint8Array of its own. */
export async function* chunks(file, gear) {
  let data = new Uint8Array(0);
  let start = 0;
  let read = 0;
  while (read < file.size || start < data.length) {
    if (data.length - start < MAX_CHUNK && read < file.size) {
      const more = new Uint8Array(await file.slice(read, read + READ_BYTES).arrayBuffer());
      read += more.length;
      const joined = new Uint8Array(data.length - start + more.length);
      joined.set(data.subarray(start));
      joined.set(more, data.length - start);
      data = joined;
      start = 0;
      continue;
    }
    const end = cut(gear, data, start, data.length);
    yield data.slice(start, end);
    start = end;
  }
}
