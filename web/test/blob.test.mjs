// The page's envelope against the command-line client's rules (docs/FORMAT.md, "Blob
// envelope"): Padmé as `crypto::blob::padme` computes it (the same values as its unit
// test), and a sealed blob that opens back, refuses another kind or id, and says so when
// changed. Run by `scripts/web --check` with node's test runner.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Damaged, KIND, objectId, objectKey, openBlob, padme, sealBlob } from "../src/blob.js";

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
  const plain = new Uint8Array(70_000).map((_, i) => (i * 7919) % 251);
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
  // An epoch whose keys the page does not hold is not checked either.
  const other = await sealBlob(key, 4, KIND.chunk, id, new TextEncoder().encode("something else"));
  assert.equal(new TextDecoder().decode(await openBlob(key, KIND.chunk, id, other, ofEpoch)), "something else");
});
