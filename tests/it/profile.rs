//! Profile and data rights against a real server: export of everything held about a user,
//! deletion, password change and recovery, and 4xx answers to bad input on account routes.

use std::fs;

use serde_json::json;

use ibackup_proto::api::{b64, routes};

use crate::util::{raw_request, TestClient, TestServer};

fn configured(edit: impl FnOnce(String) -> String) -> (TestServer, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(edit, &logs.path().join("server.log"));
    (server, logs)
}

/// Tables with rows about one account, and where the export lists them.
const PERSONAL_TABLES: &[(&str, &str, &str)] = &[
    ("accounts", "id", "profile"),
    ("sessions", "account_id", "sessions"),
    ("cards", "account_id", "card"),
    ("plan_changes", "account_id", "plan_history"),
    ("invoices", "account_id", "invoices"),
    ("consent_events", "account_id", "consent_history"),
    ("feedback", "account_id", "feedback"),
    ("libraries", "owner_id", "libraries"),
    ("library_members", "account_id", "memberships"),
    ("links", "account_id", "links"),
    ("holds", "account_id", "holds"),
];

#[test]
fn export_holds_every_row_about_the_user_and_none_about_others() {
    let (server, _logs) = configured(|c| c);
    let alice = TestClient::new("alice@example.com");
    let bob = TestClient::new("bob@example.com");
    for user in [&alice, &bob] {
        user.register(&server);
        user.run_input(
            &["account", "card", "add", "--stdin"],
            "5555555555554444\n10/33\n321\nSomeone\n",
        )
        .ok();
        user.run(&["account", "plan", "personal"]).ok();
        user.run(&["account", "consent", "on"]).ok();
        user.run(&["feedback", "--rating", "4"]).ok();
        user.run(&["library", "create", "Photos"]).ok();
        let folder = user.home.path().join("to-link");
        fs::create_dir_all(&folder).unwrap();
        fs::write(folder.join("f.txt"), b"x").unwrap();
        user.backup(&[&folder]).ok();
        user.run(&["link", "create", "Backups"]).ok();
        // A mount of theirs holds the newest snapshot's tree.
        let library = crate::sharing::open(user, "Backups").info;
        let hold = serde_json::json!({
            "holder": hex::encode(rand::random::<[u8; 16]>()),
            "roots": [library.head.unwrap()],
            "ttl_secs": 600,
        });
        let (status, body) = crate::util::raw_request(
            &server,
            "PUT",
            &ibackup_proto::api::routes::library(
                ibackup_proto::api::routes::LIBRARY_HOLDS,
                &library.id,
            ),
            Some(&user.session_token()),
            Some(("application/json", hold.to_string().into_bytes())),
        );
        assert_eq!(status, 204, "{body}");
    }
    let export_file = alice.home.path().join("export.json");
    alice
        .run(&[
            "account",
            "export",
            "--output",
            &export_file.display().to_string(),
        ])
        .ok();
    let export: serde_json::Value =
        serde_json::from_slice(&fs::read(&export_file).unwrap()).unwrap();
    assert_eq!(export["profile"]["email"], "alice@example.com");
    assert!(!export.to_string().contains("bob@example.com"));
    let alice_id = export["profile"]["id"].as_i64().unwrap();

    // Every table that has a column naming an account must be in the list above, so a new
    // table cannot be forgotten by the export.
    let db = server.db();
    for table in &server.tables() {
        let columns = server.columns(table);
        if columns.iter().any(|c| c == "account_id" || c == "owner_id") {
            assert!(
                PERSONAL_TABLES.iter().any(|(t, _, _)| t == table),
                "table {table} holds account rows the export does not cover"
            );
        }
    }
    for (table, column, key) in PERSONAL_TABLES {
        let rows: i64 = db
            .query_row(
                &format!("SELECT COUNT(*) FROM {table} WHERE {column} = ?1"),
                ibackup_server::params![alice_id],
                |r| r.get(0),
            )
            .unwrap();
        let exported = match &export[key] {
            serde_json::Value::Array(items) => items.len() as i64,
            serde_json::Value::Null => 0,
            _ => 1,
        };
        assert!(rows > 0, "{table}: the test should give alice rows");
        assert_eq!(rows, exported, "{table} vs export.{key}");
    }
}

