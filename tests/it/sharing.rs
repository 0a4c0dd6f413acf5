//! Sharing against a real server over TLS with three accounts: read and read-write grants
//! and their enforcement, removal with key rotation, leaving, encrypted names, owner-charged
//! quota, and a hostile server that rewrites keys in its own database.

use std::collections::HashSet;
use std::fs;

use ibackup_client::config::Paths;
use ibackup_client::session::{OpenLibrary, Session};
use ibackup_proto::crypto::blob::blob_epoch;
use ibackup_proto::crypto::{AccountKeyPair, BlobKind, ObjectId, SymmetricKey};

use crate::util::{
    assert_same_tree, fails, make_tree, raw_request, write_file, TestClient, TestServer,
};

pub const ALICE: &str = "alice@example.com";
pub const ALICES_BACKUPS: &str = "Backups@alice@example.com";

/// Registered accounts, one per e-mail, each on a computer of its own.
pub fn clients<const N: usize>(server: &TestServer, emails: [&str; N]) -> [TestClient; N] {
    emails.map(|email| {
        let client = TestClient::new(email);
        client.register(server);
        client
    })
}

/// `owner` shares its library Backups with `member`, `--read` or `--read-write`.
pub fn share(owner: &TestClient, member: &str, permission: &str) {
    owner
        .run(&["share", "add", "--yes", "Backups", member, permission])
        .ok();
}

/// The client's own view of a library, opened through the library crate as the CLI does.
pub fn open(client: &TestClient, display: &str) -> OpenLibrary {
    let paths = Paths {
        config_dir: client.config_dir(),
        cache_dir: client.home.path().join("cache"),
    };
    Session::load(&paths)
        .unwrap()
        .open_library(display)
        .unwrap()
}

