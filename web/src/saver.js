// Saving a download to disk as it is decrypted. Where the browser runs service workers,
// the page hands each decrypted piece to `save-worker.js`, whose answer to a hidden frame's
// request is the download itself: the browser writes it to disk while the rest is still
// being fetched, and no copy of the whole file is ever held. Elsewhere (no service worker,
// or one that would not start, as under a certificate the browser does not trust) the
// pieces are kept as Blobs, which the browser may keep on disk, and saved at the end.

import { hex } from "./blob.js";
import { save } from "./dom.js";

/** Where the worker answers: its scope. Nothing else of the site is under it. */
const SCOPE = "/assets/save/";
/** How long the worker may take to take a download before the page saves it itself. */
const READY_MS = 3000;
/** How long the browser may take to start the worker's download before the page saves
 * the file itself. */
const STARTED_MS = 10_000;
/** A message to the worker this often keeps it running through a long download, and tells
 * it the page is still there (it ends a download whose page went quiet). */
const KEEP_ALIVE_MS = 5_000;

/** The download was cancelled in the browser's download list (or an upload in the page). */
export class Cancelled extends Error {
  constructor(message = "the download was cancelled") {
    super(message);
  }
}

let worker = null;

/**
 * Starts the save worker (once per page). A page that cannot have it saves through Blobs,
 * which [`openSaver`] falls back to by itself.
 */
export function startSaving() {
  if (worker || !("serviceWorker" in navigator) || !window.isSecureContext) return;
  worker = navigator.serviceWorker
    .register("/assets/save-worker.js", { scope: SCOPE })
    .then(activated)
    .catch(() => null);
}

/** The registration's worker once it runs, or null if it does not within READY_MS. */
function activated(registration) {
  if (registration.active) return registration.active;
  const starting = registration.installing || registration.waiting;
  if (!starting) return null;
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(null), READY_MS);
    starting.addEventListener("statechange", () => {
      if (starting.state === "activated") {
        clearTimeout(timer);
        resolve(starting);
      } else if (starting.state === "redundant") {
        clearTimeout(timer);
        resolve(null);
      }
    });
  });
}

/**
 * Somewhere to write the download `name` of `size` bytes (null when not known, as for a
 * .zip): `write(bytes)` waits while the disk is behind, `close()` finishes it, and
 * `abort(error)` ends it as failed. `owned` says the written arrays are the page's to give
 * away (their buffers are handed over, not copied).
 */
export async function openSaver(name, type, size = null, owned = false) {
  const running = worker && (await worker);
  if (running) {
    try {
      return await streamed(running, name, type, size, owned);
    } catch {
      // The worker did not take it (stopped, or replaced): the page saves it itself.
    }
  }
  return kept(name, type);
}

/** Pieces handed to the worker as the browser asks for them. */
async function streamed(running, name, type, size, owned) {
  const id = hex(crypto.getRandomValues(new Uint8Array(16)));
  const { port1: port, port2 } = new MessageChannel();
  let credits = 0;
  let cancelled = false;
  let wake = () => {};
  const taken = new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error("the save worker did not answer")), READY_MS);
    port.onmessage = ({ data }) => {
      if (data.ready) {
        clearTimeout(timer);
        resolve();
      } else if (data.more) {
        credits += 1;
        wake();
      } else if (data.cancelled) {
        cancelled = true;
        wake();
      }
    };
  });
  running.postMessage({ save: id, name, type, size }, [port2]);
  await taken;
  const frame = document.createElement("iframe");
  frame.hidden = true;
  // No name in the address: were the worker not in control, the request would reach the
  // server, and a name is the page's secret (the worker names the file in its answer).
  frame.src = `${SCOPE}${id}/download`;
  document.body.append(frame);
  const alive = setInterval(() => running.postMessage({ alive: id }), KEEP_ALIVE_MS);
  const finish = () => {
    clearInterval(alive);
    port.close();
    setTimeout(() => frame.remove(), 60_000);
  };
  // The browser asks for the first piece once it took the worker's answer as a download;
  // one that does not (it showed the answer, or never asked the worker) gets the file from
  // the page instead.
  const asked = Date.now();
  while (!credits && !cancelled && Date.now() - asked < STARTED_MS) {
    await new Promise((resolve) => {
      wake = resolve;
      setTimeout(resolve, 250);
    });
  }
  if (!credits && !cancelled) {
    clearInterval(alive);
    port.close();
    frame.remove();
    throw new Error("the browser did not take the save worker's download");
  }
  return {
    async write(bytes) {
      while (!credits && !cancelled) await new Promise((resolve) => (wake = resolve));
      if (cancelled) {
        finish();
        throw new Cancelled();
      }
      credits -= 1;
      if (owned) {
        const { buffer, byteOffset, byteLength } = bytes;
        port.postMessage({ part: buffer, at: byteOffset, length: byteLength }, [buffer]);
      } else {
        port.postMessage({ part: bytes.slice().buffer });
      }
    },
    async close() {
      port.postMessage({ end: true });
      finish();
    },
    abort(error) {
      port.postMessage({ error: error?.message || "the download failed" });
      finish();
    },
  };
}

/** Pieces kept as Blobs (the browser moves them out of the page, to disk if large), saved
 * as one file at the end. */
function kept(name, type) {
  const parts = [];
  return {
    async write(bytes) {
      parts.push(new Blob([bytes]));
    },
    async close() {
      save(new Blob(parts, { type }), name);
    },
    abort() {
      parts.length = 0;
    },
  };
}
