// Objects as the server stores them, opened in the page: ids from object keys, the blob
// envelope (docs/FORMAT.md, "Blob envelope"), and the sealed pointer of a follow link.
// AES-256-GCM is WebCrypto's; BLAKE3 is @noble/hashes' (ids, small inputs) and hash-wasm's
// (object keys over whole chunks: 800 MB/s where the plain JavaScript one makes 70); zstd is
// fzstd's for reading (bounded by `inflate.js`; no WebAssembly to fetch for a link's
// visitor) and @bokuweb/zstd-wasm's for writing (the zstd library itself, 150 MB/s here,
// loaded on the first upload).

import { init as startZstd, compress } from "@bokuweb/zstd-wasm";
import { blake3 } from "@noble/hashes/blake3.js";
import { createBLAKE3 } from "hash-wasm";
import { Malformed, inflate } from "./inflate.js";

export const KIND = { chunk: 1, tree: 2, snapshot: 3 };

const ID_CONTEXT = "ibackup 2026-12 object id from object key";
const BLOB_VERSION = 2;
const NONCE_BYTES = 12;

/** The id an object key names: BLAKE3 in derive-key mode. */
export function objectId(key) {
  return blake3(key, { context: utf8(ID_CONTEXT) });
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

export function fromHex(text) {
  if (!/^([0-9a-f]{2})*$/.test(text)) throw new Error("not hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.slice(2 * i, 2 * i + 2), 16);
  return out;
}

export function base64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

export function fromBase64(text, url = false) {
  let plain = url ? text.replace(/-/g, "+").replace(/_/g, "/") : text;
  plain += "=".repeat((4 - (plain.length % 4)) % 4);
  const raw = atob(plain);
  return Uint8Array.from(raw, (c) => c.charCodeAt(0));
}

/** Whether two byte arrays hold the same bytes. */
export function same(a, b) {
  return a.length === b.length && a.every((byte, i) => byte === b[i]);
}

/** The bytes of `parts`, one after another. */
export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** Text as UTF-8 bytes. */
export const utf8 = (text) => new TextEncoder().encode(text);

async function aesKey(raw, usage = "decrypt") {
  return crypto.subtle.importKey("raw", raw, "AES-GCM", false, [usage]);
}

/** AES-256-GCM of `secret` under `key` with a random nonce and `context` bound as
 * associated data: `nonce (12) || ciphertext`, as the command-line client's
 * `SymmetricKey::seal_bound` (and `wrap`, with no context) write it. */
export async function seal(key, secret, context = new Uint8Array(0)) {
  const nonce = crypto.getRandomValues(new Uint8Array(NONCE_BYTES));
  const sealed = await crypto.subtle.encrypt({ name: "AES-GCM", iv: nonce, additionalData: context }, await aesKey(key, "encrypt"), secret);
  return concat(nonce, new Uint8Array(sealed));
}

/** Reverses [`seal`] with the same `context`; throws if the key or context is not the
 * sealer's, or the bytes were changed. */
export async function unseal(key, sealed, context = new Uint8Array(0)) {
  return new Uint8Array(await crypto.subtle.decrypt(
    { name: "AES-GCM", iv: sealed.subarray(0, NONCE_BYTES), additionalData: context },
    await aesKey(key),
    sealed.subarray(NONCE_BYTES),
  ));
}

/** Something that was not what it claimed: said in words, never guessed around. */
export class Damaged extends Error {}

/**
 * The plaintext of `blob`, an object of `kind` with id `id`, sealed under `key`. The
 * version, epoch, kind and id are bound as associated data, so a blob cannot be passed off
 * as another. `convergence(epoch)`, where the page holds the library's keys, gives the
 * convergence key of the blob's epoch (or null), and the contents are checked against
 * `key` with it.
 */
export async function openBlob(key, kind, id, blob, convergence = null) {
  if (blob.length < 1 + 4 + NONCE_BYTES + 16) throw new Damaged("an object is truncated");
  if (blob[0] !== BLOB_VERSION) {
    throw new Damaged(`an object is in format ${blob[0]}, which this page does not read`);
  }
  const epoch = blob.subarray(1, 5);
  const nonce = blob.subarray(5, 5 + NONCE_BYTES);
  const sealed = blob.subarray(5 + NONCE_BYTES);
  const associated = concat([BLOB_VERSION], epoch, [kind], id);
  let plain;
  try {
    plain = new Uint8Array(
      await crypto.subtle.decrypt(
        { name: "AES-GCM", iv: nonce, additionalData: associated, tagLength: 128 },
        await aesKey(key),
        sealed,
      ),
    );
  } catch {
    throw new Damaged("an object does not open with its key: it was changed or damaged");
  }
  const flag = plain[0];
  let body;
  if (flag === 0 || flag === 1) {
    body = plain.subarray(1);
  } else if (flag === 2 || flag === 3) {
    const length = new DataView(plain.buffer, plain.byteOffset + 1, 4).getUint32(0, true);
    if (5 + length > plain.length) throw new Damaged("an object's padding is malformed");
    body = plain.subarray(5, 5 + length);
  } else {
    throw new Damaged(`an object has the unknown flag ${flag}`);
  }
  let out = body;
  if (flag === 1 || flag === 3) {
    try {
      out = inflate(body, kind);
    } catch (error) {
      if (error instanceof Malformed) throw new Damaged(`an object does not decompress: ${error.message}`);
      throw error;
    }
  }
  // As the client checks (`open_object`): where the page holds the library's keys, an
  // object is what its key says under the convergence key of the epoch it names. A holder
  // of the key alone (a member who may read, a link visitor) could seal other contents
  // under it; only the library's convergence key makes the key from the contents. An
  // epoch the page does not hold is refused, or such a holder would name one to skip this.
  if (convergence) {
    const number = new DataView(epoch.buffer, epoch.byteOffset, 4).getUint32(0, false);
    const converge = convergence(number);
    if (!converge) {
      throw new Damaged(`an object names key epoch ${number}, which this library does not have: it is not used (reload the page if the library's key was just changed)`);
    }
    if (!same(await objectKey(converge, kind, out), key)) {
      throw new Damaged("an object is not what its key says: the server sent something else in its place");
    }
  }
  return out;
}

/** Keyed hashers by convergence key (hex): made once, each used start to end at a time. */
const hashers = new Map();

/** The object key of `plain` of `kind` under `convergence`: keyed BLAKE3 of the kind and
 * the contents (`ConvergenceKey::object_key` in the client). */
export async function objectKey(convergence, kind, plain) {
  const name = hex(convergence);
  if (!hashers.has(name)) hashers.set(name, createBLAKE3(256, convergence));
  const hasher = await hashers.get(name);
  hasher.init();
  hasher.update(Uint8Array.of(kind));
  hasher.update(plain);
  return hasher.digest("binary");
}

/**
 * Padmé (Nikitin et al., PETS 2019) as `crypto::blob::padme`: `length` rounded up so that
 * only its top bits vary.
 */
export function padme(length) {
  if (length < 2) return length;
  const exponent = 31 - Math.clz32(length);
  const bitsOfExponent = 32 - Math.clz32(exponent);
  const step = 2 ** (exponent - bitsOfExponent);
  return Math.ceil(length / step) * step;
}

/** The level the command-line client compresses at (`ZSTD_LEVEL`, src/proto/crypto/blob.rs). */
const ZSTD_LEVEL = 3;
/** Larger plaintexts are compressed only if a trial on their first bytes shows a gain, as
 * the command-line client does (`worth_compressing`). */
const TRIAL_LEN = 64 * 1024;
/** Where the page fetches the compressor from (served by ibackup-server, web/build.mjs). */
const ZSTD_WASM = "/assets/zstd.wasm";

let zstd = null;

/** The compressor once loaded, or null where it cannot be (the blob is then stored raw,
 * which every reader allows). Node's tests load it from the package's folder. */
function compressor() {
  zstd ??= startZstd(globalThis.document ? ZSTD_WASM : undefined).then(
    () => compress,
    (error) => {
      console.error("zstd did not load; uploads are stored uncompressed:", error);
      return null;
    },
  );
  return zstd;
}

/** `plain` compressed, when that is worth it and smaller; null otherwise. */
async function compressed(plain) {
  if (plain.length === 0) return null;
  const squeeze = await compressor();
  if (!squeeze) return null;
  // Random or already-compressed data shows no gain on a sample; skip the full attempt.
  if (plain.length > TRIAL_LEN * 2 && squeeze(plain.subarray(0, TRIAL_LEN), 1).length >= (TRIAL_LEN * 97) / 100) {
    return null;
  }
  const out = squeeze(plain, ZSTD_LEVEL);
  return out.length < plain.length ? out : null;
}

/**
 * `plain`, an object of `kind` with id `id`, sealed under `key` in epoch `epoch` as the
 * command-line client seals it (docs/FORMAT.md, "Blob envelope"): compressed with zstd
 * where that makes it smaller (flag 3), raw otherwise (flag 2), and padded.
 */
export async function sealBlob(key, epoch, kind, id, plain) {
  const squeezed = await compressed(plain);
  const body = squeezed ?? plain;
  const inner = 1 + 4 + body.length;
  const padded = new Uint8Array(padme(inner));
  const view = new DataView(padded.buffer);
  padded[0] = squeezed ? 3 : 2;
  view.setUint32(1, body.length, true);
  padded.set(body, 5);
  const header = new Uint8Array(1 + 4 + NONCE_BYTES);
  header[0] = BLOB_VERSION;
  new DataView(header.buffer).setUint32(1, epoch, false);
  crypto.getRandomValues(header.subarray(5));
  const associated = concat([BLOB_VERSION], header.subarray(1, 5), [kind], id);
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: header.subarray(5), additionalData: associated, tagLength: 128 },
    await aesKey(key, "encrypt"),
    padded,
  );
  return concat(header, new Uint8Array(sealed));
}

const pointerContext = (linkId) => utf8(`ibackup link pointer ${linkId}`);

/** A follow link's pointer: the folder's tree key sealed under the link key (docs/FORMAT.md,
 * "Links"). */
export function sealPointer(linkKey, linkId, treeKey) {
  return seal(linkKey, treeKey, pointerContext(linkId));
}

/** A follow link's pointer opened with the link key: the folder's tree key. */
export async function openPointer(linkKey, linkId, pointer) {
  if (pointer.length < NONCE_BYTES + 16) throw new Damaged("the link's pointer is truncated");
  try {
    return await unseal(linkKey, pointer, pointerContext(linkId));
  } catch {
    throw new Damaged("the link's pointer does not open with the key in this link");
  }
}
