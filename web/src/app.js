// The signed-in pages at the server's address: sign in, and My Profile. The password is
// stretched here with Argon2id (the account's salt and cost, as the command-line client
// does), and only the auth secret it yields is sent; the key-encryption key it also yields
// stays in this page's memory. The session is the server's `__Host-` cookie, which this
// script cannot read.

import { blake3 } from "@noble/hashes/blake3.js";
import { argon2id } from "hash-wasm";
import nacl from "tweetnacl";

import { call, frames, request, Refused } from "./api.js";
import { element, save, say, size, tell, when } from "./dom.js";
import { Damaged, base64, fromBase64, fromHex, hex, seal, utf8 } from "./blob.js";
import { FolderView, uploadForm } from "./folder.js";
import { linksSection, makeLink, repointLinks } from "./mylinks.js";
import { editFolder } from "./edit.js";
import { uploadFiles } from "./upload.js";
import { convergenceOf } from "./writer.js";
import { checkHead } from "./seen.js";
import { named, nextRoster, openRoster, others, refusedWarning, rememberRoster, sealRoster, strangers } from "./roster.js";
import {
  Contacts,
  accountKeys,
  fingerprint,
  grantTo,
  libraryKeys,
  libraryName,
  newestEpoch,
  nextEpoch,
  openSnapshot,
  ownLibrary,
  sealName,
} from "./library.js";

const main = document.getElementById("main");
/** The account's key pair once the password opened it in this page (gone on reload). */
let me = null;
/** The names of the libraries My Profile listed, by id (for the links table). */
const libraryNames = new Map();
const account = document.getElementById("account");

/** What a failed request means, in words. */
function explain(error) {
  if (error instanceof Refused) {
    if (error.code === "too_many_requests") {
      return `Too many tries. Wait ${error.retryAfter ?? 60} seconds, then try again.`;
    }
    return error.message.charAt(0).toUpperCase() + error.message.slice(1);
  }
  return `Something went wrong: ${error.message}`;
}

/** The account's cost parameters, refused as the command-line client refuses them. */
function checkedCost(kdf) {
  const { memory_kib: m, iterations: t, parallelism: p } = kdf;
  if (m < 19 * 1024 || t < 2 || p < 1) throw new Error("the server asks for a password stretching weaker than allowed");
  if (m > 1024 * 1024 || t > 64 || p > 16) throw new Error("the server asks for an unreasonably costly password stretching");
  return { m, t, p };
}

/** The cost every new password is stretched with (the command-line client's default). */
const NEW_PASSWORD_COST = { memory_kib: 64 * 1024, iterations: 3, parallelism: 1 };

/** The key-encryption key (first) and auth secret (last) of `password`: hash-wasm's
 * Argon2id, compiled to WebAssembly (0.2 s for the default cost where the JavaScript one
 * took 1 to 2 s; DECISIONS 97). It holds the page's thread while it runs, so the status
 * said before it is drawn first. */
async function stretch(password, salt, kdf) {
  const { m, t, p } = checkedCost(kdf);
  await new Promise((drawn) => setTimeout(drawn, 0));
  const derived = await argon2id({ password: utf8(password), salt, parallelism: p, iterations: t, memorySize: m, hashLength: 64, outputType: "binary" });
  const out = { kek: derived.slice(0, 32), auth: derived.slice(32) };
  derived.fill(0);
  return out;
}

/** The key-encryption key and auth secret of `password` for `email`, with the salt and
 * cost the server holds for the account. */
async function stretched(email, password) {
  const pre = await call("POST", "/api/v1/prelogin", { email });
  return stretch(password, fromBase64(pre.salt), pre.kdf);
}

/** A new password: the account key is opened with the old password's key and wrapped
 * under the new one's, here; the server gets the wrapped key and the new auth secret. */
async function changePassword(email, current, next) {
  const old = await stretched(email, current);
  // A sign-in with the current password hands back the wrapped account key (and a new
  // session for this browser; the change ends every other).
  const signed = await call("POST", "/api/v1/sessions", { email, auth_secret: base64(old.auth), client: "web browser" });
  let pair;
  try {
    pair = await accountKeys(old.kek, signed.keys.wrapped_private_key);
  } finally {
    old.kek.fill(0);
  }
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const fresh = await stretch(next, salt, NEW_PASSWORD_COST);
  const rewrapped = await seal(fresh.kek, pair.secretKey);
  pair.secretKey.fill(0);
  fresh.kek.fill(0);
  const done = await call("POST", "/api/v1/account/password", {
    current_auth_secret: base64(old.auth),
    auth_secret: base64(fresh.auth),
    salt: base64(salt),
    kdf: NEW_PASSWORD_COST,
    wrapped_private_key: base64(rewrapped),
  });
  old.auth.fill(0);
  fresh.auth.fill(0);
  return done.sessions_ended;
}


/** The name of a new account's first library. */
const DEFAULT_LIBRARY = "Backups";

/**
 * Everything a new account sends at sign-up, made here: an X25519 key pair (tweetnacl),
 * the private key wrapped under the password's key and under a new recovery key, and the
 * first library with its name sealed and its first epoch key granted by the account to
 * itself (docs/FORMAT.md, "Keys"). Returns the request and the recovery key to show.
 */
