"""What the browser tests share: Chromium launched as they run it, the page's errors
watched, a check that stops the test in words, and a file downloaded from a folder view."""

import os

from playwright.sync_api import expect


def checker(who):
    """A `check(condition, message)` that ends the test, saying `who` failed and why."""
    def check(condition, message):
        if not condition:
            raise SystemExit(f"{who}: {message}")
    return check


def open_page(playwright, chromium, height, workers=True):
    """Debian's Chromium with a fresh context that accepts the server's self-signed
    certificate and downloads; its page, and the list every error the page logs goes to (a
    refused script or request under the Content Security Policy is one, and so is every
    uncaught exception).

    The certificate is accepted as a browser that trusts it would (the switch, not only the
    context's setting: Chromium starts no service worker under a certificate error
    otherwise), so downloads stream through the page's save worker; `workers=False` blocks
    service workers, and downloads take the page's other way, Blobs saved at the end."""
    args = ["--ignore-certificate-errors"] + (["--no-sandbox"] if os.geteuid() == 0 else [])
    browser = playwright.chromium.launch(executable_path=chromium, args=args)
    context = browser.new_context(ignore_https_errors=True, accept_downloads=True,
                                  service_workers="allow" if workers else "block",
                                  viewport={"width": 1000, "height": height})
    page = context.new_page()
    problems = []
    page.on("console", lambda m: m.type == "error" and problems.append(m.text))
    page.on("pageerror", lambda e: problems.append(str(e)))
    return browser, context, page, problems


def faults(problems):
    """The page's errors but refused requests (a wrong password's 401, an unknown link's
    404), which the browser logs as failed loads."""
    return [p for p in problems if "Failed to load resource" not in p]


def streamed_downloads(page):
    """How many downloads went through the save worker: each leaves its hidden frame in the
    page for a minute."""
    return page.locator('iframe[src^="/assets/save/"]').count()


def download(page, name, timeout, streamed=True):
    """The bytes of file `name` of the folder shown, downloaded with its button; it must
    have gone through the save worker, or (`streamed=False`) not."""
    row = page.locator(f'tr[data-name="{name}"]')
    expect(row).to_have_count(1, timeout=timeout)
    frames = streamed_downloads(page)
    with page.expect_download(timeout=timeout) as info:
        row.get_by_role("button", name="Download").click()
    with open(info.value.path(), "rb") as f:
        got = f.read()
    expect(row.get_by_text("Downloaded")).to_be_visible(timeout=timeout)
    now = streamed_downloads(page)
    # No file name in any address: a request the worker did not catch would tell the server.
    sources = page.locator('iframe[src^="/assets/save/"]').evaluate_all("fs => fs.map((f) => f.src)")
    named = [src for src in sources if name in src or not src.endswith("/download")]
    if named:
        raise SystemExit(f"a download's address carries its name: {named}")
    if now != frames + (1 if streamed else 0):
        raise SystemExit(f"{name} was {'not ' if streamed else ''}saved through the page's "
                         f"save worker ({frames} streamed downloads before, {now} after)")
    return got
