// A folder of a backup, browsed and downloaded in the page: its trees and chunks fetched
// by id, decrypted and checked here (docs/FORMAT.md), files saved one by one or the folder
// as one .zip. Links (`link.js`) and one's own libraries (`app.js`) show folders with it;
// each says how to fetch blobs by id.

import { Zip, ZipPassThrough } from "fflate";

import { Damaged, KIND, objectId, openBlob } from "./blob.js";
import { element, say, size, tell, whileBusy } from "./dom.js";
import { Cancelled, openSaver, startSaving } from "./saver.js";
import { decodeTree } from "./tree.js";

/** Chunks asked for in one request: up to 8 of at most 4 MiB and a little each. */
const CHUNKS_PER_REQUEST = 8;
/** Requests of a file's chunks under way (fetched, or fetched and being opened) ahead of
 * the one handed on. */
const BATCHES_AHEAD = 4;

export class FolderView {
  /**
   * `fetchBlobs(ids)`: the stored blobs of `ids`, in order; `explain(error)`: an error in
   * words; `rootLabel`: what the top folder is called; `above()`: elements shown above it
   * (a way back, say); `upload(path, items, report, cancel)`, where the reader may write: adds
   * `items` (files and folders, see `uploadForm`) to the folder at `path` (names from the
   * top), saying how far through `report`;
   * `edit(path, edit, report)`, where the reader may write: deletes or renames an entry of
   * the folder at `path`, makes a folder there, or puts back an entry of an earlier
   * snapshot (`editFolder`'s `edit`); `newest`: whether this is the newest snapshot (which
   * is changed in place; from an earlier one, entries are put back into the newest);
   * `makeLink(path, treeKey, {follow, password, expiresInSecs})`, for the owner: a link's
   * address; `convergence(epoch)`, where the page holds the library's keys: each
   * object opened is checked against its key (`openBlob`).
   */
  constructor({ main, fetchBlobs, explain, rootLabel, above = () => [], upload = null, edit = null, newest = true, makeLink = null, convergence = null }) {
    Object.assign(this, { main, fetchBlobs, explain, rootLabel, above, upload, edit, newest, makeLink, convergence });
    startSaving();
    /** The folders from the top down to the one shown: {name, key, entries}. */
    this.path = [];
  }

  say(message, kind) {
    say(this.main, message, kind);
  }

  async loadTree(key) {
    const id = objectId(key);
    const [blob] = await this.fetchBlobs([id]);
    return decodeTree(await openBlob(key, KIND.tree, id, blob, this.convergence));
  }

  /**
   * The decrypted, checked pieces of `entry`'s contents, in order. Each request's chunks are
   * opened as soon as its answer is in, while the next answers come: the network and
   * WebCrypto (which decrypts off the page's thread) work at the same time.
   */
  async *fileParts(entry) {
    const batches = [];
    for (let i = 0; i < entry.chunks.length; i += CHUNKS_PER_REQUEST) {
      batches.push(entry.chunks.slice(i, i + CHUNKS_PER_REQUEST));
    }
    const open = async (chunks) => {
      const ids = chunks.map((chunk) => objectId(chunk.key));
      const blobs = await this.fetchBlobs(ids);
      return Promise.all(chunks.map((chunk, j) => openBlob(chunk.key, KIND.chunk, ids[j], blobs[j], this.convergence)));
    };
    const ahead = [];
    let asked = 0;
    let done = 0;
    while (asked < batches.length || ahead.length) {
      while (ahead.length < BATCHES_AHEAD && asked < batches.length) {
        const chunks = batches[asked++];
        const opened = open(chunks);
        opened.catch(() => {}); // awaited in turn below; a failure is reported there
        ahead.push({ chunks, opened });
      }
      const { chunks, opened } = ahead.shift();
      const plains = await opened;
      for (let j = 0; j < plains.length; j++) {
        if (plains[j].length !== chunks[j].len) throw new Damaged(`a part of ${entry.name} has the wrong length`);
        done += plains[j].length;
        yield plains[j];
      }
    }
    if (done !== entry.size) throw new Damaged(`${entry.name} is not the size its folder says`);
  }

  /** Downloads `entry`'s contents, each chunk checked, into a file of its name: written
   * to disk as it comes where the browser allows (`saver.js`). */
  async download(entry, button) {
    const progress = element("progress", { max: String(entry.size || 1), value: "0", "aria-label": `Downloading ${entry.name}` });
    button.replaceWith(progress);
    let saver = null;
    try {
      saver = await openSaver(entry.name, "application/octet-stream", entry.size, true);
      await whileBusy(async () => {
        let done = 0;
        for await (const part of this.fileParts(entry)) {
          done += part.length;
          await saver.write(part);
          progress.value = done;
        }
        await saver.close();
      });
      progress.replaceWith(element("span", { class: "done" }, "Downloaded"));
    } catch (error) {
      saver?.abort(error);
      progress.replaceWith(error instanceof Cancelled
        ? element("span", { class: "note" }, "Download cancelled")
        : element("span", { class: "error", role: "alert" }, this.explain(error)));
    }
  }

