"""Signs in at the server's address in headless Chromium, with an account the command-line
client made, and uses My Profile as its owner would. Driven by tests/it/web.rs (the
arguments are one JSON object, see `main`), which then checks with the command-line client
that what the page did is what the server keeps."""

import json
import os
import sys
import time

from playwright.sync_api import expect, sync_playwright

from common import checker, faults, open_page
import common

TIMEOUT_MS = 60_000
check = checker("profile page")


def main():
    args = json.loads(sys.argv[1])
    with sync_playwright() as p:
        browser, context, page, problems = open_page(p, args["chromium"], 900)

        try:
            use(page, context, args)
        except BaseException:
            # What the page showed and said, for whoever reads the failure.
            print("page text:", page.inner_text("body"), "\nerrors:", problems)
            raise
        browser.close()
    check(not faults(problems), f"the page reported errors: {faults(problems)}")
    print("profile page: all checks passed", file=sys.stderr)


def use(page, context, args):
    if args["part"] == "profile":
        page.goto(args["url"])
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
        page.get_by_label("E-mail address").fill(args["email"].upper())
        page.get_by_label("Password").fill("not the password")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_text("Wrong e-mail or password")).to_be_visible(timeout=TIMEOUT_MS)
        page.get_by_label("Password").fill(args["password"])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="My Profile")).to_be_visible(timeout=TIMEOUT_MS)
        expect(page.locator("#email-shown")).to_contain_text(args["email"])
        cookies = context.cookies()
        check([c["name"] for c in cookies] == ["__Host-ibackup_session"],
              f"cookies: {[c['name'] for c in cookies]}")
        check(cookies[0]["httpOnly"] and cookies[0]["secure"], "the session cookie is readable")
        if args.get("screenshots"):
            page.screenshot(path=os.path.join(args["screenshots"], "web-profile.png"),
                            full_page=True)

        page.get_by_label("First name").fill("Alicia")
        page.get_by_role("button", name="Save names").click()
        expect(page.locator("#flash")).to_have_text("Your names were saved.", timeout=TIMEOUT_MS)
        # A new address, with the password; unconfirmed until its mailed link is opened.
        page.get_by_text("Change your e-mail address").click()
        page.get_by_label("New e-mail address").fill(args["new_email"])
        page.locator("#email-password").fill(args["password"])
        page.get_by_role("button", name="Change address").click()
        expect(page.locator("#flash")).to_contain_text(args["new_email"], timeout=TIMEOUT_MS)
        expect(page.locator("#email-shown")).to_contain_text("not confirmed")
        page.get_by_label("Send me news about ibackup by e-mail").check()
        expect(page.get_by_text("You will get news by e-mail.")).to_be_visible(
            timeout=TIMEOUT_MS)

        # A paid plan: its price for the rest of the period is shown before confirming; it
        # needs a card first.
        page.get_by_label("personal:").check()
        expect(page.locator("#plan-status")).to_contain_text("will be charged", timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Change plan").click()
        expect(page.locator("#plan-status")).to_contain_text("needs a card", timeout=TIMEOUT_MS)
        page.get_by_text("Add a card").click()
        page.get_by_label("Name on the card").fill("Alicia Example")
        page.get_by_label("Card number").fill("4242 4242 4242 4242")
        page.get_by_label("Expiry month").fill("12")
        page.get_by_label("Expiry year").fill("2034")
        page.get_by_label("Security code").fill("987")
        page.get_by_role("button", name="Add card").click()
        expect(page.locator("#flash")).to_contain_text("ending 4242", timeout=TIMEOUT_MS)
        page.get_by_label("personal:").check()
        expect(page.locator("#plan-status")).to_contain_text("will be charged", timeout=TIMEOUT_MS)
        page.get_by_role("button", name="Change plan").click()
        expect(page.locator("#flash")).to_have_text("You are on personal now.", timeout=TIMEOUT_MS)
        expect(page.locator("#plan")).to_have_text("personal")
        expect(page.locator("#invoices tbody tr")).to_have_count(1, timeout=TIMEOUT_MS)

        # The command-line client's session, signed out from here.
        others = page.locator("#sessions tbody tr").filter(
            has=page.get_by_role("button", name="Sign out"))
        check(others.count() == 1, f"{others.count()} other sessions listed, not 1")
        expect(page.locator("#sessions")).to_contain_text("this browser")
        others.get_by_role("button", name="Sign out").click()
        expect(page.locator("#flash")).to_contain_text("was signed out", timeout=TIMEOUT_MS)
        expect(page.locator("#sessions tbody tr")).to_have_count(1)

        with page.expect_download(timeout=TIMEOUT_MS) as info:
            page.get_by_role("button", name="Download my data").click()
        with open(info.value.path(), encoding="utf-8") as f:
            exported = json.load(f)
        text = json.dumps(exported)
        for what in [args["new_email"], "Alicia", "personal"]:
            check(what in text, f"the export does not hold {what}")

        # A new password: a wrong current one changes nothing; then there and back again,
        # which opens the account key wrapped by the page's own first change.
        page.get_by_text("Change your password").click()
        page.get_by_label("Current password").fill("not the password")
        page.get_by_label("New password", exact=True).fill(args["new_password"])
        page.get_by_label("New password, again").fill(args["new_password"])
        page.get_by_role("button", name="Change password").click()
        expect(page.locator("#password-status")).to_contain_text("current password is wrong",
                                                                 timeout=TIMEOUT_MS)
        for old, new in [(args["password"], "an interim password"),
                         ("an interim password", args["new_password"])]:
            if not page.locator("#change-password").is_visible():
                page.get_by_text("Change your password").click()
            page.get_by_label("Current password").fill(old)
            page.get_by_label("New password", exact=True).fill(new)
            page.get_by_label("New password, again").fill(new)
            page.evaluate("document.querySelector('#flash')?.remove()")
            page.get_by_role("button", name="Change password").click()
            expect(page.locator("#flash")).to_contain_text("password was changed",
                                                           timeout=TIMEOUT_MS)

        page.locator("#sign-out").click()
        expect(page.get_by_text("You are signed out.")).to_be_visible(timeout=TIMEOUT_MS)
        check(context.cookies() == [], "the cookie outlived the sign-out")
        page.reload()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)

    elif args["part"] == "signup":
        signup(page, args)
    elif args["part"] == "library":
        library(page, args)
    elif args["part"] == "share":
        share(page, args)
    elif args["part"] == "swapped":
        swapped(page, args)
    elif args["part"] == "refused":
        refused(page, args)
    elif args["part"] == "rewound":
        rewound(page, args)
    else:
        delete(page, args)


