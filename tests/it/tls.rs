//! TLS and trust on first use: the certificate is pinned, a change is refused loudly, and
//! plain HTTP is only for loopback.

use crate::util::{TestClient, TestServer, SERVER_BIN};

#[test]
fn new_server_needs_trust_and_a_changed_certificate_is_refused() {
    let server = TestServer::start();
    assert!(server.url.starts_with("https://"));
    let client = TestClient::new("tofu@example.com");
    let run = client.run(&[
        "register",
        "--server",
        &server.url,
        "--email",
        "tofu@example.com",
        "--first-name",
        "T",
        "--last-name",
        "U",
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("--trust-new"), "{}", run.stderr);
    assert!(
        run.stderr.contains(&server.fingerprint),
        "shows the fingerprint: {}",
        run.stderr
    );
    assert!(!client.config_dir().join("session.json").exists());

    client.register(&server);
    client.run(&["snapshots"]).ok();

    // Another server (another certificate) answers on the same address.
    let port = server.port;
    drop(server.stop());
    let impostor = TestServer::start_in(tempfile::tempdir().unwrap(), port);
    let run = client.run(&["snapshots"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("CERTIFICATE HAS CHANGED"),
        "{}",
        run.stderr
    );
    let run = client.run(&[
        "login",
        "--server",
        &impostor.url,
        "--email",
        "tofu@example.com",
        "--trust-new",
    ]);
    assert_eq!(run.code, 1, "--trust-new does not override a pin");
    assert!(
        run.stderr.contains("CERTIFICATE HAS CHANGED"),
        "{}",
        run.stderr
    );
}

#[test]
fn the_same_certificate_is_kept_across_restarts() {
    let server = TestServer::start();
    let (fingerprint, port) = (server.fingerprint.clone(), server.port);
    let client = TestClient::new("restart@example.com");
    client.register(&server);
    let data = server.stop();
    let again = TestServer::start_in(data, port);
    assert_eq!(again.fingerprint, fingerprint);
    client.run(&["snapshots"]).ok();
}

#[test]
fn plain_http_only_on_loopback() {
    let output = std::process::Command::new(SERVER_BIN)
        .args([
            "serve",
            "--insecure-http",
            "--listen",
            "0.0.0.0:0",
            "--data-dir",
        ])
        .arg(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("only on a loopback"));
    let client = TestClient::new("http@example.com");
    let run = client.run(&[
        "login",
        "--server",
        "http://example.com:8080",
        "--email",
        "http@example.com",
    ]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("loopback"), "{}", run.stderr);
}
