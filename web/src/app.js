// The signed-in pages at the server's address: sign in, and My Profile. The password is
// stretched here with Argon2id (the account's salt and cost, as the command-line client
// does), and only the auth secret it yields is sent; the key-encryption key it also yields
// stays in this page's memory. The session is the server's `__Host-` cookie, which this
// script cannot read.

import { argon2idAsync } from "@noble/hashes/argon2.js";

import { call, request, Refused } from "./api.js";
import { element, save, say, size, when } from "./dom.js";
import { fromBase64 } from "./blob.js";

const main = document.getElementById("main");
const account = document.getElementById("account");

function base64(bytes) {
  return btoa(String.fromCharCode(...bytes));
}

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

async function signIn(email, password) {
  const pre = await call("POST", "/api/v1/prelogin", { email });
  const { m, t, p } = checkedCost(pre.kdf);
  const derived = await argon2idAsync(new TextEncoder().encode(password), fromBase64(pre.salt), {
    m,
    t,
    p,
    dkLen: 64,
    asyncTick: 20,
  });
  const auth = derived.slice(32);
  derived.fill(0);
  // The answer repeats the token for the command-line client; the page keeps only the
  // cookie the browser stores.
  await request("POST", "/api/v1/sessions", { email, auth_secret: base64(auth), client: "web browser" });
  auth.fill(0);
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
      note.className = "";
      note.textContent = "Checking your password… (this takes a few seconds, on purpose)";
      try {
        await signIn(email.value.trim().toLowerCase(), password.value);
        password.value = "";
        await profile();
      } catch (error) {
        note.className = "error";
        note.setAttribute("role", "alert");
        note.textContent = explain(error);
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
        note.className = "done";
        note.textContent = "Saved.";
        refresh();
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
        refresh();
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

async function profile() {
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
  const refresh = () => profile().catch((error) => say(main, explain(error), "error"));
  account.replaceChildren(
    element("span", {}, info.email),
    " ",
    element("button", { type: "button", id: "sign-out", onclick: async () => {
      await call("DELETE", "/api/v1/sessions/current").catch(() => {});
      signInForm("You are signed out.");
    } }, "Sign out"),
  );
  const usage = info.quota_bytes ? Math.min(100, (100 * info.used_bytes) / info.quota_bytes) : 0;
  main.replaceChildren(
    element("h2", { class: "page" }, "My Profile"),
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
    ),
    section("E-mail from us", consentBox(info)),
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
  );
}

profile().catch((error) => say(main, explain(error), "error"));
