// A blob's zstd body decompressed within what its kind may hold, as the client's
// `decompress` (src/proto/crypto/blob.rs) refuses more: anyone who holds an object's key could
// seal a few hundred bytes that expand to gigabytes, or ask for a window of terabytes, and
// the page would try to allocate it. fzstd decompresses; this module first reads the
// frames' headers and block headers (RFC 8878) to bound what they can make.

import { decompress } from "fzstd";

/** The most a blob of each kind may expand to (`max_plaintext`, src/proto/crypto/blob.rs). */
const LIMITS = { 1: 4 << 20, 2: 256 << 20, 3: 256 << 20 };
/** The largest window a frame may ask for (`MAX_WINDOW_LOG`, 2^24 bytes). */
const MAX_WINDOW_LOG = 24;
/** The most one compressed block can make (RFC 8878, Block_Maximum_Size). */
const MAX_BLOCK = 128 * 1024;
const FRAME_MAGIC = 0xfd2fb528;

/** Thrown for a body that is not zstd this page will decompress; blob.js says why. */
export class Malformed extends Error {}

/** `body` decompressed, or Malformed when it is not zstd or could make more than an object
 * of `kind` holds. */
export function inflate(body, kind) {
  const limit = LIMITS[kind] ?? LIMITS[1];
  const bound = upperBound(body);
  if (bound > limit) {
    throw new Malformed(`it expands past ${limit} bytes, more than such an object can hold`);
  }
  let out;
  try {
    out = decompress(body);
  } catch (error) {
    throw new Malformed(`its compressed contents are malformed (${error.message})`);
  }
  if (out.length > limit) throw new Malformed(`it expands past ${limit} bytes`);
  return out;
}

/** The most the frames in `body` can decompress to, from their headers alone. */
function upperBound(body) {
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength);
  let at = 0;
  let total = 0;
  const need = (n) => {
    if (at + n > body.length) throw new Malformed("its compressed contents are truncated");
  };
  while (at < body.length) {
    need(4);
    const magic = view.getUint32(at, true);
    at += 4;
    if ((magic & 0xfffffff0) === 0x184d2a50) {
      // A skippable frame: its length, then nothing that decompresses.
      need(4);
      at += 4 + view.getUint32(at, true);
      need(0);
      continue;
    }
    if (magic !== FRAME_MAGIC) throw new Malformed("its compressed contents are not zstd");
    need(1);
    const descriptor = body[at++];
    const sizeFlag = descriptor >> 6;
    const singleSegment = (descriptor >> 5) & 1;
    const checksum = (descriptor >> 2) & 1;
    const dictionaryBytes = [0, 1, 2, 4][descriptor & 3];
    if (descriptor & 0x08) throw new Malformed("its compressed contents use a reserved bit");
    if (!singleSegment) {
      need(1);
      const exponent = (body[at] >> 3) + 10;
      const window = 2 ** exponent + (2 ** exponent / 8) * (body[at++] & 7);
      if (window > 2 ** MAX_WINDOW_LOG) {
        throw new Malformed(`it asks for a window over ${2 ** MAX_WINDOW_LOG} bytes`);
      }
    }
    at += dictionaryBytes;
    const sizeBytes = [singleSegment, 2, 4, 8][sizeFlag];
    need(sizeBytes);
    let declared = null;
    if (sizeBytes === 1) declared = body[at];
    else if (sizeBytes === 2) declared = view.getUint16(at, true) + 256;
    else if (sizeBytes === 4) declared = view.getUint32(at, true);
    else if (sizeBytes === 8) declared = view.getUint32(at, true) + view.getUint32(at + 4, true) * 2 ** 32;
    at += sizeBytes;

    // The blocks: raw and RLE ones say what they make; a compressed one makes at most
    // Block_Maximum_Size.
    let made = 0;
    for (let last = 0; !last; ) {
      need(3);
      const header = body[at] | (body[at + 1] << 8) | (body[at + 2] << 16);
      at += 3;
      last = header & 1;
      const type = (header >> 1) & 3;
      const size = header >>> 3;
      if (type === 3) throw new Malformed("its compressed contents hold a reserved block type");
      made += type === 2 ? MAX_BLOCK : size;
      at += type === 1 ? 1 : size;
      need(0);
    }
    if (checksum) {
      need(4);
      at += 4;
    }
    // A frame that says its size is decompressed into that many bytes, no more.
    total += declared ?? made;
  }
  return total;
}
