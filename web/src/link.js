// The page a link opens (`/l/LINK#FRAGMENT`): the folder it names, browsed and downloaded
// with every object decrypted and checked here. The key is in the fragment, which the
// browser never sends; the server sees the link id, the password if there is one, and the
// ids of the objects fetched, as with `ibackup get`.

import { Damaged, fromBase64, objectId, openPointer } from "./blob.js";
import { fetchObjects, openLink, Refused } from "./api.js";
import { element, say as showLine } from "./dom.js";
import { FolderView } from "./folder.js";

const main = document.getElementById("main");

const state = {
  id: "",
  follow: false,
  key: null,
  password: null,
  token: "",
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
    ? await openPointer(state.key, state.id, fromBase64(opened.pointer))
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
    view.path = [];
    await view.enter("", key);
  } catch (error) {
    if (error instanceof Refused && error.code === "unauthorized" && !state.token) {
      askPassword(state.password !== null);
      return;
    }
    say(explain(error), "error");
  }
}

const view = new FolderView({ main, fetchBlobs, explain, rootLabel: "Shared folder" });

try {
  Object.assign(state, parseAddress());
  start();
} catch (error) {
  say(explain(error), "error");
}