async function newAccount(form) {
  const pair = nacl.box.keyPair();
  const recovery = crypto.getRandomValues(new Uint8Array(32));
  const salt = crypto.getRandomValues(new Uint8Array(16));
  const login = await stretch(form.password, salt, NEW_PASSWORD_COST);
  const libraryId = crypto.getRandomValues(new Uint8Array(16));
  const epochKey = crypto.getRandomValues(new Uint8Array(32));
  const request = {
    email: form.email,
    first_name: form.firstName,
    last_name: form.lastName,
    marketing_email: form.marketing,
    auth_secret: base64(login.auth),
    salt: base64(salt),
    kdf: NEW_PASSWORD_COST,
    wrapped_private_key: base64(await seal(login.kek, pair.secretKey)),
    public_key: base64(pair.publicKey),
    recovery_wrapped_private_key: base64(await seal(recovery, pair.secretKey)),
    recovery_proof: base64(blake3(recovery, { context: utf8("ibackup 2026 recovery proof") })),
    library: {
      id: hex(libraryId),
      name_sealed: base64(await sealName(epochKey, libraryId, 1, DEFAULT_LIBRARY)),
      grant: base64(grantTo(pair, pair.publicKey, libraryId, 1, epochKey)),
    },
    client: "web browser",
  };
  const keys = nacl.box.keyPair.fromSecretKey(pair.secretKey.slice());
  for (const secret of [login.kek, login.auth, pair.secretKey, epochKey]) secret.fill(0);
  const shown = hex(recovery).match(/.{8}/g).join("-");
  recovery.fill(0);
  return { request, recoveryKey: shown, keys };
}

function signUpForm() {
  account.replaceChildren();
  const input = (id, label, attributes) => [
    element("label", { for: id }, label),
    element("input", { id, name: id, required: true, ...attributes }),
  ];
  const marketing = element("input", { type: "checkbox", id: "signup-marketing" });
  const line = statusLine("signup-status");
  const button = element("button", { type: "submit" }, "Create account");
  const form = element(
    "form",
    { id: "sign-up", class: "stacked", onsubmit: async (event) => {
      event.preventDefault();
      const value = (id) => form.querySelector(`#${id}`).value;
      const password = value("signup-password");
      if (password !== value("signup-password-again")) {
        tell(line, "The two passwords differ; type the same one twice.", "error");
        return;
      }
      if ([...password].length < 8) {
        tell(line, "Choose a password of at least 8 characters.", "error");
        return;
      }
      button.disabled = true;
      tell(line, "Making your keys and stretching your password… (a few seconds, on purpose)", "note");
      try {
        const made = await newAccount({
          email: value("signup-email").trim().toLowerCase(),
          firstName: value("signup-first").trim(),
          lastName: value("signup-last").trim(),
          password,
          marketing: marketing.checked,
        });
        await request("POST", "/api/v1/accounts", made.request);
        me = made.keys;
        showRecoveryKey(made.recoveryKey);
      } catch (error) {
        tell(line, explain(error), "error");
        button.disabled = false;
      }
    } },
    element("h2", {}, "Create an account"),
    ...input("signup-first", "First name", { autocomplete: "given-name" }),
    ...input("signup-last", "Last name", { autocomplete: "family-name" }),
    ...input("signup-email", "E-mail address", { type: "email", autocomplete: "email" }),
    ...input("signup-password", "Password (at least 8 characters)", { type: "password", autocomplete: "new-password", minlength: "8" }),
    ...input("signup-password-again", "Password, again", { type: "password", autocomplete: "new-password" }),
    element("div", { class: "check" }, marketing, element("label", { for: "signup-marketing" }, "Send me news about ibackup by e-mail")),
    button,
    line,
    element("p", {}, "Have an account? ", element("button", { type: "button", class: "crumb", onclick: () => signInForm() }, "Sign in")),
  );
  main.replaceChildren(form);
}

/** The recovery key, shown once: it is the only way back to the data without the
 * password, and the server cannot show it again. */
function showRecoveryKey(key) {
  const agreed = element("input", { type: "checkbox", id: "recovery-noted" });
  const next = element("button", { type: "button", disabled: true, onclick: () => profile("Welcome to ibackup.") }, "Continue");
  agreed.addEventListener("change", () => {
    next.disabled = !agreed.checked;
  });
  main.replaceChildren(
    element("h2", {}, "Your recovery key"),
    element("p", {}, "Write this down and keep it apart from your password. If you forget the password, it is the only way back to your data: nobody, not even us, can read your data without one of them. It is shown this once."),
    element("p", { id: "recovery-key", class: "key" }, key),
    element("div", { class: "check" }, agreed, element("label", { for: "recovery-noted" }, "I have written down my recovery key")),
    next,
  );
}

/** The auth secret of `password` for `email`, derived as at sign-in (the key-encryption
 * key derived beside it is wiped). */
async function authSecret(email, password) {
  const { kek, auth } = await stretched(email, password);
  kek.fill(0);
  return auth;
}

/** Signs in, and opens the account key with the password's key (kept in this page's
 * memory only, for the libraries). */
async function signIn(email, password) {
  const { kek, auth } = await stretched(email, password);
  // The answer repeats the token for the command-line client; the page keeps only the
  // cookie the browser stores, and the wrapped account key.
  const session = await call("POST", "/api/v1/sessions", { email, auth_secret: base64(auth), client: "web browser" });
  auth.fill(0);
  try {
    me = await accountKeys(kek, session.keys.wrapped_private_key);
  } finally {
    kek.fill(0);
  }
}

/** The blobs of `ids` in library `id`, fetched with this browser's session. */
async function libraryBlobs(id, ids) {
  const answer = await request("POST", `/api/v1/libraries/${id}/objects/fetch`, { ids: ids.map(hex) });
  return frames(answer, ids.length);
}

const backToProfile = () => [element("p", {}, element("button", { type: "button", class: "crumb", id: "back", onclick: () => profile() }, "Back to My Profile"))];

