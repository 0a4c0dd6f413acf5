// The page's envelope against the command-line client's rules (docs/FORMAT.md, "Blob
// envelope"): Padmé as `crypto::blob::padme` computes it (the same values as its unit
// test), and a sealed blob that opens back, refuses another kind or id, and says so when
// changed. Run by `scripts/web --check` with node's test runner.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Damaged, KIND, objectId, objectKey, openBlob, padme, sealBlob } from "../src/blob.js";

/** `length` random bytes (WebCrypto gives at most 64 KiB a call). */
function random(length) {
  const out = new Uint8Array(length);
  for (let at = 0; at < length; at += 65_536) crypto.getRandomValues(out.subarray(at, at + 65_536));
  return out;
}

test("padme rounds as the client does", () => {
  assert.equal(padme(0), 0);
  assert.equal(padme(1), 1);
  assert.equal(padme(100), 104);
  assert.equal(padme(1 << 20), 1 << 20);
  assert.equal(padme((1 << 20) + 1), (1 << 20) + (1 << 15));
  for (let length = 2; length < 5_000_000; length = Math.floor(length * 1.37) + 1) {
    const padded = padme(length);
    assert.ok(padded >= length && padded <= length * 1.12 + 1, `${length} -> ${padded}`);
    assert.equal(padme(padded), padded, `${padded} is a fixed point`);
  }
});

test("a sealed blob opens back, padded, and only as what it was sealed as", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const id = objectId(key);
  // Random bytes do not compress: stored raw, padded.
  const plain = random(70_000);
  const blob = await sealBlob(key, 3, KIND.chunk, id, plain);
  assert.equal(blob[0], 2, "envelope version");
  assert.deepEqual([...blob.subarray(1, 5)], [0, 0, 0, 3], "epoch, big-endian");
  assert.equal(blob.length, 17 + padme(5 + plain.length) + 16);
  assert.deepEqual(await openBlob(key, KIND.chunk, id, blob), plain);
  await assert.rejects(openBlob(key, KIND.tree, id, blob), Damaged);
  await assert.rejects(openBlob(key, KIND.chunk, objectId(new Uint8Array(32)), blob), Damaged);
  const changed = blob.slice();
  changed[40] ^= 1;
  await assert.rejects(openBlob(key, KIND.chunk, id, changed), Damaged);
});

test("what compresses is sealed compressed, as the client does, and opens back", async () => {
  const key = crypto.getRandomValues(new Uint8Array(32));
  const id = objectId(key);
  const text = new TextEncoder().encode("a line of a text file that repeats\n".repeat(30_000));
  const blob = await sealBlob(key, 1, KIND.chunk, id, text);
  assert.ok(blob.length < text.length / 20, `${blob.length} bytes for ${text.length}`);
  assert.deepEqual(await openBlob(key, KIND.chunk, id, blob), text);
  // Data that does not compress past the first 64 KiB is not tried whole, and stays raw.
  const noisy = random(300_000);
  noisy.set(text.subarray(0, 200_000), 100_000);
  const raw = await sealBlob(key, 1, KIND.chunk, id, noisy);
  assert.equal(raw.length, 17 + padme(5 + noisy.length) + 16);
  assert.deepEqual(await openBlob(key, KIND.chunk, id, raw), noisy);
  // A few bytes grow under zstd: raw too.
  const tiny = new TextEncoder().encode("hi");
  assert.equal((await sealBlob(key, 1, KIND.chunk, id, tiny)).length, 17 + padme(7) + 16);
  assert.deepEqual(await openBlob(key, KIND.chunk, id, await sealBlob(key, 1, KIND.chunk, id, new Uint8Array(0))), new Uint8Array(0));
});

test("with the convergence key, an object sealed under its key but not made from it is refused", async () => {
  const convergence = crypto.getRandomValues(new Uint8Array(32));
  const ofEpoch = (epoch) => (epoch === 3 ? convergence : null);
  const plain = new TextEncoder().encode("the real contents");
  const key = await objectKey(convergence, KIND.chunk, plain);
  const id = objectId(key);
  const real = await sealBlob(key, 3, KIND.chunk, id, plain);
  assert.deepEqual(await openBlob(key, KIND.chunk, id, real, ofEpoch), plain);
  // Someone who holds the key (a member who may read, a link visitor) seals other contents
  // under it: the key opens them, the convergence key shows they are not what it names.
  const forged = await sealBlob(key, 3, KIND.chunk, id, new TextEncoder().encode("something else"));
  await assert.rejects(openBlob(key, KIND.chunk, id, forged, ofEpoch), (e) => e instanceof Damaged && /not what its key says/.test(e.message));
  // Without the library's keys (a link's visitor) there is nothing to check it against.
  assert.equal(new TextDecoder().decode(await openBlob(key, KIND.chunk, id, forged)), "something else");
  // Nor can such a holder skip the check by naming an epoch whose keys the page does not
  // hold (issue 26): the page refuses the object.
  const other = await sealBlob(key, 0x7fffffff, KIND.chunk, id, new TextEncoder().encode("something else"));
  await assert.rejects(openBlob(key, KIND.chunk, id, other, ofEpoch), (e) => e instanceof Damaged && /key epoch 2147483647/.test(e.message));
});
