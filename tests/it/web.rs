//! The web front end in a real browser: headless Chromium (Debian's) driven by Playwright
//! (`tests/web/*.py`) against a real server, opening links made by the real client.
//!
//! `scripts/setup` installs Chromium and Playwright (into `$IBACKUP_TOOLS/web-venv`).
//! Without them these tests skip, unless IBACKUP_REQUIRE_BROWSER=1 (CI) makes that a
//! failure. IBACKUP_SCREENSHOTS=DIR saves the pages' screenshots there (docs/ keeps them).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use base64::Engine;

use crate::links::create;
use crate::sharing::{clients, share, ALICE, ALICES_BACKUPS};
use crate::util::{write_file, TestClient, TestServer};

fn chromium() -> Option<PathBuf> {
    ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
        .iter()
        .map(PathBuf::from)
        .find(|path| path.exists())
}

fn python() -> Option<PathBuf> {
    let tools = std::env::var_os("IBACKUP_TOOLS").unwrap_or("/opt/ibackup-tools".into());
    let python = PathBuf::from(tools).join("web-venv/bin/python");
    let works = Command::new(&python)
        .args(["-c", "import playwright"])
        .output()
        .is_ok_and(|out| out.status.success());
    works.then_some(python)
}

/// Chromium, and a Python with Playwright to drive it.
struct Browser {
    chromium: PathBuf,
    python: PathBuf,
}

impl Browser {
    /// `tests/web/SCRIPT` with `args`, to which this adds the Chromium to drive and, unless
    /// `args` says, where screenshots go (IBACKUP_SCREENSHOTS).
    fn command(&self, script: &str, mut args: serde_json::Value) -> Command {
        args["chromium"] = serde_json::json!(self.chromium);
        if args.get("screenshots").is_none() {
            args["screenshots"] = serde_json::json!(std::env::var("IBACKUP_SCREENSHOTS").ok());
        }
        let mut command = Command::new(&self.python);
        command
            .arg(
                Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("tests/web")
                    .join(script),
            )
            .arg(args.to_string());
        command
    }

    /// Runs `script` with `args`; what it printed, once it succeeded.
    fn run(&self, script: &str, args: serde_json::Value) -> String {
        let out = self.command(script, args).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{script}: {stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        stdout
    }
}

/// Runs `script` with `args`, doing each of `steps` when the page asks for it by name
/// (`server_does` in the scripts, through marker files in a folder of their own): what a
/// compromised server, or another writer, does while the page is open.
type Step<'a> = (&'static str, Box<dyn FnOnce() + Send + 'a>);

fn run_with_steps(
    browser: &Browser,
    script: &str,
    mut args: serde_json::Value,
    steps: Vec<Step<'_>>,
) -> String {
    let signals = tempfile::tempdir().unwrap();
    args["signals"] = serde_json::json!(signals.path());
    let done = std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        let watcher = scope.spawn(|| {
            for (name, step) in steps {
                loop {
                    if signals.path().join(format!("{name}.asked")).exists() {
                        break;
                    }
                    if done.load(std::sync::atomic::Ordering::Relaxed) {
                        return;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(50));
                }
                step();
                fs::write(signals.path().join(format!("{name}.done")), b"").unwrap();
            }
        });
        let result =
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| browser.run(script, args)));
        done.store(true, std::sync::atomic::Ordering::Relaxed);
        watcher.join().unwrap();
        result.unwrap_or_else(|panic| std::panic::resume_unwind(panic))
    })
}

/// The names of `path`'s folders from the root, as a snapshot holds them.
/// A folder holding one file `name`, backed up by `client`.
fn backed_up(client: &TestClient, name: &str, contents: &[u8]) -> tempfile::TempDir {
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join(name), contents);
    client.backup(&[source.path()]).ok();
    source
}

/// What `client` restores of the newest backup of `source`, in a folder of its own.
fn restored(client: &TestClient, source: &Path) -> tempfile::TempDir {
    let target = tempfile::tempdir().unwrap();
    client
        .restore(&format!("latest:{}", source.display()), target.path(), &[])
        .ok();
    target
}