#[test]
fn deleting_the_account_removes_personal_data_and_blobs_but_keeps_invoices() {
    let (server, _logs) = configured(|c| c);
    let alice = TestClient::new("zebediah.quill@example.org");
    let bob = TestClient::new("bob@example.com");
    alice
        .run(&[
            "register",
            "--server",
            &server.url,
            "--email",
            "zebediah.quill@example.org",
            "--first-name",
            "Zebediah",
            "--last-name",
            "Quillfeather",
            "--trust-new",
        ])
        .ok();
    bob.register(&server);
    let source = tempfile::tempdir().unwrap();
    fs::write(source.path().join("diary.txt"), b"dear diary").unwrap();
    alice.backup(&[source.path()]).ok();
    bob.backup(&[source.path()]).ok();
    alice
        .run_input(
            &["account", "card", "add", "--stdin"],
            "4242424242424242\n12/34\n987\nZebediah Quillfeather\n",
        )
        .ok();
    alice.run(&["account", "plan", "personal"]).ok();
    alice
        .run(&["feedback", "--rating", "3", "--message", "Zebediah says hi"])
        .ok();
    let packs = server.data.path().join("packs");
    assert_eq!(fs::read_dir(&packs).unwrap().count(), 2);

    let cache = alice.home.path().join("cache");
    let account_dirs = || -> Vec<String> {
        fs::read_dir(&cache)
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .filter(|n| n.len() == 16 && n.bytes().all(|b| b.is_ascii_hexdigit()))
                    .collect()
            })
            .unwrap_or_default()
    };
    if crate::util::fuse_or_skip() {
        // A mounted account is not deleted from under its mount.
        let mount = crate::util::TestMount::start(&alice, &[]);
        let run = alice.run(&[
            "account",
            "delete",
            "--confirm",
            "zebediah.quill@example.org",
        ]);
        assert!(run.stderr.contains("unmount first"), "{}", run.stderr);
        mount.unmount().ok();
        assert_eq!(account_dirs().len(), 1, "the mount left its cache");
    }
    let run = alice.run(&["account", "delete", "--confirm", "bob@example.com"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("does not match"), "{}", run.stderr);
    let run = alice.run_with(
        &[
            "account",
            "delete",
            "--confirm",
            "zebediah.quill@example.org",
        ],
        |c| {
            c.env("IBACKUP_PASSWORD", "not the password");
        },
    );
    assert!(run.stderr.contains("password is wrong"), "{}", run.stderr);
    alice
        .run(&[
            "account",
            "delete",
            "--confirm",
            "Zebediah.Quill@example.org",
        ])
        .ok();
    assert!(!alice.config_dir().join("session.json").exists());
    assert!(
        account_dirs().is_empty(),
        "the account's local cache is gone"
    );

    let report = server.admin(&["maintenance"]);
    assert!(report.status.success());
    assert_eq!(fs::read_dir(&packs).unwrap().count(), 1, "bob's pack stays");
    for file in ["ibackup.db", "ibackup.db-wal"] {
        let path = server.data.path().join(file);
        let Ok(bytes) = fs::read(&path) else { continue };
        for needle in ["zebediah", "quillfeather"] {
            let found = bytes
                .windows(needle.len())
                .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()));
            assert!(!found, "{needle} is still in {file}");
        }
    }
    let db = server.db();
    let (invoices, orphaned): (i64, i64) = db
        .query_row(
            "SELECT COUNT(*), COUNT(*) - COUNT(account_id) FROM invoices",
            ibackup_server::params![],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!((invoices, orphaned), (1, 1), "the invoice stays, unlinked");
    let ratings: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM feedback WHERE message IS NULL",
            ibackup_server::params![],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(ratings, 1, "the rating stays without its message");

    let login = alice.run(&[
        "login",
        "--server",
        &server.url,
        "--email",
        "zebediah.quill@example.org",
    ]);
    assert_eq!(login.code, 1);
    bob.run(&["snapshots"]).ok();
}