/** A library's snapshots, newest first; each opens as a folder view. */
async function snapshotsPage(info, keys, name) {
  say(main, "Listing snapshots…");
  const { snapshots } = await call("GET", `/api/v1/libraries/${info.id}/snapshots`);
  const rows = [...snapshots].reverse().map((listed) => element(
    "tr",
    { "data-snapshot": listed.id },
    element("td", {}, new Date(Number(BigInt(listed.time_ns) / 1000000n)).toLocaleString()),
    element("td", { class: "note" }, listed.id.slice(0, 8)),
    element("td", { class: "action" }, element("button", { type: "button", onclick: () => openSnapshotPage(info, keys, name, listed).catch((e) => say(main, explain(e), "error")) }, "Open")),
  ));
  const sharing = ownLibrary(info, me) ? await sharingSection(info, keys, name) : leaveSection(info, name);
  main.replaceChildren(
    ...backToProfile(),
    element("h2", { class: "page" }, name),
    section(
      "Snapshots",
      rows.length
        ? element("table", { id: "snapshots" },
          element("caption", {}, `${rows.length} ${rows.length === 1 ? "snapshot" : "snapshots"}, newest first`),
          element("thead", {}, element("tr", {}, ...["Time", "Id", ""].map((h) => element("th", { scope: "col" }, h)))),
          element("tbody", {}, ...rows))
        : emptyLibrary(info, keys, name),
    ),
    sharing,
  );
}

/** What an empty library shows: how to fill it, and where the account may write, a place
 * to add files (the drop zone is this part of the page, not `main`, which outlives it). */
function emptyLibrary(info, keys, name) {
  const empty = element("div", { id: "empty-library" },
    element("p", {}, "No snapshots yet: back up with `ibackup backup`, write into the mount, or add files here."));
  if (writable(info)) empty.append(uploadForm((items, report, cancel) => addFiles(info, keys, name, [], items, report, cancel), explain, empty));
  return empty;
}

/** For a library shared with the account: who shared it, and leaving it (the owner's next
 * write then starts a new key epoch, as the server tells their client). */
function leaveSection(info, name) {
  const line = statusLine("leave-status");
  const leave = element("button", { type: "button", id: "leave", onclick: async () => {
    if (!confirm.checked) {
      tell(line, "Tick the box first: you cannot open the library again unless it is shared with you again.", "error");
      return;
    }
    leave.disabled = true;
    try {
      await call("POST", `/api/v1/libraries/${info.id}/leave`, {});
      await profile(`You left ${name}.`);
    } catch (error) {
      tell(line, explain(error), "error");
      leave.disabled = false;
    }
  } }, "Leave this library");
  const confirm = element("input", { type: "checkbox", id: "leave-confirm" });
  return section(
    "Sharing",
    element("p", { class: "note" }, `Shared with you by ${info.owner_email} (${info.permission}).`),
    element("p", {}, element("label", {}, confirm, " I want to leave this library")),
    leave,
    line,
  );
}

/**
 * A new key epoch of library `info` (the account's own, keys `keys`), granted in one
 * request to every member the owner's roster names but `remove` (null when everyone stays,
 * as after a member left: their keys still open what exists, not what is written next).
 * Members the server lists whom the roster does not name are refused: removed in the same
 * step and granted nothing. Returns the library as it is then, with `refused` (e-mails).
 */
async function rotateLibrary(info, keys, name, remove) {
  const contacts = new Contacts(me);
  const list = await call("GET", `/api/v1/libraries/${info.id}/members`);
  const roster = openRoster(me, info, newestEpoch(keys), list, name, contacts.known);
  const refused = strangers(roster, list.members).filter((email) => email !== remove);
  const next = await nextEpoch(keys, info.epoch, name);
  try {
    const library = fromHex(info.id);
    const grants = [{ email: list.members.find((m) => m.permission === "owner").email, grant: base64(grantTo(me, me.publicKey, library, next.epoch, next.key)) }];
    const kept = [];
    for (const member of others(list.members)) {
      if (member.email === remove || refused.includes(member.email)) continue;
      const added = named(roster, member.email);
      if (added.key !== member.public_key) {
        throw new Damaged(`the server gives another key for ${member.email} than the one you shared ${name} with; nothing was changed. Ask ${member.email} for their fingerprint`);
      }
      grants.push({ email: member.email, grant: base64(grantTo(me, fromBase64(added.key), library, next.epoch, next.key)) });
      kept.push(added);
    }
    const after = nextRoster(roster, next.epoch, kept);
    const now = await call("POST", `/api/v1/libraries/${info.id}/rotate`, {
      ...(remove ? { remove } : {}),
      refuse: refused,
      roster: sealRoster(me, after),
      epoch: next.epoch,
      link: base64(next.link),
      name_sealed: base64(next.nameSealed),
      grants,
    });
    rememberRoster(me, after);
    return { ...now, refused };
  } finally {
    next.key.fill(0);
  }
}

/**
 * Who the library is shared with, sharing it with someone (their key looked up, its
 * fingerprint shown to compare, and remembered in this browser), and ending a share (a new
 * key epoch in the same step, granted to everyone who stays).
 */
