// What the page writes into a library: objects sealed and sent as the command-line client
// sends them (docs/PROTOCOL.md, "Upload batch"), trees written anew from a changed folder
// up to the root on top of the library's newest snapshot, and a new snapshot made the head
// with a compare-and-swap, tried again on top of whatever another writer committed
// meanwhile. Keys stay in the page: the server gets sealed blobs and ids.

import { blake3 } from "@noble/hashes/blake3.js";
import { decode, encode } from "cborg";

import { call, request } from "./api.js";
import { Damaged, KIND, concat, fromHex, hex, objectId, objectKey, openBlob, same, sealBlob, utf8 } from "./blob.js";
import { LinkEdits } from "./hardlinks.js";
import { newestEpoch, openSnapshot } from "./library.js";
import { checkHead, remember } from "./seen.js";

const FORMAT = 2;
/** Sealed objects sent in one request, at most: bytes, and objects (the server takes
 * 10,000 ids in one request, and many small files fill a count long before the bytes). */
const BATCH_BYTES = 16 * 1024 * 1024;
const BATCH_OBJECTS = 1000;
/** Commits tried when other writers keep moving the head. */
const COMMIT_ATTEMPTS = 5;
const KIND_NAMES = { [KIND.chunk]: "chunk", [KIND.tree]: "tree", [KIND.snapshot]: "snapshot" };

function compareBytes(a, b) {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    if (a[i] !== b[i]) return a[i] - b[i];
  }
  return a.length - b.length;
}

/** Objects sealed under one epoch's keys (`libraryKeys`' derived keys) and sent to a
 * library in batches. */
export class Uploader {
  constructor(library, epoch, keys) {
    Object.assign(this, { library, epoch, keys });
    this.pending = [];
    this.bytes = 0;
    /** The trees written, hex of the key to the entries: read back before they are sent. */
    this.trees = new Map();
  }

  /** A chunk or tree: its key, and its sealed blob queued unless the library has it. */
  async add(kind, plain, refs = []) {
    const key = await objectKey(this.keys.convergence, kind, plain);
    const id = objectId(key);
    const blob = await sealBlob(key, this.epoch, kind, id, plain);
    this.queue({ id, kind, refs }, blob);
    return key;
  }

  /** A snapshot, sealed under the snapshot key with its id from its content. */
  async addSnapshot(snapshot, treeKey) {
    const plain = concat([FORMAT], encode(snapshot));
    const id = blake3(plain, { key: this.keys.snapshotId });
    const blob = await sealBlob(this.keys.snapshot, this.epoch, KIND.snapshot, id, plain);
    this.queue({ id, kind: KIND.snapshot, refs: [objectId(treeKey)], snapshot }, blob);
    return id;
  }

  queue(object, blob) {
    this.pending.push({ ...object, blob });
    this.bytes += blob.length;
  }

  /** Sends what is queued, if it is a batch's worth (or `all`), skipping what is stored. */
  async flush(all = false) {
    if (!this.pending.length || (!all && this.bytes < BATCH_BYTES && this.pending.length < BATCH_OBJECTS)) return;
    const objects = this.pending;
    this.pending = [];
    this.bytes = 0;
    const chunkIds = objects.filter((o) => o.kind === KIND.chunk).map((o) => hex(o.id));
    let missing = new Set(chunkIds);
    if (chunkIds.length) {
      const answer = await call("POST", `/api/v1/libraries/${this.library}/objects/missing`, { ids: chunkIds });
      missing = new Set(answer.missing);
    }
    const sending = objects.filter((o) => o.kind !== KIND.chunk || missing.has(hex(o.id)));
    if (!sending.length) return;
    // time_ns is an i64 past JavaScript's exact integers: written into the JSON as digits.
    const header = utf8(JSON.stringify({
      objects: sending.map((o) => ({
        id: hex(o.id),
        kind: KIND_NAMES[o.kind],
        len: o.blob.length,
        ...(o.refs.length ? { refs: o.refs.map(hex) } : {}),
        ...(o.snapshot ? { snapshot: { time_ns: "@TIME@", parent: o.snapshot.parent ? hex(o.snapshot.parent) : null } } : {}),
      })),
    }).replace('"@TIME@"', () => String(sending.find((o) => o.snapshot)?.snapshot.time_ns)));
    const length = new Uint8Array(4);
    new DataView(length.buffer).setUint32(0, header.length, false);
    const body = new Blob([length, header, ...sending.map((o) => o.blob)]);
    await request("POST", `/api/v1/libraries/${this.library}/objects/upload`, body);
  }
}