#[test]
fn password_change_and_recovery_keep_the_data_and_end_other_sessions() {
    let (server, _logs) = configured(|c| c);
    let laptop = TestClient::new("alice@example.com");
    let phone = TestClient::new("alice@example.com");
    let registered = laptop.register_with(&server, &[]);
    let recovery_key = registered["recovery_key"].as_str().unwrap().to_owned();
    phone.login(&server);
    let source = tempfile::tempdir().unwrap();
    fs::write(source.path().join("a.txt"), b"kept through it all").unwrap();
    laptop.backup(&[source.path()]).ok();

    let phone_copy = fs::read_to_string(phone.config_dir().join("session.json")).unwrap();
    let new_password = "a whole new password";
    let run = laptop.run_with(&["account", "password"], |c| {
        c.env("IBACKUP_PASSWORD", "wrong current password");
        c.env("IBACKUP_NEW_PASSWORD", new_password);
    });
    assert!(
        run.stderr.contains("current password is wrong"),
        "{}",
        run.stderr
    );
    let changed = laptop
        .run_with(&["account", "password", "--json"], |c| {
            c.env("IBACKUP_NEW_PASSWORD", new_password);
        })
        .ok()
        .json();
    assert_eq!(changed["sessions_ended"], 1);
    assert_eq!(phone.run(&["snapshots"]).code, 1);
    // A copy of the phone's session file is useless now: its key share is gone.
    assert_eq!(
        phone.private_key_from_session_file(&server, &phone_copy),
        None
    );
    let old = phone.run(&[
        "login",
        "--server",
        &server.url,
        "--email",
        "alice@example.com",
    ]);
    assert!(
        old.stderr.contains("wrong e-mail or password"),
        "{}",
        old.stderr
    );
    phone
        .run_with(
            &[
                "login",
                "--server",
                &server.url,
                "--email",
                "alice@example.com",
            ],
            |c| {
                c.env("IBACKUP_PASSWORD", new_password);
            },
        )
        .ok();
    let restored = tempfile::tempdir().unwrap();
    phone
        .run(&[
            "restore",
            "latest",
            "--target",
            &restored.path().display().to_string(),
        ])
        .ok();

    // Forgotten password: the recovery key sets a new one, and the data still opens.
    let recover = |key: &str| {
        phone.run_with(
            &[
                "account",
                "recover",
                "--server",
                &server.url,
                "--email",
                "alice@example.com",
            ],
            |c| {
                c.env("IBACKUP_RECOVERY_KEY", key);
                c.env("IBACKUP_NEW_PASSWORD", "recovered password 1");
            },
        )
    };
    let wrong_key = recover(&recovery_key.replace(|c: char| c.is_ascii_digit(), "7"));
    assert_eq!(wrong_key.code, 1);
    recover(&recovery_key).ok();
    assert_eq!(
        laptop.run(&["snapshots"]).code,
        1,
        "recovery ends other sessions"
    );
    let again = tempfile::tempdir().unwrap();
    phone
        .run(&[
            "restore",
            "latest",
            "--target",
            &again.path().display().to_string(),
        ])
        .ok();
    assert_eq!(
        fs::read(
            again
                .path()
                .join(source.path().strip_prefix("/").unwrap())
                .join("a.txt")
        )
        .unwrap_or_default(),
        b"kept through it all"
    );
}

/// What a thief with a copy of `session.json` tries: open the recovery challenge with the
/// account's private key in it and set a password of their own. Returns the status.
fn recover_with_session_file(server: &TestServer, victim: &TestClient) -> (u16, serde_json::Value) {
    let text = fs::read_to_string(victim.config_dir().join("session.json")).unwrap();
    let secret = victim
        .private_key_from_session_file(server, &text)
        .expect("the session is live");
    let keys = ibackup_proto::crypto::AccountKeyPair::from_secret_bytes(&secret).unwrap();
    let email = json!({ "email": victim.email }).to_string().into_bytes();
    let (status, challenge) = raw_request(
        server,
        "POST",
        routes::RECOVERY_CHALLENGE,
        None,
        Some(("application/json", email)),
    );
    assert_eq!(status, 200, "{challenge}");
    let sealed = b64::decode(challenge["challenge"].as_str().unwrap()).unwrap();
    let answer = keys.open(&sealed).unwrap();
    let thief = ibackup_proto::crypto::SymmetricKey::generate();
    let body = json!({
        "email": victim.email,
        "answer": b64::encode(&answer),
        "auth_secret": b64::encode(&[1u8; 32]),
        "salt": b64::encode(&[2u8; 16]),
        "kdf": ibackup_proto::crypto::kdf::KdfParams::default(),
        "wrapped_private_key": b64::encode(&thief.wrap(&secret)),
    });
    raw_request(
        server,
        "POST",
        routes::RECOVERY_COMPLETE,
        None,
        Some(("application/json", body.to_string().into_bytes())),
    )
}

