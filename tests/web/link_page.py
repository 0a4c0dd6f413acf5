"""Opens ibackup links in headless Chromium, as a visitor would, and checks what the page
shows and what it downloads. Driven by tests/it/web.rs, which makes the server, the backup
and the links; the arguments are one JSON object (see `main`). Exits non-zero, saying why,
on the first thing that is not as a visitor should find it."""

import json
import os
import sys
import threading
import zipfile

from playwright.sync_api import expect, sync_playwright

from common import checker, faults, open_page
import common

TIMEOUT_MS = 30_000
check = checker("link page")


def download(page, name, streamed=True):
    return common.download(page, name, TIMEOUT_MS, streamed)


def same_file(got, expected_path, what):
    with open(expected_path, "rb") as f:
        expected = f.read()
    check(got == expected, f"{what}: {len(got)} bytes downloaded, not the {len(expected)} "
                           "bytes backed up")


def check_zip(page, files, streamed=True):
    """The whole folder as one .zip, every file as backed up."""
    frames = common.streamed_downloads(page)
    with page.expect_download(timeout=TIMEOUT_MS) as info:
        page.get_by_role("button", name="Download folder as .zip").click()
    expect(page.locator("#zip-status")).to_contain_text("Downloaded 3 files",
                                                        timeout=TIMEOUT_MS)
    check(common.streamed_downloads(page) == frames + (1 if streamed else 0),
          f"the .zip was {'not ' if streamed else ''}saved through the save worker")
    with zipfile.ZipFile(info.value.path()) as archive:
        names = sorted(archive.namelist())
        check(names == ["big.bin", "deep/file-00.txt", "readme.txt"], f"zip holds {names}")
        for name, key in [("big.bin", "big.bin"), ("deep/file-00.txt", "file-00.txt"),
                          ("readme.txt", "readme.txt")]:
            same_file(archive.read(name), files[key], f"{name} in the zip")


def main():
    args = json.loads(sys.argv[1])
    links, files = args["links"], args["files"]
    with sync_playwright() as p:
        browser, _, page, problems = open_page(p, args["chromium"], 700)

        # A folder link: its entries, a file of several chunks, a folder inside it.
        page.goto(links["folder"])
        expect(page.locator("table caption")).to_be_visible(timeout=TIMEOUT_MS)
        for name in args["folder_names"]:
            expect(page.locator(f'tr[data-name="{name}"]')).to_have_count(1)
        if args.get("screenshots"):
            page.screenshot(path=os.path.join(args["screenshots"], "web-link-folder.png"))
        same_file(download(page, "big.bin"), files["big.bin"], "big.bin")
        same_file(download(page, "readme.txt"), files["readme.txt"],
                  "readme.txt")
        check_zip(page, files)
        page.locator('tr[data-name="deep"]').get_by_role("button", name="Open").click()
        expect(page.locator('tr[data-name="file-00.txt"]')).to_have_count(1,
                                                                         timeout=TIMEOUT_MS)
        same_file(download(page, "file-00.txt"), files["file-00.txt"],
                  "deep/file-00.txt")
        page.get_by_role("button", name="Shared folder").click()
        expect(page.locator('tr[data-name="big.bin"]')).to_have_count(1, timeout=TIMEOUT_MS)

        # A link with a password: asked for, a wrong one said so, the right one opens.
        page.goto(links["password"])
        field = page.get_by_label("This link needs a password")
        expect(field).to_be_visible(timeout=TIMEOUT_MS)
        if args.get("screenshots"):
            page.screenshot(path=os.path.join(args["screenshots"], "web-link-password.png"))
        field.fill("not it")
        page.get_by_role("button", name="Open").click()
        expect(page.get_by_text("That password is not the link's")).to_be_visible(
            timeout=TIMEOUT_MS)
        page.get_by_label("This link needs a password").fill(args["password"])
        page.get_by_role("button", name="Open").click()
        expect(page.locator('tr[data-name="readme.txt"]')).to_have_count(1, timeout=TIMEOUT_MS)
        same_file(download(page, "readme.txt"), files["readme.txt"],
                  "readme.txt through the password link")

        # A link that follows the newest snapshot.
        page.goto(links["follow"])
        expect(page.locator('tr[data-name="readme.txt"]')).to_have_count(1, timeout=TIMEOUT_MS)

        # Ended links and cut addresses are said in words.
        for which, words in [("expired", "expired"), ("revoked", "revoked"),
                             ("cut", "not a whole ibackup link"),
                             ("unknown", "no such link")]:
            page.goto(links[which])
            expect(page.locator("#status.error")).to_contain_text(words, ignore_case=True,
                                                                   timeout=TIMEOUT_MS)
        if args.get("screenshots"):
            page.goto(links["expired"])
            expect(page.locator("#status.error")).to_be_visible(timeout=TIMEOUT_MS)
            page.screenshot(path=os.path.join(args["screenshots"], "web-link-expired.png"))

        # At phone width the listing still fits.
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(links["folder"])
        expect(page.locator("table caption")).to_be_visible(timeout=TIMEOUT_MS)
        width = page.evaluate("document.documentElement.scrollWidth")
        check(width <= 390, f"at phone width the page is {width} px wide")
        # A page closed in the middle of a download: the file is marked failed in the
        # browser's downloads, not left waiting for the rest for ever.
        closing = page.context.new_page()
        closing.goto(links["folder"])
        row = closing.locator('tr[data-name="big.bin"]')
        expect(row).to_have_count(1, timeout=TIMEOUT_MS)
        closing.route("**/api/v1/links/*/fetch", lambda route: None)  # never answered
        with closing.expect_download(timeout=TIMEOUT_MS) as info:
            row.get_by_role("button", name="Download").click()
        closing.close()
        # Playwright waits for a download's end without a limit: a timer ends the test if
        # it never comes.
        hung = threading.Timer(60, lambda: (print("link page: a download whose page was "
                                                  "closed was still waiting after 60 s",
                                                  flush=True), os._exit(1)))
        hung.start()
        failure = info.value.failure()
        hung.cancel()
        check(failure is not None, "a download whose page was closed completed")
        browser.close()

        # Where the browser runs no service worker, downloads are whole all the same.
        browser, _, page, more = open_page(p, args["chromium"], 700, workers=False)
        page.goto(links["folder"])
        same_file(download(page, "big.bin", streamed=False), files["big.bin"],
                  "big.bin without the save worker")
        check_zip(page, files, streamed=False)
        problems += more
        browser.close()
    check(not faults(problems), f"the page reported errors: {faults(problems)}")
    print("link page: all checks passed")


if __name__ == "__main__":
    main()