def library(page, args):
    """One's own library backed up by the command-line client: signed in, its name
    decrypted in the page, its newest snapshot opened, down to a file, downloaded."""
    page.goto(args["url"])
    page.get_by_label("E-mail address").fill(args["email"])
    page.get_by_label("Password").fill(args["password"])
    page.get_by_role("button", name="Sign in").click()
    row = page.locator(f'tr[data-library="{args.get("library", "Backups")}"]')
    expect(row).to_have_count(1, timeout=TIMEOUT_MS)
    row.get_by_role("button", name="Open").click()
    snapshots = page.locator("#snapshots tbody tr")
    expect(snapshots).to_have_count(args["snapshots"], timeout=TIMEOUT_MS)
    snapshots.first.get_by_role("button", name="Open").click()
    for folder in args["folders"]:
        here = page.locator(f'tr[data-name="{folder}"]')
        expect(here).to_have_count(1, timeout=TIMEOUT_MS)
        here.get_by_role("button", name="Open").click()
    if args.get("screenshots"):
        expect(page.locator(f'tr[data-name="{args["file"]}"]')).to_have_count(1,
                                                                             timeout=TIMEOUT_MS)
        page.screenshot(path=os.path.join(args["screenshots"], "web-library.png"))
    got = download(page, args["file"])
    with open(args["expected"], "rb") as f:
        check(got == f.read(), f"{args['file']}: {len(got)} bytes, not what was backed up")
    upload = page.locator("#upload-files")
    if not args.get("upload"):
        # A member who may only read is offered no way to add files.
        check(upload.count() == 0, "a reader is offered to add files")
        check(page.get_by_role("button", name="Delete").count() == 0
              and page.get_by_role("button", name="Rename").count() == 0
              and page.locator("#new-folder").count() == 0,
              "a reader is offered to change files")
        return
    # Files added to the folder shown: a new snapshot, the folder shown again with them,
    # and what was added downloads back whole.
    upload.set_input_files(args["upload"])
    expect(page.locator("#upload-status")).to_contain_text("Added 2 files", timeout=TIMEOUT_MS)
    for path in args["upload"]:
        name = os.path.basename(path)
        with open(path, "rb") as f:
            check(download(page, name) == f.read(), f"{name} downloads back changed")
    expect(page.locator(f'tr[data-name="{args["file"]}"]')).to_have_count(1)
    # A second time, with a name already there, while another writer commits: the page's
    # first move of the head is held until the command-line client has committed (the
    # test does it when asked), so the server refuses it (409, its compare-and-swap) and
    # the page adds the file again on top of the new head, keeping what only that head
    # holds (`kept`, and what the other writer added elsewhere).
    held = []

    def head(route):
        if route.request.method == "PUT" and not held:
            held.append(route)
        else:
            route.continue_()
    moves = []
    page.on("response", lambda r: r.request.method == "PUT" and r.url.endswith("/head")
            and moves.append(r.status))
    page.route("**/api/v1/libraries/*/head", head)
    upload = page.locator("#upload-files")
    upload.set_input_files(args["upload"][:1])
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not held:
        check(time.monotonic() < deadline, "the page never moved the head")
        page.wait_for_timeout(50)
    server_does(args, "race")
    held[0].continue_()
    expect(page.locator("#upload-status")).to_contain_text("Added 1 file", timeout=TIMEOUT_MS)
    check(moves == [409, 200], f"the head moves were answered {moves}")
    rows = page.locator(f'tr[data-name="{os.path.basename(args["upload"][0])}"]')
    expect(rows).to_have_count(1)
    for name in [args["file"], *args.get("kept", []), os.path.basename(args["upload"][1])]:
        expect(page.locator(f'tr[data-name="{name}"]')).to_have_count(1)
    page.unroute("**/api/v1/libraries/*/head")
    if args.get("cancelled"):
        cancel_upload(page, args["cancelled"])
    if args.get("linked"):
        unlink_and_put_back(page, args)

    if args.get("revoke"):
        links(page, args)
    if args.get("leave"):
        leave(page, args)


