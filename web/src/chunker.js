// Files cut into chunks in the page for an upload: content-defined, with a rolling gear
// hash whose table is keyed by the library's newest epoch key, so that where a file is cut
// (and the sizes that follow) cannot be computed from the file alone, as for the
// command-line client's keyed FastCDC (docs/FORMAT.md, "Chunks"). The sizes are the
// client's (256 KiB at least, about 1 MiB, 4 MiB at most), with FastCDC's normalization:
// a harder cut condition before the average size, an easier one after. The cuts are not the
// client's (its table is the fastcdc crate's), so a file uploaded here and backed up by
// the client is stored twice; any cuts read back the same.

import { blake3 } from "@noble/hashes/blake3.js";

import { utf8 } from "./blob.js";

export const MIN_CHUNK = 256 * 1024;
export const AVG_CHUNK = 1024 * 1024;
export const MAX_CHUNK = 4 * 1024 * 1024;
/** 22 bits must be zero before the average size, 18 after (the hash's top bits, which
 * depend on the most bytes). */
const MASK_HARD = 0xfffffc00 | 0;
const MASK_EASY = 0xffffc000 | 0;
/** How much of a file is read at once. */
const READ_BYTES = 8 * 1024 * 1024;

/** The gear table of epoch key `epochKey`: 256 words of BLAKE3 in derive-key mode. */
export function gearTable(epochKey) {
  const bytes = blake3(epochKey, { context: utf8("ibackup 2026-12 web chunker gear"), dkLen: 1024 });
  return new Int32Array(bytes.buffer, bytes.byteOffset, 256);
}

/** Where the chunk starting at `start` ends: `data` holds at least MAX_CHUNK bytes from
 * `start`, or the file's end (`end`). */
function cut(gear, data, start, end) {
  const length = end - start;
  if (length <= MIN_CHUNK) return end;
  const normal = start + Math.min(AVG_CHUNK, length);
  const limit = start + Math.min(MAX_CHUNK, length);
  let hash = 0;
  let at = start + MIN_CHUNK;
  for (; at < normal; at++) {
    hash = ((hash << 1) + gear[data[at]]) | 0;
    if ((hash & MASK_HARD) === 0) return at + 1;
  }
  for (; at < limit; at++) {
    hash = ((hash << 1) + gear[data[at]]) | 0;
    if ((hash & MASK_EASY) === 0) return at + 1;
  }
  return limit;
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