/// Every stored object of a library: id -> kind code.
fn objects(server: &TestServer, library: &str) -> Vec<(Vec<u8>, u8)> {
    let db = server.db();
    let mut stmt = db
        .prepare("SELECT id, kind FROM objects WHERE library_id = ?1")
        .unwrap();
    let rows = stmt
        .query_map(ibackup_server::params![library], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .unwrap();
    rows.map(Result::unwrap).collect()
}

/// An object's blob, read straight out of its pack in the data directory.
fn blob(server: &TestServer, library: &str, id: &[u8]) -> Vec<u8> {
    let (pack, offset, size): (String, i64, i64) = server
        .db()
        .query_row(
            "SELECT pack_id, \"offset\", size FROM objects WHERE library_id = ?1 AND id = ?2",
            ibackup_server::params![library, id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    server.stored_bytes(library, &pack, offset, size)
}

fn count(server: &TestServer, sql: &str) -> i64 {
    server
        .db()
        .query_row(sql, ibackup_server::params![], |r| r.get(0))
        .unwrap()
}

fn fingerprint(client: &TestClient) -> String {
    client
        .run(&["account", "fingerprint"])
        .ok()
        .stdout
        .trim()
        .to_owned()
}

#[test]
fn read_and_read_write_shares_are_enforced_by_client_and_server() {
    let server = TestServer::start();
    let [alice, bob, carol] = clients(&server, [ALICE, "bob@example.com", "carol@example.com"]);
    let source = tempfile::tempdir().unwrap();
    let tree = make_tree(source.path(), 300_000, 7);
    alice.backup(&[&tree]).ok();

    // Mistakes people make: each a message and exit 1, nothing changed.
    fails(
        alice.run(&[
            "share",
            "add",
            "--yes",
            "Backups",
            "nobody@example.com",
            "--read",
        ]),
        "no account uses the e-mail address nobody@example.com",
    );
    fails(
        alice.run(&["share", "add", "--yes", "Nope", "bob@example.com", "--read"]),
        "no library named `Nope`",
    );
    fails(
        alice.run(&["share", "add", "--yes", "Backups", ALICE, "--read"]),
        "share it with someone else",
    );
    let no_permission = alice.run(&["share", "add", "--yes", "Backups", "bob@example.com"]);
    assert_ne!(no_permission.code, 0, "a permission must be chosen");
    // A key seen for the first time is shown before anything is granted (issue 26): a
    // script must give its fingerprint, or --yes.
    let unchecked = alice.run(&["share", "add", "Backups", "bob@example.com", "--read"]);
    fails(unchecked, "--fingerprint");
    let members = alice
        .run(&["share", "list", "Backups", "--json"])
        .ok()
        .json();
    assert_eq!(
        members[0]["members"],
        serde_json::json!([]),
        "nothing was shared"
    );
    let pinned = alice
        .run(&["contact", "show", "bob@example.com", "--json"])
        .json();
    assert_eq!(
        pinned["fingerprint"],
        serde_json::Value::Null,
        "nothing was pinned"
    );

    let shared = alice
        .run(&[
            "share",
            "add",
            "--yes",
            "Backups",
            "bob@example.com",
            "--read",
        ])
        .ok();
    assert!(
        shared.stdout.contains(&fingerprint(&bob)),
        "the owner is shown the member's fingerprint to compare: {}",
        shared.stdout
    );
    fails(
        alice.run(&[
            "share",
            "add",
            "--yes",
            "Backups",
            "bob@example.com",
            "--read-write",
        ]),
        "already shared with bob@example.com (read)",
    );
    fails(
        alice.run(&[
            "share",
            "add",
            "--yes",
            "Backups",
            "carol@example.com",
            "--read-write",
            "--fingerprint",
            "0000 1111 2222 3333 4444 5555 6666 7777 8888 9999",
        ]),
        "not the 0000 1111",
    );
    alice
        .run(&[
            "share",
            "add",
            "--yes",
            "Backups",
            "carol@example.com",
            "--read-write",
            "--fingerprint",
            &fingerprint(&carol).to_uppercase(),
        ])
        .ok();

    // bob reads: the library is listed, its snapshots and files restore bit for bit.
    let listed = bob.run(&["library", "list", "--json"]).ok().json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["display"] == ALICES_BACKUPS)
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(row["permission"], "read");
    let library = row["id"].as_str().unwrap().to_owned();
    let snapshots = bob
        .run(&["snapshots", "--library", ALICES_BACKUPS, "--json"])
        .ok()
        .json();
    assert_eq!(snapshots.as_array().unwrap().len(), 1);
    assert_eq!(snapshots[0]["author"], ALICE);
    let restored = tempfile::tempdir().unwrap();
    bob.restore("latest", restored.path(), &["--library", ALICES_BACKUPS])
        .ok();
    let inside = restored
        .path()
        .join(tree.strip_prefix("/").unwrap_or(&tree));
    assert_same_tree(&tree, &inside);

    // bob cannot write: the client says so, and the server refuses his upload and head move.
    let mine = tempfile::tempdir().unwrap();
    write_file(&mine.path().join("bob.txt"), b"bob's");
    fails(
        bob.run(&[
            "backup",
            "--library",
            ALICES_BACKUPS,
            mine.path().to_str().unwrap(),
        ]),
        "read-only",
    );
    let token = bob.session_token();
    let upload = ibackup_proto::api::frame::encode_upload(&Default::default(), &[]);
    let (status, answer) = raw_request(
        &server,
        "POST",
        &format!("/api/v1/libraries/{library}/objects/upload"),
        Some(&token),
        Some(("application/octet-stream", upload)),
    );
    assert_eq!(status, 403, "{answer}");
    assert!(answer["message"].as_str().unwrap().contains("read-only"));
    let head = snapshots[0]["id"].as_str().unwrap();
    let (status, _) = raw_request(
        &server,
        "PUT",
        &format!("/api/v1/libraries/{library}/head"),
        Some(&token),
        Some((
            "application/json",
            serde_json::to_vec(&serde_json::json!({"expected": head, "new": head})).unwrap(),
        )),
    );
    assert_eq!(status, 403);
    fails(
        bob.run(&[
            "share",
            "add",
            "--yes",
            ALICES_BACKUPS,
            "carol@example.com",
            "--read",
        ]),
        "only its owner",
    );
    fails(bob.run(&["share", "leave", "Backups"]), "cannot leave it");

    // carol writes into alice's library; the snapshot names her.
    let hers = tempfile::tempdir().unwrap();
    write_file(&hers.path().join("carol.txt"), b"carol's work");
    carol
        .run(&[
            "backup",
            "--library",
            ALICES_BACKUPS,
            hers.path().to_str().unwrap(),
        ])
        .ok();
    let snapshots = alice.run(&["snapshots", "--json"]).ok().json();
    let authors: Vec<&str> = snapshots
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["author"].as_str().unwrap())
        .collect();
    assert_eq!(authors, vec![ALICE, "carol@example.com"]);
    let table = alice.run(&["snapshots"]).ok().stdout;
    assert!(
        table.contains("AUTHOR") && table.contains("carol@example.com"),
        "{table}"
    );

    // Who has what, from both sides.
    let listing = alice.run(&["share", "list", "--json"]).ok().json();
    let members = &listing[0]["members"];
    assert_eq!(members.as_array().unwrap().len(), 2, "{listing}");
    assert_eq!(members[0]["email"], "bob@example.com");
    assert_eq!(members[0]["permission"], "read");
    assert_eq!(members[1]["email"], "carol@example.com");
    assert_eq!(members[1]["permission"], "read-write");
    let text = bob.run(&["share", "list"]).ok().stdout;
    assert!(
        text.contains(ALICES_BACKUPS) && text.contains("shared with you"),
        "{text}"
    );

    // bob leaves: gone for him at once; alice's next write starts a new key epoch.
    bob.run(&["share", "leave", ALICES_BACKUPS]).ok();
    let listed = bob.run(&["library", "list", "--json"]).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    fails(
        bob.run(&["snapshots", "--library", ALICES_BACKUPS]),
        "no library named",
    );
    alice.backup(&[&tree]).ok();
    let listed = alice.run(&["library", "list", "--json"]).ok().json();
    assert_eq!(listed[0]["epoch"], 2, "a member left: the key was rotated");
    let listed = carol.run(&["library", "list", "--json"]).ok().json();
    let row = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["display"] == ALICES_BACKUPS)
        .unwrap();
    assert_eq!(row["epoch"], 2);
    carol.run(&["snapshots", "--library", ALICES_BACKUPS]).ok();
}