def refused(page, args):
    """A member the server added on its own, with a new key asked for: the sharing table
    marks them, and the owner's next upload starts the new key for the others only and
    says whom it refused."""
    sign_in(page, args)
    open_library(page, args)
    stranger = page.locator(f'tr[data-member="{args["stranger"]}"]')
    expect(stranger).to_contain_text("not added by you", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-member="{args["member"]}"]')).not_to_contain_text("not added")
    page.locator("#snapshots tbody tr").first.get_by_role("button", name="Open").click()
    for folder in args["folders"]:
        here = page.locator(f'tr[data-name="{folder}"]')
        expect(here).to_have_count(1, timeout=TIMEOUT_MS)
        here.get_by_role("button", name="Open").click()
    page.locator("#upload-files").set_input_files(args["upload"])
    status = page.locator("#upload-status")
    expect(status).to_contain_text("Added 1 file", timeout=TIMEOUT_MS)
    expect(status).to_contain_text(f"Refused {args['stranger']}")


def server_does(args, step):
    """Asks the test (watching `signals`) to change the server's database as a compromised
    server would, and waits until it has."""
    signals = args["signals"]
    with open(os.path.join(signals, f"{step}.asked"), "w") as f:
        f.write(step)
    deadline = time.monotonic() + 30
    while not os.path.exists(os.path.join(signals, f"{step}.done")):
        check(time.monotonic() < deadline, f"the test never did {step}")
        time.sleep(0.1)


def sign_in(page, args):
    page.goto(args["url"])
    page.get_by_label("E-mail address").fill(args["email"])
    page.get_by_label("Password").fill(args["password"])
    page.get_by_role("button", name="Sign in").click()


def open_library(page, args):
    row = page.locator('tr[data-library="Backups"]')
    expect(row).to_have_count(1, timeout=TIMEOUT_MS)
    row.get_by_role("button", name="Open").click()