  /**
   * The folder shown, with everything below it, as one .zip (files stored as they are; the
   * tree's times kept), written as it is made. Links and special files are left out and
   * counted.
   */
  async downloadZip(folder, button, line) {
    button.disabled = true;
    let saver = null;
    let files = 0;
    let bytes = 0;
    let skipped = 0;
    try {
      saver = await openSaver(`${folder.name || "shared folder"}.zip`, "application/zip");
      // fflate hands over the archive's pieces as it makes them; each is written before
      // the next file part is added, so the disk sets the pace.
      let made = [];
      let failed = null;
      const zip = new Zip((error, data) => {
        if (error) failed = error;
        else made.push(data);
      });
      const flush = async () => {
        if (failed) throw failed;
        const ready = made;
        made = [];
        for (const piece of ready) await saver.write(piece);
      };
      const walk = async (entries, prefix) => {
        for (const entry of entries) {
          const path = prefix + entry.name;
          if (entry.kind === "dir") {
            await walk(await this.loadTree(entry.subtree), `${path}/`);
          } else if (entry.kind === "file") {
            const file = new ZipPassThrough(path);
            if (entry.mtimeMs) file.mtime = new Date(Math.max(entry.mtimeMs, Date.UTC(1980, 0, 2)));
            zip.add(file);
            for await (const part of this.fileParts(entry)) {
              file.push(part);
              bytes += part.length;
              line.textContent = `Zipping: ${files} files, ${size(bytes)}`;
              await flush();
            }
            file.push(new Uint8Array(0), true);
            await flush();
            files += 1;
          } else {
            skipped++;
          }
        }
      };
      await whileBusy(async () => {
        await walk(folder.entries, "");
        zip.end();
        await flush();
        await saver.close();
      });
      tell(line, `Downloaded ${files} ${files === 1 ? "file" : "files"}, ${size(bytes)}` +
        (skipped ? ` (${skipped} links or special files left out)` : ""));
    } catch (error) {
      saver?.abort(error);
      if (error instanceof Cancelled) tell(line, "Download cancelled", "note");
      else tell(line, this.explain(error), "error");
    }
    button.disabled = false;
  }

  async enter(name, key) {
    this.say("Opening the folder…");
    const entries = await this.loadTree(key);
    this.path.push({ name, key, entries });
    this.show();
  }

  show() {
    const here = this.path[this.path.length - 1];
    const crumbs = element("nav", { "aria-label": "Folders" });
    this.path.forEach((folder, depth) => {
      const last = depth === this.path.length - 1;
      const label = depth === 0 ? this.rootLabel : folder.name;
      crumbs.append(
        last
          ? element("span", { "aria-current": "page" }, label)
          : element("button", { type: "button", class: "crumb", onclick: () => {
              this.path.length = depth + 1;
              this.show();
            } }, label),
        last ? "" : " / ",
      );
    });
    const rows = here.entries.map((entry) => {
      let action;
      if (entry.kind === "dir") {
        action = element("button", { type: "button", onclick: () => this.enter(entry.name, entry.subtree).catch((e) => this.say(this.explain(e), "error")) }, "Open");
      } else if (entry.kind === "file") {
        action = element("button", { type: "button" }, "Download");
        action.addEventListener("click", () => this.download(entry, action));
      } else if (entry.kind === "symlink") {
        action = element("span", { class: "note" }, `link to ${entry.target}`);
      } else {
        action = element("span", { class: "note" }, entry.kind);
      }
      const modified = entry.mtimeMs ? new Date(entry.mtimeMs).toLocaleString() : "";
      const nameCell = element("td", { class: "name" }, entry.kind === "dir" ? `${entry.name}/` : entry.name);
      const actionCell = element("td", { class: "action" }, action);
      if (this.edit && this.newest) actionCell.append(" ", ...this.entryEdits(entry, nameCell, actionCell));
      if (this.edit && !this.newest) actionCell.append(" ", this.putBackButton(entry, here.key));
      return element(
        "tr",
        { "data-name": entry.name },
        nameCell,
        element("td", { class: "size" }, entry.kind === "file" ? size(entry.size) : ""),
        element("td", { class: "time" }, modified),
        actionCell,
      );
    });
    const table = element(
      "table",
      {},
      element("caption", {}, `${here.entries.length} ${here.entries.length === 1 ? "item" : "items"}`),
      element("thead", {}, element("tr", {}, ...["Name", "Size", "Modified", ""].map((h) => element("th", { scope: "col" }, h)))),
      element("tbody", {}, ...rows),
    );
    const zipLine = element("span", { id: "zip-status", role: "status" });
    const zipButton = element("button", { type: "button", id: "zip" }, "Download folder as .zip");
    zipButton.addEventListener("click", () => this.downloadZip(here, zipButton, zipLine));
    const actions = element("p", { class: "actions" }, zipButton, " ", zipLine);
    const listing = here.entries.length ? table : element("p", {}, "This folder is empty.");
    this.main.replaceChildren(
      ...this.above(), crumbs, actions,
      ...(this.upload && this.newest ? [this.uploadForm(listing)] : []),
      ...(this.edit && this.newest ? [this.folderForm()] : []),
      ...(this.edit && !this.newest ? [element("p", { class: "actions" }, "An earlier snapshot: “Put back” copies a file or folder from it into the newest. ",
        element("span", { id: "edit-status", role: "status" }))] : []),
      ...(this.makeLink ? [this.linkForm(here)] : []),
      listing,
    );
  }