#[test]
fn a_removed_member_is_refused_at_once_and_cannot_decrypt_what_is_written_after() {
    let server = TestServer::start();
    let [alice, bob, carol] = clients(&server, [ALICE, "bob@example.com", "carol@example.com"]);
    let source = tempfile::tempdir().unwrap();
    let before_dir = source.path().join("before");
    fs::create_dir(&before_dir).unwrap();
    write_file(&before_dir.join("old.txt"), b"written before the removal");
    alice.backup(&[&before_dir]).ok();
    for (member, permission) in [
        ("bob@example.com", "--read-write"),
        ("carol@example.com", "--read"),
    ] {
        alice
            .run(&["share", "add", "--yes", "Backups", member, permission])
            .ok();
    }
    // bob keeps every key he was ever given.
    let kept = open(&bob, ALICES_BACKUPS);
    let library = kept.info.id.clone();
    let first_snapshot: ObjectId = kept.info.head.unwrap();
    let token = bob.session_token();
    let before: HashSet<Vec<u8>> = objects(&server, &library)
        .into_iter()
        .map(|(id, _)| id)
        .collect();

    fails(
        alice.run(&["share", "remove", "Backups", "dave@example.com"]),
        "not shared with dave@example.com",
    );
    let removed = alice
        .run(&["share", "remove", "Backups", "bob@example.com"])
        .ok();
    assert!(removed.stdout.contains("epoch 2"), "{}", removed.stdout);

    // Refused from the next request on.
    let (status, _) = raw_request(
        &server,
        "GET",
        &format!("/api/v1/libraries/{library}/head"),
        Some(&token),
        None,
    );
    assert_eq!(status, 403);
    fails(
        bob.run(&["snapshots", "--library", ALICES_BACKUPS]),
        "no library named",
    );

    // What is written now is sealed under epoch 2; bob's keys open none of it, even for
    // content he could guess.
    let after_dir = source.path().join("after");
    fs::create_dir(&after_dir).unwrap();
    let secret = b"written after the removal: bob must not read this".repeat(100);
    write_file(&after_dir.join("new.txt"), &secret);
    alice.backup(&[&after_dir]).ok();
    let guessed = kept.keys.object_key(BlobKind::Chunk, &secret);
    let fresh: Vec<(Vec<u8>, u8)> = objects(&server, &library)
        .into_iter()
        .filter(|(id, _)| !before.contains(id))
        .collect();
    assert!(fresh.len() >= 3, "a chunk, trees and a snapshot: {fresh:?}");
    for (id, kind) in &fresh {
        let bytes = blob(&server, &library, id);
        assert_eq!(blob_epoch(&bytes), Some(2));
        let id = ObjectId::from_slice(id).unwrap();
        assert_ne!(id, guessed.id(), "ids under the new epoch differ");
        let opened = match BlobKind::from_code(*kind).unwrap() {
            BlobKind::Snapshot => kept.keys.open_snapshot(&id, bytes.as_slice().into()),
            kind => guessed.open(kind, bytes.as_slice().into()),
        };
        assert!(opened.is_err(), "bob opened {id:?} of kind {kind}");
    }
    // What existed before was not re-encrypted: bob's old keys still open it (the docs say so).
    let old = blob(&server, &library, first_snapshot.as_bytes());
    assert!(kept
        .keys
        .open_snapshot(&first_snapshot, old.as_slice().into())
        .is_ok());

    // carol, who stays, reads old and new through the chain of epoch keys.
    let restored = tempfile::tempdir().unwrap();
    carol
        .restore("latest", restored.path(), &["--library", ALICES_BACKUPS])
        .ok();
    let root = restored
        .path()
        .join(source.path().strip_prefix("/").unwrap());
    assert_eq!(fs::read(root.join("after/new.txt")).unwrap(), secret);
    assert_eq!(
        fs::read(root.join("before/old.txt")).unwrap(),
        b"written before the removal"
    );
    let first = tempfile::tempdir().unwrap();
    carol
        .restore(
            &first_snapshot.to_hex()[..12],
            first.path(),
            &["--library", ALICES_BACKUPS],
        )
        .ok();
}

