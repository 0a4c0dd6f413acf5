//! `ibackup-load` against a real server: a short run of each mix, so the load tool that
//! `scripts/load` drives keeps working (the measured runs are in docs/BENCHMARKS.md).

use std::process::Command;

use crate::util::{TestServer, LOAD_BIN};

#[test]
fn a_short_load_of_each_mix_runs_without_a_failure() {
    let logs = tempfile::tempdir().unwrap();
    let server = TestServer::start_configured(
        |config| {
            config.replace(
                "free_signups_per_address = 20",
                "free_signups_per_address = 1000",
            )
        },
        &logs.path().join("server.log"),
    );
    for mix in ["read", "write", "poll"] {
        let output = Command::new(LOAD_BIN)
            .args(["--server", &server.url, "--clients", "3", "--seconds", "2"])
            .args(["--mix", mix, "--server-pid", &server.pid().to_string()])
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(
            output.status.success(),
            "{mix}: {stdout}\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(report["failed_requests"], 0, "{report}");
        assert_eq!(report["failed_operations"], 0, "{report}");
        assert!(report["requests"].as_u64().unwrap() > 10, "{report}");
        assert!(report["server_cores"].as_f64().unwrap() > 0.0, "{report}");
        let routes: Vec<&str> = report["routes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["route"].as_str().unwrap())
            .collect();
        assert!(
            routes.contains(&"GET /api/v1/libraries/{id}/head"),
            "{routes:?}"
        );
    }
    // A server that is not on this machine is refused: this is a test tool.
    let refused = Command::new(LOAD_BIN)
        .args(["--server", "https://192.0.2.1:8443"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("loopback"));
}