async function sharingSection(info, keys, name) {
  const contacts = new Contacts(me);
  const list = await call("GET", `/api/v1/libraries/${info.id}/members`);
  const { members } = list;
  // The owner sees which members the server lists that its clients never added.
  let roster = null;
  let rosterProblem = null;
  try {
    roster = openRoster(me, info, newestEpoch(keys), list, name, contacts.known);
  } catch (error) {
    rosterProblem = explain(error);
  }
  const reopen = async (message) => {
    const { libraries } = await call("GET", "/api/v1/libraries");
    const now = libraries.find((l) => l.id === info.id);
    await snapshotsPage(now, await libraryKeys(now, me), name);
    const line = document.getElementById("share-status");
    if (line && message) tell(line, message);
  };
  const line = statusLine("share-status");
  const rows = members.map((member) => element(
    "tr",
    { "data-member": member.email },
    element("td", {}, member.email),
    element("td", {}, roster && member.permission !== "owner" && !named(roster, member.email)
      ? `${member.permission}: not added by you, given no key`
      : member.permission),
    element("td", { class: "action" }, member.permission === "owner" ? "" : element("button", { type: "button", onclick: async (event) => {
      event.target.disabled = true;
      tell(line, `Ending the share with ${member.email} and starting a new key epoch…`, "note");
      try {
        await rotateLibrary(info, keys, name, member.email);
        await reopen(`${member.email} no longer has ${name}; what is written from now on is sealed under a new key.`);
      } catch (error) {
        tell(line, explain(error), "error");
        event.target.disabled = false;
      }
    } }, "Stop sharing")),
  ));
  const email = element("input", { type: "email", id: "share-email", required: true, autocomplete: "off" });
  const permission = element("select", { id: "share-permission" },
    element("option", { value: "read" }, "can read"),
    element("option", { value: "read-write" }, "can read and write"));
  const confirm = element("div", { id: "share-confirm" });
  const form = element(
    "form",
    { id: "share", class: "stacked", onsubmit: async (event) => {
      event.preventDefault();
      confirm.replaceChildren();
      try {
        const who = email.value.trim().toLowerCase();
        const contact = await call("POST", "/api/v1/contacts/lookup", { email: who });
        contacts.check(who, contact.public_key);
        const shown = await fingerprint(fromBase64(contact.public_key));
        confirm.replaceChildren(
          element("p", {}, `${who}'s key has the fingerprint `, element("code", { id: "share-fingerprint" }, shown),
            ". Compare it with what they see in `ibackup account fingerprint` before you share."),
          element("button", { type: "button", onclick: async () => {
            try {
              // A member who left still holds the key: the newcomer gets a new one, as
              // `ibackup share add` does.
              let now = info;
              let nowKeys = keys;
              if (info.rotate) {
                now = await rotateLibrary(info, keys, name, null);
                nowKeys = await libraryKeys(now, me);
              }
              const newest = nowKeys.epochs.get(now.epoch);
              const listed = await call("GET", `/api/v1/libraries/${now.id}/members`);
              const before = openRoster(me, now, newestEpoch(nowKeys), listed, name, contacts.known);
              const after = nextRoster(before, now.epoch, [
                ...before.members.filter((m) => m.email !== who),
                { email: who, key: contact.public_key, permission: permission.value },
              ]);
              const grant = grantTo(me, fromBase64(contact.public_key), fromHex(now.id), now.epoch, newest.key);
              await call("POST", `/api/v1/libraries/${now.id}/members`, {
                email: who,
                permission: permission.value,
                epoch: now.epoch,
                grant: base64(grant),
                roster: sealRoster(me, after),
              });
              rememberRoster(me, after);
              contacts.remember(who, contact.public_key);
              await reopen(`${name} is shared with ${who}.`);
            } catch (error) {
              tell(line, explain(error), "error");
            }
          } }, `Share with ${who}`),
        );
      } catch (error) {
        tell(line, explain(error), "error");
      }
    } },
    element("label", { for: "share-email" }, "Share with (their e-mail address)"),
    email,
    element("label", { for: "share-permission" }, "They"),
    permission,
    element("button", { type: "submit" }, "Look up"),
  );
  return section(
    "Sharing",
    element("table", { id: "members" },
      element("thead", {}, element("tr", {}, ...["Account", "Access", ""].map((h) => element("th", { scope: "col" }, h)))),
      element("tbody", {}, ...rows)),
    rosterProblem ? element("p", { class: "error", role: "alert" }, rosterProblem) : "",
    line,
    form,
    confirm,
  );
}

const writable = (info) => info.permission === "owner" || info.permission === "read-write";

/**
 * Writes into the folder at `path` of the library's newest snapshot with `write({ info,
 * keys, author, path, fetchBlobs, report })` (a new snapshot), re-points the owner's follow
 * links, shows the folder in the new snapshot, and says `done` on its status line `line`.
 */
async function writeLibrary(shown, shownKeys, name, path, report, write, line, done) {
  // The library as it is now: a member may have left, or the key moved on, since the
  // page showed it. When a member left, the owner starts a new key epoch before writing,
  // as the command-line client does.
  const { libraries } = await call("GET", "/api/v1/libraries");
  let info = libraries.find((l) => l.id === shown.id) ?? shown;
  let keys = info.epoch === shown.epoch ? shownKeys : await libraryKeys(info, me);
  if (info.rotate && ownLibrary(info, me)) {
    report("Someone left this library: starting a new key first…");
    info = await rotateLibrary(info, keys, name, null);
    keys = await libraryKeys(info, me);
  }
  const fetchBlobs = (ids) => libraryBlobs(info.id, ids);
  const { email } = await call("GET", "/api/v1/account");
  const made = await write({ info, keys, author: email, path, fetchBlobs, report });
  // The snapshot is made; members refused in a new key and links the page refuses to
  // re-point are said beside it.
  const problems = [];
  if (info.refused?.length) problems.push(refusedWarning(name, info.refused));
  await repointLinks({ info, keys, me, root: made.root, fetchBlobs }).catch((error) => problems.push(explain(error)));
  await openSnapshotPage(info, keys, name, { id: made.id }, path);
  const shownLine = document.getElementById(line);
  if (shownLine) tell(shownLine, [done, ...problems].join(" "), problems.length ? "error" : undefined);
}

