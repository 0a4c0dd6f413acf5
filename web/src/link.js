// The page a link opens (`/l/LINK#FRAGMENT`): the folder it names, browsed and downloaded
// with every object decrypted and checked here. The key is in the fragment, which the
// browser never sends; the server sees the link id, the password if there is one, and the
// ids of the objects fetched, as with `ibackup get`.

import { Damaged, KIND, fromBase64, objectId, openBlob, openPointer } from "./blob.js";
import { fetchObjects, openLink, Refused } from "./api.js";
import { element, save, say as showLine, size } from "./dom.js";
import { decodeTree } from "./tree.js";
import { Zip, ZipPassThrough } from "fflate";

/** Chunks asked for in one request: up to 8 of at most 4 MiB and a little each. */
const CHUNKS_PER_REQUEST = 8;
/** Requests for a file's chunks in flight at once. */
const REQUESTS_IN_FLIGHT = 3;

const main = document.getElementById("main");

const state = {
  id: "",
  follow: false,
  key: null,
  password: null,
  token: "",
  /** The folders from the link's down to the one shown: {name, key, entries}. */
  path: [],
};

function say(message, kind = "status") {
  showLine(main, message, kind);
}

/** The link id and key from the address; an address cut short is said so. */
function parseAddress() {
  const path = location.pathname.match(/^\/l\/([0-9a-f]{32})\/?$/);
  const fragment = location.hash.slice(1);
  const kind = fragment[0];
  const keyText = fragment.slice(1).split(".")[0];
  let key = null;
  try {
    key = keyText ? fromBase64(keyText, true) : null;
  } catch {
    key = null;
  }
  if (!path || (kind !== "t" && kind !== "f") || !key || key.length !== 32) {
    throw new Refused(0, {
      message:
        "this address is not a whole ibackup link: the part after # is missing or cut " +
        "short. Copy the whole link again from where it was sent.",
    });
  }
  return { id: path[1], follow: kind === "f", key };
}

function explain(error) {
  if (error instanceof Refused) {
    switch (error.code) {
      case "gone": {
        const said = error.message.charAt(0).toUpperCase() + error.message.slice(1);
        return `${said}. Ask whoever sent it for a new one.`;
      }
      case "not_found":
        return "There is no such link. Check that the whole address was copied.";
      case "too_many_requests":
        return `Too many tries. Wait ${error.retryAfter ?? 60} seconds, then try again.`;
      default:
        return error.message;
    }
  }
  if (error instanceof Damaged) {
    return `This folder cannot be shown safely: ${error.message}. Nothing was saved.`;
  }
  return `Something went wrong: ${error.message}`;
}

/** Opens the link (again, once its hour-long token ran out). */
async function open() {
  const opened = await openLink(state.id, state.password);
  state.token = opened.token;
  const treeKey = state.follow
    ? await openPointer(state.key, state.id, Uint8Array.from(atob(opened.pointer), (c) => c.charCodeAt(0)))
    : state.key;
  if (treeKey.length !== 32) throw new Damaged("the link's pointer does not hold a key");
  const id = objectId(treeKey);
  const named = Array.from(id, (b) => b.toString(16).padStart(2, "0")).join("");
  if (named !== opened.root) {
    throw new Damaged("the server answered with another folder than the link names");
  }
  return treeKey;
}

/** Blobs of `ids`, opening the link again if its token expired meanwhile. */
async function fetchBlobs(ids) {
  try {
    return await fetchObjects(state.id, state.token, ids);
  } catch (error) {
    if (error instanceof Refused && error.code === "unauthorized") {
      await open();
      return fetchObjects(state.id, state.token, ids);
    }
    throw error;
  }
}

async function loadTree(key) {
  const id = objectId(key);
  const [blob] = await fetchBlobs([id]);
  return decodeTree(await openBlob(key, KIND.tree, id, blob));
}

/**
 * The decrypted, checked pieces of `entry`'s contents, in order. A few requests are in
 * flight while the page decrypts what came: the network and WebCrypto (which decrypts off
 * the page's thread) work at the same time.
 */
async function* fileParts(entry) {
  const batches = [];
  for (let i = 0; i < entry.chunks.length; i += CHUNKS_PER_REQUEST) {
    const chunks = entry.chunks.slice(i, i + CHUNKS_PER_REQUEST);
    batches.push({ chunks, ids: chunks.map((chunk) => objectId(chunk.key)) });
  }
  const pending = [];
  let asked = 0;
  let done = 0;
  for (const batch of batches) {
    while (pending.length < REQUESTS_IN_FLIGHT && asked < batches.length) {
      const ask = fetchBlobs(batches[asked++].ids);
      ask.catch(() => {}); // awaited in turn below; a failure is reported there
      pending.push(ask);
    }
    const blobs = await pending.shift();
    const plains = await Promise.all(
      batch.chunks.map((chunk, j) => openBlob(chunk.key, KIND.chunk, batch.ids[j], blobs[j])),
    );
    for (let j = 0; j < plains.length; j++) {
      if (plains[j].length !== batch.chunks[j].len) throw new Damaged(`a part of ${entry.name} has the wrong length`);
      done += plains[j].length;
      yield plains[j];
    }
  }
  if (done !== entry.size) throw new Damaged(`${entry.name} is not the size its folder says`);
}