def rewound(page, args):
    """The page remembers the newest head and key epoch it saw, as the command-line client
    does: a server that sets the head back, or hands back an older key, is refused."""
    sign_in(page, args)
    open_library(page, args)
    page.locator("#snapshots tbody tr").first.get_by_role("button", name="Open").click()
    expect(page.locator(f'tr[data-name="{args["folders"][0]}"]')).to_have_count(1, timeout=TIMEOUT_MS)
    server_does(args, "rewind")
    unlock_again(page, args)
    open_library(page, args)
    page.locator("#snapshots tbody tr").first.get_by_role("button", name="Open").click()
    expect(page.get_by_text("OLDER STATE")).to_be_visible(timeout=TIMEOUT_MS)
    server_does(args, "old-key")
    unlock_again(page, args)
    expect(page.get_by_text("has seen epoch 2")).to_be_visible(timeout=TIMEOUT_MS)


def unlock_again(page, args):
    """The page loaded again: still signed in, the libraries opened with the password."""
    page.reload()
    page.locator("#unlock-password").fill(args["password"])
    page.get_by_role("button", name="Open my libraries").click()


def swapped(page, args):
    """A file whose stored chunk the server swapped for other contents sealed under the
    chunk's key: the page, holding the library's keys, refuses it and says so in the row."""
    sign_in(page, args)
    open_library(page, args)
    page.locator("#snapshots tbody tr").first.get_by_role("button", name="Open").click()
    for folder in args["folders"]:
        here = page.locator(f'tr[data-name="{folder}"]')
        expect(here).to_have_count(1, timeout=TIMEOUT_MS)
        here.get_by_role("button", name="Open").click()
    intact = page.locator(f'tr[data-name="{args["intact"]}"]')
    expect(intact).to_have_count(1, timeout=TIMEOUT_MS)
    with open(args["expected"], "rb") as f:
        check(download(page, args["intact"]) == f.read(), "the intact file downloads changed")
    file = page.locator(f'tr[data-name="{args["file"]}"]')
    file.get_by_role("button", name="Download").click()
    expect(file.get_by_role("alert")).to_contain_text("not what its key says", timeout=TIMEOUT_MS)


def cancel_upload(page, path):
    """An upload cancelled while its chunks are on their way (the request held until the
    button was pressed): it stops before it commits, and the folder shows no new file."""
    held = []
    page.route("**/api/v1/libraries/*/objects/upload", lambda route: held.append(route))
    page.locator("#upload-files").set_input_files(path)
    deadline = time.monotonic() + TIMEOUT_MS / 1000
    while not held:
        check(time.monotonic() < deadline, "the upload never sent its chunks")
        page.wait_for_timeout(50)
    page.get_by_role("button", name="Cancel upload").click()
    status = page.locator("#upload-status")
    expect(status).to_contain_text("Cancelling", timeout=TIMEOUT_MS)
    held[0].continue_()
    page.unroute("**/api/v1/libraries/*/objects/upload")
    expect(status).to_contain_text("Upload cancelled: nothing was added", timeout=TIMEOUT_MS)
    expect(page.get_by_role("button", name="Cancel upload")).to_be_hidden()
    expect(page.locator(f'tr[data-name="{os.path.basename(path)}"]')).to_have_count(0)


def unlink_and_put_back(page, args):
    """One name of a file with two (a hard link, backed up by the client) deleted, then put
    back from the snapshot before the deletion; the page shows the folder of the newest
    snapshot after."""
    name = args["linked"]
    page.locator(f'tr[data-name="{name}"]').get_by_role("button", name="Delete").click()
    page.get_by_role("button", name=f"Delete {name}").click()
    expect(page.locator("#edit-status")).to_contain_text(f"Deleted {name}", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-name="{name}"]')).to_have_count(0)
    page.get_by_role("button", name="Back to the snapshots of Backups").click()
    rows = page.locator("#snapshots tbody tr")
    expect(rows).to_have_count(args["snapshots"] + 3 + args.get("raced", 0), timeout=TIMEOUT_MS)
    rows.nth(1).get_by_role("button", name="Open").click()
    for folder in args["folders"]:
        here = page.locator(f'tr[data-name="{folder}"]')
        expect(here).to_have_count(1, timeout=TIMEOUT_MS)
        here.get_by_role("button", name="Open").click()
    page.get_by_role("button", name=f"Put back {name}").click()
    expect(page.locator("#edit-status")).to_contain_text(f"Put back {name}", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-name="{name}"]')).to_have_count(1)