/** `items` (files and folders, see `uploadFiles`) added to the folder at `path`. */
function addFiles(shown, keys, name, path, items, report, cancel) {
  return writeLibrary(shown, keys, name, path, report, (args) => uploadFiles({ ...args, items, cancel }),
    "upload-status", `Added ${added(items)}: a new snapshot of ${name}.`);
}

/** A file or folder of the folder at `path` deleted or renamed, or a folder made there
 * (`edit`, see `editFolder`). */
function editFiles(shown, keys, name, path, edit, report) {
  const done = edit.remove !== undefined ? `Deleted ${edit.remove}; the earlier snapshots keep it.`
    : edit.rename !== undefined ? `Renamed ${edit.rename} to ${edit.to}.`
      : edit.make !== undefined ? `Made the folder ${edit.make}.` : `Put back ${edit.putBack} as it was in that snapshot.`;
  return writeLibrary(shown, keys, name, path, report, (args) => editFolder({ ...args, edit }), "edit-status", done);
}

/** What `items` were, in words: "2 files", or "5 files in 1 folder". */
function added(items) {
  const plural = (n, one) => `${n} ${one}${n === 1 ? "" : "s"}`;
  const files = items.filter((item) => item.file).length;
  const folders = new Set(items.filter((item) => !item.file || item.parts.length > 1).map((item) => item.parts[0])).size;
  return folders ? `${plural(files, "file")} in ${plural(folders, "folder")}` : plural(files, "file");
}

/** A snapshot's folders, from the top, or from the folder at `path` (names) when there is
 * one. Owners and members who may write add files to the folder shown. */
async function openSnapshotPage(info, keys, name, listed, path = []) {
  say(main, "Opening the snapshot…");
  const id = fromHex(listed.id);
  const fetchBlobs = (ids) => libraryBlobs(info.id, ids);
  const [blob] = await fetchBlobs([id]);
  const snapshot = await openSnapshot(keys, id, blob);
  const { head } = await call("GET", `/api/v1/libraries/${info.id}/head`);
  if (head) {
    // The head is checked against the newest this browser saw before anything is shown.
    const headId = fromHex(head);
    const headBlob = head === listed.id ? blob : (await fetchBlobs([headId]))[0];
    await checkHead(me, info, keys, name, head, head === listed.id ? snapshot : await openSnapshot(keys, headId, headBlob), fetchBlobs);
  }
  const when = new Date(Number(BigInt(snapshot.time_ns) / 1000000n)).toLocaleString();
  const view = new FolderView({
    main,
    fetchBlobs,
    explain,
    rootLabel: `${name}, ${when}`,
    above: () => [element("p", {}, element("button", { type: "button", class: "crumb", onclick: () => snapshotsPage(info, keys, name).catch((e) => say(main, explain(e), "error")) }, `Back to the snapshots of ${name}`))],
    upload: writable(info) ? (where, items, report, cancel) => addFiles(info, keys, name, where, items, report, cancel) : null,
    edit: writable(info) ? (where, edit, report) => editFiles(info, keys, name, where, edit, report) : null,
    newest: head === listed.id,
    convergence: convergenceOf(keys),
    makeLink: info.permission === "owner"
      ? (path, treeKey, options) => makeLink({ info, me, treeKey, snapshot: listed.id, path, ...options })
      : null,
  });
  await view.enter("", snapshot.tree);
  for (const folder of path) {
    const entry = view.path[view.path.length - 1].entries.find((e) => e.name === folder && e.kind === "dir");
    if (!entry) break;
    await view.enter(folder, entry.subtree);
  }
}

/** The account's libraries: its own open here; shared ones wait for the owner's key to be
 * pinned in the browser as the command-line client pins it. */
async function librariesSection() {
  if (!me) {
    const password = element("input", { type: "password", id: "unlock-password", required: true, autocomplete: "current-password" });
    const line = statusLine("unlock-status");
    return element(
      "form",
      { id: "unlock", class: "stacked", onsubmit: async (event) => {
        event.preventDefault();
        tell(line, "Opening your account key… (a few seconds, on purpose)", "note");
        try {
          const info = await call("GET", "/api/v1/account");
          await signIn(info.email, password.value);
          profile();
        } catch (error) {
          tell(line, explain(error), "error");
        }
      } },
      element("p", {}, "Your libraries are decrypted in this page with your account key, which your password opens."),
      element("label", { for: "unlock-password" }, "Password"),
      password,
      element("button", { type: "submit" }, "Open my libraries"),
      line,
    );
  }
  const { libraries } = await call("GET", "/api/v1/libraries");
  const contacts = new Contacts(me);
  const rows = await Promise.all(libraries.map(async (info) => {
    const own = ownLibrary(info, me);
    if (!own) {
      // A library shared with this account: its grant opens only with the owner's key,
      // which must be the one this browser saw for them before (or the first).
      try {
        contacts.check(info.owner_email, info.owner_public_key);
      } catch (error) {
        return element("tr", { "data-library": info.id },
          element("td", {}, `shared by ${info.owner_email}`),
          element("td", { class: "size" }, ""),
          element("td", { class: "error" }, explain(error)));
      }
      contacts.remember(info.owner_email, info.owner_public_key);
    }
    let keys;
    try {
      keys = await libraryKeys(info, me);
    } catch (error) {
      // A refused key (older than this browser saw) is said in its row; the rest open.
      return element("tr", { "data-library": info.id },
        element("td", {}, own ? "one of your libraries" : `shared by ${info.owner_email}`),
        element("td", { class: "size" }, ""),
        element("td", { class: "error" }, explain(error)));
    }
    const name = own ? await libraryName(keys, info) : `${await libraryName(keys, info)}@${info.owner_email}`;
    libraryNames.set(info.id, name);
    return element("tr", { "data-library": name },
      element("td", {}, name),
      element("td", { class: "size" }, size(info.stored_bytes)),
      element("td", { class: "action" }, element("button", { type: "button", onclick: () => snapshotsPage(info, keys, name).catch((e) => say(main, explain(e), "error")) }, "Open")));
  }));
  return element("table", { id: "libraries" },
    element("thead", {}, element("tr", {}, ...["Library", "Stored", ""].map((h) => element("th", { scope: "col" }, h)))),
    element("tbody", {}, ...rows));
}