fn components(path: &Path) -> Vec<String> {
    path.components()
        .filter_map(|c| match c {
            std::path::Component::Normal(name) => Some(name.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect()
}

/// Chromium and a Python with Playwright, if both are here; panics if they must be
/// (IBACKUP_REQUIRE_BROWSER=1) and are not.
fn browser() -> Option<Browser> {
    match (chromium(), python()) {
        (Some(chromium), Some(python)) => Some(Browser { chromium, python }),
        _ if std::env::var("IBACKUP_REQUIRE_BROWSER").as_deref() == Ok("1") => {
            panic!("IBACKUP_REQUIRE_BROWSER=1 but Chromium or Playwright is missing: run scripts/setup")
        }
        _ => {
            eprintln!("no Chromium or Playwright (scripts/setup installs them): skipping");
            None
        }
    }
}

/// The key in a link's fragment, as raw bytes.
fn fragment_key(url: &str) -> Vec<u8> {
    let fragment = url.split_once('#').unwrap().1;
    let text = fragment[1..].split('.').next().unwrap();
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(text)
        .unwrap()
}

#[test]
fn links_open_in_a_browser_decrypt_in_the_page_and_keep_their_keys_there() {
    let Some(browser) = browser() else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("server.log");
    let server = TestServer::start_configured(|c| c, &log);
    let [alice] = clients(&server, [ALICE]);
    let source = tempfile::tempdir().unwrap();
    let docs = source.path().join("docs");
    fs::create_dir_all(docs.join("deep")).unwrap();
    write_file(&docs.join("readme.txt"), b"hello from the page\n");
    // Several chunks (at least 256 KiB each), random so nothing compresses.
    let mut big = vec![0u8; 2_500_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut big);
    write_file(&docs.join("big.bin"), &big);
    write_file(
        &docs.join("deep/file-00.txt"),
        &b"deep inside\n".repeat(1000),
    );
    alice.backup(&[&docs]).ok();
    let folder = format!("Backups:{}", docs.display());

    let password = "open sesame, in a browser";
    let links = serde_json::json!({
        "folder": create(&alice, &[&folder]),
        "password": alice
            .run_with(&["link", "create", "--json", &folder, "--password"], |c| {
                c.env("IBACKUP_LINK_PASSWORD", password);
            })
            .ok()
            .json()["url"],
        "follow": create(&alice, &["--follow", &folder]),
        "expired": create(&alice, &[&folder, "--expires", "1s"]),
        "revoked": create(&alice, &[&folder]),
    });
    let revoked = links["revoked"].as_str().unwrap();
    let id = revoked.split("/l/").nth(1).unwrap()[..8].to_owned();
    alice.run(&["link", "revoke", &id]).ok();
    let folder_url = links["folder"].as_str().unwrap();
    let cut = folder_url.split('#').next().unwrap().to_owned();
    let unknown = format!(
        "{}/l/{}#{}",
        server.url,
        hex::encode(rand::random::<[u8; 16]>()),
        folder_url.split_once('#').unwrap().1
    );
    let mut links = links;
    links["cut"] = cut.into();
    links["unknown"] = unknown.into();
    std::thread::sleep(std::time::Duration::from_millis(1100));

    let args = serde_json::json!({
        "links": links,
        "password": password,
        "folder_names": ["readme.txt", "big.bin", "deep"],
        "files": {
            "big.bin": docs.join("big.bin"),
            "readme.txt": docs.join("readme.txt"),
            "file-00.txt": docs.join("deep/file-00.txt"),
        },
    });
    browser.run("link_page.py", args);

    // The keys stayed in the page: no fragment key (raw, hex or as written in the URL) and
    // no link password in the server's files or its log.
    let logged = fs::read(&log).unwrap();
    for name in ["folder", "password", "follow"] {
        let url = links[name].as_str().unwrap();
        let key = fragment_key(url);
        let written = url.split_once('#').unwrap().1[1..]
            .split('.')
            .next()
            .unwrap()
            .to_owned();
        for needle in [
            key.clone(),
            hex::encode(&key).into_bytes(),
            written.into_bytes(),
        ] {
            let found = server.files_containing(&needle);
            assert!(found.is_empty(), "the {name} link's key is in {found:?}");
            assert!(
                !logged.windows(needle.len()).any(|w| w == needle.as_slice()),
                "the {name} link's key is in the server log"
            );
        }
    }
    assert!(server.files_containing(password.as_bytes()).is_empty());
    assert!(!logged
        .windows(password.len())
        .any(|w| w == password.as_bytes()));
}

/// A GET over the server's pinned TLS: status, headers (names lowercase) and body.
fn get(server: &TestServer, path: &str) -> (u16, Vec<(String, String)>, Vec<u8>) {
    get_with(server, path, &[])
}

/// [`get`] with request headers of the caller's.
fn get_with(
    server: &TestServer,
    path: &str,
    sent: &[(&str, &str)],
) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let verifier = ibackup_client::tls::PinVerifier::new(Some(server.fingerprint.clone()));
    let client = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(verifier.client_config())
        .build()
        .unwrap();
    let mut request = client.get(format!("{}{path}", server.url));
    for (name, value) in sent {
        request = request.header(*name, *value);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(n, v)| (n.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    (status, headers, response.bytes().unwrap().to_vec())
}

#[test]
fn the_link_page_is_sent_with_a_strict_policy_and_nothing_else_is_served() {
    let server = TestServer::start();
    let link = hex::encode(rand::random::<[u8; 16]>());
    let (status, headers, body) = get(&server, &format!("/l/{link}"));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    };
    let policy = header("content-security-policy");
    for part in [
        "default-src 'none'",
        "script-src 'self' 'wasm-unsafe-eval'",
        "connect-src 'self'",
        "worker-src 'self'",
        "frame-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(part), "{policy}");
    }
    // WebAssembly may be compiled (BLAKE3 over whole chunks); no script is evaluated from
    // text, and nothing inline runs.
    assert!(
        !policy.contains("'unsafe-eval'") && !policy.contains("'unsafe-inline'"),
        "{policy}"
    );
    assert_eq!(header("x-frame-options"), "DENY");
    assert_eq!(header("referrer-policy"), "no-referrer");
    let page = String::from_utf8_lossy(&body);
    assert!(page.contains("/assets/link.js"), "{page}");
    assert!(!page.contains("<script>"), "an inline script: {page}");

    let (status, headers, _) = get(&server, "/assets/icon.svg");
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "content-type" && v == "image/svg+xml"));
    for script in ["/assets/link.js", "/assets/save-worker.js"] {
        let (status, headers, _) = get(&server, script);
        assert_eq!(status, 200, "{script}");
        assert!(headers
            .iter()
            .any(|(n, v)| n == "content-type" && v.starts_with("text/javascript")));
    }
    // The compressor a page loads for uploads, as WebAssembly (compiled as it streams in).
    let (status, headers, body) = get(&server, "/assets/zstd.wasm");
    assert_eq!(status, 200);
    assert!(headers
        .iter()
        .any(|(n, v)| n == "content-type" && v == "application/wasm"));
    assert_eq!(&body[..4], b"\0asm");
    // A browser that has the file asks with its tag and is told to keep it; a stale tag
    // gets the file.
    let tag = headers
        .iter()
        .find(|(n, _)| n == "etag")
        .map(|(_, v)| v.clone())
        .expect("an entity tag");
    let (status, again, body) = get_with(&server, "/assets/zstd.wasm", &[("if-none-match", &tag)]);
    assert_eq!(status, 304);
    assert!(body.is_empty());
    assert!(again.iter().any(|(n, v)| n == "etag" && *v == tag));
    assert!(again.iter().any(|(n, _)| n == "content-security-policy"));
    let (status, _, body) = get_with(
        &server,
        "/assets/zstd.wasm",
        &[("if-none-match", "\"stale\"")],
    );
    assert_eq!(status, 200);
    assert_eq!(&body[..4], b"\0asm");
    for missing in [
        "/assets/../server.toml",
        "/assets/other.js",
        // Only the save worker answers under its scope, in the page's own browser.
        "/assets/save/00000000000000000000000000000000/file.bin",
        "/l/not-a-link",
        "/index.html",
    ] {
        let (status, _, _) = get(&server, missing);
        assert_eq!(status, 404, "{missing}");
    }
}

#[test]
fn my_profile_in_a_browser_signs_in_with_the_cli_password_and_changes_what_the_server_keeps() {
    let Some(browser) = browser() else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("server.log");
    let server = TestServer::start_configured(|c| c, &log);
    let alice = TestClient::new(ALICE);
    alice.register(&server).ok();

    let new_password = "a new password, set in the page";
    let part = |part: &str| {
        let args = serde_json::json!({
        "part": part,
            "url": server.url,
        "email": ALICE,
        "new_email": "alicia@example.com",
        "password": crate::util::PASSWORD,
        "new_password": new_password,
        });
        browser.run("profile_page.py", args);
    };
    part("profile");

    // The page changed the password twice, re-wrapping the account key each time: the
    // command-line client, with the new password, opens the key and reads its library.
    let ended = alice.run(&["account", "show", "--json"]);
    assert_ne!(ended.code, 0, "the CLI's session outlived its sign-out");
    let login = alice.run_with(
        &[
            "login",
            "--server",
            &server.url,
            "--email",
            "alicia@example.com",
            "--trust-new",
        ],
        |c| {
            c.env("IBACKUP_PASSWORD", new_password);
        },
    );
    assert_eq!(login.code, 0, "{}", login.stderr);
    let after = alice.account_json();
    assert_eq!(after["first_name"], "Alicia", "{after}");
    assert_eq!(after["marketing_email"], true, "{after}");
    assert_eq!(after["plan"], "personal", "{after}");
    let source = backed_up(&alice, "kept.txt", b"readable after two password changes");
    let target = restored(&alice, source.path());
    assert_eq!(
        fs::read(target.path().join("kept.txt")).unwrap(),
        b"readable after two password changes"
    );

    part("delete");

    // The account was deleted in the page: neither address opens anything, and its
    // invoice stays without a link to it.
    for email in [ALICE, "alicia@example.com"] {
        let gone = alice.run(&[
            "login",
            "--server",
            &server.url,
            "--email",
            email,
            "--trust-new",
        ]);
        assert!(
            gone.stderr.contains("wrong e-mail or password"),
            "{email}: {}",
            gone.stderr
        );
    }
    // The page's change of address reached the new address: its confirmation link.
    let mailed = server.spool_all();
    assert!(
        mailed
            .iter()
            .any(|(_, text)| text.contains("alicia@example.com")),
        "{mailed:?}"
    );
    let invoices: Vec<Option<i64>> = server
        .db()
        .query_map(
            "SELECT account_id FROM invoices",
            ibackup_server::params![],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        invoices,
        vec![None],
        "the plan change's invoice, kept without the account"
    );
    // The password never reached the server: not in its files, not in its log.
    let password = crate::util::PASSWORD.as_bytes();
    assert!(server.files_containing(password).is_empty());
    let logged = fs::read(&log).unwrap();
    assert!(!logged.windows(password.len()).any(|w| w == password));
}

#[test]
fn signing_up_in_a_browser_makes_keys_the_cli_reads_and_a_recovery_key_that_works() {
    let Some(browser) = browser() else {
        return;
    };
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("server.log");
    let server = TestServer::start_configured(|c| c, &log);
    let bob = TestClient::new("bob@example.com");
    let picked = tempfile::tempdir().unwrap();
    write_file(
        &picked.path().join("first.txt"),
        b"the first file, added in the page",
    );
    // A folder added with the folder picker: files at two depths, one of several chunks.
    let album = picked.path().join("album");
    fs::create_dir_all(album.join("photos")).unwrap();
    let mut photo = vec![0u8; 2_500_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut photo);
    write_file(&album.join("photos/beach.raw"), &photo);
    write_file(&album.join("photos/caption.txt"), b"the beach, in June");
    write_file(&album.join("index.txt"), b"one folder of photos");
    // Enough small files for the page to send them in several batches.
    fs::create_dir_all(album.join("notes")).unwrap();
    for n in 0..1200 {
        write_file(
            &album.join(format!("notes/{n:04}.txt")),
            format!("note {n}").as_bytes(),
        );
    }
    let args = serde_json::json!({
        "part": "signup",
        "url": server.url,
        "email": "bob@example.com",
        "password": crate::util::PASSWORD,
        "upload": picked.path().join("first.txt"),
        "folder": album,
        "folder_files": 1203,
        "folder_path": ["album", "photos"],
        "dropped": "dropped.txt",
        "rename": ["caption.txt", "caption-june.txt", "beach.raw"],
        "made": "edits",
        "snapshots_before_put_back": 6,
    });
    let stdout = browser.run("profile_page.py", args);
    let shown: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    let recovery_key = shown["recovery_key"].as_str().unwrap().to_owned();
    // The recovery key, the password and the two keys the page stretched from it (the
    // key-encryption key, and the auth secret the server keeps only as a hash) stayed in
    // the page: in no file or log line of the server, as hex or as bytes.
    let digits = recovery_key.replace('-', "");
    assert_eq!(digits.len(), 64, "{recovery_key}");
    let (salt, params): (Vec<u8>, String) = server
        .db()
        .query_row(
            "SELECT kdf_salt, kdf_params FROM accounts WHERE email = ?1",
            ibackup_server::params!["bob@example.com"],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let params = serde_json::from_str(&params).unwrap();
    let (kek, auth) =
        ibackup_proto::crypto::kdf::derive(crate::util::PASSWORD.as_bytes(), &salt, &params)
            .unwrap();
    let logged = fs::read(&log).unwrap();
    for needle in [
        digits.clone().into_bytes(),
        hex::decode(&digits).unwrap(),
        crate::util::PASSWORD.as_bytes().to_vec(),
        kek.as_bytes().to_vec(),
        auth.to_vec(),
        hex::encode(kek.as_bytes()).into_bytes(),
    ] {
        assert!(server.files_containing(&needle).is_empty());
        assert!(!logged.windows(needle.len()).any(|w| w == needle.as_slice()));
    }

    // The command-line client logs in with the password set in the page, opens the first
    // library's grant and name (made by the page), and backs up and restores through it.
    bob.login(&server);
    let libraries = bob.run(&["library", "list", "--json"]).ok().json();
    assert!(libraries.to_string().contains("\"Backups\""), "{libraries}");
    // The file the page added to the empty library, at its top.
    let first = tempfile::tempdir().unwrap();
    bob.restore("latest:/first.txt", first.path(), &[]).ok();
    assert_eq!(
        fs::read(first.path().join("first.txt")).unwrap(),
        b"the first file, added in the page"
    );
    // The folder the page added, whole, with the file dropped into its subfolder; backed
    // up by the client from where it was picked, none of its chunks is sent again.
    let folder = tempfile::tempdir().unwrap();
    bob.restore("latest:/album", folder.path(), &[]).ok();
    let album_back = folder.path();
    assert_eq!(
        fs::read(album_back.join("photos/beach.raw")).unwrap(),
        photo
    );
    assert_eq!(
        fs::read(album_back.join("index.txt")).unwrap(),
        b"one folder of photos"
    );
    assert_eq!(
        fs::read_dir(album_back.join("notes")).unwrap().count(),
        1200
    );
    assert_eq!(
        fs::read(album_back.join("notes/0987.txt")).unwrap(),
        b"note 987"
    );
    // Renamed, deleted, made and put back in the page, each a snapshot: the newest shows
    // them all, and the deletion's snapshot lacks the file put back after it.
    assert_eq!(
        fs::read(album_back.join("photos/caption-june.txt")).unwrap(),
        b"the beach, in June"
    );
    assert!(!album_back.join("photos/caption.txt").exists());
    assert_eq!(
        fs::read_dir(album_back.join("photos/edits"))
            .unwrap()
            .count(),
        0
    );
    assert_eq!(
        fs::read(album_back.join("photos/dropped.txt")).unwrap(),
        b"dropped on the listing"
    );
    let listed = bob.run(&["snapshots", "--json"]).ok().json();
    let snapshots = listed.as_array().unwrap();
    let paths: Vec<&str> = snapshots
        .iter()
        .map(|s| s["paths"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        paths,
        [
            "/first.txt",
            "/album",
            "/album/photos/dropped.txt",
            "/album/photos/caption-june.txt",
            "/album/photos/dropped.txt",
            "/album/photos/edits",
            "/album/photos/dropped.txt",
        ],
        "{listed}"
    );
    let deleted = format!(
        "{}:/album/photos/dropped.txt",
        snapshots[4]["id"].as_str().unwrap()
    );
    let before = tempfile::tempdir().unwrap();
    assert_ne!(bob.restore(&deleted, before.path(), &[]).code, 0);
    bob.run(&["check", "--read-data"]).ok();
    let backed = bob.backup(&[&album]).ok().json();
    assert_eq!(backed["chunks_uploaded"], 0, "{backed}");
    let source = tempfile::tempdir().unwrap();
    write_file(
        &source.path().join("from.txt"),
        b"an account made in a browser",
    );
    bob.backup(&[source.path()]).ok();
    let spec = format!("latest:{}", source.path().display());
    let target = tempfile::tempdir().unwrap();
    bob.restore(&spec, target.path(), &[]).ok();
    assert_eq!(
        fs::read(target.path().join("from.txt")).unwrap(),
        b"an account made in a browser"
    );

    // The recovery key the page showed sets a new password and keeps the data readable.
    let recovered = bob.run_with(
        &[
            "account",
            "recover",
            "--server",
            &server.url,
            "--email",
            "bob@example.com",
            "--trust-new",
        ],
        |c| {
            c.env("IBACKUP_RECOVERY_KEY", &recovery_key)
                .env("IBACKUP_NEW_PASSWORD", "recovered in the terminal");
        },
    );
    assert_eq!(recovered.code, 0, "{}", recovered.stderr);
    let again = tempfile::tempdir().unwrap();
    bob.restore(&spec, again.path(), &[]).ok();
    assert_eq!(
        fs::read(again.path().join("from.txt")).unwrap(),
        b"an account made in a browser"
    );
}

#[test]
fn own_libraries_backed_up_by_the_cli_are_browsed_and_downloaded_in_the_page() {
    let Some(browser) = browser() else {
        return;
    };
    let server = TestServer::start();
    let [alice, dave] = clients(&server, [ALICE, "dave@example.com"]);
    let source = tempfile::tempdir().unwrap();
    let docs = source.path().join("docs");
    fs::create_dir_all(&docs).unwrap();
    let mut big = vec![0u8; 1_500_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut big);
    write_file(&docs.join("report.bin"), &big);
    // One file under two names, in two folders: the page deletes one name and puts it back.
    fs::create_dir_all(docs.join("deeper")).unwrap();
    write_file(&docs.join("pair.txt"), b"one file, two names");
    fs::hard_link(docs.join("pair.txt"), docs.join("deeper/pair-too.txt")).unwrap();
    alice.backup(&[&docs]).ok();
    write_file(&docs.join("later.txt"), b"a second snapshot");
    alice.backup(&[&docs]).ok();
    // The snapshot holds the whole path from the root of the file system.
    let folders = components(&docs);
    // Files the page adds: one of several chunks, one of a few bytes.
    let picked = tempfile::tempdir().unwrap();
    let mut added = vec![0u8; 3_000_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut added);
    write_file(&picked.path().join("added.bin"), &added);
    // A text the page compresses before it seals it, as the client would.
    let note = b"written in the browser\n".repeat(45_000);
    write_file(&picked.path().join("note.txt"), &note);
    // A file whose upload is cancelled in the page: in no snapshot after.
    let mut cancelled = vec![0u8; 700_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut cancelled);
    write_file(&picked.path().join("cancelled.bin"), &cancelled);
    // A member who left: their key still opens what exists, so the page starts a new key
    // epoch before it writes, as the command-line client does.
    share(&alice, "dave@example.com", "--read");
    dave.run(&["share", "leave", ALICES_BACKUPS]).ok();
    // A link that follows the folder: the page re-points it after its commits.
    let folder = format!("Backups:{}", docs.display());
    let follow = create(&alice, &["--follow", &folder]);
    let once = create(&alice, &[&folder]);
    let link_id = |url: &str| url.split("/l/").nth(1).unwrap()[..32].to_owned();
    let args = serde_json::json!({
        "part": "library",
        "url": server.url,
        "email": ALICE,
        "password": crate::util::PASSWORD,
        "snapshots": 2,
        "folders": folders,
        "file": "report.bin",
        "expected": docs.join("report.bin"),
        "upload": [picked.path().join("added.bin"), picked.path().join("note.txt")],
        "kept": ["later.txt"],
        "raced": 1,
        "cancelled": picked.path().join("cancelled.bin"),
        "linked": "pair.txt",
        "follow": link_id(&follow),
        "revoke": link_id(&once),
        "link_password": "the link's own password",
    });
    let stored = |client: &TestClient| {
        let listed = client.run(&["library", "list", "--json"]).ok().json();
        listed[0]["stored_bytes"].as_u64().unwrap()
    };
    let before = stored(&alice);
    // Another writer commits while the page's second upload moves the head: a backup of
    // another folder, which the page's retry must keep.
    let elsewhere = tempfile::tempdir().unwrap();
    write_file(&elsewhere.path().join("raced.txt"), b"committed meanwhile");
    let race: Step = (
        "race",
        Box::new(|| drop(alice.backup(&[elsewhere.path()]).ok())),
    );
    let printed = run_with_steps(&browser, "profile_page.py", args, vec![race]);
    let raced = tempfile::tempdir().unwrap();
    alice
        .restore(
            &format!("latest:{}", elsewhere.path().display()),
            raced.path(),
            &[],
        )
        .ok();
    assert_eq!(
        fs::read(raced.path().join("raced.txt")).unwrap(),
        b"committed meanwhile",
        "the page's commit after the race dropped the other writer's"
    );
    let made: serde_json::Value = serde_json::from_str(printed.lines().last().unwrap()).unwrap();
    let made = made["made"].as_str().unwrap().to_owned();

    // The command-line client reads what the page wrote: four new snapshots on top of the
    // backups and the raced one (two uploads, a deletion, a file put back), the added
    // files whole beside what was backed up, and every object sound.
    let listed = alice.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(listed.as_array().map(Vec::len), Some(7), "{listed}");
    let target = tempfile::tempdir().unwrap();
    alice
        .run(&[
            "restore",
            &format!("latest:{}", docs.display()),
            "--target",
            target.path().to_str().unwrap(),
        ])
        .ok();
    let restored = target.path();
    assert_eq!(fs::read(restored.join("added.bin")).unwrap(), added);
    assert_eq!(fs::read(restored.join("note.txt")).unwrap(), note);
    // The text went up compressed: the library grew by little more than the random files
    // (the one added, and the chunks of the cancelled one that were sent before it was
    // cancelled: unreferenced until collected), not by the text's 1 MB as well.
    let grown = stored(&alice) - before;
    let random = (added.len() + cancelled.len()) as u64;
    assert!(
        grown < random + 300_000,
        "the library grew by {grown} bytes for {random} random and {} compressible",
        note.len()
    );
    assert_eq!(fs::read(restored.join("report.bin")).unwrap(), big);
    assert!(!restored.join("cancelled.bin").exists());
    // The name put back is a file of its own now, as is the other name: `check` below
    // finds each snapshot's names of a hard-linked file counted as they are.
    use std::os::unix::fs::MetadataExt;
    for name in ["pair.txt", "deeper/pair-too.txt"] {
        assert_eq!(
            fs::read(restored.join(name)).unwrap(),
            b"one file, two names"
        );
        assert_eq!(
            fs::metadata(restored.join(name)).unwrap().nlink(),
            1,
            "{name}"
        );
    }
    assert_eq!(
        fs::read(restored.join("later.txt")).unwrap(),
        b"a second snapshot"
    );
    alice.run(&["check", "--read-data"]).ok();
    // The page cut the files where the client does: backed up from the folder they were
    // picked from, none of their chunks is sent again.
    let again = alice.backup(&[picked.path()]).ok().json();
    assert_eq!(again["chunks_uploaded"], 0, "{again}");
    let listed = alice.run(&["library", "list", "--json"]).ok().json();
    assert_eq!(
        listed[0]["epoch"], 2,
        "the page did not start a new key: {listed}"
    );
    // The page sealed what it added: its words are in no file of the server.
    assert!(server
        .files_containing(b"written in the browser")
        .is_empty());
    let visited = tempfile::tempdir().unwrap();
    let visitor = TestClient::new("visitor@example.com");
    visitor
        .run_with(
            &["get", &follow, "--target", visited.path().to_str().unwrap()],
            |c| {
                c.env_remove("IBACKUP_PASSWORD");
            },
        )
        .ok();
    assert_eq!(fs::read(visited.path().join("added.bin")).unwrap(), added);
    // The link made in the page opens with `ibackup get` (the certificate pinned from its
    // address, the password asked), showing the newest snapshot's folder.
    let through = tempfile::tempdir().unwrap();
    visitor
        .run_with(
            &["get", &made, "--target", through.path().to_str().unwrap()],
            |c| {
                c.env_remove("IBACKUP_PASSWORD");
                c.env("IBACKUP_LINK_PASSWORD", "the link's own password");
            },
        )
        .ok();
    assert_eq!(fs::read(through.path().join("added.bin")).unwrap(), added);
    assert_eq!(fs::read(through.path().join("report.bin")).unwrap(), big);
    // The key in the page's link stayed in the page and the address.
    let fragment = made.split('#').nth(1).unwrap();
    let key_text = fragment[1..].split('.').next().unwrap();
    let key = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key_text)
        .unwrap();
    assert_eq!(key.len(), 32);
    assert!(server.files_containing(&key).is_empty());
    assert!(server.files_containing(key_text.as_bytes()).is_empty());
    // The link revoked in the page opens for nobody.
    let refused = visitor.run_with(
        &["get", &once, "--target", visited.path().to_str().unwrap()],
        |c| {
            c.env_remove("IBACKUP_PASSWORD");
        },
    );
    assert_ne!(refused.code, 0);
    assert!(refused.stderr.contains("revoked"), "{}", refused.stderr);
}

#[test]
fn the_page_refuses_contents_a_key_holder_sealed_under_an_objects_key() {
    let Some(browser) = browser() else {
        return;
    };
    let server = TestServer::start();
    let [alice] = clients(&server, [ALICE]);
    let source = tempfile::tempdir().unwrap();
    let mut real = vec![0u8; 20_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut real);
    write_file(&source.path().join("swapped.bin"), &real);
    write_file(&source.path().join("intact.txt"), b"left as it was");
    alice.backup(&[source.path()]).ok();
    // Someone who holds the chunk's key (any member who may read the library) seals other
    // contents of the same length under it, and the server serves that in its place.
    let library = crate::sharing::open(&alice, "Backups");
    let key = library
        .keys
        .object_key(ibackup_proto::crypto::BlobKind::Chunk, &real);
    let mut other = vec![0u8; real.len()];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut other);
    let forged = library
        .keys
        .seal_object(ibackup_proto::crypto::BlobKind::Chunk, &key, &other);
    let (pack, offset, size): (String, i64, i64) = server
        .db()
        .query_row(
            "SELECT pack_id, \"offset\", size FROM objects WHERE library_id = ?1 AND id = ?2",
            ibackup_server::params![library.info.id, key.id().as_bytes().to_vec()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!(
        forged.len() as i64,
        size,
        "the forgery must fit in the pack"
    );
    server.overwrite_in_pack(&library.info.id, &pack, offset as u64, &forged);
    // The key alone opens the forgery: only the library's convergence key shows it is not
    // what the key names, and the command-line client already checks that.
    assert_ne!(alice.run(&["check", "--read-data"]).code, 0);
    let args = serde_json::json!({
        "part": "swapped",
        "url": server.url,
        "email": ALICE,
        "password": crate::util::PASSWORD,
        "folders": components(source.path()),
        "file": "swapped.bin",
        "intact": "intact.txt",
        "expected": source.path().join("intact.txt"),
    });
    browser.run("profile_page.py", args);
}

#[test]
fn a_member_who_may_write_adds_files_in_the_page_that_the_owner_reads_then_leaves() {
    let Some(browser) = browser() else {
        return;
    };
    let server = TestServer::start();
    let [alice, carol] = clients(&server, [ALICE, "carol@example.com"]);
    let source = backed_up(&alice, "plan.txt", b"the owner's plan");
    share(&alice, "carol@example.com", "--read-write");
    let picked = tempfile::tempdir().unwrap();
    let mut drawing = vec![0u8; 700_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut drawing);
    write_file(&picked.path().join("drawing.bin"), &drawing);
    write_file(&picked.path().join("reply.txt"), b"carol's reply");
    let args = serde_json::json!({
        "part": "library",
        "url": server.url,
        "email": "carol@example.com",
        "password": crate::util::PASSWORD,
        "library": "Backups@alice@example.com",
        "snapshots": 1,
        "folders": components(source.path()),
        "file": "plan.txt",
        "expected": source.path().join("plan.txt"),
        "upload": [picked.path().join("drawing.bin"), picked.path().join("reply.txt")],
        "leave": true,
        "screenshots": null,
    });
    let elsewhere = tempfile::tempdir().unwrap();
    write_file(
        &elsewhere.path().join("raced.txt"),
        b"the owner's, meanwhile",
    );
    let race: Step = (
        "race",
        Box::new(|| drop(alice.backup(&[elsewhere.path()]).ok())),
    );
    run_with_steps(&browser, "profile_page.py", args, vec![race]);

    // The owner reads what the member added, beside their own file, and every object of
    // the library (the member's sealed under the key the owner granted) checks out.
    let target = restored(&alice, source.path());
    assert_eq!(
        fs::read(target.path().join("drawing.bin")).unwrap(),
        drawing
    );
    assert_eq!(
        fs::read(target.path().join("reply.txt")).unwrap(),
        b"carol's reply"
    );
    assert_eq!(
        fs::read(target.path().join("plan.txt")).unwrap(),
        b"the owner's plan"
    );
    alice.run(&["check", "--read-data"]).ok();

    // The member left in the page: the library is gone from their list, and the owner's
    // next backup starts a new key epoch.
    let theirs = carol.run(&["library", "list", "--json"]).ok().json();
    assert!(!theirs.to_string().contains(ALICES_BACKUPS), "{theirs}");
    alice.backup(&[source.path()]).ok();
    let listed = alice.run(&["library", "list", "--json"]).ok().json();
    assert_eq!(listed[0]["epoch"], 2, "{listed}");
}

#[test]
fn an_owner_shares_in_the_page_and_ends_the_share_with_a_new_key_epoch() {
    let Some(browser) = browser() else {
        return;
    };
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    let source = backed_up(&alice, "shared.txt", b"for bob, for a while");
    // Someone the library was shared with left: their key still opens it, so sharing it
    // again starts a new key epoch first.
    let [erin] = clients(&server, ["erin@example.com"]);
    share(&alice, "erin@example.com", "--read");
    erin.run(&["share", "leave", ALICES_BACKUPS]).ok();
    let fingerprint = bob.run(&["account", "fingerprint"]).ok().stdout;
    let fingerprint = fingerprint
        .lines()
        .find_map(|line| {
            let digits: String = line
                .chars()
                .filter(|c| c.is_ascii_hexdigit() || *c == ' ')
                .collect();
            (digits.split_whitespace().count() == 10)
                .then(|| digits.split_whitespace().collect::<Vec<_>>().join(" "))
        })
        .unwrap_or_else(|| panic!("no fingerprint in `account fingerprint`"));
    let between = tempfile::tempdir().unwrap().keep().join("looked");
    let args = serde_json::json!({
        "part": "share",
        "url": server.url,
        "email": ALICE,
        "password": crate::util::PASSWORD,
        "member": "bob@example.com",
        "fingerprint": fingerprint,
        "between": between,
    });
    let mut page = browser
        .command("profile_page.py", args)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut said = std::io::BufReader::new(page.stdout.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut said, &mut line).unwrap();
    // The member reads what the page shared with them, with the key the page granted.
    let spec = format!("latest:{}", source.path().display());
    let target = tempfile::tempdir().unwrap();
    let read = if line.trim() == "shared" {
        // The member opens it in a browser too: the owner's key remembered there, the
        // name shown as NAME@OWNER, the file downloaded from the snapshot.
        let folders = components(source.path());
        let member_page = serde_json::json!({
            "part": "library",
                "url": server.url,
            "email": "bob@example.com",
            "password": crate::util::PASSWORD,
            "library": "Backups@alice@example.com",
            "snapshots": 1,
            "folders": folders,
            "file": "shared.txt",
            "expected": source.path().join("shared.txt"),
            "screenshots": null,
        });
        browser.run("profile_page.py", member_page);
        bob.restore(
            &spec,
            target.path(),
            &["--library", "Backups@alice@example.com"],
        )
    } else {
        crate::util::Run {
            code: -1,
            stdout: line.clone(),
            stderr: String::new(),
        }
    };
    fs::write(&between, b"done").unwrap();
    let out = page.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{line}{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(read.code, 0, "{}", read.stderr);
    assert_eq!(
        fs::read(target.path().join("shared.txt")).unwrap(),
        b"for bob, for a while"
    );

    // The share ended in the page: the member is refused, and the owner's next backup,
    // under the new epoch, reads back.
    let refused = bob.run(&["snapshots", "--library", "Backups@alice@example.com"]);
    assert_ne!(refused.code, 0, "a removed member still lists snapshots");
    write_file(&source.path().join("after.txt"), b"not for bob");
    alice.backup(&[source.path()]).ok();
    let mine = tempfile::tempdir().unwrap();
    alice.restore(&spec, mine.path(), &[]).ok();
    assert_eq!(
        fs::read(mine.path().join("after.txt")).unwrap(),
        b"not for bob"
    );
    // Two new epochs: one before bob was granted the key (erin had left), one when his
    // share ended.
    let listed = alice.run(&["library", "list", "--json"]).ok().json();
    assert_eq!(listed[0]["epoch"], 3, "{listed}");
}

/// A member the server inserted and a new key it asked for (issue 26, finding 1): the page
/// marks the member, and the owner's next upload grants the new key to the member the owner
/// added and refuses the other, as the command-line client does.
#[test]
fn the_page_grants_a_new_key_only_to_members_the_owner_added() {
    let Some(browser) = browser() else {
        return;
    };
    let server = TestServer::start();
    let [alice, bob, _mallory] =
        clients(&server, [ALICE, "bob@example.com", "mallory@example.com"]);
    let source = backed_up(&alice, "plan.txt", b"the owner's plan");
    share(&alice, "bob@example.com", "--read");
    let library = crate::sharing::open(&alice, "Backups").info.id;
    let mallory = crate::hostile::server_adds_member(&server, &library, "mallory@example.com");
    let picked = tempfile::tempdir().unwrap();
    write_file(&picked.path().join("new.txt"), b"written after the new key");
    let args = serde_json::json!({
        "part": "refused",
        "url": server.url,
        "email": ALICE,
        "password": crate::util::PASSWORD,
        "folders": components(source.path()),
        "upload": [picked.path().join("new.txt")],
        "stranger": "mallory@example.com",
        "member": "bob@example.com",
    });
    browser.run("profile_page.py", args);
    let rows: Vec<(i64, i64)> = {
        let db = server.db();
        let mut stmt = db
            .prepare("SELECT account_id, grant_epoch FROM library_members WHERE library_id = ?1")
            .unwrap();
        let rows = stmt
            .query_map(ibackup_server::params![library], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .unwrap();
        rows.map(Result::unwrap).collect()
    };
    assert_eq!(
        rows.len(),
        2,
        "alice and bob stay, mallory is gone: {rows:?}"
    );
    assert!(
        rows.iter().all(|(id, epoch)| *id != mallory && *epoch == 2),
        "{rows:?}"
    );
    let target = tempfile::tempdir().unwrap();
    bob.restore(
        &format!("latest:{}", source.path().display()),
        target.path(),
        &["--library", ALICES_BACKUPS],
    )
    .ok();
    assert_eq!(
        fs::read(target.path().join("new.txt")).unwrap(),
        b"written after the new key"
    );
}

/// Issue 26, finding 7: the page kept none of the client's rules against a server that
/// sets a library back or hands back an older key. It now remembers, per account in the
/// browser, the newest head and key epoch it saw, and refuses older ones.
#[test]
fn the_page_refuses_a_library_set_back_or_an_older_key() {
    let Some(browser) = browser() else {
        return;
    };
    let server = TestServer::start();
    let [alice, _bob] = clients(&server, [ALICE, "bob@example.com"]);
    let source = backed_up(&alice, "plan.txt", b"version 1");
    let library = crate::sharing::open(&alice, "Backups").info.id;
    let head = || -> Vec<u8> {
        server
            .db()
            .query_row(
                "SELECT head FROM libraries WHERE id = ?1",
                ibackup_server::params![library],
                |r| r.get(0),
            )
            .unwrap()
    };
    let first = head();
    write_file(&source.path().join("plan.txt"), b"version 2");
    alice.backup(&[source.path()]).ok();
    // Epoch 2 after a share ends; alice's grant of epoch 1 is kept to be handed back.
    let alice_id: i64 = server
        .db()
        .query_row(
            "SELECT id FROM accounts WHERE email = ?1",
            ibackup_server::params![ALICE],
            |r| r.get(0),
        )
        .unwrap();
    let grant = |server: &TestServer| -> (Vec<u8>, i64) {
        server
            .db()
            .query_row(
                "SELECT key_grant, grant_epoch FROM library_members WHERE account_id = ?1",
                ibackup_server::params![alice_id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let (old_grant, old_epoch) = grant(&server);
    share(&alice, "bob@example.com", "--read");
    alice
        .run(&["share", "remove", "Backups", "bob@example.com"])
        .ok();
    assert_eq!(grant(&server).1, old_epoch + 1);

    let args = serde_json::json!({
        "part": "rewound",
        "url": server.url,
        "email": ALICE,
        "password": crate::util::PASSWORD,
        "folders": components(source.path()),
    });
    let rewind: Step = (
        "rewind",
        Box::new(|| {
            server
                .db()
                .execute(
                    "UPDATE libraries SET head = ?2 WHERE id = ?1",
                    ibackup_server::params![library, first],
                )
                .unwrap();
        }),
    );
    let old_key: Step = (
        "old-key",
        Box::new(|| {
            server
                .db()
                .execute(
                    "UPDATE library_members SET key_grant = ?2, grant_epoch = ?3 \
                     WHERE account_id = ?1",
                    ibackup_server::params![alice_id, old_grant, old_epoch],
                )
                .unwrap();
        }),
    );
    run_with_steps(&browser, "profile_page.py", args, vec![rewind, old_key]);
}
