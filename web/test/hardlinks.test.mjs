// The page's hard-link bookkeeping (src/hardlinks.js) on trees held in a Map: a name
// removed leaves the others counted again wherever they are, the last name left alone
// loses its link, and what is put back is linked only among its own names. The whole
// write path, with the command-line client's `check` reading the result, is tested in a
// browser by tests/it/web.rs.
import assert from "node:assert/strict";
import { test } from "node:test";

import { hex } from "../src/blob.js";
import { LinkEdits } from "../src/hardlinks.js";

/** Trees by key, keys numbered as they are written. */
function store() {
  const trees = new Map();
  let next = 0;
  const write = async (entries) => {
    const key = new Uint8Array(32).fill(++next);
    trees.set(hex(key), entries.map((e) => ({ ...e })));
    return key;
  };
  const load = async (keys) => keys.map((key) => trees.get(hex(key)));
  return { trees, write, load };
}

const file = (name, link, nlink) => ({ name, kind: "file", size: 1, ...(link ? { link, nlink } : {}) });
const dir = (name, subtree) => ({ name, kind: "dir", subtree });

async function library(s) {
  const deep = await s.write([file("c", 7n, 3), file("lone", 9n, 3)]);
  const sub = await s.write([file("b", 7n, 3), dir("deep", deep)]);
  // The same folder twice (one tree): its names count twice.
  const twin = await s.write([file("d", 9n, 3)]);
  return s.write([file("a", 7n, 3), dir("sub", sub), dir("x", twin), dir("y", twin)]);
}

/** Every (path, link, nlink) below `key`. */
function names(s, key, path = "") {
  return s.trees.get(hex(key)).flatMap((e) =>
    e.kind === "dir" ? names(s, e.subtree, `${path}/${e.name}`) : [[`${path}/${e.name}`, e.link, e.nlink]]);
}

test("a name removed leaves the others counted again, in every folder", async () => {
  const s = store();
  const root = await library(s);
  const top = s.trees.get(hex(root));
  const links = new LinkEdits(s.load, s.write);
  await links.drop(top[0]);
  const changed = await s.write(top.slice(1));
  const settled = await links.settle(changed);
  assert.deepEqual(names(s, settled), [
    ["/sub/b", 7n, 2],
    ["/sub/deep/c", 7n, 2],
    ["/sub/deep/lone", 9n, 3],
    ["/x/d", 9n, 3],
    ["/y/d", 9n, 3],
  ]);
});

test("a folder removed drops its names; the last name left is a plain file", async () => {
  const s = store();
  const root = await library(s);
  const top = s.trees.get(hex(root));
  const links = new LinkEdits(s.load, s.write);
  await links.drop(top[1]);
  const settled = await links.settle(await s.write([top[0], top[2], top[3]]));
  assert.deepEqual(names(s, settled), [
    ["/a", undefined, undefined],
    ["/x/d", 9n, 2],
    ["/y/d", 9n, 2],
  ]);
  // Nothing touched: the root is kept as it was.
  const untouched = new LinkEdits(s.load, s.write);
  assert.equal(await untouched.settle(settled), settled);
});

test("what is put back keeps its links among its own names, under new groups", async () => {
  const s = store();
  const root = await library(s);
  const sub = s.trees.get(hex(root))[1];
  const links = new LinkEdits(s.load, s.write);
  const back = await links.bringBack(sub);
  const settled = await links.settle(await s.write([dir("again", back.subtree), ...s.trees.get(hex(root))]));
  const all = names(s, settled);
  const [b, c, lone] = all.filter(([path]) => path.startsWith("/again/"));
  assert.equal(b[1], c[1]);
  assert.notEqual(b[1], 7n);
  assert.deepEqual([b[2], c[2]], [2, 2]);
  assert.deepEqual(lone, ["/again/deep/lone", undefined, undefined]);
  // The names that were there keep their group and count.
  assert.deepEqual(all.filter(([path]) => !path.startsWith("/again/")).map((n) => n[2]), [3, 3, 3, 3, 3, 3]);
});