#[test]
fn a_copied_session_file_cannot_recover_the_account() {
    let (server, _logs) = configured(|c| c);
    let alice = TestClient::new("alice@example.com");
    let first_key = alice.register_with(&server, &[])["recovery_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = recover_with_session_file(&server, &alice);
    assert_eq!(status, 401, "{body}");
    assert!(
        body["message"].as_str().unwrap().contains("did not verify"),
        "{body}"
    );
    alice.run(&["account", "show"]).ok();

    // An account from before recovery proofs: the session file would be enough, until the
    // owner makes a new recovery key (with the password).
    let legacy = || {
        server
            .db()
            .execute(
                "UPDATE accounts SET recovery_proof_hash = NULL",
                ibackup_server::params![],
            )
            .unwrap()
    };
    legacy();
    let wrong = alice.run_with(&["account", "recovery-key"], |c| {
        c.env("IBACKUP_PASSWORD", "not the password");
    });
    assert!(
        wrong.stderr.contains("password is wrong"),
        "{}",
        wrong.stderr
    );
    let new_key = alice
        .run(&["account", "recovery-key", "--json"])
        .ok()
        .json()["recovery_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let (status, body) = recover_with_session_file(&server, &alice);
    assert_eq!(status, 401, "{body}");

    let recover = |key: &str| {
        alice.run_with(
            &[
                "account",
                "recover",
                "--server",
                &server.url,
                "--email",
                &alice.email,
            ],
            |c| {
                c.env("IBACKUP_RECOVERY_KEY", key);
                c.env("IBACKUP_NEW_PASSWORD", "recovered password 1");
            },
        )
    };
    assert_eq!(
        recover(&first_key).code,
        1,
        "the replaced key no longer works"
    );
    recover(&new_key).ok();
    alice.run(&["snapshots"]).ok();
    legacy();
    let (status, body) = recover_with_session_file(&server, &alice);
    assert_eq!(
        status, 201,
        "without a proof on record, the challenge was enough: {body}"
    );
}

#[test]
fn account_routes_answer_bad_input_with_4xx_and_a_message() {
    let (server, _logs) = configured(|c| c);
    let alice = TestClient::new("alice@example.com");
    alice.register(&server);
    let token = alice.session_token();
    let body = |v: serde_json::Value| Some(("application/json", v.to_string().into_bytes()));
    let cases = [
        (
            "PUT",
            "/api/v1/account/plan",
            body(json!({"plan": "platinum"})),
            400,
        ),
        ("PUT", "/api/v1/account/plan", body(json!({"plan": 5})), 400),
        (
            "PUT",
            "/api/v1/account/plan",
            body(json!({"plan": "personal"})),
            402,
        ),
        (
            "POST",
            "/api/v1/account/card",
            body(json!({"number": "x"})),
            400,
        ),
        (
            "POST",
            "/api/v1/account/card",
            body(
                json!({"number": "4242424242424242", "exp_month": 0, "exp_year": 30, "cvc": "1", "name": ""}),
            ),
            400,
        ),
        ("PATCH", "/api/v1/account", body(json!({})), 400),
        (
            "PATCH",
            "/api/v1/account",
            body(json!({"email": "nope"})),
            400,
        ),
        (
            "PATCH",
            "/api/v1/account",
            body(json!({"first_name": ""})),
            400,
        ),
        (
            "PUT",
            "/api/v1/account/consent",
            body(json!({"marketing_email": "yes"})),
            400,
        ),
        ("POST", "/api/v1/account/password", body(json!({})), 400),
        ("DELETE", "/api/v1/account/sessions/not-an-id", None, 404),
        (
            "DELETE",
            "/api/v1/account/sessions/0123456789abcdef0123456789abcdef",
            None,
            404,
        ),
        ("POST", "/api/v1/feedback", body(json!({"rating": 0})), 400),
        (
            "POST",
            "/api/v1/feedback",
            body(json!({"rating": 300})),
            400,
        ),
        (
            "POST",
            "/api/v1/surveys/nope/answers",
            body(json!({"answers": []})),
            404,
        ),
        (
            "POST",
            "/api/v1/account/delete",
            body(json!({"confirm_email": "x@y.z", "auth_secret": "AAAA"})),
            400,
        ),
        ("POST", "/api/v1/account/reactivate", body(json!({})), 400),
        (
            "POST",
            "/api/v1/recovery/complete",
            body(json!({"email": "alice@example.com"})),
            400,
        ),
        (
            "POST",
            "/api/v1/recovery/challenge",
            body(json!({"email": "bad"})),
            400,
        ),
        ("GET", "/api/v1/optout/12-zz", None, 400),
        ("GET", "/api/v1/account/export", None, 401),
    ];
    for (method, path, payload, expected) in cases {
        let auth = if path.ends_with("export") {
            None
        } else {
            Some(token.as_str())
        };
        let (status, answer) = raw_request(&server, method, path, auth, payload);
        assert_eq!(status, expected, "{method} {path}: {answer}");
        assert!(
            answer["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{method} {path}: {answer}"
        );
    }
}
