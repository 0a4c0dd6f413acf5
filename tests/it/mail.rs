//! Mail through an SMTP relay (a small SMTP receiver on loopback stands in for the relay:
//! it speaks the protocol lettre uses and keeps what it receives), and service messages.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};

use crate::util::{confirmation_path, raw_request, TestClient, TestServer};

/// Accepts SMTP sessions on a free port and collects each message's data.
fn smtp_receiver() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let store = received.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let mut writer = stream.try_clone().unwrap();
            let mut reader = BufReader::new(stream);
            let _ = writer.write_all(b"220 localhost ESMTP ready\r\n");
            let mut line = String::new();
            loop {
                line.clear();
                if reader.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let command = line.trim_end().to_ascii_uppercase();
                let reply: &[u8] = if command.starts_with("EHLO") {
                    b"250-localhost\r\n250 8BITMIME\r\n"
                } else if command.starts_with("DATA") {
                    let _ = writer.write_all(b"354 end with .\r\n");
                    let mut data = String::new();
                    loop {
                        line.clear();
                        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == ".\r\n" {
                            break;
                        }
                        data.push_str(&line);
                    }
                    store.lock().unwrap().push(data);
                    b"250 queued\r\n"
                } else if command.starts_with("QUIT") {
                    let _ = writer.write_all(b"221 bye\r\n");
                    break;
                } else {
                    b"250 OK\r\n"
                };
                let _ = writer.write_all(reply);
            }
        }
    });
    (port, received)
}

#[test]
fn announcements_go_through_the_configured_relay() {
    let (port, received) = smtp_receiver();
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(
        |c| {
            c.replace(
                "from = \"ibackup <noreply@localhost>\"",
                &format!(
                    "from = \"ibackup <noreply@localhost>\"\n[mail.smtp]\nhost = \
                     \"127.0.0.1\"\nport = {port}\ninsecure_plaintext = true\n"
                ),
            )
        },
        &logs.path().join("log"),
    );
    let alice = TestClient::new("alice@example.com");
    alice.register_with(&server, &["--marketing-email"]);
    let bob = TestClient::new("bob@example.com");
    bob.register(&server);
    // The address confirmations went through the relay too; alice follows hers.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let confirmations: Vec<String> = received.lock().unwrap().drain(..).collect();
    assert_eq!(confirmations.len(), 2, "{confirmations:?}");
    let path = confirmations
        .iter()
        .filter(|m| m.contains("To: alice@example.com"))
        .find_map(|m| confirmation_path(m))
        .unwrap();
    assert_eq!(raw_request(&server, "POST", &path, None, None).0, 200);
    let body = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(body.path(), "Hello from the relay test.\n").unwrap();
    let out = server.tool(
        "announce",
        &[
            "--subject",
            "Relay",
            "--body-file",
            &body.path().display().to_string(),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let messages = received.lock().unwrap().clone();
    assert_eq!(messages.len(), 1, "{messages:?}");
    assert!(messages[0].contains("To: alice@example.com"));
    assert!(messages[0].contains("Hello from the relay test."));
    assert!(messages[0].contains("List-Unsubscribe:"));
    assert!(server.spool().is_empty(), "with a relay nothing is spooled");
}

#[test]
fn a_nearly_full_account_gets_one_service_message() {
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(|c| c, &logs.path().join("log"));
    let alice = TestClient::new("alice@example.com");
    alice.register(&server);
    let source = tempfile::tempdir().unwrap();
    let random: Vec<u8> = (0..100_000).map(|_| rand::random::<u8>()).collect();
    std::fs::write(source.path().join("data"), random).unwrap();
    alice.backup(&[source.path()]).ok();
    assert!(server
        .admin(&["user", "set-quota", "alice@example.com", "105KiB"])
        .status
        .success());
    for _ in 0..2 {
        let report = server.admin(&["maintenance"]);
        assert!(report.status.success(), "{report:?}");
    }
    let spool = server.spool();
    assert_eq!(spool.len(), 1, "one warning, not one per pass: {spool:?}");
    let text = &spool[0].1;
    assert!(
        text.contains("To: alice@example.com") && text.contains("nearly full"),
        "{text}"
    );
    assert!(text.contains("service message") && !text.contains("List-Unsubscribe"));
}