  /** "Make a link to this folder": its address shown to copy, with the choices `ibackup
   * link create` offers (follow the newest snapshot, a password, an expiry). */
  linkForm(here) {
    const path = this.shownPath();
    const follow = element("input", { type: "checkbox", id: "link-follow" });
    const password = element("input", { type: "password", id: "link-password", autocomplete: "new-password" });
    const expires = element("select", { id: "link-expires" },
      ...[["never", ""], ["in a day", "86400"], ["in a week", "604800"], ["in 30 days", "2592000"]]
        .map(([label, value]) => element("option", { value }, label)));
    const line = element("p", { id: "link-status", role: "status" });
    const made = element("div", { id: "link-made" });
    const form = element(
      "form",
      { id: "make-link", class: "stacked", onsubmit: async (event) => {
        event.preventDefault();
        made.replaceChildren();
        tell(line, "Making the link…", "note");
        try {
          const url = await this.makeLink(path, here.key, {
            follow: follow.checked,
            password: password.value,
            expiresInSecs: Number(expires.value) || null,
          });
          password.value = "";
          const field = element("input", { type: "text", id: "link-url", readonly: true, value: url, "aria-label": "The link's address" });
          made.replaceChildren(field, " ", element("button", { type: "button", onclick: async () => {
            field.select();
            await navigator.clipboard?.writeText(url).catch(() => {});
          } }, "Copy"));
          tell(line, "Anyone with this address can open the folder: its key is in the part after #, which the server never sees.");
        } catch (error) {
          tell(line, this.explain(error), "error");
        }
      } },
      element("label", {}, follow, " Always show the newest snapshot of this folder"),
      element("label", { for: "link-password" }, "Password (optional)"),
      password,
      element("label", { for: "link-expires" }, "Expires"),
      expires,
      element("button", { type: "submit" }, "Make link"),
    );
    return element("details", { id: "link-maker" }, element("summary", {}, "Make a link to this folder"), form, line, made);
  }

  /** The folder shown, as names from the top. */
  shownPath() {
    return this.path.slice(1).map((folder) => folder.name);
  }

  /** Runs `edit` on the folder shown, its progress and errors said on the edit line. */
  async change(edit) {
    const line = document.getElementById("edit-status");
    const path = this.shownPath();
    try {
      await whileBusy(() => this.edit(path, edit, (text) => tell(line, text, "note")));
    } catch (error) {
      tell(document.getElementById("edit-status") ?? line, this.explain(error), "error");
    }
  }

  /** "Rename" and "Delete" for `entry`: renaming asks for the new name in its name cell,
   * deleting asks again in its action cell. */
  entryEdits(entry, nameCell, actionCell) {
    const rename = element("button", { type: "button" }, "Rename");
    rename.addEventListener("click", () => {
      const input = element("input", { type: "text", value: entry.name, "aria-label": `New name for ${entry.name}` });
      const form = element("form", { class: "inline" }, input, " ", element("button", { type: "submit" }, "Save name"));
      form.addEventListener("submit", (event) => {
        event.preventDefault();
        this.change({ rename: entry.name, to: input.value.trim() });
      });
      nameCell.replaceChildren(form);
      input.focus();
      input.select();
    });
    const remove = element("button", { type: "button" }, "Delete");
    remove.addEventListener("click", () => {
      const yes = element("button", { type: "button", class: "danger" }, `Delete ${entry.name}`);
      yes.addEventListener("click", () => this.change({ remove: entry.name }));
      const no = element("button", { type: "button" }, "Keep");
      no.addEventListener("click", () => this.show());
      actionCell.replaceChildren(element("span", { class: "note" }, "Earlier snapshots keep it. "), yes, " ", no);
      no.focus();
    });
    return [rename, " ", remove];
  }