/** The convergence key of each epoch of `keys` the page holds, for `openBlob`. */
export function convergenceOf(keys) {
  return (epoch) => keys.epochs.get(epoch)?.convergence ?? null;
}

/** The uploader of library `info` under its newest epoch's keys (of `keys`). */
export function uploaderFor(info, keys) {
  const epochKeys = keys.epochs.get(info.epoch);
  if (!epochKeys) throw new Damaged("this library has a newer key than this page opened; reload the page");
  // Only the newest key the page holds is written under: an older one may be one a
  // removed member still holds, whatever epoch the server names.
  if (info.epoch !== newestEpoch(keys)) {
    throw new Damaged(`the server says this library's key is epoch ${info.epoch}, older than the newest this page holds; nothing was written. Tell the server's operator`);
  }
  return new Uploader(info.id, info.epoch, epochKeys);
}

/**
 * Makes a new snapshot of library `info` (keys `keys`) as `author`, on top of its newest:
 * the folder at `path` (names from the root) changed by `change(entries, folder, links)`
 * (its entries as decoded, its own entry, null at the top, and the `LinkEdits` to tell of
 * names of hard-linked files it removes or puts back), which returns the folder's new tree
 * key. `paths` and `summary` go into the snapshot; `again` is said when another
 * writer moved the head first and the change is made again on top of theirs. Returns the
 * new snapshot's id (hex) and its root tree's key.
 */
export async function commit({ info, keys, author, uploader, fetchBlobs, path, change, paths, summary, report, again }) {
  const convergence = convergenceOf(keys);
  const loadTrees = (treeKeys) => {
    const away = treeKeys.filter((key) => !uploader.trees.has(hex(key)));
    return rawTrees(fetchBlobs, away, convergence).then((fetched) => {
      const got = new Map(away.map((key, i) => [hex(key), fetched[i]]));
      return treeKeys.map((key) => uploader.trees.get(hex(key)) ?? got.get(hex(key)));
    });
  };
  const fetchTree = async (key) => [...(await loadTrees([key]))[0]];
  for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
    report("Saving the folder…");
    const { head } = await call("GET", `/api/v1/libraries/${info.id}/head`);
    let parent = null;
    if (head) {
      const headId = fromHex(head);
      const [blob] = await fetchBlobs([headId]);
      parent = { id: headId, snapshot: await openSnapshot(keys, headId, blob) };
      // Nothing is built on a head older than, or beside, the newest this browser saw.
      await checkHead(keys.me, info, keys, "this library", head, parent.snapshot, fetchBlobs);
    }
    const links = new LinkEdits(loadTrees, (entries) => writeTree(uploader, entries));
    const changed = await writeFolder(uploader, fetchTree, parent?.snapshot.tree ?? null, path, (entries, folder) => change(entries, folder, links));
    const root = await links.settle(changed);
    const snapshot = {
      tree: root,
      parent: parent ? parent.id : null,
      time_ns: nowNs(),
      host: "web browser",
      username: "",
      author,
      paths: paths.map((name) => `/${[...path, name].join("/")}`),
      tags: [],
      kind: "write-back",
      summary,
      generation: Number(parent?.snapshot.generation ?? 0) + 1,
    };
    const id = await uploader.addSnapshot(snapshot, root);
    await uploader.flush(true);
    try {
      await call("PUT", `/api/v1/libraries/${info.id}/head`, { expected: head, new: hex(id) });
      remember(keys.me, info, hex(id), snapshot.generation);
      return { id: hex(id), root };
    } catch (error) {
      if (error.code !== "head_moved") throw error;
      report(again);
    }
  }
  throw new Error("the library kept changing while this was saved; try again");
}