def leave(page, args):
    """A member leaves the library in the page: asked to confirm first, then gone from
    their list."""
    library = args["library"]
    page.get_by_role("button", name=f"Back to the snapshots of {library}").click()
    page.get_by_role("button", name="Leave this library").click()
    expect(page.locator("#leave-status")).to_contain_text("Tick the box first",
                                                          timeout=TIMEOUT_MS)
    page.get_by_label("I want to leave this library").check()
    page.get_by_role("button", name="Leave this library").click()
    expect(page.locator("#flash")).to_contain_text(f"You left {library}", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-library="{library}"]')).to_have_count(0)


def links(page, args):
    """The account's links in My Profile: where each leads (its label opened in the
    page), and one revoked there."""
    # A link to the folder shown, made in the page: it follows the newest snapshot and
    # asks for a password; its address goes to the test, which opens it with `ibackup get`.
    page.get_by_text("Make a link to this folder").click()
    page.get_by_label("Always show the newest snapshot of this folder").check()
    page.get_by_label("Password (optional)").fill(args["link_password"])
    page.get_by_label("Expires").select_option(label="in a week")
    page.get_by_role("button", name="Make link").click()
    made = page.locator("#link-url")
    expect(made).to_be_visible(timeout=TIMEOUT_MS)
    url = made.input_value()
    check(url.startswith(args["url"].rstrip("/") + "/l/"), f"the link is {url}")
    print(json.dumps({"made": url}), flush=True)
    made_id = url.split("/l/")[1][:32]

    page.get_by_role("button", name="Back to the snapshots of Backups").click()
    page.locator("#back").click()
    mine = page.locator(f'tr[data-link="{made_id}"]')
    expect(mine).to_contain_text("the newest snapshot", timeout=TIMEOUT_MS)
    expect(mine).to_contain_text("yes")
    revoked = page.locator(f'tr[data-link="{args["revoke"]}"]')
    expect(revoked).to_contain_text("one snapshot", timeout=TIMEOUT_MS)
    expect(revoked).to_contain_text("Backups")
    expect(revoked).to_contain_text(args["folders"][-1])
    expect(page.locator(f'tr[data-link="{args["follow"]}"]')).to_contain_text(
        "the newest snapshot")
    revoked.get_by_role("button", name="Revoke").click()
    expect(page.locator("#flash")).to_contain_text("was revoked", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-link="{args["revoke"]}"] .link-state')).to_have_text(
        "revoked")
    expect(page.locator(f'tr[data-link="{args["follow"]}"] .link-state')).to_have_text(
        "active")


def share(page, args):
    """The owner shares a library with another account in the page, comparing its key's
    fingerprint first, and later ends the share (a new key epoch), with the command-line
    client of the other account checking between the steps (`args["between"]`, a file the
    test writes when it is done)."""
    page.goto(args["url"])
    page.get_by_label("E-mail address").fill(args["email"])
    page.get_by_label("Password").fill(args["password"])
    page.get_by_role("button", name="Sign in").click()
    page.locator('tr[data-library="Backups"]').get_by_role("button", name="Open").click()
    expect(page.locator('#members tr[data-member]')).to_have_count(1, timeout=TIMEOUT_MS)
    page.get_by_label("Share with (their e-mail address)").fill(args["member"])
    page.get_by_label("They").select_option("read")
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#share-fingerprint")).to_have_text(args["fingerprint"],
                                                            timeout=TIMEOUT_MS)
    page.get_by_role("button", name=f"Share with {args['member']}").click()
    expect(page.locator("#share-status")).to_contain_text("is shared with", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-member="{args["member"]}"]')).to_contain_text("read")
    if args.get("screenshots"):
        page.screenshot(path=os.path.join(args["screenshots"], "web-sharing.png"),
                        full_page=True)
    print("shared", flush=True)
    deadline = time.monotonic() + 120
    while not os.path.exists(args["between"]):
        check(time.monotonic() < deadline, "the test never said the member had looked")
        time.sleep(0.2)
    page.locator(f'tr[data-member="{args["member"]}"]').get_by_role(
        "button", name="Stop sharing").click()
    expect(page.locator("#share-status")).to_contain_text("no longer has", timeout=TIMEOUT_MS)
    expect(page.locator('#members tr[data-member]')).to_have_count(1)


