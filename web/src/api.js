// The link routes of the server (docs/PROTOCOL.md): open a link (with its password), then
// fetch the objects reachable from its folder. The fragment's key never leaves the page:
// only ids and the link's token are sent.

import { Damaged, hex } from "./blob.js";

/** A refusal by the server, with its code (`unauthorized`, `gone`, ...) and its words. */
export class Refused extends Error {
  constructor(status, body) {
    super(body?.message || `the server answered ${status}`);
    this.status = status;
    this.code = body?.error || "";
    this.retryAfter = body?.retry_after ?? null;
  }
}

/**
 * One request to this server's API: JSON in (or a Blob's bytes), the answer as it came, or [`Refused`] with
 * the server's words. The session cookie goes along (same origin only); a link's requests
 * carry their token in the body instead.
 */
export async function request(method, path, body, credentials = "same-origin") {
  const bytes = body instanceof Blob;
  let answer;
  try {
    answer = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "Content-Type": bytes ? "application/octet-stream" : "application/json" },
      body: body === undefined || bytes ? body : JSON.stringify(body),
      credentials,
      cache: "no-store",
    });
  } catch {
    throw new Refused(0, { message: "the server cannot be reached; check your connection" });
  }
  if (!answer.ok) {
    let said = null;
    try {
      said = await answer.json();
    } catch {
      // An answer that is not the server's JSON (a proxy's page): said by its status.
    }
    throw new Refused(answer.status, said);
  }
  return answer;
}

/** [`request`] answered with JSON (or nothing, for 204). */
export async function call(method, path, body) {
  const answer = await request(method, path, body);
  return answer.status === 204 ? null : answer.json();
}

/** A link's requests: no cookie goes along, whoever is signed in. */
const post = (path, body) => request("POST", path, body, "omit");

export async function openLink(linkId, password) {
  const answer = await post(`/api/v1/links/${linkId}/open`, password ? { password } : {});
  return answer.json();
}

/** The stored blobs of `ids` (each a Uint8Array), in the order asked. */
export async function fetchObjects(linkId, token, ids) {
  const answer = await post(`/api/v1/links/${linkId}/fetch`, { token, ids: ids.map(hex) });
  return frames(answer, ids.length);
}

/**
 * The blobs of a fetch answer (docs/PROTOCOL.md, "Fetch answer"): `length (u32 BE) ||
 * blob` for each of the `count` ids asked, in order.
 *
 * The body is taken as a Blob first: Chromium then hands it from its network process to
 * its blob store without the page's thread reading it piece by piece, and the page reads
 * it back in one go. Measured (docs/BENCHMARKS.md, the web row), that moves 100 MiB at
 * about 250 MB/s where `arrayBuffer()` on the answer managed 140 MB/s on a third of the CPU.
 */
export async function frames(answer, count) {
  const bytes = new Uint8Array(await (await answer.blob()).arrayBuffer());
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const blobs = [];
  let at = 0;
  while (at < bytes.length) {
    if (at + 4 > bytes.length) throw new Damaged("the server's answer is cut short");
    const length = view.getUint32(at, false);
    at += 4;
    if (at + length > bytes.length) throw new Damaged("the server's answer is cut short");
    blobs.push(bytes.subarray(at, at + length));
    at += length;
  }
  if (blobs.length !== count) {
    throw new Damaged(`the server sent ${blobs.length} objects for ${count} asked`);
  }
  return blobs;
}
