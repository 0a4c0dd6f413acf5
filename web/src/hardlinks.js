// Hard links in what the page writes (docs/FORMAT.md, "Hard links"): the entries of one
// snapshot that share a nonzero `link` are one file under several names, and each says in
// `nlink` how many names the file has. A name the page deletes or replaces leaves the
// others one name short, wherever in the library they are, so after such a change every
// name of the groups it touched is counted again, as the mount does when it writes back.
// A file or folder put back from an earlier snapshot comes back with links of its own (new
// group ids, kept among the names it brings), not joined to whatever the newest holds now.

import { hex, same } from "./blob.js";

/** Trees fetched in one request while walking a library. */
const PER_LOAD = 256;

/** A new group id: a random nonzero u64, as the mount picks them. */
function newGroup() {
  const [id] = crypto.getRandomValues(new BigUint64Array(1));
  return id === 0n ? 1n : id;
}

/** The names of groups the way they are compared here (`link` decodes as a Number or a
 * BigInt, by its size). */
const group = (link) => String(link);

/** `entry` with its link fields set for a group of `names` names (none for one). */
function counted(entry, names) {
  const { link, nlink, ...rest } = entry;
  if (names > 1) return Number(nlink ?? 0) === names ? entry : { ...rest, link, nlink: names };
  return link === undefined && nlink === undefined ? entry : rest;
}

/**
 * The changes to hard links of one attempt at a commit: `load(keys)` gives trees' entries
 * (arrays not to be changed), `write(entries)` queues a tree and gives its key.
 */
export class LinkEdits {
  constructor(load, write) {
    Object.assign(this, { load, write });
    this.touched = new Set();
  }

  /** `entry` (a file, or a folder and all below it) leaves the snapshot: the groups it
   * has names in are counted again. */
  async drop(entry) {
    for (const link of await this.groupsIn(entry)) this.touched.add(link);
  }

  /** `entry` from an earlier snapshot, to be put back: its groups renamed, so its names
   * stay linked among themselves and to nothing else. */
  async bringBack(entry) {
    const renamed = new Map();
    const fix = (e) => {
      if (!e.link) return null;
      if (!renamed.has(group(e.link))) renamed.set(group(e.link), newGroup());
      return { ...e, link: renamed.get(group(e.link)) };
    };
    let back = fix(entry) ?? entry;
    if (entry.kind === "dir" && entry.subtree) {
      const trees = await this.walk(entry.subtree);
      const subtree = await this.rewrite(trees, entry.subtree, fix);
      if (!same(subtree, entry.subtree)) back = { ...back, subtree };
    }
    for (const link of renamed.values()) this.touched.add(group(link));
    return back;
  }

  /** The key of root tree `root` with every name of the touched groups counted. */
  async settle(root) {
    if (!this.touched.size) return root;
    const trees = await this.walk(root);
    // Names per group below each tree, counted once per tree however often it appears.
    const below = new Map();
    const countBelow = (key) => {
      const id = hex(key);
      if (below.has(id)) return below.get(id);
      const counts = new Map();
      for (const entry of trees.get(id)) {
        if (entry.kind === "dir" && entry.subtree) {
          for (const [link, n] of countBelow(entry.subtree)) counts.set(link, (counts.get(link) ?? 0) + n);
        } else if (entry.link && this.touched.has(group(entry.link))) {
          counts.set(group(entry.link), (counts.get(group(entry.link)) ?? 0) + 1);
        }
      }
      below.set(id, counts);
      return counts;
    };
    const names = countBelow(root);
    return this.rewrite(trees, root, (entry) => {
      if (!entry.link || !this.touched.has(group(entry.link))) return null;
      const fixed = counted(entry, names.get(group(entry.link)));
      return fixed === entry ? null : fixed;
    });
  }

  /** The groups `entry` has names in. */
  async groupsIn(entry) {
    if (entry.kind !== "dir") return entry.link ? [group(entry.link)] : [];
    if (!entry.subtree) return [];
    const found = new Set();
    for (const entries of (await this.walk(entry.subtree)).values()) {
      for (const e of entries) if (e.link) found.add(group(e.link));
    }
    return [...found];
  }

  /** Every tree at and below `root`: hex of the key to its entries. A level at a time,
   * each tree fetched once. */
  async walk(root) {
    const trees = new Map();
    let level = [root];
    while (level.length) {
      const fresh = [...new Map(level.map((key) => [hex(key), key])).entries()].filter(([id]) => !trees.has(id));
      const next = [];
      for (let at = 0; at < fresh.length; at += PER_LOAD) {
        const part = fresh.slice(at, at + PER_LOAD);
        const loaded = await this.load(part.map(([, key]) => key));
        part.forEach(([id], i) => {
          trees.set(id, loaded[i]);
          for (const e of loaded[i]) if (e.kind === "dir" && e.subtree) next.push(e.subtree);
        });
      }
      level = next;
    }
    return trees;
  }

  /** The key of tree `key` (of `trees`) with `fix(entry)` (a new entry, or null to keep
   * it) applied to every entry at and below it; trees with nothing changed keep their
   * keys, and each tree is written once however often it appears. */
  async rewrite(trees, key, fix, done = new Map()) {
    const id = hex(key);
    if (!done.has(id)) {
      done.set(id, (async () => {
        let changed = false;
        const entries = [];
        for (const entry of trees.get(id)) {
          let next = fix(entry) ?? entry;
          if (next.kind === "dir" && next.subtree) {
            const subtree = await this.rewrite(trees, next.subtree, fix, done);
            if (!same(subtree, next.subtree)) next = { ...next, subtree };
          }
          changed ||= next !== entry;
          entries.push(next);
        }
        return changed ? this.write(entries) : key;
      })());
    }
    return done.get(id);
  }
}