def download(page, name):
    return common.download(page, name, TIMEOUT_MS)


def signup(page, args):
    """A new account made in the page: names, address, password twice, then the recovery
    key shown once, which this prints for the test to use with the command-line client."""
    page.goto(args["url"])
    page.get_by_role("button", name="Create an account").click()
    page.get_by_label("First name").fill("Bob")
    page.get_by_label("Last name").fill("Browser")
    page.get_by_label("E-mail address").fill(args["email"])
    page.get_by_label("Password (at least 8 characters)").fill(args["password"])
    page.get_by_label("Password, again").fill(args["password"] + " not quite")
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#signup-status")).to_contain_text("differ", timeout=TIMEOUT_MS)
    page.get_by_label("Password, again").fill(args["password"])
    page.get_by_role("button", name="Create account").click()
    key = page.locator("#recovery-key")
    expect(key).to_be_visible(timeout=TIMEOUT_MS)
    if args.get("screenshots"):
        page.screenshot(path=os.path.join(args["screenshots"], "web-recovery-key.png"))
    shown = key.inner_text()
    continue_button = page.get_by_role("button", name="Continue")
    check(continue_button.is_disabled(), "Continue works before the key was noted")
    page.get_by_label("I have written down my recovery key").check()
    continue_button.click()
    expect(page.locator("#flash")).to_have_text("Welcome to ibackup.", timeout=TIMEOUT_MS)
    expect(page.locator("#email-shown")).to_contain_text(args["email"])
    # The first library is empty: files added here make its first snapshot.
    page.locator('tr[data-library="Backups"]').get_by_role("button", name="Open").click()
    expect(page.get_by_text("No snapshots yet")).to_be_visible(timeout=TIMEOUT_MS)
    page.locator("#upload-files").set_input_files(args["upload"])
    expect(page.locator("#upload-status")).to_contain_text("Added 1 file", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-name="{os.path.basename(args["upload"])}"]')).to_have_count(1)
    add_folder(page, args)
    print(json.dumps({"recovery_key": shown}))


def add_folder(page, args):
    """A folder added with the folder picker, its subfolders and files with it; a file in
    it downloads back whole; then a file dropped on the listing of one of its subfolders."""
    folder = args["folder"]
    page.locator("#upload-folder").set_input_files(folder)
    expect(page.locator("#upload-status")).to_contain_text(
        f"Added {args['folder_files']} files in 1 folder", timeout=TIMEOUT_MS)
    for name in args["folder_path"]:
        row = page.locator(f'tr[data-name="{name}"]')
        expect(row).to_have_count(1, timeout=TIMEOUT_MS)
        row.get_by_role("button", name="Open").click()
    here = os.path.join(folder, *args["folder_path"][1:])
    for name in sorted(os.listdir(here)):
        if os.path.isfile(os.path.join(here, name)):
            with open(os.path.join(here, name), "rb") as f:
                check(download(page, name) == f.read(), f"{name} downloads back changed")
    # A drop as the browser hands it over: a DataTransfer holding a file.
    page.locator("table:has(caption)").evaluate(
        """(listing, [name, text]) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File([text], name, { type: "text/plain" }));
            listing.dispatchEvent(new DragEvent("drop", { dataTransfer: transfer, bubbles: true, cancelable: true }));
        }""", [args["dropped"], "dropped on the listing"])
    expect(page.locator("#upload-status")).to_contain_text("Added 1 file", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-name="{args["dropped"]}"]')).to_have_count(1)
    edit_folder(page, args)