/** Downloads `entry`'s contents, each chunk checked, into a file of its name. */
async function download(entry, button) {
  const progress = element("progress", { max: String(entry.size || 1), value: "0", "aria-label": `Downloading ${entry.name}` });
  button.replaceWith(progress);
  try {
    const parts = [];
    let done = 0;
    for await (const part of fileParts(entry)) {
      parts.push(part);
      done += part.length;
      progress.value = done;
    }
    save(new Blob(parts, { type: "application/octet-stream" }), entry.name);
    progress.replaceWith(element("span", { class: "done" }, "Downloaded"));
  } catch (error) {
    progress.replaceWith(element("span", { class: "error", role: "alert" }, explain(error)));
  }
}

/**
 * The folder shown, with everything below it, as one .zip (files stored as they are; the
 * tree's times kept). Links and special files are left out and counted.
 */
async function downloadZip(folder, button, line) {
  button.disabled = true;
  const parts = [];
  let failed = null;
  const zip = new Zip((error, data) => {
    if (error) failed = error;
    else parts.push(data);
  });
  let files = 0;
  let bytes = 0;
  let skipped = 0;
  const walk = async (entries, prefix) => {
    for (const entry of entries) {
      const path = prefix + entry.name;
      if (entry.kind === "dir") {
        await walk(await loadTree(entry.subtree), `${path}/`);
      } else if (entry.kind === "file") {
        const file = new ZipPassThrough(path);
        if (entry.mtimeMs) file.mtime = new Date(Math.max(entry.mtimeMs, Date.UTC(1980, 0, 2)));
        zip.add(file);
        let pushed = false;
        for await (const part of fileParts(entry)) {
          file.push(part);
          pushed = true;
          bytes += part.length;
          line.textContent = `Zipping: ${files} files, ${size(bytes)}`;
        }
        file.push(new Uint8Array(0), true);
        files += pushed || entry.size === 0 ? 1 : 0;
      } else {
        skipped++;
      }
    }
  };
  try {
    await walk(folder.entries, "");
    zip.end();
    if (failed) throw failed;
    save(new Blob(parts, { type: "application/zip" }), `${folder.name || "shared folder"}.zip`);
    line.className = "done";
    line.textContent = `Downloaded ${files} ${files === 1 ? "file" : "files"}, ${size(bytes)}` +
      (skipped ? ` (${skipped} links or special files left out)` : "");
  } catch (error) {
    line.className = "error";
    line.setAttribute("role", "alert");
    line.textContent = explain(error);
  }
  button.disabled = false;
}

async function enter(name, key) {
  say("Opening the folder…");
  const entries = await loadTree(key);
  state.path.push({ name, key, entries });
  show();
}

function show() {
  const here = state.path[state.path.length - 1];
  const crumbs = element("nav", { "aria-label": "Folders" });
  state.path.forEach((folder, depth) => {
    const last = depth === state.path.length - 1;
    const label = depth === 0 ? "Shared folder" : folder.name;
    crumbs.append(
      last
        ? element("span", { "aria-current": "page" }, label)
        : element("button", { type: "button", class: "crumb", onclick: () => {
            state.path.length = depth + 1;
            show();
          } }, label),
      last ? "" : " / ",
    );
  });
  const rows = here.entries.map((entry) => {
    let action;
    if (entry.kind === "dir") {
      action = element("button", { type: "button", onclick: () => enter(entry.name, entry.subtree).catch((e) => say(explain(e), "error")) }, "Open");
    } else if (entry.kind === "file") {
      action = element("button", { type: "button" }, "Download");
      action.addEventListener("click", () => download(entry, action));
    } else if (entry.kind === "symlink") {
      action = element("span", { class: "note" }, `link to ${entry.target}`);
    } else {
      action = element("span", { class: "note" }, entry.kind);
    }
    const modified = entry.mtimeMs ? new Date(entry.mtimeMs).toLocaleString() : "";
    return element(
      "tr",
      { "data-name": entry.name },
      element("td", { class: "name" }, entry.kind === "dir" ? `${entry.name}/` : entry.name),
      element("td", { class: "size" }, entry.kind === "file" ? size(entry.size) : ""),
      element("td", { class: "time" }, modified),
      element("td", { class: "action" }, action),
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
  zipButton.addEventListener("click", () => downloadZip(here, zipButton, zipLine));
  const actions = element("p", { class: "actions" }, zipButton, " ", zipLine);
  main.replaceChildren(crumbs, actions, here.entries.length ? table : element("p", {}, "This folder is empty."));
}

function askPassword(wrong) {
  const input = element("input", { type: "password", id: "password", name: "password", autocomplete: "off", required: "" });
  const form = element(
    "form",
    { id: "password-form", onsubmit: (event) => {
      event.preventDefault();
      state.password = input.value;
      start();
    } },
    element("label", { for: "password" }, "This link needs a password"),
    input,
    element("button", { type: "submit" }, "Open"),
  );
  main.replaceChildren(form);
  if (wrong) form.append(element("p", { class: "error", role: "alert" }, "That password is not the link's. Try again."));
  input.focus();
}

async function start() {
  say("Opening the link…");
  try {
    const key = await open();
    state.path = [];
    await enter("", key);
  } catch (error) {
    if (error instanceof Refused && error.code === "unauthorized" && !state.token) {
      askPassword(state.password !== null);
      return;
    }
    say(explain(error), "error");
  }
}

try {
  Object.assign(state, parseAddress());
  start();
} catch (error) {
  say(explain(error), "error");
}
