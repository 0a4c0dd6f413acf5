//! Packs on a real S3 store (Garage on loopback): the `BlobStore` contract against both
//! stores, a server that keeps its packs there, and Garage failing under it.

use std::fs;
use std::path::Path;
use std::time::SystemTime;

use bytes::Bytes;
use ibackup_server::storage::{
    BlobStore, LocalStore, S3Credentials, S3Settings, S3Store, StorageError,
};

use crate::garage::{self, Garage, BUCKET};
use crate::util::{
    assert_same_tree, fails, make_tree, write_file, TestClient, TestMount, TestServer,
};

const LIB: &str = "0123456789abcdef0123456789abcdef";
const OTHER: &str = "00112233445566778899aabbccddeeff";

fn s3_store(garage: &Garage, prefix: &str) -> S3Store {
    S3Store::open(S3Settings {
        bucket: BUCKET.into(),
        prefix: prefix.into(),
        endpoint: Some(garage.endpoint.clone()),
        region: Some("garage".into()),
        credentials: Some(S3Credentials {
            access_key_id: garage.key_id.clone(),
            secret_access_key: garage.secret.clone(),
        }),
    })
    .unwrap()
}

fn pack_id(n: u8) -> String {
    format!("{n:02x}").repeat(16)
}

/// What every store must do: the same calls, the same answers.
fn check_contract(store: &dyn BlobStore) {
    let small: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    // Large enough to go up in parts on S3.
    let large: Vec<u8> = (0..20_000_000u32).map(|i| (i % 253) as u8).collect();
    let (p1, p2) = (pack_id(1), pack_id(2));
    let before = SystemTime::now() - std::time::Duration::from_secs(5);
    store
        .write_pack(LIB, &p1, Bytes::from(small.clone()))
        .unwrap();
    store
        .write_pack(LIB, &p2, Bytes::from(large.clone()))
        .unwrap();
    store
        .write_pack(OTHER, &p1, Bytes::from_static(b"other"))
        .unwrap();

    // Frames come back in the order asked, across packs, with their lengths.
    let wanted = [
        (p2.clone(), 19_000_000, 1_000_000),
        (p1.clone(), 10, 5),
        (p1.clone(), 0, 10),
        (p2.clone(), 5, 70_000),
    ];
    let body = store.read_frames(LIB, &wanted).unwrap().to_vec();
    let frames = ibackup_proto::api::frame::decode_frames(&body).unwrap();
    assert_eq!(frames.len(), 4);
    assert_eq!(frames[0], &large[19_000_000..]);
    assert_eq!(frames[1], &small[10..15]);
    assert_eq!(frames[2], &small[..10]);
    assert_eq!(frames[3], &large[5..70_005]);
    assert_eq!(
        store.read_range(LIB, &p1, 99_990, 10).unwrap(),
        &small[99_990..]
    );

    // Damage is told apart from an unreachable store.
    let short = store.read_range(LIB, &p1, 99_995, 10).unwrap_err();
    assert!(matches!(short, StorageError::Short { .. }), "{short}");
    let short = store
        .read_frames(LIB, &[(p1.clone(), 99_000, 2_000)])
        .unwrap_err();
    assert!(short.is_damage(), "{short}");
    let gone = store.read_range(LIB, &pack_id(3), 0, 1).unwrap_err();
    assert!(matches!(gone, StorageError::Missing { .. }), "{gone}");

    let mut listed = store.list_packs(LIB).unwrap();
    listed.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(
        listed
            .iter()
            .map(|p| (p.id.as_str(), p.size))
            .collect::<Vec<_>>(),
        vec![(p1.as_str(), 100_000), (p2.as_str(), 20_000_000)]
    );
    assert!(listed.iter().all(|p| p.modified >= before), "{listed:?}");
    assert_eq!(store.pack_size(LIB, &p2).unwrap(), 20_000_000);
    let mut libraries = store.libraries().unwrap();
    libraries.sort();
    assert_eq!(libraries, vec![OTHER.to_owned(), LIB.to_owned()]);

    store.delete_pack(LIB, &p1).unwrap();
    store.delete_pack(LIB, &p1).unwrap();
    assert_eq!(store.pack_size(LIB, &p1).unwrap(), 0);
    assert_eq!(store.list_packs(LIB).unwrap().len(), 1);
    store.remove_library(LIB).unwrap();
    assert!(store.list_packs(LIB).unwrap().is_empty());
    assert_eq!(store.libraries().unwrap(), vec![OTHER.to_owned()]);
    assert_eq!(store.read_range(OTHER, &p1, 0, 5).unwrap(), b"other");
}

#[test]
fn the_local_store_keeps_the_contract() {
    let dir = tempfile::tempdir().unwrap();
    check_contract(&LocalStore::open(&dir.path().join("packs")).unwrap());
}

#[test]
fn the_s3_store_keeps_the_contract_on_garage() {
    if !garage::available() {
        return;
    }
    let garage = Garage::shared();
    let store = s3_store(
        garage,
        &format!("contract-{}", hex::encode(rand::random::<[u8; 4]>())),
    );
    assert!(store.location().starts_with("s3://ibackup-test/contract-"));
    check_contract(&store);
}