def edit_folder(page, args):
    """In the folder shown: a file renamed (first to a name taken, refused), the dropped
    file deleted after asking again, a folder made (first with a name no folder can have,
    refused); each a new snapshot."""
    old, new, taken = args["rename"]
    status = page.locator("#edit-status")
    page.locator(f'tr[data-name="{old}"]').get_by_role("button", name="Rename").click()
    page.get_by_label(f"New name for {old}").fill(taken)
    page.get_by_role("button", name="Save name").click()
    expect(status).to_contain_text(f"already something called {taken}", timeout=TIMEOUT_MS)
    page.get_by_label(f"New name for {old}").fill(new)
    page.get_by_role("button", name="Save name").click()
    expect(status).to_contain_text(f"Renamed {old} to {new}", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-name="{new}"]')).to_have_count(1)
    expect(page.locator(f'tr[data-name="{old}"]')).to_have_count(0)

    dropped = args["dropped"]
    page.locator(f'tr[data-name="{dropped}"]').get_by_role("button", name="Delete").click()
    page.get_by_role("button", name="Keep").click()
    expect(page.locator(f'tr[data-name="{dropped}"]')).to_have_count(1)
    page.locator(f'tr[data-name="{dropped}"]').get_by_role("button", name="Delete").click()
    page.get_by_role("button", name=f"Delete {dropped}").click()
    expect(status).to_contain_text(f"Deleted {dropped}", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-name="{dropped}"]')).to_have_count(0)

    page.get_by_label("New folder").fill("one/two")
    page.get_by_role("button", name="Make folder").click()
    expect(status).to_contain_text("cannot be a file name", timeout=TIMEOUT_MS)
    page.get_by_label("New folder").fill(args["made"])
    page.get_by_role("button", name="Make folder").click()
    expect(status).to_contain_text(f"Made the folder {args['made']}", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-name="{args["made"]}"]')).to_have_count(1)
    put_back(page, args)


def put_back(page, args):
    """The deleted file put back from the snapshot before the deletion, after a folder
    that the newest snapshot has too was refused."""
    page.get_by_role("button", name="Back to the snapshots of Backups").click()
    # Newest first: the new folder, the deletion, then the rename, which still holds it.
    rows = page.locator("#snapshots tbody tr")
    expect(rows).to_have_count(args["snapshots_before_put_back"], timeout=TIMEOUT_MS)
    rows.nth(2).get_by_role("button", name="Open").click()
    folder, sub = args["folder_path"]
    page.locator(f'tr[data-name="{folder}"]').get_by_role("button", name="Open").click()
    check(page.locator("#upload-files").count() == 0 and page.locator("#new-folder").count() == 0,
          "an earlier snapshot is offered uploads or new folders")
    page.get_by_role("button", name=f"Put back {sub}").click()
    status = page.locator("#edit-status")
    expect(status).to_contain_text(f"the newest snapshot has a folder called {sub}",
                                   timeout=TIMEOUT_MS)
    page.locator(f'tr[data-name="{sub}"]').get_by_role("button", name="Open").click()
    dropped = args["dropped"]
    page.get_by_role("button", name=f"Put back {dropped}").click()
    expect(page.locator("#edit-status")).to_contain_text(f"Put back {dropped}", timeout=TIMEOUT_MS)
    expect(page.locator(f'tr[data-name="{dropped}"]')).to_have_count(1)
    expect(page.locator("#new-folder")).to_have_count(1)


def delete(page, args):
    """Deleting the account: signed in with the password the profile part set, the
    address typed again, and the password."""
    if True:
        page.goto(args["url"])
        page.get_by_label("E-mail address").fill(args["new_email"])
        page.get_by_label("Password").fill(args["new_password"])
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="My Profile")).to_be_visible(timeout=TIMEOUT_MS)
        page.get_by_label("Type your e-mail address").fill("someone@else.example")
        page.locator("#delete-password").fill(args["new_password"])
        page.get_by_role("button", name="Delete my account").click()
        expect(page.locator("#delete-status")).to_contain_text("to confirm", timeout=TIMEOUT_MS)
        page.get_by_label("Type your e-mail address").fill(args["new_email"])
        page.get_by_role("button", name="Delete my account").click()
        expect(page.get_by_text("were deleted")).to_be_visible(timeout=TIMEOUT_MS)

        # At phone width the sign-in form fits.
        page.set_viewport_size({"width": 390, "height": 800})
        page.goto(args["url"])
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible(timeout=TIMEOUT_MS)
        width = page.evaluate("document.documentElement.scrollWidth")
        check(width <= 390, f"at phone width the page is {width} px wide")


if __name__ == "__main__":
    main()
