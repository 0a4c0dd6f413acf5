// Files and folders added to a folder of a library in the page: each file cut where the
// command-line client cuts it, its chunks sealed and uploaded, then the folder written anew
// with them in a new snapshot (`writer.js`).

import { KIND, hex, utf8 } from "./blob.js";
import { chunks as cutFile, epochGear } from "./chunker.js";
import { Cancelled } from "./saver.js";
import { checkName, commit, convergenceOf, folderEntry, nowNs, ownerIn, rawTree, uploaderFor, writeTree } from "./writer.js";

/**
 * Adds `items` to the folder at `path` (names from the root) of library `info`, whose keys
 * are `keys`, as `author` (`target`: these and `fetchBlobs`, as `commit` takes them): a
 * new snapshot on top of the newest. An item is `{ parts, file }` for a file (a File
 * object) or `{ parts }` for a folder, `parts` its names from the folder at `path`. Says how far it got through `report(text)`; stops with `Cancelled`
 * when `cancel.asked` is set before it commits. Returns the new snapshot's id (hex) and
 * its root tree's key.
 */
export async function uploadFiles({ items, report, cancel = null, ...target }) {
  for (const item of items) item.parts.forEach(checkName);
  // Until the commit: what was sent by then is in no snapshot, and collection frees it.
  const heed = () => {
    if (cancel?.asked) throw new Cancelled("the upload was cancelled");
  };
  const uploader = uploaderFor(target.info, target.keys);
  const gear = epochGear(uploader.keys.key);
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
      heed();
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
  heed();
  const fetchTree = (key) => rawTree(target.fetchBlobs, key, convergenceOf(target.keys));
  const now = nowNs();
  return commit({
    ...target,
    uploader,
    change: (entries, folder, links) => putInto(uploader, fetchTree, links, entries, folder, added, now),
    paths: [...new Set(added.map((item) => item.parts[0]))],
    summary: { files: added.filter((item) => !item.dir).length, dirs: folders(added), bytes },
    report,
    again: "Someone else saved meanwhile; adding the files on top of their snapshot…",
  });
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
 * The key of the tree of `entries` (a folder whose own entry is `folder`, null at the top)
 * with `added` (named from it) put in: files replace files of their name, folders are
 * made where there are none and filled where there are, each written anew. A file replaced
 * leaves its hard links (`links`, see `commit`).
 */
async function putInto(uploader, fetchTree, links, entries, folder, added, now) {
  const inside = new Map();
  // Where each name is: thousands of files added to one folder stay one pass.
  const at = new Map(entries.map((entry, index) => [hex(entry.name), index]));
  const put = (entry) => {
    at.set(hex(entry.name), entries.length);
    entries.push(entry);
  };
  for (const item of added) {
    const [first, ...rest] = item.parts;
    const name = utf8(first);
    const index = at.get(hex(name)) ?? -1;
    const existing = index < 0 ? null : entries[index];
    if (item.dir || rest.length) {
      if (existing && existing.kind !== "dir") {
        throw new Error(`${first} is a file in this folder, not a folder; rename the folder and add it again`);
      }
      if (!existing) put(folderEntry(name, folder, now));
      if (!inside.has(first)) inside.set(first, []);
      if (rest.length) inside.get(first).push({ ...item, parts: rest });
      continue;
    }
    const entry = {
      name,
      kind: "file",
      mode: 0o644,
      ...ownerIn(folder),
      mtime_ns: item.mtimeNs,
      size: item.size,
      inode: 0,
      ...(item.chunks.length ? { chunks: item.chunks } : {}),
    };
    if (!existing) {
      put(entry);
    } else if (existing.kind === "file" || existing.kind === "symlink") {
      await links.drop(existing);
      entries[index] = entry;
    } else {
      throw new Error(`${first} is a ${existing.kind === "dir" ? "folder" : existing.kind} in this folder; rename the file and add it again`);
    }
  }
  for (const [first, items] of inside) {
    const index = at.get(hex(utf8(first)));
    const entry = entries[index];
    const below = entry.subtree ? await fetchTree(entry.subtree) : [];
    const key = await putInto(uploader, fetchTree, links, below, entry, items, now);
    entries[index] = { ...entry, subtree: key, mtime_ns: now };
  }
  return writeTree(uploader, entries);
}

