// The owner's roster of a library, as the command-line client keeps it (src/client/roster.rs,
// docs/FORMAT.md "Rosters"): whom the owner's own clients shared it with, and with which key,
// boxed from the owner's key to itself. The page grants a new key epoch only to members the
// roster names; a member the server lists but the roster does not is refused. The newest
// change seen of each library is kept in this browser, so an older roster, or none after
// there was one, is refused.

import nacl from "tweetnacl";

import { Damaged, base64, fromBase64, hex, utf8 } from "./blob.js";

const KIND = "ibackup roster v1";

function seenSlot(me) {
  return `ibackup-rosters-${hex(me.publicKey)}`;
}

function seenAll(me) {
  return JSON.parse(localStorage.getItem(seenSlot(me)) || "{}");
}

function refused(name, why) {
  return new Damaged(`the server's record of whom you shared ${name} with ${why}. Nobody was given a key; the server may be tampering with your library's members. Tell its operator`);
}

/** The members listed other than the owner. */
export function others(members) {
  return members.filter((m) => m.permission !== "owner");
}

/**
 * The checked roster of library `info` (whose keys reach epoch `newest`), from `list` (the
 * members route's answer): sealed by `me`, for this library, made in its newest epoch, and
 * no older than this browser saw. A library shared before rosters has none: its roster is
 * then the members whose keys this browser remembered when it shared (`known`: e-mail ->
 * base64 key).
 */
export function openRoster(me, info, newest, list, name, known) {
  const seen = seenAll(me)[info.id];
  if (!list.roster) {
    if (seen !== undefined) throw refused(name, "is gone, though this browser saw one");
    const members = others(list.members)
      .filter((m) => known[m.email] === m.public_key)
      .map((m) => ({ email: m.email, key: m.public_key, permission: m.permission }));
    return { kind: KIND, library: info.id, epoch: newest, seq: 0, members };
  }
  const boxed = fromBase64(list.roster);
  const plain = boxed.length > 40 ? nacl.box.open(boxed.subarray(24), boxed.subarray(0, 24), me.publicKey, me.secretKey) : null;
  if (!plain) throw refused(name, "was not made by your key");
  let roster;
  try {
    roster = JSON.parse(new TextDecoder().decode(plain));
  } catch {
    roster = null;
  }
  if (roster?.kind !== KIND || !Array.isArray(roster.members)) throw refused(name, "is not a roster");
  if (roster.library !== info.id) throw refused(name, "was made for another library");
  if (roster.epoch !== newest) {
    throw refused(name, `was made in key epoch ${roster.epoch}, not the library's newest (${newest}): it may name someone you removed since`);
  }
  if (seen !== undefined && roster.seq < seen) {
    throw refused(name, `is older (change ${roster.seq}) than the one this browser saw (change ${seen})`);
  }
  return roster;
}

/** The roster's entry for `email`, if it names them. */
export function named(roster, email) {
  return roster.members.find((m) => m.email === email) ?? null;
}

/** The members listed whom the roster does not name: never granted a key. */
export function strangers(roster, members) {
  return others(members).filter((m) => !named(roster, m.email)).map((m) => m.email);
}

/** The roster after a change: one more in sequence, made in `epoch`, naming `members`. */
export function nextRoster(roster, epoch, members) {
  return { kind: KIND, library: roster.library, epoch, seq: roster.seq + 1, members };
}

/** `roster` boxed from `me` to itself (base64), for the server to keep. */
export function sealRoster(me, roster) {
  const nonce = crypto.getRandomValues(new Uint8Array(24));
  const boxed = nacl.box(utf8(JSON.stringify(roster)), nonce, me.publicKey, me.secretKey);
  const sealed = new Uint8Array(24 + boxed.length);
  sealed.set(nonce);
  sealed.set(boxed, 24);
  return base64(sealed);
}

/** Notes in this browser that `roster`'s change was seen or made. */
export function rememberRoster(me, roster) {
  const all = seenAll(me);
  all[roster.library] = Math.max(all[roster.library] ?? 0, roster.seq);
  localStorage.setItem(seenSlot(me), JSON.stringify(all));
}

/** What the owner is told of members refused in a new key epoch of `name`. */
export function refusedWarning(name, emails) {
  return `Refused ${emails.join(", ")}: the server lists them as members of ${name}, but you never shared it with them. They were given no key and were removed. Tell the server's operator.`;
}
