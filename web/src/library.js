// One's own libraries, opened in the page as the command-line client opens them
// (docs/FORMAT.md, "Keys"): the account key from its wrapping, each library's epoch key
// from the owner's grant (a tweetnacl box), older epochs through the chain, then the name
// and the snapshots sealed under keys derived from them. The server sees only ids.

import { blake3 } from "@noble/hashes/blake3.js";
import nacl from "tweetnacl";
import { decode } from "cborg";

import { Damaged, KIND, concat, fromBase64, fromHex, hex, openBlob, same, seal, unseal, utf8 } from "./blob.js";
import { checkEpoch } from "./seen.js";

const derive = (context, key) => blake3(key, { context: utf8(context) });
const GRANT_MAGIC = "ibackup grant v2";


function epochBytes(epoch) {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, epoch, false);
  return out;
}

/** The account's key pair from its private key wrapped under the password's key. */
export async function accountKeys(kek, wrappedBase64) {
  let secret;
  try {
    secret = await unseal(kek, fromBase64(wrappedBase64));
  } catch {
    throw new Damaged("your account key does not open with your password's key");
  }
  return nacl.box.keyPair.fromSecretKey(secret);
}

/** Whether `info` is a library of the account holding `me` (its grant is from itself). */
export function ownLibrary(info, me) {
  return same(fromBase64(info.owner_public_key), me.publicKey);
}

/** The keys of every epoch of library `info` that `me` reaches, by epoch; an epoch older
 * than this browser saw of the library is refused (`seen.js`). */
export async function libraryKeys(info, me) {
  checkEpoch(me, info, `library ${info.id.slice(0, 8)}`);
  const library = fromHex(info.id);
  const grant = fromBase64(info.grant);
  const plain = nacl.box.open(grant.subarray(24), grant.subarray(0, 24), fromBase64(info.owner_public_key), me.secretKey);
  const expected = concat(utf8(GRANT_MAGIC), library, epochBytes(info.grant_epoch), me.publicKey);
  if (!plain || plain.length !== expected.length + 32 || !same(plain.subarray(0, expected.length), expected)) {
    throw new Damaged("this library's key grant does not open, or is not for you");
  }
  const chain = new Map(info.chain.map((link) => [link.epoch, fromBase64(link.link)]));
  const epochs = new Map();
  let key = plain.slice(expected.length);
  for (let epoch = info.grant_epoch; epoch >= 1; epoch--) {
    epochs.set(epoch, {
      key,
      convergence: derive("ibackup 2026-12 epoch convergence", key),
      snapshot: derive("ibackup 2026-12 epoch snapshot", key),
      snapshotId: derive("ibackup 2026-12 epoch snapshot id", key),
      names: derive("ibackup 2026-12 epoch name", key),
    });
    if (epoch > 1) {
      const link = chain.get(epoch);
      if (!link) throw new Damaged("a link between this library's key epochs is missing");
      key = await unseal(key, link, concat(utf8("ibackup chain"), library, epochBytes(epoch)));
    }
  }
  return { library, epochs, me };
}

/** The newest epoch whose keys `keys` (of `libraryKeys`) holds. */
export function newestEpoch(keys) {
  return Math.max(...keys.epochs.keys());
}

/** The library's name, sealed under the key of `info.name_epoch`. */
export async function libraryName(keys, info) {
  const epoch = keys.epochs.get(info.name_epoch);
  if (!epoch) throw new Damaged("the library's name is sealed under an epoch you do not reach");
  const context = concat(utf8("ibackup name"), keys.library, epochBytes(info.name_epoch));
  return new TextDecoder().decode(await unseal(epoch.names, fromBase64(info.name_sealed), context));
}

/** A snapshot opened under the epoch its blob names, its id checked against its content. */
export async function openSnapshot(keys, id, blob) {
  const epoch = new DataView(blob.buffer, blob.byteOffset + 1, 4).getUint32(0, false);
  const epochKeys = keys.epochs.get(epoch);
  if (!epochKeys) throw new Damaged(`a snapshot is sealed under epoch ${epoch}, which you do not reach`);
  const plain = await openBlob(epochKeys.snapshot, KIND.snapshot, id, blob);
  if (hex(blake3(plain, { key: epochKeys.snapshotId })) !== hex(id)) {
    throw new Damaged("a snapshot's content does not match its id");
  }
  if (plain[0] !== 2) throw new Damaged(`a snapshot is in format ${plain[0]}, which this page does not read`);
  const snapshot = decode(plain.subarray(1), { useMaps: false });
  if (!(snapshot.tree instanceof Uint8Array) || snapshot.tree.length !== 32) {
    throw new Damaged("a snapshot names no root folder");
  }
  return snapshot;
}

/** A grant of epoch `epoch`'s `key` of `library` from `me` to `recipient` (its public key),
 * as `crypto::epoch::grant` makes it: `nonce (24) || box`. */
export function grantTo(me, recipient, library, epoch, key) {
  const nonce = crypto.getRandomValues(new Uint8Array(24));
  const plain = concat(utf8(GRANT_MAGIC), library, epochBytes(epoch), recipient, key);
  return concat(nonce, nacl.box(plain, nonce, recipient, me.secretKey));
}

/** A new key epoch after the newest: its key, the link that carries the newest key, and the
 * name sealed anew under it. */
export async function nextEpoch(keys, newest, name) {
  const epoch = newest + 1;
  const key = crypto.getRandomValues(new Uint8Array(32));
  const link = await seal(key, keys.epochs.get(newest).key, concat(utf8("ibackup chain"), keys.library, epochBytes(epoch)));
  const nameSealed = await sealName(key, keys.library, epoch, name);
  return { epoch, key, link, nameSealed };
}

/** A library's `name` sealed under epoch `epoch`'s `key`, bound to the library and epoch
 * (`LibraryKeys::seal_name`). */
export async function sealName(key, library, epoch, name) {
  const names = derive("ibackup 2026-12 epoch name", key);
  try {
    return await seal(names, utf8(name), concat(utf8("ibackup name"), library, epochBytes(epoch)));
  } finally {
    names.fill(0);
  }
}

/** An account key's fingerprint as `ibackup account fingerprint` shows it. */
export async function fingerprint(publicKey) {
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", publicKey));
  return hex(digest.subarray(0, 20)).match(/.{4}/g).join(" ");
}

/**
 * The keys this browser saw for other accounts, kept in its storage per account (as the
 * command-line client keeps them per computer): a key the server changes later is
 * refused, not used.
 */
export class Contacts {
  constructor(me) {
    this.slot = `ibackup-contacts-${hex(me.publicKey)}`;
    this.known = JSON.parse(localStorage.getItem(this.slot) || "{}");
  }

  /** `publicKey` (base64) for `email`, if it is the one seen before or the first. */
  check(email, publicKey) {
    const seen = this.known[email];
    if (seen && seen !== publicKey) {
      throw new Damaged(`the server gives another key for ${email} than this browser saw before; nothing was changed. Ask ${email} for their fingerprint`);
    }
  }

  remember(email, publicKey) {
    this.known[email] = publicKey;
    localStorage.setItem(this.slot, JSON.stringify(this.known));
  }
}
