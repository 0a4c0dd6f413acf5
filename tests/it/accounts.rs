//! Accounts, sessions and the server's refusals: each bad request gets a 4xx with a JSON
//! body that says what to do, never a 500.

use std::os::unix::fs::PermissionsExt;

use serde_json::json;

use crate::util::{raw_request, TestClient, TestServer};

fn library_id(client: &TestClient) -> String {
    let list = client.run(&["library", "list", "--json"]).ok().json();
    list[0]["id"].as_str().unwrap().to_owned()
}

#[test]
fn wrong_password_and_unknown_email_look_the_same() {
    let server = TestServer::start();
    let client = TestClient::new("alice@example.com");
    client.register(&server);
    let login = |email: &str, password: &str| {
        client.run_with(&["login", "--server", &server.url, "--email", email], |c| {
            c.env("IBACKUP_PASSWORD", password);
        })
    };
    let wrong = login("alice@example.com", "not the password");
    let unknown = login("nobody@example.com", "not the password");
    assert_eq!(wrong.code, 1);
    assert_eq!(unknown.code, 1);
    assert!(
        wrong.stderr.contains("wrong e-mail or password"),
        "{}",
        wrong.stderr
    );
    assert_eq!(wrong.stderr, unknown.stderr);
    // The right password still works, also for differently cased e-mail.
    login("Alice@Example.com", crate::util::PASSWORD).ok();
}

