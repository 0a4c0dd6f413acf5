//! Quota: past the limit an upload is refused with 507 and a clear message, and nothing that
//! was stored before is harmed.

use crate::util::{make_tree, write_file, TestClient, TestServer};

#[test]
fn backup_past_quota_is_refused_and_harms_nothing() {
    let server = TestServer::start();
    let client = TestClient::new("quota@example.com");
    client.register(&server);
    let set = server.admin(&["user", "set-quota", "quota@example.com", "2MiB"]);
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    let work = tempfile::tempdir().unwrap();
    let small = work.path().join("small");
    std::fs::create_dir(&small).unwrap();
    write_file(&small.join("a.txt"), b"fits easily");
    let first = client.backup(&[&small]).ok().json();

    let big = make_tree(&work.path().join("big"), 5_000_000, 7);
    let run = client.backup(&[&big]);
    assert_eq!(run.code, 1, "{}", run.stdout);
    assert!(
        run.stderr.contains("quota exceeded: ") && run.stderr.contains("of 2 MiB used"),
        "{}",
        run.stderr
    );

    let list = client.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(
        list.as_array().unwrap().len(),
        1,
        "no half snapshot: {list}"
    );
    assert_eq!(list[0]["id"], first["snapshot"]);
    let out = work.path().join("out");
    let spec = format!("latest:{}", small.display());
    client
        .run(&["restore", &spec, "--target", out.to_str().unwrap()])
        .ok();
    assert_eq!(std::fs::read(out.join("a.txt")).unwrap(), b"fits easily");

    // Raising the quota lets the same backup through.
    server.admin(&["user", "set-quota", "quota@example.com", "plan"]);
    client.backup(&[&big]).ok();
}