function signInForm(message) {
  account.replaceChildren();
  const email = element("input", { type: "email", id: "email", name: "email", autocomplete: "username", required: true });
  const password = element("input", { type: "password", id: "password", name: "password", autocomplete: "current-password", required: true });
  const button = element("button", { type: "submit" }, "Sign in");
  const note = element("p", { id: "form-status", role: "status" }, message ?? "");
  const form = element(
    "form",
    { id: "sign-in", class: "stacked", onsubmit: async (event) => {
      event.preventDefault();
      button.disabled = true;
      tell(note, "Checking your password… (this takes a few seconds, on purpose)", "");
      try {
        await signIn(email.value.trim().toLowerCase(), password.value);
        password.value = "";
        await profile();
      } catch (error) {
        tell(note, explain(error), "error");
        button.disabled = false;
      }
    } },
    element("h2", {}, "Sign in"),
    element("label", { for: "email" }, "E-mail address"),
    email,
    element("label", { for: "password" }, "Password"),
    password,
    button,
    note,
    element("p", {}, "No account yet? ", element("button", { type: "button", class: "crumb", onclick: () => signUpForm() }, "Create an account")),
  );
  main.replaceChildren(form);
  email.focus();
}

function section(title, ...children) {
  return element("section", { "aria-labelledby": `h-${title}` }, element("h2", { id: `h-${title}` }, title), ...children);
}

function namesForm(info, refresh) {
  const first = element("input", { id: "first-name", value: info.first_name, required: true, autocomplete: "given-name" });
  const last = element("input", { id: "last-name", value: info.last_name, required: true, autocomplete: "family-name" });
  const note = element("span", { role: "status" });
  return element(
    "form",
    { id: "names", class: "stacked", onsubmit: async (event) => {
      event.preventDefault();
      try {
        await call("PATCH", "/api/v1/account", { first_name: first.value, last_name: last.value });
        refresh("Your names were saved.");
      } catch (error) {
        note.className = "error";
        note.textContent = explain(error);
      }
    } },
    element("label", { for: "first-name" }, "First name"),
    first,
    element("label", { for: "last-name" }, "Last name"),
    last,
    element("button", { type: "submit" }, "Save names"),
    note,
  );
}

function passwordForm(info, refresh) {
  const current = element("input", { type: "password", id: "current-password", required: true, autocomplete: "current-password" });
  const next = element("input", { type: "password", id: "new-password", required: true, minlength: "8", autocomplete: "new-password" });
  const again = element("input", { type: "password", id: "new-password-again", required: true, autocomplete: "new-password" });
  const line = statusLine("password-status");
  return element(
    "details",
    {},
    element("summary", {}, "Change your password"),
    element(
      "form",
      { id: "change-password", class: "stacked", onsubmit: async (event) => {
        event.preventDefault();
        if (next.value !== again.value) {
          tell(line, "The two new passwords differ; type the same one twice.", "error");
          return;
        }
        if ([...next.value].length < 8) {
          tell(line, "Choose a password of at least 8 characters.", "error");
          return;
        }
        tell(line, "Stretching both passwords… (this takes a few seconds, on purpose)", "note");
        try {
          const ended = await changePassword(info.email, current.value, next.value);
          refresh(`Your password was changed; ${ended} other ${ended === 1 ? "session was" : "sessions were"} signed out.`);
        } catch (error) {
          const wrong = error instanceof Refused && error.code === "invalid_credentials";
          tell(line, wrong ? "The current password is wrong; nothing was changed." : explain(error), "error");
        }
      } },
      element("label", { for: "current-password" }, "Current password"),
      current,
      element("label", { for: "new-password" }, "New password"),
      next,
      element("label", { for: "new-password-again" }, "New password, again"),
      again,
      element("button", { type: "submit" }, "Change password"),
      line,
    ),
  );
}

/** A new e-mail address: the password shows it is the owner asking; the new address is
 * unconfirmed until its mailed link is opened, and the old one is told. */
function emailForm(info, refresh) {
  const email = element("input", { type: "email", id: "new-email", required: true, autocomplete: "email" });
  const password = element("input", { type: "password", id: "email-password", required: true, autocomplete: "current-password" });
  const line = statusLine("email-status");
  return element(
    "details",
    {},
    element("summary", {}, "Change your e-mail address"),
    element(
      "form",
      { id: "change-email", class: "stacked", onsubmit: async (event) => {
        event.preventDefault();
        tell(line, "Checking your password…", "note");
        try {
          const auth = await authSecret(info.email, password.value);
          const now = await call("PATCH", "/api/v1/account", {
            email: email.value.trim().toLowerCase(),
            current_auth_secret: base64(auth),
          });
          auth.fill(0);
          refresh(`Your address is ${now.email} now: open the link we mailed there to confirm it.`);
        } catch (error) {
          tell(line, explain(error), "error");
        }
      } },
      element("label", { for: "new-email" }, "New e-mail address"),
      email,
      element("label", { for: "email-password" }, "Password"),
      password,
      element("button", { type: "submit" }, "Change address"),
      line,
    ),
  );
}

