// The few DOM helpers the pages share: no framework, nothing inline, so the page's
// Content-Security-Policy needs no `unsafe-*`.

/** An element with attributes (`onclick`, `onsubmit`, `onchange` become listeners). */
export function element(tag, attributes = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (name.startsWith("on")) node.addEventListener(name.slice(2), value);
    else if (value === true) node.setAttribute(name, "");
    else if (value !== false && value !== null && value !== undefined) node.setAttribute(name, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

/** Replaces what `main` shows with one line: progress, or an error said in words. */
export function say(main, message, kind = "status") {
  main.replaceChildren(
    element("p", { id: "status", class: kind, role: kind === "error" ? "alert" : "status" }, message),
  );
}

/** Says `message` on a status line: `kind` is its class (done, note, error), and an error
 * is announced at once. */
export function tell(line, message, kind = "done") {
  line.className = kind;
  line.setAttribute("role", kind === "error" ? "alert" : "status");
  line.textContent = message;
}

export function size(bytes) {
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(1)} ${units[unit]}`;
}

/** A time in seconds since the Unix epoch, in the reader's locale. */
export function when(seconds) {
  return seconds ? new Date(seconds * 1000).toLocaleString() : "";
}

/** Hands `blob` to the browser to save as `name`. */
export function save(blob, name) {
  const url = URL.createObjectURL(blob);
  const link = element("a", { href: url, download: name });
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60_000);
}

/** Downloads and uploads under way: leaving the page would stop them, so it asks first. */
let transfers = 0;
addEventListener("beforeunload", (event) => {
  if (transfers) event.preventDefault();
});

/** `work()` (a download or an upload), with the browser asking before the page is left. */
export async function whileBusy(work) {
  transfers += 1;
  try {
    return await work();
  } finally {
    transfers -= 1;
  }
}
