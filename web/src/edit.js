// Files and folders changed in the page without new contents: deleted, renamed, or an empty
// folder made. Each change is a new snapshot of the library (`writer.js`); the snapshots
// before it keep what was there, as after a change in the mount.

import { Damaged, same, utf8 } from "./blob.js";
import { checkName, commit, convergenceOf, folderEntry, nowNs, rawTree, uploaderFor, writeTree } from "./writer.js";

/**
 * Changes the folder at `path` (names from the root) of library `info`, whose keys are
 * `keys`, as `author` (`target`: these and `fetchBlobs`, as `commit` takes them). `edit`
 * is `{ remove: name }`, `{ rename: name, to }`, `{ make: name }` (an empty folder) or
 * `{ putBack: name, from }`: the entry of that name in the tree `from` (the same folder in
 * an earlier snapshot) put back as it was there, its contents referred to, not sent again.
 * Returns what `commit` returns.
 */
export async function editFolder({ edit, report, ...target }) {
  const named = edit.remove ?? edit.rename ?? edit.make ?? edit.putBack;
  if (edit.make !== undefined) checkName(edit.make);
  if (edit.rename !== undefined) {
    checkName(edit.to);
    if (edit.to === edit.rename) throw new Error(`${edit.to} is its name already`);
  }
  const uploader = uploaderFor(target.info, target.keys);
  const change = async (entries, folder, links) => {
    const find = (name) => entries.findIndex((entry) => same(entry.name, utf8(name)));
    const taken = (name) => {
      if (find(name) >= 0) throw new Error(`there is already something called ${name} in this folder; pick another name`);
    };
    const index = find(named);
    if (edit.make !== undefined) {
      taken(named);
      entries.push(folderEntry(utf8(named), folder, nowNs(), await writeTree(uploader, [])));
    } else if (edit.putBack !== undefined) {
      const before = (await rawTree(target.fetchBlobs, edit.from, convergenceOf(target.keys))).find((entry) => same(entry.name, utf8(named)));
      if (!before) throw new Damaged(`${named} is not in the earlier snapshot's folder`);
      const earlier = await links.bringBack(before);
      if (index < 0) {
        entries.push(earlier);
      } else if (entries[index].kind === "dir") {
        throw new Error(`the newest snapshot has a folder called ${named}; rename or delete it first, or put back what is inside`);
      } else if (earlier.kind === "dir") {
        throw new Error(`the newest snapshot has a file called ${named}; rename or delete it first`);
      } else {
        await links.drop(entries[index]);
        entries[index] = earlier;
      }
    } else if (index < 0) {
      throw new Error(`${named} is no longer in this folder (changed elsewhere meanwhile); open the newest snapshot and try again`);
    } else if (edit.remove !== undefined) {
      await links.drop(entries[index]);
      entries.splice(index, 1);
    } else {
      taken(edit.to);
      entries[index] = { ...entries[index], name: utf8(edit.to) };
    }
    return writeTree(uploader, entries);
  };
  return commit({
    ...target,
    uploader,
    change,
    paths: [edit.to ?? named],
    summary: { files: 0, dirs: edit.make !== undefined ? 1 : 0, bytes: 0 },
    report,
    again: "Someone else saved meanwhile; making the change on top of their snapshot…",
  });
}