function consentBox(info) {
  const box = element("input", { type: "checkbox", id: "marketing", checked: info.marketing_email });
  const note = element("span", { role: "status" });
  box.addEventListener("change", async () => {
    box.disabled = true;
    try {
      const now = await call("PUT", "/api/v1/account/consent", { marketing_email: box.checked });
      box.checked = now.marketing_email;
      note.className = "done";
      note.textContent = now.marketing_email ? "You will get news by e-mail." : "No news by e-mail.";
    } catch (error) {
      box.checked = !box.checked;
      note.className = "error";
      note.textContent = explain(error);
    }
    box.disabled = false;
  });
  const unconfirmed = info.marketing_email && !info.email_confirmed
    ? element("p", { class: "note" }, "News goes out only once you confirm your address with the link we mailed you.")
    : null;
  return element("div", {}, element("div", { class: "check" }, box, element("label", { for: "marketing" }, "Send me news about ibackup by e-mail")), note, unconfirmed);
}

function money(cents, currency) {
  return `${(cents / 100).toFixed(2)} ${currency}`;
}

/** A status line beside a form: what happened, in words. */
function statusLine(id) {
  return element("p", { id, role: "status" });
}

/** Plans as choices; the price of a change is shown before it is confirmed. */
async function planSection(info, refresh) {
  const { plans, currency } = await call("GET", "/api/v1/plans");
  const line = statusLine("plan-status");
  const confirm = element("button", { type: "submit", id: "confirm-plan", disabled: true }, "Change plan");
  let chosen = null;
  const choices = plans.map((plan) => {
    const id = `plan-${plan.name}`;
    const radio = element("input", { type: "radio", name: "plan", id, value: plan.name, checked: plan.name === info.plan });
    radio.addEventListener("change", async () => {
      chosen = plan.name;
      confirm.disabled = true;
      if (plan.name === info.plan) {
        tell(line, "This is your plan.");
        return;
      }
      try {
        const quote = await call("GET", `/api/v1/account/plan/quote/${encodeURIComponent(plan.name)}`);
        const price = quote.amount_cents > 0
          ? `${money(quote.amount_cents, quote.currency)} will be charged to your card now, for the rest of this period.`
          : quote.amount_cents < 0
            ? `${money(-quote.amount_cents, quote.currency)} will be credited for the rest of this period.`
            : "Nothing is charged now.";
        tell(line, `Changing to ${plan.name}: ${price}`, "note");
        confirm.disabled = false;
      } catch (error) {
        tell(line, explain(error), "error");
      }
    });
    const price = plan.price_cents ? `${money(plan.price_cents, currency)} a period` : "free";
    return element("div", { class: "check" }, radio, element("label", { for: id }, `${plan.name}: ${size(plan.quota_bytes)}, ${price}`));
  });
  const form = element(
    "form",
    { id: "plans", class: "stacked", onsubmit: async (event) => {
      event.preventDefault();
      confirm.disabled = true;
      try {
        const changed = await call("PUT", "/api/v1/account/plan", { plan: chosen });
        refresh(`You are on ${changed.account.plan} now.`);
      } catch (error) {
        tell(line, explain(error), "error");
      }
    } },
    element("fieldset", {}, element("legend", {}, "Plan"), ...choices),
    confirm,
    line,
  );
  return form;
}

function cardForm(refresh) {
  const field = (id, label, attributes) => [
    element("label", { for: id }, label),
    element("input", { id, name: id, required: true, ...attributes }),
  ];
  const line = statusLine("card-status");
  const form = element(
    "form",
    { id: "card", class: "stacked", onsubmit: async (event) => {
      event.preventDefault();
      const value = (id) => form.querySelector(`#${id}`).value.trim();
      try {
        const card = await call("POST", "/api/v1/account/card", {
          number: value("card-number").replace(/\s+/g, ""),
          exp_month: Number(value("card-month")),
          exp_year: Number(value("card-year")),
          cvc: value("card-cvc"),
          name: value("card-name"),
        });
        form.reset();
        refresh(`Your card ${card.brand} ending ${card.last4} was added.`);
      } catch (error) {
        tell(line, explain(error), "error");
      }
    } },
    ...field("card-name", "Name on the card", { autocomplete: "cc-name" }),
    ...field("card-number", "Card number", { autocomplete: "cc-number", inputmode: "numeric" }),
    ...field("card-month", "Expiry month", { autocomplete: "cc-exp-month", inputmode: "numeric" }),
    ...field("card-year", "Expiry year", { autocomplete: "cc-exp-year", inputmode: "numeric" }),
    ...field("card-cvc", "Security code", { autocomplete: "cc-csc", inputmode: "numeric" }),
    element("button", { type: "submit" }, "Add card"),
    line,
  );
  return form;
}

