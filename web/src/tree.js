// Trees as the client writes them (docs/FORMAT.md, "Trees and snapshots"): a format byte,
// then CBOR of `{entries: [Entry]}`. Decoded by cborg; names are bytes.

import { decode } from "cborg";

import { Damaged } from "./blob.js";

const TREE_FORMAT = 2;
const names = new TextDecoder("utf-8", { fatal: false });

/** The entries of a tree's plaintext, checked as the client checks them. */
export function decodeTree(plain) {
  if (plain[0] !== TREE_FORMAT) {
    throw new Damaged(`a folder is in format ${plain[0]}, which this page does not read`);
  }
  let tree;
  try {
    tree = decode(plain.subarray(1), { useMaps: false });
  } catch (e) {
    throw new Damaged(`a folder does not decode: ${e.message}`);
  }
  if (!tree || !Array.isArray(tree.entries)) throw new Damaged("a folder has no entries");
  return tree.entries.map((entry) => {
    if (!(entry.name instanceof Uint8Array) || typeof entry.kind !== "string") {
      throw new Damaged("a folder entry is malformed");
    }
    const name = names.decode(entry.name);
    if (name === "" || name === "." || name === ".." || name.includes("/")) {
      throw new Damaged("a folder entry has a name no file may have");
    }
    return {
      name,
      kind: entry.kind,
      size: Number(entry.size ?? 0),
      mtimeMs: entry.mtime_ns === undefined ? 0 : Number(BigInt(entry.mtime_ns) / 1000000n),
      chunks: (entry.chunks ?? []).map((c) => ({ key: c.key, len: Number(c.len) })),
      subtree: entry.subtree ?? null,
      target: entry.target ? names.decode(entry.target) : null,
    };
  });
}
