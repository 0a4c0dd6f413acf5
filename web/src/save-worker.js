// The save worker (a service worker scoped to /assets/save/, started by `saver.js`): it
// answers a download's request with a stream of the pieces its page decrypts, so the
// browser writes the file to disk as it comes. It sees only decrypted pieces its own page
// sends it through a private channel, for one request each, and keeps nothing.

/** Pieces asked of the page ahead of the browser's writing. */
const AHEAD = 4;
/** A download whose page was not heard from this long (it says it is there every 5 s) is
 * ended as failed: the page was closed or reloaded, and nothing more will come. */
const SILENT_MS = 20_000;

/** Downloads offered by a page and not yet asked for: id -> {port, name, type, size}. */
const offered = new Map();
/** When each download's page was last heard from: id -> milliseconds. */
const heard = new Map();

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

self.addEventListener("message", (event) => {
  const { save, name, type, size, alive } = event.data || {};
  if (typeof alive === "string" && heard.has(alive)) heard.set(alive, Date.now());
  const port = event.ports[0];
  if (typeof save !== "string" || !/^[0-9a-f]{32}$/.test(save) || !port) return;
  offered.set(save, { port, name: String(name), type: String(type), size });
  heard.set(save, Date.now());
  port.postMessage({ ready: true });
});

self.addEventListener("fetch", (event) => {
  const url = new URL(event.request.url);
  const match = /^\/assets\/save\/([0-9a-f]{32})\//.exec(url.pathname);
  if (url.origin !== self.location.origin || !match) return;
  const download = offered.get(match[1]);
  offered.delete(match[1]);
  if (!download) {
    event.respondWith(new Response("This download has ended. Download the file again from its page.\n", {
      status: 404,
      headers: { "Content-Type": "text/plain; charset=utf-8" },
    }));
    return;
  }
  const headers = {
    "Content-Type": download.type || "application/octet-stream",
    "Content-Disposition": disposition(download.name),
    "X-Content-Type-Options": "nosniff",
  };
  if (Number.isSafeInteger(download.size)) headers["Content-Length"] = String(download.size);
  event.respondWith(new Response(pieces(download.port, match[1]), { headers }));
});

/** The stream of download `id`'s pieces, each asked of the page when the browser wants
 * more. */
function pieces(port, id) {
  let watch = null;
  const done = () => {
    clearInterval(watch);
    heard.delete(id);
    port.close();
  };
  return new ReadableStream(
    {
      start(controller) {
        port.onmessage = ({ data }) => {
          heard.set(id, Date.now());
          if (data.part) {
            controller.enqueue(new Uint8Array(data.part, data.at ?? 0, data.length ?? data.part.byteLength));
          } else if (data.end) {
            controller.close();
            done();
          } else if (data.error) {
            controller.error(new Error(data.error));
            done();
          }
        };
        watch = setInterval(() => {
          if (Date.now() - (heard.get(id) ?? 0) > SILENT_MS) {
            controller.error(new Error("the page saving this file was closed"));
            done();
          }
        }, SILENT_MS / 4);
      },
      pull() {
        port.postMessage({ more: true });
      },
      cancel() {
        port.postMessage({ cancelled: true });
        done();
      },
    },
    new CountQueuingStrategy({ highWaterMark: AHEAD }),
  );
}

/** `attachment` with the name as UTF-8, and a plain-ASCII fallback for old readers. */
function disposition(name) {
  const plain = name.replace(/[^\x20-\x7e]|["\\]/g, "_");
  const encoded = encodeURIComponent(name).replace(/['()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
  return `attachment; filename="${plain}"; filename*=UTF-8''${encoded}`;
}