/// What a compromised server could do with its own database: hand out keys it made,
/// replace an account's public key, replay an older key epoch. Each is refused loudly and
/// nothing is written under such a key.
#[test]
fn a_hostile_server_cannot_hand_out_keys_of_its_own_making() {
    let server = TestServer::start();
    let [alice, bob, _carol] = clients(&server, [ALICE, "bob@example.com", "carol@example.com"]);
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("a.txt"), b"alice's data");
    alice.backup(&[source.path()]).ok();
    share(&alice, "bob@example.com", "--read");
    share(&alice, "carol@example.com", "--read");
    bob.run(&["library", "list"]).ok(); // pins alice's key, notes epoch 1
    let library = open(&alice, "Backups").info.id;
    let alice_id: i64 = count(
        &server,
        "SELECT id FROM accounts WHERE email = 'alice@example.com'",
    );
    let bob_id: i64 = count(
        &server,
        "SELECT id FROM accounts WHERE email = 'bob@example.com'",
    );
    let alice_public: Vec<u8> = server
        .db()
        .query_row(
            "SELECT public_key FROM accounts WHERE id = ?1",
            ibackup_server::params![alice_id],
            |r| r.get(0),
        )
        .unwrap();
    let grant_of = |account: i64| -> (Vec<u8>, i64) {
        server
            .db()
            .query_row(
                "SELECT key_grant, grant_epoch FROM library_members \
                 WHERE library_id = ?1 AND account_id = ?2",
                ibackup_server::params![library, account],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .unwrap()
    };
    let set_grant = |account: i64, grant: &[u8], epoch: i64| {
        server
            .db()
            .execute(
                "UPDATE library_members SET key_grant = ?3, grant_epoch = ?4 \
                 WHERE library_id = ?1 AND account_id = ?2",
                ibackup_server::params![library, account, grant, epoch],
            )
            .unwrap();
    };
    let set_public = |account: i64, key: &[u8]| {
        server
            .db()
            .execute(
                "UPDATE accounts SET public_key = ?2 WHERE id = ?1",
                ibackup_server::params![account, key],
            )
            .unwrap();
    };
    let stored = || {
        (
            count(&server, "SELECT COUNT(*) FROM objects"),
            count(&server, "SELECT COUNT(*) FROM snapshots"),
        )
    };

    // 1. The server makes a library key and grants it to alice from a key pair of its own,
    //    and presents that pair's public key as hers.
    let evil = AccountKeyPair::generate();
    let forged_key = SymmetricKey::generate();
    let alice_own = grant_of(alice_id);
    let alice_pair_public: [u8; 32] = alice_public.clone().try_into().unwrap();
    let forged =
        ibackup_proto::crypto::epoch::grant(&evil, &alice_pair_public, &library, 1, &forged_key)
            .unwrap();
    set_grant(alice_id, &forged, 1);
    set_public(alice_id, &evil.public_bytes());
    let was = stored();
    write_file(&source.path().join("b.txt"), b"more of alice's data");
    let refused = alice.backup(&[source.path()]);
    fails(refused, "REFUSED");
    assert_eq!(stored(), was, "nothing was uploaded under the forged key");
    let listing = alice.run(&["library", "list"]);
    assert!(
        listing
            .stderr
            .contains("was not granted by alice@example.com"),
        "{}",
        listing.stderr
    );
    // bob pinned alice's real key: the substituted one is refused as a changed key.
    fails(
        bob.run(&["snapshots", "--library", ALICES_BACKUPS]),
        "THE ACCOUNT KEY OF alice@example.com HAS CHANGED",
    );
    set_grant(alice_id, &alice_own.0, alice_own.1);
    set_public(alice_id, &alice_public);
    alice.backup(&[source.path()]).ok();

    // 2. A grant to bob from the server's own key, with alice's real public key shown.
    let bob_own = grant_of(bob_id);
    let bob_public: [u8; 32] = open(&bob, "Backups")
        .info
        .owner_public_key
        .try_into()
        .unwrap();
    let forged =
        ibackup_proto::crypto::epoch::grant(&evil, &bob_public, &library, 1, &forged_key).unwrap();
    set_grant(bob_id, &forged, 1);
    fails(
        bob.run(&["snapshots", "--library", ALICES_BACKUPS]),
        "was not granted by alice@example.com",
    );
    set_grant(bob_id, &bob_own.0, bob_own.1);
    bob.run(&["snapshots", "--library", ALICES_BACKUPS]).ok();

    // 3. alice shares another library with bob, but the server swaps in its own key for
    //    him: alice pinned bob's key at the first share, so nothing is shared.
    alice.run(&["library", "create", "Photos"]).ok();
    let memberships = || count(&server, "SELECT COUNT(*) FROM library_members");
    let members_before = memberships();
    let bob_real: Vec<u8> = server
        .db()
        .query_row(
            "SELECT public_key FROM accounts WHERE id = ?1",
            ibackup_server::params![bob_id],
            |r| r.get(0),
        )
        .unwrap();
    set_public(bob_id, &evil.public_bytes());
    fails(
        alice.run(&[
            "share",
            "add",
            "--yes",
            "Photos",
            "bob@example.com",
            "--read",
        ]),
        "THE ACCOUNT KEY OF bob@example.com HAS CHANGED",
    );
    assert_eq!(memberships(), members_before, "nothing was shared");
    // Also when rotating: no grant goes to the substituted key.
    fails(
        alice.run(&["share", "remove", "Backups", "carol@example.com"]),
        "THE ACCOUNT KEY OF bob@example.com HAS CHANGED",
    );
    set_public(bob_id, &bob_real);

    // 4. An older epoch replayed: after a rotation bob has seen epoch 2; the server hands
    //    him his epoch-1 grant again (the key carol, now removed, still holds).
    let epoch_one = grant_of(bob_id);
    alice
        .run(&["share", "remove", "Backups", "carol@example.com"])
        .ok();
    bob.run(&["library", "list"]).ok();
    set_grant(bob_id, &epoch_one.0, 1);
    fails(
        bob.run(&["snapshots", "--library", ALICES_BACKUPS]),
        "offers key epoch 1 but this computer has seen epoch 2",
    );

    // 5. The owner's address as the server lists it becomes folder names and terminal
    //    output: one with a path and a terminal escape in it is refused, not shown.
    server
        .db()
        .execute(
            "UPDATE accounts SET email = '../../x\u{1b}[2j' WHERE id = ?1",
            ibackup_server::params![alice_id],
        )
        .unwrap();
    let listing = bob.run(&["library", "list"]);
    assert!(
        listing.stderr.contains("not an e-mail address"),
        "{}",
        listing.stderr
    );
    assert!(!listing.stdout.contains('\u{1b}') && !listing.stderr.contains('\u{1b}'));
}

