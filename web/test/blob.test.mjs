// The page's envelope against the command-line client's rules (docs/FORMAT.md, "Blob
// envelope"): Padmé as `crypto::blob::padme` computes it (the same values as its unit
// test), and a sealed blob that opens back, refuses another kind or id, and says so when
// changed. Run by `scripts/web --check` with node's test runner.
import assert from "node:assert/strict";
import { test } from "node:test";

import { Damaged, KIND, objectId, openBlob, padme, sealBlob } from "../src/blob.js";

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
