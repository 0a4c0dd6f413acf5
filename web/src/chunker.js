// Files cut into chunks in the page for an upload, exactly where the command-line client
// cuts them (docs/FORMAT.md, "Chunks"), so a file added here and backed up by the client
// (or the other way round) is stored once: FastCDC 2020 with normalization level 1, sizes
// 256 KiB / 1 MiB / 4 MiB, its whole gear table derived from the library's newest epoch
// key. The 64-bit hash is kept as two 32-bit halves; JavaScript has no fast 64-bit integer.

import { blake3 } from "@noble/hashes/blake3.js";

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

/**
 * FastCDC's gear table of `entries` (256 64-bit BigInts) and its shifted twin (each entry
 * shifted left by one), each kept as its low and its high halves.
 */
export function gearTable(entries) {
  const table = { low: new Uint32Array(256), high: new Uint32Array(256), lowShifted: new Uint32Array(256), highShifted: new Uint32Array(256) };
  entries.forEach((entry, i) => {
    [table.low[i], table.high[i]] = halves(entry);
    [table.lowShifted[i], table.highShifted[i]] = halves((entry << 1n) & U64);
  });
  return table;
}

/**
 * The gear entries of epoch key `epochKey`, as the client derives them: 2 KiB of BLAKE3 in
 * key-derivation mode over the key, read as 256 little-endian 64-bit words.
 */
export function gearEntries(epochKey) {
  const bytes = blake3(epochKey, { context: utf8("ibackup 2026-12 epoch chunker gear"), dkLen: 256 * 8 });
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
  return Array.from({ length: 256 }, (_, i) => view.getBigUint64(i * 8, true));
}

/** The gear table of epoch key `epochKey`. */
export function epochGear(epochKey) {
  return gearTable(gearEntries(epochKey));
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
