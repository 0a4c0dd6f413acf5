//! The privacy policy's promises (docs/PRIVACY.md), each as a behaviour a real server must
//! show: consent before marketing, opt-out by link, session records and revocation, login
//! throttling, aggregate-only surveys, feedback, export and deletion.

use std::fs;
use std::time::Duration;

use serde_json::json;

use crate::util::{raw_request, TestClient, TestServer, PASSWORD};

fn configured(edit: impl FnOnce(String) -> String) -> (TestServer, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(edit, &logs.path().join("server.log"));
    (server, logs)
}

#[test]
fn marketing_goes_only_to_consenting_accounts_and_the_link_opts_out() {
    let (server, _logs) = configured(|c| c);
    let alice = TestClient::new("alice@example.com");
    let bob = TestClient::new("bob@example.com");
    let carol = TestClient::new("carol@example.com");
    assert_eq!(
        alice.register_with(&server, &[])["account"]["marketing_email"],
        false
    );
    assert_eq!(
        bob.register_with(&server, &["--marketing-email"])["account"]["marketing_email"],
        true
    );
    carol.register(&server);
    carol.run(&["account", "consent", "on"]).ok();
    // Marketing waits until an address is confirmed by its mailed link.
    let url = server.url.clone();
    server.edit_config(|c| c.replace("https://localhost:8443", &url));
    let body = tempfile::NamedTempFile::new().unwrap();
    fs::write(body.path(), "Our new plans are here.\n").unwrap();
    let announce = |subject: &str| {
        let out = server.tool(
            "announce",
            &[
                "--subject",
                subject,
                "--body-file",
                &body.path().display().to_string(),
            ],
        );
        assert!(out.status.success(), "{out:?}");
        String::from_utf8(out.stdout).unwrap()
    };
    assert!(announce("Too early").contains("sent to 0 accounts"));
    for email in ["alice@example.com", "bob@example.com", "carol@example.com"] {
        server.confirm_address(email);
    }

    assert!(announce("News").contains("sent to 2 accounts"));
    let spool = server.spool();
    let to: Vec<_> = spool
        .iter()
        .map(|(_, m)| {
            m.lines()
                .find(|l| l.starts_with("To: "))
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(to.len(), 2);
    assert!(to.contains(&"To: bob@example.com".to_owned()), "{to:?}");
    assert!(to.contains(&"To: carol@example.com".to_owned()), "{to:?}");
    let bobs = &spool
        .iter()
        .find(|(_, m)| m.contains("To: bob@"))
        .unwrap()
        .1;
    assert!(bobs.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"));
    let link = bobs
        .lines()
        .find(|l| l.starts_with(&url) && l.contains("/optout/"))
        .expect("an opt-out link in the body")
        .trim()
        .to_owned();
    // Opening the link (as a mail scanner does) only asks to confirm.
    let path = link.strip_prefix(&url).unwrap();
    let (status, page) = raw_request(&server, "GET", path, None, None);
    assert_eq!(status, 200, "{page}");
    let page = page.as_str().unwrap();
    assert!(page.contains("<form method=\"post\">"), "{page}");
    assert_eq!(bob.account_json()["marketing_email"], true);
    // The page's button, or a mail client's RFC 8058 one-click POST, opts out without
    // logging in; a forged link does neither.
    let one_click = Some((
        "application/x-www-form-urlencoded",
        b"List-Unsubscribe=One-Click".to_vec(),
    ));
    let (status, text) = raw_request(&server, "POST", path, None, one_click.clone());
    assert_eq!(status, 200, "{text}");
    assert!(text.as_str().unwrap().contains("unsubscribed"));
    let forged = path.replacen("/optout/", "/optout/9", 1);
    assert_eq!(raw_request(&server, "GET", &forged, None, None).0, 400);
    assert_eq!(
        raw_request(&server, "POST", &forged, None, one_click).0,
        400
    );
    assert_eq!(bob.account_json()["marketing_email"], false);

    assert!(announce("More news").contains("sent to 1 accounts"));
    let later: Vec<_> = server
        .spool()
        .into_iter()
        .filter(|(_, m)| m.contains("Subject: More news"))
        .collect();
    assert_eq!(later.len(), 1);
    assert!(later[0].1.contains("To: carol@example.com"));

    let export = bob.run(&["account", "export"]).ok().json();
    let sources: Vec<_> = export["consent_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["source"].as_str().unwrap(),
                e["marketing"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(sources, [("sign-up", true), ("link", false)]);
}

#[test]
fn session_records_hold_timing_and_size_and_sessions_can_be_revoked() {
    let (server, _logs) = configured(|c| c);
    let laptop = TestClient::new("alice@example.com");
    let phone = TestClient::new("alice@example.com");
    laptop.register(&server);
    phone.login(&server);
    let source = tempfile::tempdir().unwrap();
    let random: Vec<u8> = (0..100_000).map(|_| rand::random::<u8>()).collect();
    fs::write(source.path().join("secret-plans.txt"), random).unwrap();
    laptop.backup(&[source.path()]).ok();

    let list = laptop.run(&["account", "sessions", "--json"]).ok().json();
    let sessions = list["sessions"].as_array().unwrap();
    assert_eq!(sessions.len(), 2, "{list}");
    let current = sessions.iter().find(|s| s["current"] == true).unwrap();
    assert!(current["requests"].as_i64().unwrap() >= 3, "{current}");
    assert!(
        current["bytes_up"].as_i64().unwrap() >= 100_000,
        "{current}"
    );
    assert!(current["bytes_down"].as_i64().unwrap() > 0, "{current}");
    assert_eq!(current["address"], "127.0.0.1");
    assert!(current["client"].as_str().unwrap().starts_with("ibackup/"));
    let keys: Vec<_> = current.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        keys,
        [
            "address",
            "bytes_down",
            "bytes_up",
            "client",
            "created_at",
            "current",
            "id",
            "last_seen",
            "requests",
            "revoked_at",
            "transfer_ms"
        ]
    );
    assert!(!list.to_string().contains("secret-plans"));

    let other = sessions.iter().find(|s| s["current"] == false).unwrap();
    let prefix = &other["id"].as_str().unwrap()[..8];
    laptop.run(&["account", "sessions", "revoke", prefix]).ok();
    let run = phone.run(&["account", "show"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("logged out"), "{}", run.stderr);
    phone.login(&server);
    let ended = laptop
        .run(&["account", "sessions", "revoke", "--others", "--json"])
        .ok()
        .json();
    assert_eq!(ended["sessions_ended"], 1);
    assert_eq!(phone.run(&["account", "show"]).code, 1);
    laptop.run(&["account", "show"]).ok();
    let run = laptop.run(&["account", "sessions", "revoke", "zzzz"]);
    assert!(
        run.stderr.contains("no session starts with"),
        "{}",
        run.stderr
    );
}

#[test]
fn idle_sessions_expire_and_cookies_carry_only_the_token() {
    let (server, _logs) =
        configured(|c| c.replace("idle_timeout = \"30days\"", "idle_timeout = \"3s\""));
    let alice = TestClient::new("alice@example.com");
    alice.register(&server);
    alice.run(&["account", "show"]).ok();
    std::thread::sleep(Duration::from_secs(7));
    let run = alice.run(&["account", "show"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("session expired"), "{}", run.stderr);

    // A login answers with a cookie holding the opaque token and nothing else.
    let (_, prelogin) = raw_request(
        &server,
        "POST",
        "/api/v1/prelogin",
        None,
        Some((
            "application/json",
            json!({"email": "alice@example.com"})
                .to_string()
                .into_bytes(),
        )),
    );
    let salt = ibackup_proto::api::b64::decode(prelogin["salt"].as_str().unwrap()).unwrap();
    let kdf: ibackup_proto::crypto::kdf::KdfParams =
        serde_json::from_value(prelogin["kdf"].clone()).unwrap();
    let (_, auth) = ibackup_proto::crypto::kdf::derive(PASSWORD.as_bytes(), &salt, &kdf).unwrap();
    let verifier = ibackup_client::tls::PinVerifier::new(Some(server.fingerprint.clone()));
    let http = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(verifier.client_config())
        .build()
        .unwrap();
    let response = http
        .post(format!("{}/api/v1/sessions", server.url))
        .json(&json!({"email": "alice@example.com", "auth_secret": ibackup_proto::api::b64::encode(&auth[..])}))
        .send()
        .unwrap();
    assert_eq!(response.status(), 201);
    let cookie = response.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: serde_json::Value = response.json().unwrap();
    let token = body["token"].as_str().unwrap();
    assert_eq!(
        cookie,
        format!(
            "__Host-ibackup_session={token}; Path=/; Secure; HttpOnly; SameSite=Strict; \
             Max-Age={}",
            365 * 86400
        )
    );
    let with_cookie = http
        .get(format!("{}/api/v1/account", server.url))
        .header("cookie", format!("__Host-ibackup_session={token}"))
        .send()
        .unwrap();
    assert_eq!(with_cookie.status(), 200);

    // A change carried by the cookie alone must come from this server's pages: other
    // sites can make a browser send the cookie, not a matching Origin.
    let change = |headers: &[(&str, String)], bearer: bool| {
        let mut request = http.post(format!(
            "{}{}",
            server.url,
            ibackup_proto::api::routes::ACCOUNT_SESSIONS_REVOKE_OTHERS
        ));
        request = if bearer {
            request.bearer_auth(token)
        } else {
            request.header("cookie", format!("__Host-ibackup_session={token}"))
        };
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        let response = request.send().unwrap();
        let status = response.status().as_u16();
        (status, response.text().unwrap())
    };
    let evil = ("origin", "https://evil.example".to_owned());
    let cross = ("sec-fetch-site", "cross-site".to_owned());
    for refused in [vec![], vec![evil.clone()], vec![cross]] {
        let (status, text) = change(&refused, false);
        assert_eq!(status, 403, "{refused:?}: {text}");
        assert!(text.contains("Origin"), "{text}");
    }
    let ours = ("origin", server.url.clone());
    assert_eq!(change(&[ours], false).0, 200);
    let same = ("sec-fetch-site", "same-origin".to_owned());
    assert_eq!(change(&[same], false).0, 200);
    // A bearer token is never sent by a browser on its own, so it needs neither.
    assert_eq!(change(&[evil], true).0, 200);
}

#[test]
fn addresses_are_confirmed_by_a_mailed_link_and_changed_only_with_the_password() {
    let (server, _logs) = configured(|c| c);
    let alice = TestClient::new("alice@example.com");
    let registered = alice.register_with(&server, &["--marketing-email"]);
    assert_eq!(registered["account"]["email_confirmed"], false);
    let announce = || {
        let body = tempfile::NamedTempFile::new().unwrap();
        fs::write(body.path(), "News.\n").unwrap();
        let out = server.tool(
            "announce",
            &[
                "--subject",
                "News",
                "--body-file",
                body.path().to_str().unwrap(),
            ],
        );
        String::from_utf8(out.stdout).unwrap()
    };
    // Whoever typed this address at sign-up, its owner has not agreed to anything yet.
    assert!(announce().contains("sent to 0 accounts"));
    let path = server.confirmation_link("alice@example.com");
    let (status, page) = raw_request(&server, "GET", &path, None, None);
    assert_eq!(status, 200);
    assert!(page.as_str().unwrap().contains("<form method=\"post\">"));
    assert_eq!(
        alice.account_json()["email_confirmed"],
        false,
        "opening the link is not enough"
    );
    let forged = format!("{path}0");
    assert_eq!(raw_request(&server, "POST", &forged, None, None).0, 400);
    assert_eq!(raw_request(&server, "POST", &path, None, None).0, 200);
    assert_eq!(alice.account_json()["email_confirmed"], true);
    assert!(announce().contains("sent to 1 accounts"));
    let again = alice.run(&["account", "confirm-email"]);
    assert!(
        again.stderr.contains("confirmed already"),
        "{}",
        again.stderr
    );

    // A new address needs the password, and is unconfirmed until its own link is followed.
    let token = alice.session_token();
    let (status, body) = raw_request(
        &server,
        "PATCH",
        "/api/v1/account",
        Some(&token),
        Some((
            "application/json",
            json!({"email": "thief@example.com"})
                .to_string()
                .into_bytes(),
        )),
    );
    assert_eq!(status, 400, "{body}");
    assert!(body["message"]
        .as_str()
        .unwrap()
        .contains("needs the password"));
    let wrong = alice.run_with(
        &["account", "update", "--email", "alice@new.example.com"],
        |c| {
            c.env("IBACKUP_PASSWORD", "not the password");
        },
    );
    assert!(
        wrong.stderr.contains("password is wrong"),
        "{}",
        wrong.stderr
    );
    assert_eq!(alice.account_json()["email"], "alice@example.com");
    let moved = alice
        .run(&[
            "account",
            "update",
            "--email",
            "alice@new.example.com",
            "--json",
        ])
        .ok()
        .json();
    assert_eq!(moved["email"], "alice@new.example.com");
    assert_eq!(moved["email_confirmed"], false);
    std::thread::sleep(Duration::from_millis(500));
    assert!(server
        .spool()
        .iter()
        .any(|(_, m)| m.contains("To: alice@example.com") && m.contains("was changed")));
    assert_eq!(
        raw_request(&server, "POST", &path, None, None).0,
        400,
        "the old address's link confirms nothing now"
    );
    assert!(announce().contains("sent to 0 accounts"));
    server.confirm_address("alice@new.example.com");
    assert_eq!(alice.account_json()["email_confirmed"], true);
    assert!(announce().contains("sent to 1 accounts"));
}

#[test]
fn failed_logins_slow_down_without_locking_the_owner_out() {
    let (server, _logs) = configured(|c| c);
    let alice = TestClient::new("alice@example.com");
    alice.register(&server);
    let attempt = |email: &str| {
        raw_request(
            &server,
            "POST",
            "/api/v1/sessions",
            None,
            Some((
                "application/json",
                json!({"email": email, "auth_secret": ibackup_proto::api::b64::encode(&[9u8; 32])})
                    .to_string()
                    .into_bytes(),
            )),
        )
    };
    for email in ["alice@example.com", "nobody@example.com"] {
        for _ in 0..5 {
            let (status, body) = attempt(email);
            assert_eq!(status, 401, "{body}");
            assert_eq!(body["message"], "wrong e-mail or password");
        }
        let (status, body) = attempt(email);
        assert_eq!(status, 429, "{email}: {body}");
        assert!(body["message"].as_str().unwrap().contains("wait"), "{body}");
        assert!(body["retry_after"].as_u64().unwrap() >= 1);
    }
    // The owner waits a little, then gets in: there is no lockout.
    std::thread::sleep(Duration::from_secs(2));
    alice.login(&server);
}

#[test]
fn surveys_are_voluntary_counted_apart_from_people_and_hide_small_groups() {
    let (server, _logs) = configured(|c| c.replace("min_respondents = 5", "min_respondents = 3"));
    let survey_file = tempfile::NamedTempFile::new().unwrap();
    fs::write(
        survey_file.path(),
        "title = \"How do you use ibackup?\"\n\n[[questions]]\ntext = \"Main use?\"\n\
         choices = [\"photos\", \"work\", \"code\"]\n\n[[questions]]\ntext = \"Would you \
         recommend it?\"\nchoices = [\"yes\", \"no\"]\n",
    )
    .unwrap();
    let created = server.tool(
        "survey",
        &["create", &survey_file.path().display().to_string()],
    );
    assert!(created.status.success(), "{created:?}");
    let id = String::from_utf8(created.stdout)
        .unwrap()
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();

    let users: Vec<_> = (0..4)
        .map(|i| TestClient::new(&format!("user{i}@example.com")))
        .collect();
    for (i, user) in users.iter().enumerate() {
        user.register(&server);
        let listed = user.run(&["account", "survey", "--json"]).ok().json();
        assert_eq!(listed[0]["answered"], false);
        // Three chose photos; one chose work and skipped the second question.
        let answers: &[&str] = if i < 3 { &["1=1", "2=1"] } else { &["1=2"] };
        let mut args = vec!["account", "survey", &id];
        for a in answers {
            args.extend(["--answer", a]);
        }
        user.run(&args).ok();
    }
    let again = users[0].run(&["account", "survey", &id, "--answer", "1=3"]);
    assert!(
        again.stderr.contains("answered this survey already"),
        "{}",
        again.stderr
    );
    let bad = users[0].run(&["account", "survey", &id, "--answer", "1=9"]);
    assert!(bad.stderr.contains("choices"), "{}", bad.stderr);
    assert_eq!(
        users[1].run(&["account", "survey", "--json"]).ok().json()[0]["answered"],
        true
    );

    let report = server.tool("survey", &["report", &id]);
    let report = String::from_utf8(report.stdout).unwrap();
    // Four answered, and "work" (one) is hidden: the exact total would give it away
    // (4 - 3 who chose photos), so it is rounded down to a multiple of 3.
    assert!(report.contains("3+ respondents"), "{report}");
    assert!(!report.contains('4'), "{report}");
    let list = server.tool("survey", &["list"]);
    let list = String::from_utf8(list.stdout).unwrap();
    let row = list.lines().find(|l| l.starts_with(&id)).unwrap();
    assert_eq!(row.split_whitespace().nth(1), Some("3+"), "{list}");
    let line = |choice: &str| {
        report
            .lines()
            .find(|l| l.trim_end().ends_with(choice))
            .unwrap()
            .split_whitespace()
            .next()
            .unwrap()
            .to_owned()
    };
    assert_eq!(line("photos"), "3");
    assert_eq!(line("work"), "<3", "one respondent must not show: {report}");
    assert_eq!(line("code"), "<3");
    assert_eq!(line("yes"), "3");
    // The stored answers are counts; who answered is a keyed hash beside no answer.
    assert_eq!(
        server.columns("survey_counts"),
        ["survey_id", "question", "choice", "count"]
    );

    users[0]
        .run(&["feedback", "--rating", "5", "--message", "Fast and calm"])
        .ok();
    let bad = users[0].run(&["feedback", "--rating", "6"]);
    assert_eq!(bad.code, 2, "{}", bad.stderr);
    let list = server.tool("feedback", &["list"]);
    let list = String::from_utf8(list.stdout).unwrap();
    assert!(
        list.contains("Fast and calm") && list.contains("user0@example.com"),
        "{list}"
    );
}

#[test]
fn session_records_are_purged_after_the_retention_period() {
    let (server, _logs) =
        configured(|c| c.replace("record_retention = \"90days\"", "record_retention = \"8s\""));
    let alice = TestClient::new("alice@example.com");
    alice.register(&server);
    let bob = TestClient::new("bob@example.com");
    bob.register(&server);
    std::thread::sleep(Duration::from_secs(10));
    // Bob's session is in use; Alice's has not been used for longer than the retention.
    bob.run(&["account", "show"]).ok();
    // Records reach the database within 5 s.
    std::thread::sleep(Duration::from_secs(6));
    let report = server.admin(&["maintenance"]);
    assert!(report.status.success(), "{report:?}");
    let count = |email: &str| -> i64 {
        server
            .db()
            .query_row(
                "SELECT COUNT(*) FROM sessions s JOIN accounts a ON a.id = s.account_id \
                 WHERE a.email = ?1",
                ibackup_server::params![email],
                |r| r.get(0),
            )
            .unwrap()
    };
    assert_eq!(count("alice@example.com"), 0);
    assert_eq!(count("bob@example.com"), 1);
}