  /** "Put back" for `entry` of the folder whose tree is `treeKey`, in an earlier snapshot. */
  putBackButton(entry, treeKey) {
    const button = element("button", { type: "button", "aria-label": `Put back ${entry.name}` }, "Put back");
    button.addEventListener("click", () => this.change({ putBack: entry.name, from: treeKey }));
    return button;
  }

  /** "New folder": an empty folder made in the folder shown; the edit line says how
   * renames, deletions and new folders went. */
  folderForm() {
    const input = element("input", { type: "text", id: "new-folder", autocomplete: "off" });
    const form = element(
      "form",
      { class: "actions" },
      element("label", { for: "new-folder" }, "New folder "),
      input,
      " ",
      element("button", { type: "submit" }, "Make folder"),
      " ",
      element("span", { id: "edit-status", role: "status" }),
    );
    form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.change({ make: input.value.trim() });
    });
    return form;
  }

  uploadForm(listing) {
    const path = this.shownPath();
    return uploadForm((items, report, cancel) => this.upload(path, items, report, cancel), this.explain, listing);
  }

}

/**
 * "Add files" and "Add a folder": choosing files or a folder, or dropping files and folders
 * on `dropZone`, hands what was picked (`{ parts, file }` for a file, `{ parts }` for a
 * folder, `parts` being the names from the folder shown) to `add(items, report, cancel)`
 * (a new snapshot of the library), with its progress and errors said beside the buttons;
 * "Cancel upload" sets `cancel.asked`, which `add` heeds until it commits.
 */
export function uploadForm(add, explain, dropZone) {
  const line = element("span", { id: "upload-status", role: "status" });
  const files = element("input", { type: "file", id: "upload-files", multiple: true });
  const folder = element("input", { type: "file", id: "upload-folder", webkitdirectory: true });
  const stop = element("button", { type: "button", hidden: true }, "Cancel upload");
  let cancel = null;
  stop.addEventListener("click", () => {
    if (!cancel) return;
    cancel.asked = true;
    stop.disabled = true;
    tell(line, "Cancelling once the part being sent is in…", "note");
  });
  const take = async (picking) => {
    files.disabled = folder.disabled = true;
    cancel = { asked: false };
    try {
      const items = await picking;
      if (items.length) {
        stop.hidden = stop.disabled = false;
        await whileBusy(() => add(items, (text) => cancel.asked || tell(line, text, "note"), cancel));
      }
    } catch (error) {
      if (error instanceof Cancelled) tell(line, "Upload cancelled: nothing was added.", "note");
      else tell(line, explain(error), "error");
    }
    files.disabled = folder.disabled = false;
    stop.hidden = true;
    cancel = null;
  };
  files.addEventListener("change", () => take(Promise.resolve([...files.files].map((file) => ({ parts: [file.name], file })))));
  folder.addEventListener("change", () => take(Promise.resolve(pickedFolder([...folder.files]))));
  dropZone.addEventListener("dragover", (event) => event.preventDefault());
  dropZone.addEventListener("drop", (event) => {
    event.preventDefault();
    take(dropped(event.dataTransfer));
  });
  return element(
    "p",
    { class: "actions" },
    element("span", { class: "pick" }, element("label", { for: "upload-files" }, "Add files to this folder "), files),
    element("span", { class: "pick" }, element("label", { for: "upload-folder" }, "Add a folder "), folder),
    stop,
    " ",
    line,
  );
}

/** A folder chosen with the folder picker: its files, named from the folder up (the
 * picker leaves out empty folders). */
function pickedFolder(files) {
  return files.map((file) => ({ parts: (file.webkitRelativePath || file.name).split("/"), file }));
}

/** What was dropped: files as they are, folders walked to their last file and empty
 * folder. Must be called in the drop event itself (its items are gone after it). */
function dropped(transfer) {
  if (!transfer) return Promise.resolve([]);
  const entries = [...transfer.items].filter((item) => item.kind === "file").map((item) => [item.webkitGetAsEntry?.(), item.getAsFile()]);
  return (async () => {
    const items = [];
    for (const [entry, file] of entries) {
      if (entry?.isDirectory) await walk(entry, [entry.name], items);
      else if (file) items.push({ parts: [file.name], file });
    }
    return items;
  })();
}

/** Every file and folder under directory entry `directory` (at `parts`), into `items`. */
async function walk(directory, parts, items) {
  items.push({ parts });
  const reader = directory.createReader();
  for (;;) {
    // A reader answers in batches until it answers with none.
    const batch = await new Promise((resolve, reject) => reader.readEntries(resolve, reject));
    if (!batch.length) return;
    for (const entry of batch) {
      const here = [...parts, entry.name];
      if (entry.isDirectory) await walk(entry, here, items);
      else items.push({ parts: here, file: await new Promise((resolve, reject) => entry.file(resolve, reject)) });
    }
  }
}
