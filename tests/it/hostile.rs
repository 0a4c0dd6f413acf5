//! A compromised server: its database and blob store edited by hand, as an attacker who took
//! the server would. Each test is one way around the promise that such a server can neither
//! read nor forge a library (docs/SECURITY.md), shown refused.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use ibackup_proto::crypto::blob::{padme, BLOB_VERSION};
use ibackup_proto::crypto::{BlobKind, ObjectKey};

use crate::sharing::{clients, open, ALICE};
use crate::util::{write_file, TestServer};

/// A blob laid out as the client lays one (padded, raw), sealed under `key` but naming key
/// epoch `epoch`: what anyone who holds an object's key (a link visitor, a member who may
/// only read, the server after it got a key) can make.
fn seal_as(key: &ObjectKey, epoch: u32, kind: BlobKind, plaintext: &[u8]) -> Vec<u8> {
    let mut inner = vec![2u8]; // raw, padded
    inner.extend_from_slice(&(plaintext.len() as u32).to_le_bytes());
    inner.extend_from_slice(plaintext);
    inner.resize(padme(inner.len() as u64) as usize, 0);
    let nonce = [7u8; 12];
    let mut associated = vec![BLOB_VERSION];
    associated.extend_from_slice(&epoch.to_be_bytes());
    associated.push(kind.code());
    associated.extend_from_slice(key.id().as_bytes());
    let sealed = aes_gcm::Aes256Gcm::new(key.as_bytes().into())
        .encrypt(
            aes_gcm::Nonce::from_slice(&nonce),
            Payload {
                msg: &inner,
                aad: &associated,
            },
        )
        .unwrap();
    let mut blob = vec![BLOB_VERSION];
    blob.extend_from_slice(&epoch.to_be_bytes());
    blob.extend_from_slice(&nonce);
    blob.extend(sealed);
    blob
}