#[test]
fn a_wrong_secret_is_said_not_taken_for_damage() {
    if !garage::available() {
        return;
    }
    let garage = Garage::shared();
    let store = S3Store::open(S3Settings {
        bucket: BUCKET.into(),
        prefix: "wrong-key".into(),
        endpoint: Some(garage.endpoint.clone()),
        region: Some("garage".into()),
        credentials: Some(S3Credentials {
            access_key_id: garage.key_id.clone(),
            secret_access_key: "0".repeat(64),
        }),
    })
    .unwrap();
    let error = store.read_range(LIB, &pack_id(1), 0, 1).unwrap_err();
    assert!(!error.is_damage(), "{error}");
    let error = store
        .write_pack(LIB, &pack_id(1), Bytes::from_static(b"x"))
        .unwrap_err();
    assert!(matches!(error, StorageError::Unavailable(_)), "{error}");
}

/// Files of the data directory's local pack folder.
fn local_pack_files(server: &TestServer) -> usize {
    let mut count = 0;
    let mut stack = vec![server.data.path().join("packs")];
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).into_iter().flatten() {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                count += 1;
            }
        }
    }
    count
}

fn restore_latest(client: &TestClient, source: &Path, target: &Path) {
    let spec = format!("latest:{}", source.display());
    client.restore(&spec, target, &[]).ok();
}

#[test]
fn a_server_on_garage_backs_up_restores_verifies_and_collects() {
    if !garage::available() {
        return;
    }
    let server = TestServer::start_on(Garage::shared());
    let client = TestClient::new("s3@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let source = make_tree(work.path(), 30_000_000, 7);
    let first = client.backup(&[&source]).ok().json();
    assert!(first["chunk_bytes_uploaded"].as_u64().unwrap() >= 30_000_000);
    let target = work.path().join("restored");
    restore_latest(&client, &source, &target);
    assert_same_tree(&source, &target);
    assert_eq!(
        local_pack_files(&server),
        0,
        "packs went to the local folder"
    );

    // The operator's tools find the packs where the server put them.
    let verified = server.tool("verify", &[]);
    assert!(verified.status.success(), "{verified:?}");
    let report: serde_json::Value = serde_json::from_slice(&verified.stdout).unwrap();
    assert!(report["objects"].as_u64().unwrap() > 30, "{report}");
    assert_eq!(report["damaged"].as_array().unwrap().len(), 0);

    // Forgetting the big file and collecting frees its packs in the bucket.
    let snapshot = first["snapshot"].as_str().unwrap();
    fs::remove_file(source.join("docs/random.bin")).unwrap();
    client.backup(&[&source]).ok();
    client.run(&["forget", &snapshot[..10]]).ok();
    let gc = server.tool("gc", &["--grace", "0s"]);
    assert!(gc.status.success(), "{gc:?}");
    let report: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    assert!(
        report["disk_bytes_freed"].as_u64().unwrap() >= 25_000_000,
        "{report}"
    );
    let again = work.path().join("again");
    restore_latest(&client, &source, &again);
    assert_same_tree(&source, &again);
}

#[test]
fn a_data_dir_refuses_to_be_served_from_another_blob_store() {
    if !garage::available() {
        return;
    }
    let server = TestServer::start_on(Garage::shared());
    let data = server.stop();
    let config = data.path().join("server.toml");
    let text = fs::read_to_string(&config).unwrap();
    let storage = text.find("[storage]").unwrap();
    // The metadata stays where it is (PostgreSQL, when the tests put it there).
    let database: String = text[storage..]
        .lines()
        .filter(|line| line.trim_start().starts_with("database"))
        .map(|line| format!("{line}\n"))
        .collect();
    fs::write(
        &config,
        format!(
            "{}[storage]\nblob_store = \"local\"\n{database}",
            &text[..storage]
        ),
    )
    .unwrap();
    let served = std::process::Command::new(crate::util::SERVER_BIN)
        .args(["serve", "--data-dir"])
        .arg(data.path())
        .args(["--listen", "127.0.0.1:0", "--s3-region", "garage"])
        .output()
        .unwrap();
    // S3 options without an S3 store are refused first...
    let said = String::from_utf8_lossy(&served.stderr);
    assert!(said.contains("--blob-store s3://"), "{said}");
    // ...and a local store for a database whose packs are in the bucket after.
    let served = std::process::Command::new(crate::util::SERVER_BIN)
        .args(["gc", "--data-dir"])
        .arg(data.path())
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&served.stderr);
    assert!(!served.status.success());
    assert!(
        said.contains("packs are in s3://ibackup-test/") && said.contains("--blob-store"),
        "{said}"
    );
}

