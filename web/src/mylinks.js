// The account's links, as `ibackup link` handles them: listed in My Profile with where each
// leads (its label, boxed to the account's own key, opened here), whether it follows the
// newest snapshot, has a password, expires or was revoked; revoked; made for a folder; and
// re-pointed after the page commits.

import nacl from "tweetnacl";

import { call } from "./api.js";
import { base64, fromBase64, hex, objectId, same, sealPointer, utf8 } from "./blob.js";
import { element, tell, when } from "./dom.js";
import { convergenceOf, rawTree } from "./writer.js";

/** What a link's label says (library id, path, snapshot), or null if it does not open. */
function openLabel(link, me) {
  if (!me) return null;
  const boxed = fromBase64(link.label_sealed);
  if (boxed.length < 24 + 16) return null;
  const plain = nacl.box.open(boxed.subarray(24), boxed.subarray(0, 24), me.publicKey, me.secretKey);
  if (!plain) return null;
  try {
    return JSON.parse(new TextDecoder().decode(plain));
  } catch {
    return null;
  }
}

/**
 * Whether `label` was made for `link` as the server files it: the same library, and the
 * same link where the label names one (labels made before it was bound do not), as the
 * command-line client checks before it re-points a link.
 */
function labelMatches(label, link) {
  return label.library === link.library_id && (label.link == null || label.link === link.id);
}

/** Bytes as unpadded base64url, as link fragments carry keys. */
function base64url(bytes) {
  return base64(bytes).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

/**
 * A link to the folder whose tree key is `treeKey`, at `path` (names from the top) of
 * snapshot `snapshot` (hex) of library `info`, made as `ibackup link create` makes it
 * (docs/FORMAT.md, "Links"): `follow` links carry a random link key and a pointer sealed
 * with it; the label is boxed to the account's own key. Returns the link's address, whose
 * fragment (the key, and the certificate's fingerprint when the server ends TLS itself)
 * the server never sees.
 */
export async function makeLink({ info, me, treeKey, snapshot, path, follow, password, expiresInSecs }) {
  const id = hex(crypto.getRandomValues(new Uint8Array(16)));
  const linkKey = follow ? crypto.getRandomValues(new Uint8Array(32)) : null;
  const pointer = follow ? await sealPointer(linkKey, id, treeKey) : new Uint8Array(0);
  const label = {
    link: id,
    library: info.id,
    path: `/${path.join("/")}`,
    snapshot: follow ? null : snapshot,
    link_key: follow ? base64url(linkKey) : null,
  };
  const nonce = crypto.getRandomValues(new Uint8Array(24));
  const boxed = nacl.box(utf8(JSON.stringify(label)), nonce, me.publicKey, me.secretKey);
  const sealed = new Uint8Array(24 + boxed.length);
  sealed.set(nonce);
  sealed.set(boxed, 24);
  await call("POST", `/api/v1/libraries/${info.id}/links`, {
    id,
    root: hex(objectId(treeKey)),
    follow,
    pointer: base64(pointer),
    label_sealed: base64(sealed),
    ...(password ? { password } : {}),
    ...(expiresInSecs ? { expires_in_secs: expiresInSecs } : {}),
  });
  const { certificate } = await call("GET", "/api/v1/health");
  const pin = certificate ? `.${certificate.replace(/^SHA256:/, "")}` : "";
  return `${location.origin}/l/${id}#${follow ? "f" : "t"}${base64url(follow ? linkKey : treeKey)}${pin}`;
}

function state(link, now) {
  if (link.revoked_at) return "revoked";
  if (link.expires_at && link.expires_at < now) return "expired";
  return "active";
}

/**
 * The links table. `me`: the account's key pair (null until the password opened it: the
 * labels are shown then); `names`: library id -> name; `explain(error)`: an error in words;
 * `refresh(message)`: My Profile again, with `message`.
 */
export async function linksSection({ me, names, explain, refresh }) {
  const { links } = await call("GET", "/api/v1/links");
  if (!links.length) {
    return element("p", { id: "links-none" }, "No links yet. Make one with `ibackup link create LIBRARY:PATH`.");
  }
  const now = Date.now() / 1000;
  const line = element("p", { id: "links-status", role: "status" });
  const rows = links.map((link) => {
    const label = openLabel(link, me);
    const status = state(link, now);
    const revoke = element("button", { type: "button", onclick: async () => {
      revoke.disabled = true;
      try {
        await call("DELETE", `/api/v1/links/${link.id}`);
        await refresh(`The link ${link.id.slice(0, 8)} was revoked: it opens for nobody from now on.`);
      } catch (error) {
        revoke.disabled = false;
        tell(line, explain(error), "error");
      }
    } }, "Revoke");
    return element(
      "tr",
      { "data-link": link.id },
      element("td", { class: "note" }, link.id.slice(0, 8)),
      element("td", {}, label
        ? `${names.get(label.library) ?? "a library you no longer own"}${labelMatches(label, link) ? "" : " (moved by the server: not re-pointed)"}`
        : "(open your libraries to see)"),
      element("td", {}, label ? label.path : ""),
      element("td", {}, link.follow ? "the newest snapshot" : "one snapshot"),
      element("td", {}, link.has_password ? "yes" : "no"),
      element("td", {}, link.expires_at ? when(link.expires_at) : "never"),
      element("td", { class: "link-state" }, status),
      element("td", { class: "action" }, status === "active" ? revoke : ""),
    );
  });
  return element("div", {},
    element("table", { id: "links" },
      element("thead", {}, element("tr", {}, ...["Link", "Library", "Folder", "Shows", "Password", "Expires", "State", ""]
        .map((h) => element("th", { scope: "col" }, h)))),
      element("tbody", {}, ...rows)),
    line);
}

/**
 * The owner's live `--follow` links into library `info` (keys `keys`), re-pointed at the folders they
 * name under `root` (the new snapshot's root tree key), as the command-line client
 * re-points them after a commit: the label says the folder and holds the link key, which
 * seals the folder's tree key as the link's new pointer. A link whose folder is gone keeps
 * its pointer. Returns how many moved.
 */
export async function repointLinks({ info, keys, me, root, fetchBlobs }) {
  if (info.permission !== "owner") return 0;
  const { links } = await call("GET", "/api/v1/links");
  const now = Date.now() / 1000;
  let moved = 0;
  const refused = [];
  for (const link of links) {
    if (!link.follow || link.library_id !== info.id || state(link, now) !== "active") continue;
    const label = openLabel(link, me);
    if (!label?.link_key) continue;
    if (!labelMatches(label, link)) {
      refused.push(link.id.slice(0, 8));
      continue;
    }
    let key = root;
    for (const name of String(label.path).split("/").filter((c) => c && c !== ".")) {
      const entry = (await rawTree(fetchBlobs, key, convergenceOf(keys))).find((e) => same(e.name, utf8(name)));
      key = entry?.kind === "dir" ? entry.subtree : null;
      if (!key) break;
    }
    if (!key) continue;
    const pointer = await sealPointer(fromBase64(label.link_key, true), link.id, key);
    await call("PUT", `/api/v1/links/${link.id}/pointer`, { root: hex(objectId(key)), pointer: base64(pointer) });
    moved++;
  }
  if (refused.length) {
    throw new Error(`Link ${refused.join(", ")} was not re-pointed: the server files it under this library, but it was made for another. The server may be redirecting it; revoke it.`);
  }
  return moved;
}