/// Where an object of a library lies: pack, offset, size.
fn located(server: &TestServer, library: &str, key: &ObjectKey) -> (String, i64, i64) {
    server
        .db()
        .query_row(
            "SELECT pack_id, \"offset\", size FROM objects WHERE library_id = ?1 AND id = ?2",
            ibackup_server::params![library, key.id().as_bytes().to_vec()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap()
}

/// Finding 3: a blob that names a key epoch the reader does not hold skipped the check that
/// its contents are what its key says; a forgery sealed under epoch 0x7fffffff was restored
/// as genuine and `check --read-data` found nothing.
#[test]
fn an_object_of_an_epoch_the_reader_does_not_hold_is_refused() {
    let server = TestServer::start();
    let [alice] = clients(&server, [ALICE]);
    let source = tempfile::tempdir().unwrap();
    let mut real = vec![0u8; 30_000];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut real);
    write_file(&source.path().join("contract.bin"), &real);
    alice.backup(&[source.path()]).ok();
    let library = open(&alice, "Backups");
    let key = library.keys.object_key(BlobKind::Chunk, &real);
    let mut other = vec![0u8; real.len()];
    rand::RngCore::fill_bytes(&mut rand::thread_rng(), &mut other);
    let forged = seal_as(&key, 0x7fff_ffff, BlobKind::Chunk, &other);
    let (pack, offset, size) = located(&server, &library.info.id, &key);
    assert_eq!(forged.len() as i64, size, "the forgery fits the pack");
    server.overwrite_in_pack(&library.info.id, &pack, offset as u64, &forged);
    // The key alone opens it, so a reader without the check would take it.
    assert_eq!(
        key.open(BlobKind::Chunk, bytes::BytesMut::from(&forged[..]))
            .unwrap()
            .as_ref(),
        &other[..]
    );

    let target = tempfile::tempdir().unwrap();
    let restore = alice.restore("latest", target.path(), &[]);
    assert_ne!(restore.code, 0, "restored a forgery: {}", restore.stdout);
    assert!(
        restore.stderr.contains("epoch 2147483647"),
        "the refusal names the epoch: {}",
        restore.stderr
    );
    let restored = std::fs::read(
        target
            .path()
            .join(source.path().strip_prefix("/").unwrap())
            .join("contract.bin"),
    )
    .unwrap_or_default();
    assert_ne!(restored, other, "the forged contents were written");
    let check = alice.run(&["check", "--read-data"]);
    assert_ne!(check.code, 0, "check passed a forgery: {}", check.stdout);
}

/// Finding 2: the owner's client re-pointed a `--follow` link at the library the server
/// filed it under, so a server that moved the link to a private library had the owner's
/// next backup of that library hand the private folder to every visitor.
#[test]
fn a_follow_link_the_server_moved_to_another_library_is_not_re_pointed() {
    let server = TestServer::start();
    let [alice] = clients(&server, [ALICE]);
    let public = tempfile::tempdir().unwrap();
    write_file(&public.path().join("notice.txt"), b"open to all");
    alice.backup(&[public.path()]).ok();
    let url = crate::links::create(&alice, &["--follow", "Backups"]);
    alice.run(&["library", "create", "Private"]).ok();
    let private_id = open(&alice, "Private").info.id;
    server
        .db()
        .execute(
            "UPDATE links SET library_id = ?1",
            ibackup_server::params![private_id],
        )
        .unwrap();
    let diary = tempfile::tempdir().unwrap();
    write_file(&diary.path().join("diary.txt"), b"PRIVATE DIARY");
    let backup = alice.run(&[
        "backup",
        diary.path().to_str().unwrap(),
        "--library",
        "Private",
    ]);
    assert_eq!(backup.code, 3, "the snapshot is made, the link refused");
    assert!(
        backup.stderr.contains("REFUSED to re-point"),
        "the owner is told: {}",
        backup.stderr
    );
    let listed = alice.run(&["link", "list", "--json"]).ok().json();
    assert!(
        listed[0]["library"].as_str().unwrap().contains("MOVED"),
        "{listed}"
    );

    let visitor = crate::util::TestClient::new("visitor@example.com");
    let target = visitor.home.path().join("got");
    let got = visitor.run_with(&["get", &url, "--target", target.to_str().unwrap()], |c| {
        c.env_remove("IBACKUP_PASSWORD");
    });
    assert!(
        crate::util::files_containing(&target, b"PRIVATE DIARY").is_empty(),
        "the visitor got the private diary ({})",
        got.stderr
    );
}

fn account_id(server: &TestServer, email: &str) -> i64 {
    server
        .db()
        .query_row(
            "SELECT id FROM accounts WHERE email = ?1",
            ibackup_server::params![email],
            |r| r.get(0),
        )
        .unwrap()
}

/// What a compromised server does to widen a share: lists `email` as a member of
/// `library` (with a grant of its own, which opens nothing) and asks the owner's client
/// for a new key epoch. Returns the member's account id.
pub fn server_adds_member(server: &TestServer, library: &str, email: &str) -> i64 {
    let member = account_id(server, email);
    server
        .db()
        .execute(
            "INSERT INTO library_members (library_id, account_id, permission, grant_epoch, \
             key_grant) VALUES (?1, ?2, 'read', 1, ?3)",
            ibackup_server::params![library, member, vec![0u8; ibackup_proto::api::GRANT_BYTES]],
        )
        .unwrap();
    server
        .db()
        .execute(
            "UPDATE libraries SET rotate = 1 WHERE id = ?1",
            ibackup_server::params![library],
        )
        .unwrap();
    member
}

/// Finding 1: the owner's client granted each new key epoch to whoever the server listed as
/// a member. A server that inserted mallory and asked for a new key had alice's next
/// backup grant mallory the epoch, whose chain opens all of alice's history.
#[test]
fn a_member_the_server_adds_is_refused_and_given_no_key() {
    let server = TestServer::start();
    let [alice, bob, mallory] = clients(&server, [ALICE, "bob@example.com", "mallory@example.com"]);
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("old.txt"), b"ALICE'S OLD SECRET");
    alice.backup(&[source.path()]).ok();
    crate::sharing::share(&alice, "bob@example.com", "--read");
    let library = open(&alice, "Backups").info.id;
    let mallory_id = server_adds_member(&server, &library, "mallory@example.com");

    // The owner is told before anything happens.
    let listed = alice.run(&["share", "list", "--json"]).ok().json();
    let members = listed[0]["members"].as_array().unwrap();
    let flag = |email: &str| {
        members
            .iter()
            .find(|m| m["email"] == email)
            .unwrap_or_else(|| panic!("{email} in {listed}"))["added_by_you"]
            .clone()
    };
    assert_eq!(flag("bob@example.com"), true);
    assert_eq!(flag("mallory@example.com"), false);
    let status = alice.run(&["status", "--json"]).ok().json();
    assert!(
        status["warnings"][0]
            .as_str()
            .unwrap_or_default()
            .contains("mallory@example.com"),
        "{status}"
    );

    // The next plain backup starts the new key, for bob only, and says so.
    write_file(&source.path().join("new.txt"), b"ALICE'S NEW SECRET");
    let backup = alice.backup(&[source.path()]);
    assert_eq!(backup.code, 3, "{}", backup.stderr);
    assert!(
        backup.stderr.contains("REFUSED member mallory@example.com"),
        "{}",
        backup.stderr
    );
    let target = tempfile::tempdir().unwrap();
    let stolen = mallory.restore(
        "latest",
        target.path(),
        &["--library", "Backups@alice@example.com"],
    );
    assert_ne!(stolen.code, 0, "mallory restored alice's library");
    assert!(crate::util::files_containing(target.path(), b"ALICE'S").is_empty());
    let members: i64 = server
        .db()
        .query_row(
            "SELECT COUNT(*) FROM library_members WHERE library_id = ?1 AND account_id = ?2",
            ibackup_server::params![library, mallory_id],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(
        members, 0,
        "the refused member was removed in the same step"
    );
    // Bob, whom alice added, reads the new epoch.
    let bobs = tempfile::tempdir().unwrap();
    bob.restore(
        "latest",
        bobs.path(),
        &["--library", "Backups@alice@example.com"],
    )
    .ok();
    assert_eq!(
        crate::util::files_containing(bobs.path(), b"ALICE'S NEW SECRET").len(),
        1
    );

    // A server that drops the roster, or hands back an older one, is refused.
    let roster: Vec<u8> = server
        .db()
        .query_row(
            "SELECT roster FROM libraries WHERE id = ?1",
            ibackup_server::params![library],
            |r| r.get(0),
        )
        .unwrap();
    let set_roster = |roster: Option<Vec<u8>>| {
        server
            .db()
            .execute(
                "UPDATE libraries SET roster = ?2, rotate = 1 WHERE id = ?1",
                ibackup_server::params![library, roster],
            )
            .unwrap();
    };
    set_roster(None);
    crate::util::fails(alice.backup(&[source.path()]), "REFUSED");
    let epoch = |server: &TestServer| -> i64 {
        server
            .db()
            .query_row(
                "SELECT epoch FROM libraries WHERE id = ?1",
                ibackup_server::params![library],
                |r| r.get(0),
            )
            .unwrap()
    };
    let before = epoch(&server);
    set_roster(Some(roster.clone()));
    alice
        .run(&["share", "remove", "Backups", "bob@example.com"])
        .ok();
    assert_eq!(epoch(&server), before + 1);
    set_roster(Some(roster));
    crate::util::fails(alice.backup(&[source.path()]), "REFUSED");
    assert_eq!(epoch(&server), before + 1, "no key was made for anyone");
}

/// Finding 4: a client compared generations only, so a server that set the head back past
/// a commit this computer made, and let another computer build two commits on the older
/// head, had this computer take the new head and lose its commit without a word.
#[test]
fn a_head_that_does_not_build_on_the_seen_one_is_refused() {
    let server = TestServer::start();
    let [laptop] = clients(&server, [ALICE]);
    let desktop = crate::util::TestClient::new(ALICE);
    desktop.login(&server);
    let source = tempfile::tempdir().unwrap();
    let head = || -> Vec<u8> {
        server
            .db()
            .query_row(
                "SELECT head FROM libraries",
                ibackup_server::params![],
                |r| r.get(0),
            )
            .unwrap()
    };
    for generation in 1..=2 {
        write_file(
            &source.path().join("a.txt"),
            format!("v{generation}").as_bytes(),
        );
        laptop.backup(&[source.path()]).ok();
    }
    let second = head();
    desktop.run(&["snapshots"]).ok(); // the desktop saw generation 2
    write_file(
        &source.path().join("kept.txt"),
        b"the laptop's third commit",
    );
    laptop.backup(&[source.path()]).ok();
    // The server drops the laptop's third commit; the desktop, which never saw it, builds
    // two commits on the second.
    server
        .db()
        .execute(
            "UPDATE libraries SET head = ?1",
            ibackup_server::params![second],
        )
        .unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    for n in 0..2 {
        write_file(
            &elsewhere.path().join("d.txt"),
            format!("desktop {n}").as_bytes(),
        );
        desktop.backup(&[elsewhere.path()]).ok();
    }
    let run = laptop.run(&["snapshots"]);
    crate::util::fails(run, "ALTERED STATE OF LIBRARY `Backups`");
    // A head that does build on the seen one is taken, however far ahead.
    let honest = crate::util::TestClient::new(ALICE);
    honest.login(&server);
    honest.run(&["snapshots"]).ok();
    for n in 0..3 {
        write_file(
            &elsewhere.path().join("d.txt"),
            format!("later {n}").as_bytes(),
        );
        desktop.backup(&[elsewhere.path()]).ok();
    }
    honest.run(&["snapshots"]).ok();
}

/// Low: `ibackup get` run as root applied a link's owners, set-ID bits, privileged extended
/// attributes and device nodes, as a restore of one's own data does. A stranger's folder
/// is now written as plain files of whoever runs `get`.
#[test]
fn a_link_fetched_as_root_makes_no_owners_set_id_bits_or_devices() {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: skipping (CI runs as root)");
        return;
    }
    let server = TestServer::start();
    let [alice] = clients(&server, [ALICE]);
    let source = tempfile::tempdir().unwrap();
    let tool = source.path().join("tool");
    write_file(&tool, b"#!/bin/sh\n");
    std::os::unix::fs::chown(&tool, Some(4321), Some(4321)).unwrap();
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o4755)).unwrap();
    xattr::set(&tool, "user.note", b"kept").unwrap();
    let privileged = xattr::set(&tool, "trusted.mark", b"root only").is_ok();
    let device = source.path().join("null");
    rustix::fs::mknodat(
        rustix::fs::CWD,
        &device,
        rustix::fs::FileType::CharacterDevice,
        rustix::fs::Mode::from_raw_mode(0o666),
        rustix::fs::makedev(1, 3),
    )
    .unwrap();
    alice.backup(&[source.path()]).ok();
    let url = crate::links::create(&alice, &[&format!("Backups:{}", source.path().display())]);

    let visitor = crate::util::TestClient::new("visitor@example.com");
    let target = visitor.home.path().join("got");
    let got = visitor.run_with(&["get", &url, "--target", target.to_str().unwrap()], |c| {
        c.env_remove("IBACKUP_PASSWORD");
    });
    assert_eq!(
        got.code, 3,
        "the device is named as skipped: {}",
        got.stderr
    );
    assert!(got.stderr.contains("never made"), "{}", got.stderr);
    let fetched = std::fs::metadata(target.join("tool")).unwrap();
    assert_eq!(fetched.uid(), 0, "the link's owner was applied");
    assert_eq!(fetched.mode() & 0o7777, 0o755, "set-ID bits were applied");
    assert_eq!(
        xattr::get(target.join("tool"), "user.note")
            .unwrap()
            .as_deref(),
        Some(&b"kept"[..])
    );
    if privileged {
        assert_eq!(
            xattr::get(target.join("tool"), "trusted.mark").unwrap(),
            None
        );
    }
    assert!(!target.join("null").exists(), "a device node was made");

    // One's own restore keeps all of it.
    let own = tempfile::tempdir().unwrap();
    alice.restore("latest", own.path(), &[]).ok();
    let mine = own.path().join(source.path().strip_prefix("/").unwrap());
    let kept = std::fs::metadata(mine.join("tool")).unwrap();
    assert_eq!((kept.uid(), kept.mode() & 0o7777), (4321, 0o4755));
    assert!(std::fs::symlink_metadata(mine.join("null")).is_ok());
}