#[test]
fn garage_killed_under_a_backup_and_a_mount_loses_nothing() {
    if !garage::available() {
        return;
    }
    let mut garage = Garage::start();
    let server = TestServer::start_on(&garage);
    let client = TestClient::new("outage@example.com");
    client.register(&server);
    let work = tempfile::tempdir().unwrap();
    let source = make_tree(work.path(), 5_000_000, 3);
    client.backup(&[&source]).ok();
    let before = client.run(&["snapshots", "--json"]).ok().json();

    garage.kill();
    write_file(
        &source.join("docs/new.txt"),
        b"written while the store was down\n",
    );
    let failed = client.backup(&[&source]);
    fails(failed, "blob store is unavailable");
    fails(client.run(&["snapshots"]), "blob store is unavailable");

    garage.resume();
    let after = client.run(&["snapshots", "--json"]).ok().json();
    assert_eq!(before, after, "a snapshot was committed without its data");
    client.backup(&[&source]).ok();
    let target = work.path().join("restored");
    restore_latest(&client, &source, &target);
    assert_same_tree(&source, &target);
    let check = client.run(&["check", "--read-data"]).ok();
    assert!(!check.stdout.contains("damaged"), "{}", check.stdout);

    // A mount keeps what is written while the store is down, and uploads it when it is back.
    if !crate::util::fuse_or_skip() {
        return;
    }
    let mount = TestMount::start(&client, &[]);
    // What is cached stays usable; what is not yet read would fail while the store is down.
    assert!(fs::read_dir(mount.live()).unwrap().count() > 0);
    garage.kill();
    fs::write(mount.live().join("queued.txt"), b"waits for the store\n").unwrap();
    std::thread::sleep(std::time::Duration::from_secs(3));
    garage.resume();
    mount.settle();
    mount.unmount();
    let target = work.path().join("from-mount");
    client.restore("latest:/queued.txt", &target, &[]).ok();
    assert_eq!(
        fs::read(target.join("queued.txt")).unwrap(),
        b"waits for the store\n"
    );
}

/// A proxy in front of Garage that answers the first `refusals` requests with
/// `503 Slow Down` (as S3 does when it sheds load), then passes connections through.
struct FlakyProxy {
    port: u16,
    answered: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

impl FlakyProxy {
    fn start(upstream: &str, refusals: usize) -> Self {
        use std::io::{Read, Write};
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let count = answered.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut client) = stream else { return };
                let upstream = upstream.clone();
                let count = count.clone();
                std::thread::spawn(move || {
                    // The request head, and a body as long as it says.
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if client.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let text = String::from_utf8_lossy(&head).to_ascii_lowercase();
                    let length: usize = text
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; length];
                    if client.read_exact(&mut body).is_err() {
                        return;
                    }
                    if count.fetch_add(1, Ordering::SeqCst) < refusals {
                        let _ = client.write_all(
                            b"HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    }
                    let Ok(mut server) = std::net::TcpStream::connect(&upstream) else {
                        return;
                    };
                    let _ = server.write_all(&head);
                    let _ = server.write_all(&body);
                    let (mut from_server, mut to_client) =
                        (server.try_clone().unwrap(), client.try_clone().unwrap());
                    std::thread::spawn(move || std::io::copy(&mut from_server, &mut to_client));
                    let _ = std::io::copy(&mut client, &mut server);
                });
            }
        });
        Self { port, answered }
    }
}

#[test]
fn a_store_that_sheds_load_is_retried_and_a_lasting_refusal_is_said() {
    if !garage::available() {
        return;
    }
    let garage = Garage::shared();
    let through = |refusals: usize| {
        let proxy = FlakyProxy::start(&garage.endpoint, refusals);
        let store = S3Store::open(S3Settings {
            bucket: BUCKET.into(),
            prefix: format!("flaky-{}", hex::encode(rand::random::<[u8; 4]>())),
            endpoint: Some(format!("http://127.0.0.1:{}", proxy.port)),
            region: Some("garage".into()),
            credentials: Some(S3Credentials {
                access_key_id: garage.key_id.clone(),
                secret_access_key: garage.secret.clone(),
            }),
        })
        .unwrap();
        (proxy, store)
    };
    // Two 503s in a row: the write is retried and lands, and reads back whole.
    let (proxy, store) = through(2);
    store
        .write_pack(LIB, &pack_id(1), Bytes::from_static(b"after two refusals"))
        .unwrap();
    assert_eq!(store.read_range(LIB, &pack_id(1), 6, 3).unwrap(), b"two");
    // Both refusals were met, then a connection went through.
    assert!(proxy.answered.load(std::sync::atomic::Ordering::SeqCst) >= 3);

    // A store that keeps refusing: the write gives up within the retry budget, says the
    // store is unavailable, and is not taken for damage.
    let (_proxy, store) = through(usize::MAX);
    let started = std::time::Instant::now();
    let error = store
        .write_pack(LIB, &pack_id(2), Bytes::from_static(b"never"))
        .unwrap_err();
    assert!(matches!(error, StorageError::Unavailable(_)), "{error}");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let error = store.read_range(LIB, &pack_id(2), 0, 1).unwrap_err();
    assert!(!error.is_damage(), "{error}");
}