/** A tree's entries as decoded, fields and all, to be written again (checked against its
 * key where `convergence` is given, see `openBlob`). */
export async function rawTree(fetchBlobs, key, convergence = null) {
  return (await rawTrees(fetchBlobs, [key], convergence))[0];
}

/** The entries of the trees of `keys`, fetched in one request. */
export async function rawTrees(fetchBlobs, keys, convergence = null) {
  if (!keys.length) return [];
  const ids = keys.map(objectId);
  const blobs = await fetchBlobs(ids);
  return Promise.all(keys.map(async (key, i) => {
    const plain = await openBlob(key, KIND.tree, ids[i], blobs[i], convergence);
    if (plain[0] !== FORMAT) throw new Damaged(`a folder is in format ${plain[0]}, which this page does not write over`);
    return decode(plain.subarray(1), { useMaps: false }).entries;
  }));
}

/** Now, in nanoseconds since the Unix epoch (the trees' and snapshots' times). */
export function nowNs() {
  return BigInt(Date.now()) * 1000000n;
}

/** The owner a new entry of `folder` takes: the folder's (root at the top, `folder` null). */
export function ownerIn(folder) {
  return { uid: folder ? folder.uid : 0, gid: folder ? folder.gid : 0 };
}

/** A new folder entry named `name` (bytes) in `folder`, made at `now`, holding `subtree`
 * (a tree key; none yet while its contents are still being written). */
export function folderEntry(name, folder, now, subtree = undefined) {
  return { name, kind: "dir", mode: 0o755, ...ownerIn(folder), mtime_ns: now, size: 0, inode: 0, ...(subtree ? { subtree } : {}) };
}

/** A file name any file system of the client's takes. */
export function checkName(name) {
  if (!name || name === "." || name === ".." || name.includes("/") || name.includes("\0") || utf8(name).length > 255) {
    throw new Error(`"${name}" cannot be a file name in a library`);
  }
}

/**
 * The key of a new root tree: `root` (null for an empty library) with the folder at `path`
 * changed by `change` (see `commit`), and every tree above it written anew. Entries not
 * touched are kept as they were decoded, byte for byte.
 */
async function writeFolder(uploader, fetchTree, root, path, change) {
  const now = nowNs();
  const trail = [];
  let entries = root ? await fetchTree(root) : [];
  for (const name of path) {
    const index = entries.findIndex((e) => same(e.name, utf8(name)));
    if (index < 0 || entries[index].kind !== "dir") {
      throw new Error(`the folder ${name} is not in the library's newest snapshot: open the newest snapshot and try again, or put back the folder that held it`);
    }
    trail.push({ entries, index });
    entries = await fetchTree(entries[index].subtree);
  }
  const folder = trail.length ? trail[trail.length - 1].entries[trail[trail.length - 1].index] : null;
  let key = await change(entries, folder);
  for (let depth = trail.length - 1; depth >= 0; depth--) {
    const { entries: above, index } = trail[depth];
    above[index] = { ...above[index], subtree: key, ...(depth === trail.length - 1 ? { mtime_ns: now } : {}) };
    key = await writeTree(uploader, above);
  }
  return key;
}

/** A tree of `entries` (sorted by name, as readers require) queued; its key. */
export async function writeTree(uploader, entries) {
  entries.sort((a, b) => compareBytes(a.name, b.name));
  const refs = [];
  for (const entry of entries) {
    for (const chunk of entry.chunks ?? []) refs.push(objectId(chunk.key));
    if (entry.subtree) refs.push(objectId(entry.subtree));
  }
  const plain = concat([FORMAT], encode({ entries }));
  const key = await uploader.add(KIND.tree, plain, [...new Map(refs.map((r) => [hex(r), r])).values()]);
  uploader.trees.set(hex(key), entries);
  return key;
}