/// Low: names other writers of a library chose (the paths a member backed up, here a
/// folder whose name steers a terminal) were printed raw by `snapshots`.
#[test]
fn names_from_other_writers_reach_the_terminal_escaped() {
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    crate::sharing::share(&alice, "bob@example.com", "--read-write");
    let source = tempfile::tempdir().unwrap();
    let odd = source.path().join("x\u{1b}]0;owned\u{7}\u{1b}[2J");
    std::fs::create_dir_all(&odd).unwrap();
    write_file(&odd.join("a.txt"), b"bob's");
    bob.run(&[
        "backup",
        odd.to_str().unwrap(),
        "--library",
        crate::sharing::ALICES_BACKUPS,
    ])
    .ok();
    let listed = alice.run(&["snapshots"]).ok();
    assert!(
        listed.stdout.contains("\\u{1b}]0;owned"),
        "{}",
        listed.stdout
    );
    assert!(
        !listed.stdout.contains('\u{1b}') && !listed.stdout.contains('\u{7}'),
        "a control character reached the terminal: {:?}",
        listed.stdout
    );
}

/// Low: a member who may only read could set holds without bound (a new holder id each
/// time) and keep forgotten data alive at the owner's cost. Holds expire within a day,
/// and one account may have at most four holders per library.
#[test]
fn a_members_holds_are_bounded() {
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("a.txt"), b"held");
    alice.backup(&[source.path()]).ok();
    crate::sharing::share(&alice, "bob@example.com", "--read");
    let library = open(&alice, "Backups");
    let path = ibackup_proto::api::routes::library(
        ibackup_proto::api::routes::LIBRARY_HOLDS,
        &library.info.id,
    );
    let head = server.strings("SELECT lower(hex(head)) FROM libraries");
    let hold = |holder: u8, ttl: u64| {
        let body = serde_json::json!({
            "holder": format!("{holder:032x}"),
            "roots": [head[0]],
            "ttl_secs": ttl,
        });
        crate::util::raw_request(
            &server,
            "PUT",
            &path,
            Some(&bob.session_token()),
            Some(("application/json", body.to_string().into_bytes())),
        )
    };
    for holder in 1..=4 {
        assert_eq!(hold(holder, 3600).0, 204);
    }
    assert_eq!(hold(1, 3600).0, 204, "a holder renews its own");
    let (status, body) = hold(5, 3600);
    assert_eq!(status, 403, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("mounts"),
        "{body}"
    );
    assert_eq!(hold(6, 86_401).0, 400, "a hold lasts at most a day");
    let rows: i64 = server
        .db()
        .query_row(
            "SELECT COUNT(*) FROM holds",
            ibackup_server::params![],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(rows, 4);
}

