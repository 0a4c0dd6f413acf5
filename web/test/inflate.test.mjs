// Compressed bodies are decompressed only within what their kind may hold, as the client
// refuses more (`decompress`, src/proto/crypto/blob.rs): frames that say their size, frames that
// do not, several frames, windows, and bodies that are not zstd. Run by `scripts/web --check`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { compress, init } from "@bokuweb/zstd-wasm";

import { Damaged, KIND, objectId, openBlob } from "../src/blob.js";
import { Malformed, inflate } from "../src/inflate.js";

await init();

const MiB = 1 << 20;

/** A frame that does not say its size (as a streaming writer makes it), window 128 KiB,
 * of `blocks` RLE blocks of 128 KiB of `byte`. */
function unsized(blocks, byte = 7, windowDescriptor = 7 << 3) {
  const out = [0x28, 0xb5, 0x2f, 0xfd, 0x00, windowDescriptor];
  for (let i = 0; i < blocks; i++) {
    const header = ((128 * 1024) << 3) | (1 << 1) | (i === blocks - 1 ? 1 : 0);
    out.push(header & 0xff, (header >> 8) & 0xff, (header >> 16) & 0xff, byte);
  }
  return new Uint8Array(out);
}

test("what the writers make decompresses", () => {
  const text = new TextEncoder().encode("a line that repeats\n".repeat(100_000));
  assert.deepEqual(inflate(compress(text, 3), KIND.chunk), text);
  const made = inflate(unsized(20), KIND.chunk);
  assert.equal(made.length, 20 * 128 * 1024);
  assert.ok(made.every((b) => b === 7));
});

test("a body that would make more than its kind holds is refused before it is decompressed", () => {
  const zeros = compress(new Uint8Array(5 * MiB), 3);
  assert.ok(zeros.length < 1000);
  assert.throws(() => inflate(zeros, KIND.chunk), (e) => e instanceof Malformed && /expands past 4194304 bytes, more than/.test(e.message));
  // A tree may be larger.
  assert.equal(inflate(zeros, KIND.tree).length, 5 * MiB);
  // Two frames of 3 MiB each: each fits, both do not.
  const three = compress(new Uint8Array(3 * MiB), 3);
  const both = new Uint8Array([...three, ...three]);
  assert.throws(() => inflate(both, KIND.chunk), /more than such an object can hold/);
  assert.equal(inflate(both, KIND.tree).length, 6 * MiB);
  // Frames that do not say their size are bounded by their blocks.
  assert.throws(() => inflate(unsized(40), KIND.chunk), /more than such an object can hold/);
});

test("a window over 16 MiB, a reserved block and what is not zstd are refused", () => {
  // Window descriptor 2^25.
  assert.throws(() => inflate(unsized(1, 7, 15 << 3), KIND.tree), (e) => /window/.test(e.message));
  const reserved = unsized(1);
  reserved[6] |= 3 << 1;
  assert.throws(() => inflate(reserved, KIND.tree), (e) => /reserved block/.test(e.message));
  assert.throws(() => inflate(new TextEncoder().encode("plain words"), KIND.chunk), (e) => /not zstd/.test(e.message));
  const good = compress(new TextEncoder().encode("x".repeat(10_000)), 3);
  assert.throws(() => inflate(good.subarray(0, good.length - 2), KIND.chunk), Malformed);
});

test("a sealed blob whose body expands too far does not open", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const id = objectId(key);
  const body = compress(new Uint8Array(5 * MiB), 3);
  // Sealed as sealBlob seals (flag 3, length, body), by someone who holds the key.
  const inner = new Uint8Array(5 + body.length);
  inner[0] = 3;
  new DataView(inner.buffer).setUint32(1, body.length, true);
  inner.set(body, 5);
  const header = new Uint8Array([2, 0, 0, 0, 1, ...crypto.getRandomValues(new Uint8Array(12))]);
  const aes = await crypto.subtle.importKey("raw", key, "AES-GCM", false, ["encrypt"]);
  const sealed = await crypto.subtle.encrypt(
    { name: "AES-GCM", iv: header.subarray(5), additionalData: new Uint8Array([2, 0, 0, 0, 1, KIND.chunk, ...id]) },
    aes,
    inner,
  );
  const blob = new Uint8Array([...header, ...new Uint8Array(sealed)]);
  await assert.rejects(openBlob(key, KIND.chunk, id, blob), (e) => e instanceof Damaged && /does not decompress: it expands past 4194304 bytes, more than/.test(e.message));
});
