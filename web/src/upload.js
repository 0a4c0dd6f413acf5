// Files added to a folder of a library in the page: each file cut into chunks, sealed and
// uploaded as the command-line client uploads them (docs/PROTOCOL.md, "Upload batch"),
// then the folder's tree and every tree above it written anew on top of the library's
// newest snapshot, and a new snapshot made the head with a compare-and-swap (tried again
// on top of whatever another writer committed meanwhile). Keys stay in the page: the server
// gets sealed blobs and ids.

import { blake3 } from "@noble/hashes/blake3.js";
import { decode, encode } from "cborg";

import { call, request } from "./api.js";
import { Damaged, KIND, concat, fromHex, hex, objectId, openBlob, same, sealBlob, utf8 } from "./blob.js";
import { chunks as cutFile, epochGear } from "./chunker.js";
import { openSnapshot } from "./library.js";

const FORMAT = 2;
/** Sealed chunks sent in one request, at most. */
const BATCH_BYTES = 16 * 1024 * 1024;
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
class Uploader {
  constructor(library, epoch, keys) {
    Object.assign(this, { library, epoch, keys });
    this.pending = [];
    this.bytes = 0;
  }

  /** A chunk or tree: its key, and its sealed blob queued unless the library has it. */
  async add(kind, plain, refs = []) {
    const key = blake3(concat([kind], plain), { key: this.keys.convergence });
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
    if (!this.pending.length || (!all && this.bytes < BATCH_BYTES)) return;
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

/**
 * Adds `items` to the folder at `path` (names from the root) of library `info`, whose keys
 * are `keys`, as `author`: a new snapshot on top of the newest. An item is `{ parts, file }`
 * for a file (a File object) or `{ parts }` for a folder, `parts` its names from the
 * folder at `path`. Says how far it got through `report(text)`; returns the new
 * snapshot's id (hex) and its root tree's key.
 */
export async function uploadFiles({ info, keys, author, path, items, fetchBlobs, report }) {
  const epochKeys = keys.epochs.get(info.epoch);
  if (!epochKeys) throw new Damaged("this library has a newer key than this page opened; reload the page");
  for (const item of items) item.parts.forEach(checkName);
  const uploader = new Uploader(info.id, info.epoch, epochKeys);
  const gear = epochGear(epochKeys.key);
  const added = [];
  let bytes = 0;
  const total = items.reduce((n, item) => n + (item.file?.size ?? 0), 0);
  for (const { parts, file } of items) {
    if (!file) {
      added.push({ parts, dir: true });
      continue;
    }
    const refs = [];
    let size = 0;
    for await (const piece of cutFile(file, gear)) {
      const key = await uploader.add(KIND.chunk, piece);
      refs.push({ key, len: piece.length });
      size += piece.length;
      bytes += piece.length;
      report(`Uploading: ${Math.floor((100 * bytes) / Math.max(total, 1))}%`);
      await uploader.flush();
    }
    if (size !== file.size) throw new Error(`${parts.join("/")} changed while it was read; add it again`);
    added.push({ parts, size, mtimeNs: BigInt(Math.round(file.lastModified)) * 1000000n, chunks: refs });
  }
  await uploader.flush(true);

  const fetchTree = (key) => rawTree(fetchBlobs, key);
  for (let attempt = 0; attempt < COMMIT_ATTEMPTS; attempt++) {
    report("Saving the folder…");
    const { head } = await call("GET", `/api/v1/libraries/${info.id}/head`);
    let parent = null;
    if (head) {
      const headId = fromHex(head);
      const [blob] = await fetchBlobs([headId]);
      parent = { id: headId, snapshot: await openSnapshot(keys, headId, blob) };
    }
    const root = await writeFolder(uploader, fetchTree, parent?.snapshot.tree ?? null, path, added);
    const now = BigInt(Date.now()) * 1000000n;
    const snapshot = {
      tree: root,
      parent: parent ? parent.id : null,
      time_ns: now,
      host: "web browser",
      username: "",
      author,
      paths: [...new Set(added.map((item) => item.parts[0]))].map((name) => `/${[...path, name].join("/")}`),
      tags: [],
      kind: "write-back",
      summary: { files: added.filter((item) => !item.dir).length, dirs: folders(added), bytes },
      generation: Number(parent?.snapshot.generation ?? 0) + 1,
    };
    const id = await uploader.addSnapshot(snapshot, root);
    await uploader.flush(true);
    try {
      await call("PUT", `/api/v1/libraries/${info.id}/head`, { expected: head, new: hex(id) });
      return { id: hex(id), root };
    } catch (error) {
      if (error.code !== "head_moved") throw error;
      report("Someone else saved meanwhile; adding the files on top of their snapshot…");
    }
  }
  throw new Error("the library kept changing while the files were added; try again");
}

/** A tree's entries as decoded, fields and all, to be written again. */
export async function rawTree(fetchBlobs, key) {
  const id = objectId(key);
  const [blob] = await fetchBlobs([id]);
  const plain = await openBlob(key, KIND.tree, id, blob);
  if (plain[0] !== FORMAT) throw new Damaged(`a folder is in format ${plain[0]}, which this page does not write over`);
  return decode(plain.subarray(1), { useMaps: false }).entries;
}

/** A file name any file system of the client's takes. */
function checkName(name) {
  if (!name || name === "." || name === ".." || name.includes("/") || name.includes("\0") || utf8(name).length > 255) {
    throw new Error(`"${name}" cannot be a file name in a library`);
  }
}

/** How many folders `added` makes or fills: those added, and those its files are in. */
function folders(added) {
  const seen = new Set();
  for (const item of added) {
    const depth = item.dir ? item.parts.length : item.parts.length - 1;
    for (let i = 1; i <= depth; i++) seen.add(item.parts.slice(0, i).join("/"));
  }
  return seen.size;
}

/**
 * The key of a new root tree: `root` (null for an empty library) with `added` put into the
 * folder at `path`, and that folder's tree and every one above it written anew. Entries
 * not touched are kept as they were decoded, byte for byte.
 */
async function writeFolder(uploader, fetchTree, root, path, added) {
  const now = BigInt(Date.now()) * 1000000n;
  const trail = [];
  let entries = root ? await fetchTree(root) : [];
  for (const name of path) {
    const index = entries.findIndex((e) => same(e.name, utf8(name)));
    if (index < 0 || entries[index].kind !== "dir") {
      throw new Error(`the folder ${name} is no longer in the library's newest snapshot; open that snapshot and try again`);
    }
    trail.push({ entries, index });
    entries = await fetchTree(entries[index].subtree);
  }
  const folder = trail.length ? trail[trail.length - 1].entries[trail[trail.length - 1].index] : null;
  let key = await putInto(uploader, fetchTree, entries, folder, added, now);
  for (let depth = trail.length - 1; depth >= 0; depth--) {
    const { entries: above, index } = trail[depth];
    above[index] = { ...above[index], subtree: key, ...(depth === trail.length - 1 ? { mtime_ns: now } : {}) };
    key = await writeTree(uploader, above);
  }
  return key;
}

/**
 * The key of the tree of `entries` (a folder whose own entry is `folder`, null at the top)
 * with `added` (named from it) put in: files replace files of their name, folders are
 * made where there are none and filled where there are, each written anew.
 */
async function putInto(uploader, fetchTree, entries, folder, added, now) {
  const owner = { uid: folder ? folder.uid : 0, gid: folder ? folder.gid : 0 };
  const inside = new Map();
  for (const item of added) {
    const [first, ...rest] = item.parts;
    const name = utf8(first);
    const index = entries.findIndex((e) => same(e.name, name));
    const existing = index < 0 ? null : entries[index];
    if (item.dir || rest.length) {
      if (existing && existing.kind !== "dir") {
        throw new Error(`${first} is a file in this folder, not a folder; rename the folder and add it again`);
      }
      if (!existing) entries.push({ name, kind: "dir", mode: 0o755, ...owner, mtime_ns: now, size: 0, inode: 0 });
      if (!inside.has(first)) inside.set(first, []);
      if (rest.length) inside.get(first).push({ ...item, parts: rest });
      continue;
    }
    const entry = {
      name,
      kind: "file",
      mode: 0o644,
      ...owner,
      mtime_ns: item.mtimeNs,
      size: item.size,
      inode: 0,
      ...(item.chunks.length ? { chunks: item.chunks } : {}),
    };
    if (!existing) {
      entries.push(entry);
    } else if (existing.kind === "file" || existing.kind === "symlink") {
      entries[index] = entry;
    } else {
      throw new Error(`${first} is a ${existing.kind === "dir" ? "folder" : existing.kind} in this folder; rename the file and add it again`);
    }
  }
  for (const [first, items] of inside) {
    const index = entries.findIndex((e) => same(e.name, utf8(first)));
    const entry = entries[index];
    const below = entry.subtree ? await fetchTree(entry.subtree) : [];
    const key = await putInto(uploader, fetchTree, below, entry, items, now);
    entries[index] = { ...entry, subtree: key, mtime_ns: now };
  }
  return writeTree(uploader, entries);
}

/** A tree of `entries` (sorted by name, as readers require) queued; its key. */
async function writeTree(uploader, entries) {
  entries.sort((a, b) => compareBytes(a.name, b.name));
  const refs = [];
  for (const entry of entries) {
    for (const chunk of entry.chunks ?? []) refs.push(objectId(chunk.key));
    if (entry.subtree) refs.push(objectId(entry.subtree));
  }
  const plain = concat([FORMAT], encode({ entries }));
  return uploader.add(KIND.tree, plain, [...new Map(refs.map((r) => [hex(r), r])).values()]);
}
