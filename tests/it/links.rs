//! Links against a real server over TLS: a folder downloaded by someone without an account,
//! confined to that folder cryptographically (the test holds the whole data directory) and
//! by the server; passwords, expiry and revocation; links that follow the newest snapshot,
//! also through the mount's write-back.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use base64::Engine;
use ibackup_proto::crypto::{BlobKind, ObjectId, ObjectKey};
use ibackup_proto::model::Tree;

use crate::sharing::{clients, share, ALICE};
use crate::util::{
    assert_same_tree, fails, fuse_or_skip, make_tree, raw_request, write_file, Run, TestClient,
    TestMount, TestServer,
};

/// `link create --json` with `args`; the link's URL.
pub fn create(client: &TestClient, args: &[&str]) -> String {
    let mut all = vec!["link", "create", "--json"];
    all.extend_from_slice(args);
    client.run(&all).ok().json()["url"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Someone with only the URL: no account, no login, a computer of their own.
fn visitor() -> TestClient {
    TestClient::new("visitor@example.com")
}

fn get(client: &TestClient, url: &str, target: &Path) -> Run {
    client.run_with(&["get", url, "--target", target.to_str().unwrap()], |c| {
        c.env_remove("IBACKUP_PASSWORD");
    })
}

/// Every stored object of a library with its blob, read out of the data directory.
fn blobs(server: &TestServer, library: &str) -> HashMap<ObjectId, (u8, Vec<u8>)> {
    let db = server.db();
    let mut stmt = db
        .prepare("SELECT id, kind, pack_id, \"offset\", size FROM objects WHERE library_id = ?1")
        .unwrap();
    let rows: Vec<(Vec<u8>, u8, String, i64, i64)> = stmt
        .query_map(ibackup_server::params![library], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    rows.into_iter()
        .map(|(id, kind, pack, offset, size)| {
            let bytes = server.stored_bytes(library, &pack, offset, size);
            (ObjectId::from_slice(&id).unwrap(), (kind, bytes))
        })
        .collect()
}

#[test]
fn a_link_opens_its_folder_and_nothing_beside_or_above_it() {
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(|c| c, &logs.path().join("server.log"));
    let [alice] = clients(&server, [ALICE]);
    let source = tempfile::tempdir().unwrap();
    let tree = make_tree(source.path(), 200_000, 11);
    alice.backup(&[&tree]).ok();
    let docs = tree.join("docs");
    let url = create(&alice, &[&format!("Backups:{}", docs.display())]);
    assert!(url.contains("/l/") && url.contains("#t"), "{url}");

    let stranger = visitor();
    let target = stranger.home.path().join("docs");
    get(&stranger, &url, &target).ok();
    assert_same_tree(&docs, &target);
    assert!(
        !stranger.config_dir().join("session.json").exists(),
        "no account was needed"
    );

    // With the URL and the whole data directory: open what the link's key reaches, then try
    // every key found there on every other blob. Only the linked folder opens, and no name
    // from outside it appears in anything that opened.
    let fragment = url.split('#').nth(1).unwrap();
    let key_text = fragment[1..].split('.').next().unwrap();
    let key: [u8; 32] = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(key_text)
        .unwrap()
        .try_into()
        .unwrap();
    let library = alice.run(&["library", "list", "--json"]).ok().json()[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let stored = blobs(&server, &library);
    let mut keys: Vec<ObjectKey> = Vec::new();
    let mut plaintexts: Vec<Vec<u8>> = Vec::new();
    let mut queue = vec![(ObjectKey::from_bytes(key), BlobKind::Tree)];
    while let Some((key, kind)) = queue.pop() {
        let (_, blob) = &stored[&key.id()];
        let plain = key.open(kind, blob.as_slice().into()).unwrap();
        if kind == BlobKind::Tree {
            let tree = Tree::decode(&plain).unwrap();
            for entry in &tree.entries {
                queue.extend(entry.subtree.map(|k| (k, BlobKind::Tree)));
                queue.extend(entry.chunks.iter().map(|c| (c.key, BlobKind::Chunk)));
            }
        }
        keys.push(key);
        plaintexts.push(plain.to_vec());
    }
    let inside: HashSet<ObjectId> = keys.iter().map(ObjectKey::id).collect();
    assert!(
        inside.len() < stored.len(),
        "the library holds more than the folder"
    );
    for (id, (kind, blob)) in stored.iter().filter(|(id, _)| !inside.contains(id)) {
        let kind = BlobKind::from_code(*kind).unwrap();
        for key in &keys {
            assert!(
                key.open(kind, blob.as_slice().into()).is_err(),
                "{id:?} outside the folder opened"
            );
        }
    }
    let parent = source.path().file_name().unwrap().as_encoded_bytes();
    for outside in [
        &b"run.sh"[..],
        b"empty file",
        b"dangling",
        "ünïcødé ✓".as_bytes(),
        parent,
    ] {
        assert!(
            !plaintexts
                .iter()
                .any(|p| p.windows(outside.len()).any(|w| w == outside)),
            "`{}` from outside the folder is readable",
            String::from_utf8_lossy(outside)
        );
    }
    assert!(
        plaintexts
            .iter()
            .any(|p| p.windows(10).any(|w| w == b"readme.txt")),
        "the walk did read the folder"
    );

    // The server serves only what the link reaches, and never saw the key.
    let link = url.split("/l/").nth(1).unwrap().split('#').next().unwrap();
    let (status, opened) = raw_request(
        &server,
        "POST",
        &format!("/api/v1/links/{link}/open"),
        None,
        Some(("application/json", b"{}".to_vec())),
    );
    assert_eq!(status, 200, "{opened}");
    let outside = stored.keys().find(|id| !inside.contains(id)).unwrap();
    let (status, answer) = raw_request(
        &server,
        "POST",
        &format!("/api/v1/links/{link}/fetch"),
        None,
        Some((
            "application/json",
            serde_json::to_vec(&serde_json::json!({
                "token": opened["token"], "ids": [outside.to_hex()]
            }))
            .unwrap(),
        )),
    );
    assert_eq!(status, 403, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("not inside"));
    let log = fs::read_to_string(logs.path().join("server.log")).unwrap();
    assert!(!log.is_empty(), "the server logged at debug level");
    assert!(
        !log.contains(key_text),
        "the link key reached the server's log"
    );
    let found = crate::util::files_containing(server.data.path(), key_text.as_bytes());
    assert!(found.is_empty(), "the link key text is in {found:?}");
    let found = crate::util::files_containing(server.data.path(), &key);
    assert!(found.is_empty(), "the link key is in {found:?}");
}

#[test]
fn passwords_expiry_and_revocation_end_a_link_with_a_clear_message() {
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("note.txt"), b"for your eyes");
    alice.backup(&[source.path()]).ok();
    let folder = format!("Backups:{}", source.path().display());
    let stranger = visitor();
    let target = stranger.home.path().join("out");

    // Mistakes: each a message and exit 1.
    fails(
        alice.run(&["link", "create", "Backups:/no/such/folder"]),
        "has nothing at `/no`",
    );
    fails(
        alice.run(&[
            "link",
            "create",
            &format!("Backups:{}/note.txt", source.path().display()),
        ]),
        "is a file",
    );
    fails(
        alice.run(&[
            "link",
            "create",
            &folder,
            "--follow",
            "--snapshot",
            "latest",
        ]),
        "leave out --snapshot",
    );
    share(&alice, "bob@example.com", "--read");
    fails(
        bob.run(&["link", "create", "Backups@alice@example.com"]),
        "only its owner",
    );
    fails(
        get(&stranger, "https://127.0.0.1:1/l/nothing", &target),
        "not an ibackup link",
    );

    let url = alice
        .run_with(&["link", "create", "--json", &folder, "--password"], |c| {
            c.env("IBACKUP_LINK_PASSWORD", "open sesame");
        })
        .ok()
        .json()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    fails(get(&stranger, &url, &target), "needs a password");
    let attempt = |password: &str| {
        stranger.run_with(&["get", &url, "--target", target.to_str().unwrap()], |c| {
            c.env("IBACKUP_LINK_PASSWORD", password);
        })
    };
    for _ in 0..5 {
        fails(attempt("guess"), "wrong password");
    }
    fails(attempt("guess"), "too many failed attempts");
    std::thread::sleep(std::time::Duration::from_millis(2100));
    let right = stranger.run_input(
        &[
            "get",
            &url,
            "--target",
            target.to_str().unwrap(),
            "--password-stdin",
        ],
        "open sesame\n",
    );
    assert_eq!(right.code, 0, "{}", right.stderr);
    assert_eq!(fs::read(target.join("note.txt")).unwrap(), b"for your eyes");

    let short = create(&alice, &[&folder, "--expires", "1s"]);
    std::thread::sleep(std::time::Duration::from_millis(2100));
    fails(
        get(&stranger, &short, &stranger.home.path().join("late")),
        "this link has expired",
    );
    let revoked = create(&alice, &[&folder]);
    let id = revoked.split("/l/").nth(1).unwrap()[..8].to_owned();
    get(&stranger, &revoked, &stranger.home.path().join("before")).ok();
    alice.run(&["link", "revoke", &id]).ok();
    fails(
        get(&stranger, &revoked, &stranger.home.path().join("after")),
        "this link was revoked",
    );
    fails(alice.run(&["link", "revoke", &id]), "revoked already");
    let listed = alice.run(&["link", "list", "--json"]).ok().json();
    let mut states: Vec<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|l| {
            format!(
                "{} {}",
                l["state"].as_str().unwrap(),
                l["password"].as_bool().unwrap()
            )
        })
        .collect();
    states.sort();
    assert_eq!(
        states,
        vec!["active true", "expired false", "revoked false"]
    );
    assert!(listed[0]["path"]
        .as_str()
        .unwrap()
        .ends_with(source.path().file_name().unwrap().to_str().unwrap()));
}

#[test]
fn a_follow_link_shows_the_newest_snapshot_after_backups_and_mount_writes() {
    let server = TestServer::start();
    let [alice] = clients(&server, [ALICE]);
    let source = tempfile::tempdir().unwrap();
    let folder = source.path().join("shared");
    fs::create_dir(&folder).unwrap();
    write_file(&folder.join("a.txt"), b"version 1");
    alice.backup(&[&folder]).ok();
    let url = create(
        &alice,
        &["--follow", &format!("Backups:{}", folder.display())],
    );
    assert!(url.contains("#f"), "{url}");
    let stranger = visitor();
    let first = stranger.home.path().join("first");
    get(&stranger, &url, &first).ok();
    assert_eq!(fs::read(first.join("a.txt")).unwrap(), b"version 1");

    write_file(&folder.join("a.txt"), b"version 2");
    alice.backup(&[&folder]).ok();
    let second = stranger.home.path().join("second");
    get(&stranger, &url, &second).ok();
    assert_eq!(fs::read(second.join("a.txt")).unwrap(), b"version 2");

    if !fuse_or_skip() {
        return;
    }
    let mount = TestMount::start(&alice, &[]);
    let live = mount.live().join(folder.strip_prefix("/").unwrap());
    write_file(&live.join("b.txt"), b"written in the mount");
    mount.settle();
    let third = stranger.home.path().join("third");
    get(&stranger, &url, &third).ok();
    assert_eq!(
        fs::read(third.join("b.txt")).unwrap(),
        b"written in the mount"
    );
    let run = mount.unmount();
    assert_eq!(run.code, 0, "{}", run.stderr);
}