#[test]
fn library_names_are_encrypted_renamed_by_the_owner_and_deleted_for_everyone() {
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    fails(
        alice.run(&["library", "create", "snapshots"]),
        "cannot name a library",
    );
    alice
        .run(&["library", "create", "Secret Garden Plans"])
        .ok();
    fails(
        alice.run(&["library", "create", "Secret Garden Plans"]),
        "already have a library named",
    );
    alice
        .run(&[
            "share",
            "add",
            "--yes",
            "Secret Garden Plans",
            "bob@example.com",
            "--read",
        ])
        .ok();
    let shared = "Secret Garden Plans@alice@example.com";
    bob.run(&["snapshots", "--library", shared]).ok();
    fails(
        bob.run(&["library", "rename", shared, "Mine Now"]),
        "only its owner",
    );
    fails(
        alice.run(&["library", "rename", "Secret Garden Plans", "Backups"]),
        "already have a library named `Backups`",
    );
    alice
        .run(&["library", "rename", "Secret Garden Plans", "Quiet Meadow"])
        .ok();
    bob.run(&["snapshots", "--library", "Quiet Meadow@alice@example.com"])
        .ok();

    // Neither name is anywhere in the server's files.
    for name in ["Secret Garden", "Quiet Meadow"] {
        let found = server.files_containing(name.as_bytes());
        assert!(found.is_empty(), "`{name}` in {found:?}");
    }

    // Deleting needs the owner and the name typed again.
    fails(
        bob.run(&[
            "library",
            "delete",
            "Quiet Meadow@alice@example.com",
            "--confirm",
            "x",
        ]),
        "only its owner",
    );
    fails(
        alice.run(&["library", "delete", "Quiet Meadow"]),
        "--confirm Quiet Meadow",
    );
    fails(
        alice.run(&["library", "delete", "Quiet Meadow", "--confirm", "Quiet"]),
        "nothing was deleted",
    );
    alice
        .run(&[
            "library",
            "delete",
            "Quiet Meadow",
            "--confirm",
            "Quiet Meadow",
        ])
        .ok();
    let listed = bob.run(&["library", "list", "--json"]).ok().json();
    assert_eq!(
        listed.as_array().unwrap().len(),
        1,
        "bob lost it at once: {listed}"
    );
    fails(
        bob.run(&["snapshots", "--library", "Quiet Meadow@alice@example.com"]),
        "no library named",
    );
}