/** Deleting the account: the e-mail typed again and the password, as the CLI asks. */
function deleteForm(info) {
  const email = element("input", { type: "email", id: "delete-email", required: true, autocomplete: "off" });
  const password = element("input", { type: "password", id: "delete-password", required: true, autocomplete: "current-password" });
  const line = statusLine("delete-status");
  return element(
    "form",
    { id: "delete", class: "stacked", onsubmit: async (event) => {
      event.preventDefault();
      const typed = email.value.trim().toLowerCase();
      if (typed !== info.email) {
        tell(line, `Type ${info.email} to confirm.`, "error");
        return;
      }
      tell(line, "Checking your password…", "note");
      try {
        const auth = await authSecret(typed, password.value);
        await call("POST", "/api/v1/account/delete", { confirm_email: typed, auth_secret: base64(auth) });
        auth.fill(0);
        account.replaceChildren();
        say(main, "Your account and everything stored in it were deleted. Invoices stay, without your name, as the law requires.");
      } catch (error) {
        tell(line, explain(error), "error");
      }
    } },
    element("p", {}, "This deletes your profile, your libraries and everything in them, at once and for good."),
    element("label", { for: "delete-email" }, "Type your e-mail address"),
    email,
    element("label", { for: "delete-password" }, "Password"),
    password,
    element("button", { type: "submit", class: "danger" }, "Delete my account"),
    line,
  );
}

async function sessionsTable(refresh) {
  const { sessions } = await call("GET", "/api/v1/account/sessions");
  const rows = sessions.filter((s) => !s.revoked_at).map((s) =>
    element(
      "tr",
      { "data-session": s.id },
      element("td", {}, s.client || "unknown", s.current ? element("strong", {}, " (this browser)") : null),
      element("td", {}, s.address || ""),
      element("td", {}, when(s.created_at)),
      element("td", {}, when(s.last_seen)),
      element("td", { class: "action" }, s.current ? "" : element("button", { type: "button", onclick: async () => {
        await call("DELETE", `/api/v1/account/sessions/${s.id}`);
        refresh(`${s.client || "That session"} was signed out.`);
      } }, "Sign out")),
    ));
  return element(
    "table",
    { id: "sessions" },
    element("caption", {}, "Where you are signed in"),
    element("thead", {}, element("tr", {}, ...["Client", "Address", "Signed in", "Last seen", ""].map((h) => element("th", { scope: "col" }, h)))),
    element("tbody", {}, ...rows),
  );
}

async function invoicesTable() {
  const { invoices } = await call("GET", "/api/v1/account/invoices");
  if (!invoices.length) return element("p", { id: "invoices" }, "No invoices yet.");
  return element(
    "table",
    { id: "invoices" },
    element("thead", {}, element("tr", {}, ...["Date", "Description", "Amount", "Status"].map((h) => element("th", { scope: "col" }, h)))),
    element("tbody", {}, ...invoices.map((i) => element(
      "tr",
      {},
      element("td", {}, when(i.at)),
      element("td", {}, i.description),
      element("td", {}, `${(i.amount_cents / 100).toFixed(2)} ${i.currency}`),
      element("td", {}, i.status),
    ))),
  );
}

/** My Profile, with `flash` (what was just done) at its top. */
async function profile(flash) {
  let info;
  try {
    info = await call("GET", "/api/v1/account");
  } catch (error) {
    if (error instanceof Refused && error.code === "unauthorized") {
      signInForm();
      return;
    }
    say(main, explain(error), "error");
    return;
  }
  const refresh = (message) => profile(message).catch((error) => say(main, explain(error), "error"));
  account.replaceChildren(
    element("span", {}, info.email),
    " ",
    element("button", { type: "button", id: "sign-out", onclick: async () => {
      await call("DELETE", "/api/v1/sessions/current").catch(() => {});
      signInForm("You are signed out.");
    } }, "Sign out"),
  );
  const usage = info.quota_bytes ? Math.min(100, (100 * info.used_bytes) / info.quota_bytes) : 0;
  const parts = [
    element("h2", { class: "page" }, "My Profile"),
    flash ? element("p", { id: "flash", class: "done", role: "status" }, flash) : null,
    section("Libraries", await librariesSection()),
    section(
      "Account",
      element("dl", {},
        element("dt", {}, "E-mail"), element("dd", { id: "email-shown" }, info.email, info.email_confirmed ? "" : " (not confirmed yet)"),
        element("dt", {}, "Plan"), element("dd", { id: "plan" }, info.plan),
        element("dt", {}, "Storage"), element("dd", {}, `${size(info.used_bytes)} of ${size(info.quota_bytes)} used`,
          element("progress", { max: "100", value: String(usage), "aria-label": "Storage used" })),
        element("dt", {}, "Status"), element("dd", {}, info.status || "active"),
        info.card ? element("dt", {}, "Card") : null,
        info.card ? element("dd", {}, `${info.card.brand} ending ${info.card.last4}`) : null,
      ),
      namesForm(info, refresh),
      emailForm(info, refresh),
      passwordForm(info, refresh),
    ),
    section("E-mail from us", consentBox(info)),
    section(
      "Plan and payment",
      await planSection(info, refresh),
      element("details", {}, element("summary", {}, info.card ? "Replace your card" : "Add a card"), cardForm(refresh)),
    ),
    section("Links", await linksSection({ me, names: libraryNames, explain, refresh })),
    section("Sessions", await sessionsTable(refresh)),
    section("Invoices", await invoicesTable()),
    section(
      "Your data",
      element("p", {}, "Everything the server keeps about you, as one file."),
      element("button", { type: "button", id: "export", onclick: async () => {
        const answer = await request("GET", "/api/v1/account/export");
        save(await answer.blob(), "ibackup-export.json");
      } }, "Download my data"),
    ),
    section("Delete account", deleteForm(info)),
  ];
  main.replaceChildren(...parts.filter(Boolean));
}

profile().catch((error) => say(main, explain(error), "error"));
