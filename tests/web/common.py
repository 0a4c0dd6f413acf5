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


def open_page(playwright, chromium, height):
    """Debian's Chromium with a fresh context that accepts the server's self-signed
    certificate and downloads; its page, and the list every error the page logs goes to (a
    refused script or request under the Content Security Policy is one, and so is every
    uncaught exception)."""
    browser = playwright.chromium.launch(executable_path=chromium,
                                         args=["--no-sandbox"] if os.geteuid() == 0 else [])
    context = browser.new_context(ignore_https_errors=True, accept_downloads=True,
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


def download(page, name, timeout):
    """The bytes of file `name` of the folder shown, downloaded with its button."""
    row = page.locator(f'tr[data-name="{name}"]')
    expect(row).to_have_count(1, timeout=timeout)
    with page.expect_download(timeout=timeout) as info:
        row.get_by_role("button", name="Download").click()
    with open(info.value.path(), "rb") as f:
        got = f.read()
    expect(row.get_by_text("Downloaded")).to_be_visible(timeout=timeout)
    return got