/// Low: the key share that opens a session file's account key outlived sessions that timed
/// out (only a revocation dropped it), so a session file copied while its session lived
/// could be opened later by whoever holds the server's database. It goes when the session
/// is found timed out, and at the server's maintenance for those never seen again.
#[test]
fn key_shares_end_with_their_sessions() {
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(
        |config| config.replace("idle_timeout = \"30days\"", "idle_timeout = \"3s\""),
        &logs.path().join("server.log"),
    );
    let [laptop] = clients(&server, [ALICE]);
    let desktop = crate::util::TestClient::new(ALICE);
    desktop.login(&server);
    let shares = || -> i64 {
        server
            .db()
            .query_row(
                "SELECT COUNT(*) FROM sessions WHERE key_share IS NOT NULL",
                ibackup_server::params![],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(shares(), 2);
    std::thread::sleep(std::time::Duration::from_secs(4));
    let run = laptop.run(&["snapshots"]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("expired"), "{}", run.stderr);
    assert_eq!(
        shares(),
        1,
        "the laptop's share went when its session was found ended"
    );
    server.admin(&["maintenance"]);
    assert_eq!(shares(), 0, "the desktop's went at maintenance");
}

/// Low: any account could test, without limit, which addresses have accounts through the
/// contact lookup (404 or a key). Lookups are now limited per account; sign-ups, which
/// answer 409 for a registered address, were already limited per network.
#[test]
fn contact_lookups_are_limited_per_account() {
    let server = TestServer::start();
    let [alice] = clients(&server, [ALICE]);
    let token = alice.session_token();
    let lookup = |email: &str| {
        crate::util::raw_request(
            &server,
            "POST",
            ibackup_proto::api::routes::CONTACT_LOOKUP,
            Some(&token),
            Some((
                "application/json",
                serde_json::json!({ "email": email })
                    .to_string()
                    .into_bytes(),
            )),
        )
    };
    for n in 0..ibackup_server::throttle::FREE_LOOKUPS {
        assert_eq!(lookup(&format!("guess{n}@example.com")).0, 404);
    }
    let (status, body) = lookup("one-more@example.com");
    assert_eq!(status, 429, "{body}");
    assert!(body["message"].as_str().unwrap().contains("wait"), "{body}");
    // Another account is not held up by alice's lookups.
    let [bob] = clients(&server, ["bob@example.com"]);
    crate::util::fails(
        bob.run(&["contact", "verify", ALICE, "0000"]),
        "nothing was pinned",
    );
}

/// Low: pins were keyed by e-mail only, so a server that gave a library's owner a new
/// address made its own key for them a first use. The owner's key is now pinned per
/// library too.
#[test]
fn a_library_whose_owner_the_server_renames_and_rekeys_is_refused() {
    use ibackup_proto::crypto::{AccountKeyPair, SymmetricKey};
    let server = TestServer::start();
    let [alice, bob] = clients(&server, [ALICE, "bob@example.com"]);
    let source = tempfile::tempdir().unwrap();
    write_file(&source.path().join("a.txt"), b"alice's");
    alice.backup(&[source.path()]).ok();
    crate::sharing::share(&alice, "bob@example.com", "--read");
    bob.run(&["library", "list"]).ok(); // pins alice's key, and hers for the library
    let library = open(&alice, "Backups").info.id;
    let bob_id = account_id(&server, "bob@example.com");
    let alice_id = account_id(&server, ALICE);
    let bob_public: Vec<u8> = server
        .db()
        .query_row(
            "SELECT public_key FROM accounts WHERE id = ?1",
            ibackup_server::params![bob_id],
            |r| r.get(0),
        )
        .unwrap();
    let evil = AccountKeyPair::generate();
    let forged = ibackup_proto::crypto::epoch::grant(
        &evil,
        &bob_public,
        &library,
        1,
        &SymmetricKey::generate(),
    )
    .unwrap();
    server
        .db()
        .execute(
            "UPDATE accounts SET email = 'new-alice@example.com', public_key = ?2 WHERE id = ?1",
            ibackup_server::params![alice_id, evil.public_bytes().to_vec()],
        )
        .unwrap();
    server
        .db()
        .execute(
            "UPDATE library_members SET key_grant = ?3 WHERE library_id = ?1 AND account_id = ?2",
            ibackup_server::params![library, bob_id, forged],
        )
        .unwrap();
    let listed = bob.run(&["library", "list"]);
    assert!(
        listed.stderr.contains("ANOTHER OWNER KEY"),
        "{}\n{}",
        listed.stdout,
        listed.stderr
    );
    assert!(!listed.stdout.contains("Backups@"), "{}", listed.stdout);
}
