// What this browser has seen of each library, as the command-line client keeps it per
// computer (src/client/seen.rs, `known_contacts.json`): the newest key epoch, so a server
// that hands back an older key (one a removed member still holds) is refused; and the
// newest head with its generation, so a server that sets a library back, or drops a commit
// and lets others build past it, is refused before the page reads or writes on it. Kept
// in the browser's storage per account.

import { Damaged, hex } from "./blob.js";
import { openSnapshot } from "./library.js";

/** Parents of a new head followed back to the seen one, at most (as the client). */
const DESCENT_WALK = 1000;

function slot(me) {
  return `ibackup-seen-${hex(me.publicKey)}`;
}

function load(me) {
  const seen = JSON.parse(localStorage.getItem(slot(me)) || "{}");
  return { epochs: seen.epochs ?? {}, heads: seen.heads ?? {} };
}

function store(me, seen) {
  localStorage.setItem(slot(me), JSON.stringify(seen));
}

/** Refuses a key epoch older than this browser saw of library `info`; remembers newer. */
export function checkEpoch(me, info, name) {
  const seen = load(me);
  const before = seen.epochs[info.id] ?? 0;
  if (info.grant_epoch < before) {
    throw new Damaged(`refused ${name}: the server offers key epoch ${info.grant_epoch} but this browser has seen epoch ${before}; an older key may be readable by a removed member, so it is not used. Tell the server's operator`);
  }
  if (info.grant_epoch > before) {
    seen.epochs[info.id] = info.grant_epoch;
    store(me, seen);
  }
}

function refused(name, how, id, generation, seen) {
  return new Damaged(`THE SERVER IS SHOWING AN ${how} STATE OF ${name}: its head is snapshot ${id.slice(0, 8)} of generation ${generation}, but this browser has seen snapshot ${seen.id.slice(0, 8)} of generation ${seen.generation}${how === "ALTERED" && generation > seen.generation ? ", which the new head does not build on" : ""}. Nothing was read or changed. Ask whoever runs the server`);
}

/**
 * Checks head `id` (hex) of library `info`, whose snapshot is `snapshot`, against the
 * newest this browser saw, and remembers it: an older generation, another head of the same
 * generation, or a newer head whose parents do not lead back to the seen one is refused.
 * A parent the server no longer has (retention forgot it), or a walk past the bound,
 * cannot be told and is taken, as the command-line client takes it.
 */
export async function checkHead(me, info, keys, name, id, snapshot, fetchBlobs) {
  const generation = Number(snapshot.generation ?? 0);
  const seen = load(me).heads[info.id];
  if (seen && seen.generation > 0) {
    if (generation < seen.generation) throw refused(name, "OLDER", id, generation, seen);
    if (generation === seen.generation && id !== seen.id) throw refused(name, "ALTERED", id, generation, seen);
    if (generation > seen.generation && !(await descends(keys, snapshot, seen, fetchBlobs))) {
      throw refused(name, "ALTERED", id, generation, seen);
    }
  }
  remember(me, info, id, generation);
}

/** Notes head `id` (hex) of `generation` as seen (after the page committed it). */
export function remember(me, info, id, generation) {
  const now = load(me);
  const seen = now.heads[info.id];
  if (!seen || generation >= seen.generation) {
    now.heads[info.id] = { id, generation };
    store(me, now);
  }
}

async function descends(keys, snapshot, seen, fetchBlobs) {
  let current = snapshot;
  for (let step = 0; step < DESCENT_WALK; step++) {
    if (!current.parent) return false;
    const parent = hex(current.parent);
    if (parent === seen.id) return true;
    let blob;
    try {
      [blob] = await fetchBlobs([current.parent]);
    } catch (error) {
      if (error.code === "not_found") return true;
      throw error;
    }
    current = await openSnapshot(keys, current.parent, blob);
    if (Number(current.generation ?? 0) <= seen.generation) return false;
  }
  return true;
}