#[test]
fn a_members_upload_is_charged_to_the_owner() {
    let server = TestServer::start();
    let [alice, carol] = clients(&server, [ALICE, "carol@example.com"]);
    share(&alice, "carol@example.com", "--read-write");
    let set = server.admin(&["user", "set-quota", ALICE, "1MiB"]);
    assert!(set.status.success());
    let big = tempfile::tempdir().unwrap();
    let mut noise = vec![0u8; 3 << 20];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut noise);
    write_file(&big.path().join("big.bin"), &noise);
    fails(
        carol.run(&[
            "backup",
            "--library",
            ALICES_BACKUPS,
            big.path().to_str().unwrap(),
        ]),
        "stored on alice@example.com's plan",
    );
    // carol's own plan is untouched and still takes it.
    carol.backup(&[big.path()]).ok();
    let mine = carol.account_json();
    assert!(mine["used_bytes"].as_u64().unwrap() >= 3 << 20);
    assert!(alice.account_json()["used_bytes"].as_u64().unwrap() < 1 << 20);
}

/// After sharing, removing and rotating: no key, private key or library name is in the
/// server's data directory in the clear.
#[test]
fn the_server_holds_no_key_and_no_name_in_the_clear() {
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    alice.run(&["library", "create", "Tax Papers 2026"]).ok();
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("doc.txt"), b"text");
    alice
        .run(&[
            "backup",
            "--library",
            "Tax Papers 2026",
            source.path().to_str().unwrap(),
        ])
        .ok();
    alice
        .run(&[
            "share",
            "add",
            "--yes",
            "Tax Papers 2026",
            "bob@example.com",
            "--read-write",
        ])
        .ok();
    alice
        .run(&["share", "remove", "Tax Papers 2026", "bob@example.com"])
        .ok();
    alice
        .run(&[
            "share",
            "add",
            "--yes",
            "Tax Papers 2026",
            "bob@example.com",
            "--read",
        ])
        .ok();
    let mut secrets: Vec<(String, Vec<u8>)> = Vec::new();
    for client in [&alice, &bob] {
        let file = fs::read_to_string(client.config_dir().join("session.json")).unwrap();
        let private = client
            .private_key_from_session_file(&server, &file)
            .expect("the session is live");
        secrets.push((format!("{} private key", client.email), private));
    }
    for display in ["Backups", "Tax Papers 2026"] {
        let library = open(&alice, display);
        for epoch in 1..=library.keys.newest().epoch {
            let key = library.keys.epoch(epoch).unwrap().key().as_bytes().to_vec();
            secrets.push((format!("{display} epoch {epoch} key"), key));
        }
        secrets.push((format!("{display} name"), display.as_bytes().to_vec()));
    }
    for (what, secret) in &secrets {
        let found = server.files_containing(secret);
        assert!(found.is_empty(), "{what} found in {found:?}");
    }
    // The walk does read the database: the e-mail address, which the server must know, is
    // found there.
    assert!(!server.files_containing(ALICE.as_bytes()).is_empty());
}