#[test]
fn session_files_are_private_and_logout_revokes_the_token() {
    let server = TestServer::start();
    let client = TestClient::new("bob@example.com");
    client.register(&server);
    let session = client.config_dir().join("session.json");
    let mode = std::fs::metadata(&session).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let token = client.session_token();
    let (status, _) = raw_request(&server, "GET", "/api/v1/account", Some(&token), None);
    assert_eq!(status, 200);
    // A copy of the file: while the session lives its token unseals the account key...
    let copy = std::fs::read_to_string(&session).unwrap();
    assert!(client
        .private_key_from_session_file(&server, &copy)
        .is_some());
    client.run(&["logout"]).ok();
    // ... and once it ended, the copy opens nothing.
    assert_eq!(client.private_key_from_session_file(&server, &copy), None);
    assert!(!session.exists());
    let (status, body) = raw_request(&server, "GET", "/api/v1/account", Some(&token), None);
    assert_eq!(status, 401, "{body}");
    assert_eq!(body["error"], "unauthorized");
    let run = client.run(&["snapshots"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("not logged in"), "{}", run.stderr);
    let (status, _) = raw_request(&server, "GET", "/api/v1/account", Some("made-up"), None);
    assert_eq!(status, 401);
    let (status, _) = raw_request(&server, "GET", "/api/v1/account", None, None);
    assert_eq!(status, 401);
}

#[test]
fn a_session_file_from_before_key_shares_is_sealed_at_its_next_use() {
    let server = TestServer::start();
    let client = TestClient::new("carol@example.com");
    client.register(&server);
    let path = client.config_dir().join("session.json");
    let text = std::fs::read_to_string(&path).unwrap();
    let secret = client
        .private_key_from_session_file(&server, &text)
        .unwrap();
    // What an older client wrote (the key in the clear) for a session without a share.
    let mut old: serde_json::Value = serde_json::from_str(&text).unwrap();
    let fields = old.as_object_mut().unwrap();
    fields.remove("private_key_sealed");
    fields.insert(
        "private_key".into(),
        ibackup_proto::api::b64::encode(&secret).into(),
    );
    std::fs::write(&path, serde_json::to_vec(&old).unwrap()).unwrap();
    server
        .db()
        .execute(
            "UPDATE sessions SET key_share = NULL",
            ibackup_server::params![],
        )
        .unwrap();
    client.run(&["snapshots"]).ok();
    let sealed = std::fs::read_to_string(&path).unwrap();
    assert_eq!(
        client.private_key_from_session_file(&server, &sealed),
        Some(secret),
        "{sealed}"
    );
    client.run(&["snapshots"]).ok();
}

#[test]
fn another_accounts_library_is_refused() {
    let server = TestServer::start();
    let alice = TestClient::new("alice@example.com");
    let mallory = TestClient::new("mallory@example.com");
    alice.register(&server);
    mallory.register(&server);
    let alices = library_id(&alice);
    let token = mallory.session_token();
    for (method, path, body) in [
        ("GET", format!("/api/v1/libraries/{alices}/head"), None),
        ("GET", format!("/api/v1/libraries/{alices}/snapshots"), None),
        (
            "POST",
            format!("/api/v1/libraries/{alices}/objects/missing"),
            Some(json!({"ids": []})),
        ),
        (
            "POST",
            format!("/api/v1/libraries/{alices}/objects/fetch"),
            Some(json!({"ids": []})),
        ),
    ] {
        let body = body.map(|b| ("application/json", serde_json::to_vec(&b).unwrap()));
        let (status, answer) = raw_request(&server, method, &path, Some(&token), body);
        assert_eq!(status, 403, "{method} {path}: {answer}");
        assert_eq!(answer["error"], "forbidden");
    }
    let (status, answer) = raw_request(
        &server,
        "GET",
        "/api/v1/libraries/00000000000000000000000000000000/head",
        Some(&token),
        None,
    );
    assert_eq!(status, 404, "{answer}");
    let (status, _) = raw_request(
        &server,
        "GET",
        "/api/v1/libraries/..%2F..%2Fetc/head",
        Some(&token),
        None,
    );
    assert_eq!(status, 404);
}

#[test]
fn malformed_requests_get_helpful_4xx() {
    let server = TestServer::start();
    let client = TestClient::new("carol@example.com");
    client.register(&server);
    let token = client.session_token();
    let library = library_id(&client);
    type Body = Option<(&'static str, Vec<u8>)>;
    let cases: Vec<(&str, String, Body, u16)> = vec![
        (
            "POST",
            "/api/v1/sessions".into(),
            Some(("application/json", b"{not json".to_vec())),
            400,
        ),
        (
            "POST",
            "/api/v1/sessions".into(),
            Some(("application/json", br#"{"email": 5}"#.to_vec())),
            400,
        ),
        (
            "POST",
            "/api/v1/sessions".into(),
            Some(("text/plain", b"{}".to_vec())),
            400,
        ),
        (
            "POST",
            "/api/v1/prelogin".into(),
            Some(("application/json", br#"{"email":"x"}"#.to_vec())),
            400,
        ),
        (
            "POST",
            "/api/v1/accounts".into(),
            Some(("application/json", b"{}".to_vec())),
            400,
        ),
        (
            "POST",
            "/api/v1/prelogin".into(),
            Some(("application/json", vec![b' '; 2 << 20])),
            413,
        ),
        ("DELETE", "/api/v1/health".into(), None, 405),
        ("GET", "/api/v1/nothing-here".into(), None, 404),
        (
            "POST",
            format!("/api/v1/libraries/{library}/objects/upload"),
            Some(("application/octet-stream", vec![0, 0, 0])),
            400,
        ),
        (
            "POST",
            format!("/api/v1/libraries/{library}/objects/upload"),
            Some(("application/octet-stream", vec![0; 65 << 20])),
            413,
        ),
        (
            "POST",
            format!("/api/v1/libraries/{library}/objects/fetch"),
            Some((
                "application/json",
                serde_json::to_vec(&json!({"ids": ["00".repeat(32)]})).unwrap(),
            )),
            404,
        ),
        (
            "PUT",
            format!("/api/v1/libraries/{library}/head"),
            Some((
                "application/json",
                serde_json::to_vec(&json!({"expected": null, "new": "11".repeat(32)})).unwrap(),
            )),
            400,
        ),
        (
            "POST",
            "/api/v1/libraries".into(),
            Some((
                "application/json",
                serde_json::to_vec(&json!({"name": "a/b", "wrapped_key": ""})).unwrap(),
            )),
            400,
        ),
    ];
    for (method, path, body, expected) in cases {
        let (status, answer) = raw_request(&server, method, &path, Some(&token), body);
        assert_eq!(status, expected, "{method} {path}: {answer}");
        let message = answer["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{method} {path}: {answer}"));
        assert!(
            message.len() > 10,
            "{method} {path}: message too terse: {message}"
        );
    }
}

#[test]
fn upload_with_missing_references_is_refused() {
    use ibackup_proto::api::frame::encode_upload;
    use ibackup_proto::api::types::{UploadHeader, UploadObject};
    use ibackup_proto::crypto::{BlobKind, ObjectId};
    let server = TestServer::start();
    let client = TestClient::new("dave@example.com");
    client.register(&server);
    let library = library_id(&client);
    // Envelope version 2 at epoch 1: well formed as far as the server can tell.
    let mut blob = vec![2u8, 0, 0, 0, 1];
    blob.extend_from_slice(&[7u8; 60]);
    let header = UploadHeader {
        objects: vec![UploadObject {
            id: ObjectId::from_bytes([9; 32]),
            kind: BlobKind::Tree,
            len: blob.len() as u32,
            refs: vec![ObjectId::from_bytes([8; 32])],
            snapshot: None,
        }],
    };
    let body = encode_upload(&header, &[blob]);
    let (status, answer) = raw_request(
        &server,
        "POST",
        &format!("/api/v1/libraries/{library}/objects/upload"),
        Some(&client.session_token()),
        Some(("application/octet-stream", body)),
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"], "missing_references");
}

#[test]
fn head_moves_only_by_compare_and_swap() {
    let server = TestServer::start();
    let client = TestClient::new("erin@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    crate::util::write_file(&work.path().join("f"), b"1");
    let first = client.backup(&[work.path()]).ok().json()["snapshot"]
        .as_str()
        .unwrap()
        .to_owned();
    crate::util::write_file(&work.path().join("f"), b"22");
    let second = client.backup(&[work.path()]).ok().json()["snapshot"]
        .as_str()
        .unwrap()
        .to_owned();
    let library = library_id(&client);
    // Moving the head back to the first snapshot while claiming it is still the first fails.
    let body = json!({"expected": first, "new": first});
    let (status, answer) = raw_request(
        &server,
        "PUT",
        &format!("/api/v1/libraries/{library}/head"),
        Some(&client.session_token()),
        Some(("application/json", serde_json::to_vec(&body).unwrap())),
    );
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["error"], "head_moved");
    assert_eq!(answer["head"], second.as_str());
}

#[test]
fn registration_checks_its_input() {
    let server = TestServer::start();
    let client = TestClient::new("frank@example.com");
    client.register(&server);
    let again = TestClient::new("frank@example.com");
    let register = |c: &TestClient, email: &str, extra: &[&str], password: &str| {
        let mut args = vec![
            "register",
            "--server",
            &server.url,
            "--email",
            email,
            "--first-name",
            "F",
            "--last-name",
            "L",
            "--trust-new",
        ];
        args.extend_from_slice(extra);
        c.run_with(&args, |cmd| {
            cmd.env("IBACKUP_PASSWORD", password);
        })
    };
    let run = register(&again, "frank@example.com", &[], crate::util::PASSWORD);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("already exists"), "{}", run.stderr);
    let run = register(&again, "not-an-email", &[], crate::util::PASSWORD);
    assert!(run.stderr.contains("not a valid e-mail"), "{}", run.stderr);
    let run = register(&again, "g@example.com", &[], "short");
    assert!(
        run.stderr.contains("at least 8 characters"),
        "{}",
        run.stderr
    );
    let run = register(
        &again,
        "g@example.com",
        &["--plan", "platinum"],
        crate::util::PASSWORD,
    );
    assert!(run.stderr.contains("unknown plan"), "{}", run.stderr);
    let run = register(
        &again,
        "g@example.com",
        &["--plan", "pro"],
        crate::util::PASSWORD,
    );
    // A paid plan needs a card; without one nothing is created.
    assert!(run.stderr.contains("card with --stdin"), "{}", run.stderr);
    // The password can come from standard input too.
    let mut child = again
        .command()
        .env_remove("IBACKUP_PASSWORD")
        .args([
            "register",
            "--server",
            &server.url,
            "--email",
            "g@example.com",
            "--first-name",
            "G",
            "--last-name",
            "H",
            "--trust-new",
            "--password-stdin",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a long enough password\n")
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success());
    assert!(String::from_utf8_lossy(&output.stdout).contains("recovery key"));
    let list = server.admin(&["user", "list"]);
    let text = String::from_utf8_lossy(&list.stdout);
    assert!(
        text.contains("frank@example.com") && text.contains("g@example.com"),
        "{text}"
    );
}
