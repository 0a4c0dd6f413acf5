//! Plans, cards, plan changes, invoices, cancel and reactivate, against a real server with
//! the bundled offline payment ledger.

use std::fs;

use ibackup_proto::api::routes;

use crate::util::{raw_request, TestClient, TestServer};

const CARD: &str = "4242 4242 4242 4242\n12/34\n987\nAlice Example\n";

fn card(number: &str, expiry: &str, cvc: &str) -> String {
    format!("{number}\n{expiry}\n{cvc}\nAlice Example\n")
}

/// Every stored byte of the server: database files, mail spool, packs.
fn data_files(server: &TestServer) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![server.data.path().to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                out.push((path.display().to_string(), fs::read(&path).unwrap()));
            }
        }
    }
    out
}

/// Whether `needle` occurs with no hex digit right before or after it.
fn alone(haystack: &[u8], needle: &[u8]) -> bool {
    let hex = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_hexdigit());
    haystack.windows(needle.len()).enumerate().any(|(i, w)| {
        w == needle
            && !hex(i.checked_sub(1).and_then(|j| haystack.get(j)))
            && !hex(haystack.get(i + needle.len()))
    })
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
}

#[test]
fn paid_plans_need_a_valid_card_and_changes_are_prorated() {
    let logs = tempfile::tempdir().unwrap();
    let log = logs.path().join("server.log");
    let server = TestServer::start_configured(|c| c, &log);
    let alice = TestClient::new("alice@example.com");

    // Anyone can list the plans.
    let plans = alice
        .run(&[
            "account",
            "plans",
            "--json",
            "--server",
            &server.url,
            "--trust-new",
        ])
        .ok()
        .json();
    let names: Vec<_> = plans["plans"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, ["free", "personal", "pro", "business"]);

    alice.register(&server);
    let run = alice.run(&["account", "plan", "personal"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("needs a card"), "{}", run.stderr);

    let add = |input: &str| alice.run_input(&["account", "card", "add", "--stdin"], input);
    for (input, expected) in [
        (card("4242424242424241", "12/34", "987"), "check digit"),
        (card("4242424242424242", "01/20", "987"), "expired"),
        (card("4242424242424242", "13/34", "987"), "1 to 12"),
        (card("4242424242424242", "12/34", "98"), "3 digits"),
        (card("4242424242424242", "1234", "987"), "MM/YY"),
        (card("4000000000000002", "12/34", "987"), "declined"),
        (
            card("4000000000009995", "12/34", "987"),
            "insufficient funds",
        ),
    ] {
        let run = add(&input);
        assert_eq!(run.code, 1, "{input}: {}", run.stdout);
        assert!(run.stderr.contains(expected), "{input}: {}", run.stderr);
    }
    assert!(alice.account_json()["card"].is_null());
    add(CARD).ok();
    let account = alice.account_json();
    assert_eq!(account["card"]["brand"], "visa");
    assert_eq!(account["card"]["last4"], "4242");
    assert_eq!(account["card"]["exp_year"], 2034);

    let up = alice
        .run(&["account", "plan", "personal", "--json"])
        .ok()
        .json();
    assert_eq!(up["amount_cents"], 499);
    assert_eq!(up["account"]["plan"], "personal");
    assert_eq!(up["account"]["quota_bytes"], 500u64 << 30);
    // Nearly the whole period is left: the difference, prorated, is charged.
    let pro = alice.run(&["account", "plan", "pro", "--json"]).ok().json();
    let charged = pro["amount_cents"].as_i64().unwrap();
    assert!((498..=500).contains(&charged), "{pro}");
    let down = alice
        .run(&["account", "plan", "free", "--json"])
        .ok()
        .json();
    let credited = down["amount_cents"].as_i64().unwrap();
    assert!((-999..=-997).contains(&credited), "{down}");
    assert!(down["account"]["period_end"].is_null());

    let invoices = alice.run(&["account", "invoices", "--json"]).ok().json();
    let rows = invoices["invoices"].as_array().unwrap();
    let summary: Vec<_> = rows
        .iter()
        .map(|i| {
            (
                i["amount_cents"].as_i64().unwrap(),
                i["status"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(499, "paid"), (charged, "paid"), (credited, "credit")]
    );
    let text = alice.run(&["account", "invoices"]).ok().stdout;
    assert!(text.contains("4.99 USD"), "{text}");

    // The number and the code are nowhere the server writes: not in the database, the
    // spool or the packs (every file of the data directory), nor in its debug log.
    let mut files = data_files(&server);
    files.push((log.display().to_string(), fs::read(&log).unwrap()));
    for (name, bytes) in &files {
        for needle in ["4242424242424242", "4242 4242 4242 4242", "4242-4242"] {
            assert!(!contains(bytes, needle), "{needle} found in {name}");
        }
    }
    // The code (987) is short enough to occur by chance inside random hex ids and encrypted
    // packs, so it is searched where it could only be stored on purpose: standing alone in
    // the database, its WAL, the spool and the log.
    for (name, bytes) in files.iter().filter(|(name, _)| !name.contains("/packs/")) {
        assert!(!alone(bytes, b"987"), "the security code is in {name}");
    }
    // And no column could hold them.
    assert_eq!(
        server.columns("cards"),
        [
            "account_id",
            "brand",
            "last4",
            "exp_month",
            "exp_year",
            "processor_token",
            "added_at"
        ]
    );
}

#[test]
fn a_downgrade_below_usage_is_refused() {
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(
        |c| {
            c.replacen(
                "[[plans]]",
                "[[plans]]\nname = \"tiny\"\nquota = \"4KiB\"\nprice_cents = 0\n\n[[plans]]",
                1,
            )
        },
        &logs.path().join("log"),
    );
    let alice = TestClient::new("alice@example.com");
    alice.register_with(&server, &["--plan", "free"]);
    let source = tempfile::tempdir().unwrap();
    let random: Vec<u8> = (0..64 << 10).map(|_| rand::random::<u8>()).collect();
    fs::write(source.path().join("big"), random).unwrap();
    alice.backup(&[source.path()]).ok();
    let run = alice.run(&["account", "plan", "tiny"]);
    assert_eq!(run.code, 1);
    assert!(
        run.stderr.contains("you store") && run.stderr.contains("allows 4 KiB"),
        "{}",
        run.stderr
    );
    assert_eq!(alice.account_json()["plan"], "free");
}

#[test]
fn failed_payments_are_refused_and_reported_and_renewals_charge_again() {
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(
        |c| c.replace("period = \"30days\"", "period = \"3s\""),
        &logs.path().join("log"),
    );
    let alice = TestClient::new("alice@example.com");
    alice.register(&server);
    // This test card is accepted, but every charge on it is declined.
    alice
        .run_input(
            &["account", "card", "add", "--stdin"],
            &card("4000000000000341", "12/34", "123"),
        )
        .ok();
    let run = alice.run(&["account", "plan", "personal"]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("declined"), "{}", run.stderr);
    assert_eq!(alice.account_json()["plan"], "free");
    let invoices = alice.run(&["account", "invoices", "--json"]).ok().json();
    assert_eq!(invoices["invoices"][0]["status"], "declined");
    // The payment failure is a service message: it goes out without marketing consent.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let spool = server.spool();
    assert_eq!(spool.len(), 1, "{spool:?}");
    assert!(spool[0].1.contains("To: alice@example.com"));
    assert!(spool[0].1.contains("payment failed"));
    assert!(spool[0].1.contains("service message"));

    alice
        .run_input(&["account", "card", "add", "--stdin"], CARD)
        .ok();
    alice.run(&["account", "plan", "personal"]).ok();
    std::thread::sleep(std::time::Duration::from_secs(4));
    let report = server.admin(&["maintenance"]);
    assert!(report.status.success(), "{report:?}");
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["renewed"], 1, "{report}");
    let invoices = alice.run(&["account", "invoices", "--json"]).ok().json();
    let paid = invoices["invoices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["status"] == "paid")
        .count();
    assert_eq!(paid, 2, "{invoices}");
}

/// A server whose canceled accounts keep their data for `grace`, and alice on it with one
/// backup of a folder (returned with the server's log folder).
fn alice_with_a_backup(
    grace: &str,
) -> (TestServer, TestClient, tempfile::TempDir, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(
        |c| {
            c.replace(
                "cancel_grace = \"30days\"",
                &format!("cancel_grace = \"{grace}\""),
            )
        },
        &logs.path().join("log"),
    );
    let alice = TestClient::new("alice@example.com");
    alice.register(&server);
    let source = tempfile::tempdir().unwrap();
    fs::write(source.path().join("kept.txt"), b"still here").unwrap();
    alice.backup(&[source.path()]).ok();
    (server, alice, source, logs)
}

#[test]
fn cancel_keeps_data_readable_for_the_grace_period_then_deletes_it() {
    let (server, alice, source, _logs) = alice_with_a_backup("4s");

    let canceled = alice.run(&["account", "cancel", "--json"]).ok().json();
    assert_eq!(canceled["status"], "canceled");
    assert!(canceled["delete_after"].as_i64().unwrap() > canceled["canceled_at"].as_i64().unwrap());
    let run = alice.backup(&[source.path()]);
    assert_eq!(run.code, 1);
    assert!(run.stderr.contains("canceled"), "{}", run.stderr);
    let target = tempfile::tempdir().unwrap();
    alice
        .run(&[
            "restore",
            "latest",
            "--target",
            &target.path().display().to_string(),
        ])
        .ok();
    alice.run(&["account", "reactivate"]).ok();
    alice.backup(&[source.path()]).ok();

    alice.run(&["account", "cancel"]).ok();
    let packs = server.data.path().join("packs");
    assert_eq!(fs::read_dir(&packs).unwrap().count(), 1);
    std::thread::sleep(std::time::Duration::from_secs(5));
    let report = server.admin(&["maintenance"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["accounts_expired"], 1, "{report}");
    assert_eq!(report["libraries_collected"], 1, "{report}");
    assert_eq!(fs::read_dir(&packs).unwrap().count(), 0);
    let account = alice.account_json();
    assert_eq!(account["status"], "expired");
    assert_eq!(account["used_bytes"], 0);
    let run = alice.run(&["account", "reactivate", "--json"]).ok().json();
    assert_eq!(run["status"], "active");
    // It starts again with an empty default library.
    alice.backup(&[source.path()]).ok();
    assert!(server
        .spool()
        .iter()
        .any(|(_, text)| text.contains("was deleted")));
}

/// Sends `count` copies of one request at once with alice's session; returns the statuses.
fn all_at_once(
    server: &TestServer,
    token: &str,
    count: usize,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> Vec<u16> {
    std::thread::scope(|scope| {
        let sent: Vec<_> = (0..count)
            .map(|_| {
                let body = body
                    .as_ref()
                    .map(|b| ("application/json", b.to_string().into_bytes()));
                scope.spawn(move || raw_request(server, method, path, Some(token), body).0)
            })
            .collect();
        sent.into_iter().map(|s| s.join().unwrap()).collect()
    })
}

#[test]
fn parallel_billing_changes_charge_and_credit_once() {
    let server = TestServer::start();
    let alice = TestClient::new("alice@example.com");
    alice.register(&server);
    alice
        .run_input(&["account", "card", "add", "--stdin"], CARD)
        .ok();
    let token = alice.session_token();
    let invoices = || {
        alice.run(&["account", "invoices", "--json"]).ok().json()["invoices"]
            .as_array()
            .unwrap()
            .clone()
    };

    let plan = |name: &str| Some(serde_json::json!({ "plan": name }));
    let statuses = all_at_once(
        &server,
        &token,
        8,
        "PUT",
        routes::ACCOUNT_PLAN,
        plan("personal"),
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    assert!(
        statuses.iter().all(|&s| s == 200 || s == 400),
        "{statuses:?}"
    );
    let paid: Vec<_> = invoices();
    assert_eq!(paid.len(), 1, "one charge for eight clicks: {paid:?}");
    assert_eq!(paid[0]["amount_cents"], 499);

    let statuses = all_at_once(
        &server,
        &token,
        8,
        "PUT",
        routes::ACCOUNT_PLAN,
        plan("free"),
    );
    assert_eq!(
        statuses.iter().filter(|&&s| s == 200).count(),
        1,
        "{statuses:?}"
    );
    let credits = invoices()
        .iter()
        .filter(|i| i["status"] == "credit")
        .count();
    assert_eq!(credits, 1, "{:?}", invoices());

    // Cancel and reactivate at once: whatever order they ran in, the account is in one
    // consistent state and nothing was charged (the paid period has not ended).
    let statuses = std::thread::scope(|scope| {
        let cancel = scope
            .spawn(|| raw_request(&server, "POST", routes::ACCOUNT_CANCEL, Some(&token), None).0);
        let again = scope.spawn(|| {
            raw_request(
                &server,
                "POST",
                routes::ACCOUNT_REACTIVATE,
                Some(&token),
                None,
            )
            .0
        });
        [cancel.join().unwrap(), again.join().unwrap()]
    });
    assert_eq!(statuses[0], 200, "{statuses:?}");
    let status = alice.account_json()["status"].as_str().unwrap().to_owned();
    assert!(status == "active" || status == "canceled", "{status}");
    assert_eq!(invoices().len(), 2);
}

#[test]
fn expiry_leaves_alone_an_account_whose_billing_is_being_changed() {
    let (server, alice, _source, _logs) = alice_with_a_backup("2s");
    alice.run(&["account", "cancel"]).ok();
    std::thread::sleep(std::time::Duration::from_secs(3));

    // A reactivation holds the account's billing turn (as a request in flight does).
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let hold = |until: Option<i64>| {
        server
            .db()
            .execute(
                "UPDATE accounts SET billing_lock_until = ?1",
                ibackup_server::params![until],
            )
            .unwrap()
    };
    hold(Some(now + 300));
    let report = server.admin(&["maintenance"]);
    let report: serde_json::Value = serde_json::from_slice(&report.stdout).unwrap();
    assert_eq!(report["accounts_expired"], 0, "{report}");
    assert_eq!(alice.account_json()["status"], "canceled");

    // The reactivation won: the status read again inside the expiry's transaction says so.
    let config = ibackup_server::config::ServerConfig::load_or_create(server.data.path()).unwrap();
    server
        .db()
        .execute(
            "UPDATE accounts SET status = 'active', canceled_at = NULL",
            ibackup_server::params![],
        )
        .unwrap();
    hold(None);
    let mut db = server.db();
    let id: i64 = db
        .query_row("SELECT id FROM accounts", ibackup_server::params![], |r| {
            r.get(0)
        })
        .unwrap();
    let now = ibackup_server::db::now();
    let expired = ibackup_server::maintenance::expire_one(&mut db, &config, id, now).unwrap();
    assert_eq!(expired, None);
    let target = tempfile::tempdir().unwrap();
    alice
        .run(&[
            "restore",
            "latest",
            "--target",
            target.path().to_str().unwrap(),
        ])
        .ok();
}