#[test]
fn rotated_account_keys_leave_a_copied_key_nothing_and_members_verify_the_change() {
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    let phone = TestClient::new(ALICE);
    phone.login(&server);
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("a.txt"), b"alice's data");
    alice.backup(&[source.path()]).ok();
    write_file(&source.path().join("b.txt"), b"bob's data");
    bob.backup(&[source.path()]).ok();
    share(&alice, "bob@example.com", "--read");
    share(&bob, ALICE, "--read");
    bob.run(&["snapshots", "--library", ALICES_BACKUPS]).ok(); // pins alice's key
                                                               // A session file copied while its session lived: the thief has alice's private key.
    let copy = fs::read_to_string(alice.config_dir().join("session.json")).unwrap();
    let stolen = AccountKeyPair::from_secret_bytes(
        &alice.private_key_from_session_file(&server, &copy).unwrap(),
    )
    .unwrap();
    let old_fingerprint = fingerprint(&alice);

    let wrong = alice.run_with(&["account", "rotate-keys"], |c| {
        c.env("IBACKUP_PASSWORD", "not the password");
    });
    assert!(
        wrong.stderr.contains("password is wrong"),
        "{}",
        wrong.stderr
    );
    let rotated = alice.run(&["account", "rotate-keys", "--json"]).ok().json();
    assert_eq!(rotated["sessions_ended"], 1, "{rotated}");
    assert_eq!(rotated["members_to_tell"][0], "bob@example.com");
    let new_fingerprint = rotated["fingerprint"].as_str().unwrap().to_owned();
    assert_ne!(new_fingerprint, old_fingerprint);
    assert_eq!(fingerprint(&alice), new_fingerprint);
    assert_eq!(phone.run(&["snapshots"]).code, 1, "other sessions ended");
    assert_eq!(rotated["libraries_rotated"], 1);
    let epoch = |owner: &str| -> i64 {
        count(
            &server,
            &format!(
                "SELECT l.epoch FROM libraries l JOIN accounts a ON a.id = l.owner_id \
                 WHERE a.email = '{owner}'"
            ),
        )
    };
    assert_eq!(
        epoch(ALICE),
        2,
        "what alice writes next is under a new library key"
    );
    assert_eq!(epoch("bob@example.com"), 1);

    // alice reads her own library and bob's, through grants from her new key.
    let out = tempfile::tempdir().unwrap();
    alice.restore("latest", out.path(), &[]).ok();
    alice
        .run(&["snapshots", "--library", "Backups@bob@example.com"])
        .ok();
    write_file(&source.path().join("c.txt"), b"after the new key");
    alice.backup(&[source.path()]).ok();
    // No grant on the server opens with the copied key any more.
    let db = server.db();
    let mut stmt = db
        .prepare(
            "SELECT m.library_id, m.grant_epoch, m.key_grant, o.public_key FROM library_members m \
             JOIN accounts a ON a.id = m.account_id JOIN libraries l ON l.id = m.library_id \
             JOIN accounts o ON o.id = l.owner_id WHERE a.email = ?1",
        )
        .unwrap();
    let grants: Vec<(String, u32, Vec<u8>, Vec<u8>)> = stmt
        .query_map(ibackup_server::params![ALICE], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(grants.len(), 2);
    for (library, epoch, grant, owner) in &grants {
        for granter in [owner.as_slice(), &stolen.public_bytes()] {
            assert!(
                ibackup_proto::crypto::epoch::open_grant(&stolen, granter, library, *epoch, grant)
                    .is_err(),
                "the copied key opens the grant of {library}"
            );
        }
    }

    // bob pinned alice's old key: he is told, checks the new fingerprint with her, goes on.
    fails(
        bob.run(&["snapshots", "--library", ALICES_BACKUPS]),
        "THE ACCOUNT KEY OF alice@example.com HAS CHANGED",
    );
    bob.run(&["contact", "verify", ALICE, &new_fingerprint])
        .ok();
    let theirs = tempfile::tempdir().unwrap();
    bob.restore("latest", theirs.path(), &["--library", ALICES_BACKUPS])
        .ok();
    assert_eq!(
        fs::read(
            theirs
                .path()
                .join(source.path().strip_prefix("/").unwrap())
                .join("c.txt")
        )
        .unwrap(),
        b"after the new key"
    );
    // The new recovery key works; the old private key does not recover the account.
    let recovered = phone.run_with(
        &[
            "account",
            "recover",
            "--server",
            &server.url,
            "--email",
            ALICE,
        ],
        |c| {
            c.env(
                "IBACKUP_RECOVERY_KEY",
                rotated["recovery_key"].as_str().unwrap(),
            );
            c.env("IBACKUP_NEW_PASSWORD", "a password after rotation");
        },
    );
    assert_eq!(recovered.code, 0, "{}", recovered.stderr);
}
