// The page's chunker (docs/FORMAT.md, "Chunks"): the command-line client's cuts and seed
// (the same vector as the Rust tests), every byte in order, sizes within the bounds, cuts
// that depend on the key, and cuts defined by content (bytes put in front of a file move
// only the chunks near them). Run by `scripts/web --check`.
import assert from "node:assert/strict";
import { test } from "node:test";

import { blake3 } from "@noble/hashes/blake3.js";

import { MAX_CHUNK, MIN_CHUNK, chunks, epochGear, gearEntries } from "../src/chunker.js";

function random(size) {
  const data = new Uint8Array(size);
  for (let at = 0; at < size; at += 65536) crypto.getRandomValues(data.subarray(at, Math.min(at + 65536, size)));
  return data;
}

async function cut(data, key) {
  const out = [];
  for await (const piece of chunks(new Blob([data]), epochGear(key))) out.push(piece);
  return out;
}

const keyA = new Uint8Array(32).fill(1);
const keyB = new Uint8Array(32).fill(2);
const data = random(24 << 20);

test("the gear table and the cuts are the command-line client's", async () => {
  // src/proto/crypto/epoch.rs `the_chunker_gear_is_the_one_the_page_derives`.
  const entries = gearEntries(new Uint8Array(32).fill(7));
  assert.deepEqual([entries[0], entries[1], entries[255]], [0x8afd25912e465673n, 0xfc2cb8f3050f6936n, 0xb5988dfc1113b779n]);
  // src/proto/model/chunker.rs `cuts_of_the_shared_vector_are_the_ones_the_page_makes`.
  const vector = blake3(new TextEncoder().encode("ibackup chunker vector"), { dkLen: 20 << 20 });
  const lengths = [];
  for await (const piece of chunks(new Blob([vector]), epochGear(new Uint8Array(32).fill(0xfe)))) lengths.push(piece.length);
  assert.deepEqual(lengths, [
    2144303, 325426, 1381677, 775841, 1188234, 1234699, 2143424, 1627125, 1501023, 1142422, 1791703, 500990, 1787102,
    1646915, 528320, 1252316,
  ]);
});

test("chunks hold every byte in order, within the size bounds", async () => {
  const pieces = await cut(data, keyA);
  const joined = new Uint8Array(data.length);
  let at = 0;
  pieces.forEach((piece, i) => {
    assert.ok(piece.length <= MAX_CHUNK, `chunk ${i} is ${piece.length} bytes`);
    if (i < pieces.length - 1) assert.ok(piece.length >= MIN_CHUNK, `chunk ${i} is ${piece.length} bytes`);
    joined.set(piece, at);
    at += piece.length;
  });
  assert.equal(at, data.length);
  assert.deepEqual(joined, data);
  assert.ok(pieces.length >= 8 && pieces.length <= 64, `${pieces.length} chunks of 24 MiB`);
});

test("small and empty files are one chunk and none", async () => {
  assert.equal((await cut(new Uint8Array(0), keyA)).length, 0);
  const small = random(MIN_CHUNK - 1);
  assert.deepEqual(await cut(small, keyA), [small]);
});

test("the cuts depend on the key", async () => {
  const lengths = (pieces) => pieces.map((p) => p.length).join(",");
  assert.equal(lengths(await cut(data, keyA)), lengths(await cut(data, keyA)));
  assert.notEqual(lengths(await cut(data, keyA)), lengths(await cut(data, keyB)));
});

test("bytes put in front move only the chunks near them", async () => {
  const before = await cut(data, keyA);
  const shifted = new Uint8Array(data.length + 1000);
  shifted.set(random(1000));
  shifted.set(data, 1000);
  const after = await cut(shifted, keyA);
  const seen = new Set(before.map((p) => Buffer.from(p).toString("base64")));
  const kept = after.filter((p) => seen.has(Buffer.from(p).toString("base64"))).length;
  assert.ok(kept >= after.length - 3, `${kept} of ${after.length} chunks kept`);
});
