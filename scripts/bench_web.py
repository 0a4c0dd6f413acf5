"""The web front end's row of `scripts/bench` (issue 16): a 100 MiB file downloaded from a
link in headless Chromium, from the click to the last byte on disk, against `ibackup
restore` of the same file. Goal: within 2x.

`run` (called by scripts/bench) makes the server, the backup and the link, times the
restores, and runs this file again under the Playwright of $IBACKUP_TOOLS/web-venv (see
scripts/setup) to time the browser, which prints its seconds as JSON."""

import json
import os
import subprocess
import sys
import tempfile
import time

GOAL = 2.0
SIZE = 100 << 20
RUNS = 3


def browser_download(url, name, into):
    """Seconds from the click on `name`'s Download button to the file complete on disk."""
    from playwright.sync_api import expect, sync_playwright
    with sync_playwright() as p:
        # The server's certificate is self-signed: Chromium is told to take it as it would
        # a trusted one (the switch, not only the context's setting), or it starts no
        # service worker and the page saves through Blobs instead of streaming to disk.
        args = ["--ignore-certificate-errors"] + (["--no-sandbox"] if os.geteuid() == 0 else [])
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        context = browser.new_context(ignore_https_errors=True, accept_downloads=True)
        page = context.new_page()
        page.goto(url)
        button = page.locator(f'tr[data-name="{name}"]').get_by_role("button", name="Download")
        expect(button).to_be_visible(timeout=60_000)
        start = time.perf_counter()
        with page.expect_download(timeout=600_000) as info:
            button.click()
        path = info.value.path()  # returns once the browser has written the whole file
        seconds = time.perf_counter() - start
        size = os.path.getsize(path)
        browser.close()
    return seconds, size


def python():
    tools = os.environ.get("IBACKUP_TOOLS", "/opt/ibackup-tools")
    path = os.path.join(tools, "web-venv", "bin", "python")
    if not os.path.exists(path) or not os.path.exists("/usr/bin/chromium"):
        raise SystemExit("bench: no Chromium or Playwright; run scripts/setup")
    return path


def run(workdir, make_ibackup):
    """The table row: medians of three restores and three browser downloads."""
    source = tempfile.mkdtemp(prefix="web-source-", dir=workdir)
    with open(os.path.join(source, "file.bin"), "wb") as f:
        f.write(os.urandom(SIZE))
    tool = make_ibackup()
    try:
        subprocess.run([tool.client, "backup", source], env=tool.env, check=True,
                       stdout=subprocess.DEVNULL)
        made = subprocess.run([tool.client, "link", "create", "--json", f"Backups:{source}"],
                              env=tool.env, check=True, capture_output=True, text=True)
        url = json.loads(made.stdout)["url"]
        restores, downloads = [], []
        for _ in range(RUNS):
            target = tempfile.mkdtemp(prefix="web-restore-", dir=workdir)
            start = time.perf_counter()
            subprocess.run([tool.client, "restore", f"latest:{source}/file.bin", "--target",
                            target], env=tool.env, check=True, stdout=subprocess.DEVNULL)
            restores.append(time.perf_counter() - start)
            subprocess.run(["rm", "-rf", target], check=True)
            measured = subprocess.run([python(), __file__, url, "file.bin"], check=True,
                                      capture_output=True, text=True)
            seconds, size = json.loads(measured.stdout)
            if size != SIZE:
                raise SystemExit(f"bench: the browser saved {size} bytes, not {SIZE}")
            downloads.append(seconds)
    finally:
        tool.close()
        subprocess.run(["rm", "-rf", source], check=True)
    print("web: restores " + ", ".join(f"{s:.2f}" for s in restores) + " s; downloads " +
          ", ".join(f"{s:.2f}" for s in downloads) + " s", file=sys.stderr)
    restore, download = sorted(restores)[1], sorted(downloads)[1]
    ratio = download / restore
    mark = "ok" if ratio <= GOAL else "MISSED"
    return "\n".join([
        "| workload | ibackup restore s | browser download s | ratio | goal |",
        "|---|---:|---:|---:|---:|",
        f"| 100 MiB file from a link | {restore:.2f} | {download:.2f} | {ratio:.2f} | "
        f"≤ {GOAL:g} {mark} |",
    ])


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as into:
        print(json.dumps(browser_download(sys.argv[1], sys.argv[2], into)))
