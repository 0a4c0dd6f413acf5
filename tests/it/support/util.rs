//! Helpers: a [`TestServer`] started on a free loopback port with a temporary data
//! directory, a [`TestClient`] with its own config and cache directories, and tree
//! generation and comparison. Everything cleans up on drop, also after a failed assert.

use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use rand::{Rng, RngCore, SeedableRng};
use tempfile::TempDir;

use ibackup_server::config::ServerConfig;
use ibackup_server::db::{Conn, Database};
use ibackup_server::storage::{self, BlobStore};

use super::garage::{self, Garage};
use super::pg::{self, Postgres};

// The programs are other packages' (build.rs): `cargo build --workspace` before `cargo test`,
// as scripts/test does; `programs_built` says so when it was not.
pub const SERVER_BIN: &str = concat!(env!("IBACKUP_BIN_DIR"), "/ibackup-server");
pub const CLIENT_BIN: &str = concat!(env!("IBACKUP_BIN_DIR"), "/ibackup");
pub const LOAD_BIN: &str = concat!(env!("IBACKUP_BIN_DIR"), "/ibackup-load");

/// Panics with what to do when a program is missing or older than the library it is built
/// from (code changed, then `cargo test` without `cargo build --workspace`).
pub fn programs_built() {
    static CHECKED: std::sync::Once = std::sync::Once::new();
    CHECKED.call_once(|| {
        for (program, library) in [
            (SERVER_BIN, "libibackup_server-"),
            (CLIENT_BIN, "libibackup_client-"),
            (LOAD_BIN, "libibackup_tools-"),
        ] {
            let built = fs::metadata(program).and_then(|m| m.modified()).unwrap_or_else(|_| {
                panic!("{program} is missing: run `cargo build --workspace` before `cargo test` (scripts/test does)")
            });
            let deps = Path::new(env!("IBACKUP_BIN_DIR")).join("deps");
            let newest_library = fs::read_dir(&deps)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    name.starts_with(library) && name.ends_with(".rlib")
                })
                .filter_map(|e| e.metadata().and_then(|m| m.modified()).ok())
                .max();
            assert!(
                newest_library.is_none_or(|library| library <= built),
                "{program} is older than the code it is built from: run `cargo build --workspace` before `cargo test` (scripts/test does)"
            );
        }
    });
}
pub const PASSWORD: &str = "correct horse battery staple";

pub struct TestServer {
    pub data: TempDir,
    pub url: String,
    pub fingerprint: String,
    pub port: u16,
    child: Child,
    started: std::time::Instant,
}

impl TestServer {
    pub fn start() -> Self {
        Self::start_in(tempfile::tempdir().unwrap(), 0)
    }

    /// Starts a server whose `server.toml` is the default one changed by `edit`, logging at
    /// debug level into `log` (outside the data directory).
    pub fn start_configured(edit: impl FnOnce(String) -> String, log: &Path) -> Self {
        let data = tempfile::tempdir().unwrap();
        let config = edit(ibackup_server::config::DEFAULT_CONFIG.to_owned());
        fs::write(data.path().join("server.toml"), config).unwrap();
        Self::spawn(data, 0, Some(log))
    }

    /// Starts a server on `port` (0: any free port) with data in `data`.
    pub fn start_in(data: TempDir, port: u16) -> Self {
        Self::spawn(data, port, None)
    }

    /// Starts a server on the data directory `data` as it is, logging at debug level into
    /// `log`.
    pub fn start_logged(data: TempDir, log: &Path) -> Self {
        Self::spawn(data, 0, Some(log))
    }

    /// How long ago the server was started.
    pub fn uptime(&self) -> std::time::Duration {
        self.started.elapsed()
    }

    /// Starts a server that keeps its packs in `garage`.
    pub fn start_on(garage: &Garage) -> Self {
        let data = tempfile::tempdir().unwrap();
        keep_packs_on(data.path(), garage);
        Self::spawn(data, 0, None)
    }

    fn spawn(data: TempDir, port: u16, log: Option<&Path>) -> Self {
        programs_built();
        if garage::every_server_on_s3() && garage::available() {
            keep_packs_on(data.path(), Garage::shared());
        }
        if pg::every_server_on_postgres() && pg::available() {
            keep_metadata_on(data.path(), Postgres::shared());
        }
        let stderr = match log {
            Some(path) => Stdio::from(fs::File::create(path).unwrap()),
            None => Stdio::inherit(),
        };
        let mut child = Command::new(SERVER_BIN)
            .args(["serve", "--data-dir"])
            .arg(data.path())
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .env("RUST_LOG", if log.is_some() { "debug" } else { "warn" })
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("start ibackup-server");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut url = None;
        let mut fingerprint = None;
        while url.is_none() || fingerprint.is_none() {
            let line = lines.next().expect("server printed its address").unwrap();
            if let Some(rest) = line.strip_prefix("listening on ") {
                url = Some(rest.trim().to_owned());
            } else if let Some(rest) = line.strip_prefix("certificate fingerprint ") {
                fingerprint = Some(rest.trim().to_owned());
            }
        }
        let url = url.unwrap();
        let port = url.rsplit(':').next().unwrap().parse().unwrap();
        Self {
            data,
            url,
            fingerprint: fingerprint.unwrap(),
            port,
            child,
            started: std::time::Instant::now(),
        }
    }

    /// Freezes the server (SIGSTOP): connections stay open, and nothing is answered until
    /// [`TestServer::resume`].
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn pause(&self) {
        self.signal("-STOP");
    }

    pub fn resume(&self) {
        self.signal("-CONT");
    }

    fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .args([signal, &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success(), "kill {signal} failed");
    }

    /// Stops the server and hands back its data directory.
    pub fn stop(mut self) -> TempDir {
        let _ = self.child.kill();
        let _ = self.child.wait();
        std::mem::replace(&mut self.data, tempfile::tempdir().unwrap())
    }

    /// Runs `ibackup-server SUBCOMMAND --data-dir DIR ARGS...`.
    pub fn tool(&self, subcommand: &str, args: &[&str]) -> Output {
        Command::new(SERVER_BIN)
            .args([subcommand, "--data-dir"])
            .arg(self.data.path())
            .args(args)
            .output()
            .unwrap()
    }

    /// Changes `server.toml`; commands run afterwards (announce, admin) see the change.
    pub fn edit_config(&self, edit: impl FnOnce(String) -> String) {
        let path = self.data.path().join("server.toml");
        let text = fs::read_to_string(&path).unwrap();
        fs::write(&path, edit(text)).unwrap();
    }

    /// The messages in the mail spool, (file name, text), but for the address
    /// confirmations every sign-up sends ([`TestServer::confirm_address`] follows those).
    pub fn spool(&self) -> Vec<(String, String)> {
        self.spool_all()
            .into_iter()
            .filter(|(_, text)| confirmation_path(text).is_none())
            .collect()
    }

    /// The path of the newest address-confirmation link mailed to `email`, waiting a
    /// little for it (the server mails in the background).
    pub fn confirmation_link(&self, email: &str) -> String {
        let to = format!("To: {email}");
        for _ in 0..100 {
            let found = self
                .spool_all()
                .iter()
                .rev()
                .filter(|(_, text)| text.contains(&to))
                .find_map(|(_, text)| confirmation_path(text));
            if let Some(path) = found {
                return path;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        panic!("no confirmation link mailed to {email}");
    }

    /// Follows the newest address-confirmation link mailed to `email` (a POST, as the
    /// button on its page sends).
    pub fn confirm_address(&self, email: &str) {
        let path = self.confirmation_link(email);
        let (status, body) = raw_request(self, "POST", &path, None, None);
        assert_eq!(status, 200, "{body}");
    }

    /// Every message in the mail spool: (file name, text).
    pub fn spool_all(&self) -> Vec<(String, String)> {
        let dir = self.data.path().join("mail-spool");
        let mut out: Vec<_> = fs::read_dir(&dir)
            .map(|entries| {
                entries
                    .map(|e| {
                        let e = e.unwrap();
                        (
                            e.file_name().to_string_lossy().into_owned(),
                            fs::read_to_string(e.path()).unwrap(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort();
        out
    }

    /// Where a pack file of a library is in the data directory.
    pub fn pack_path(&self, library: &str, pack: &str) -> PathBuf {
        self.data
            .path()
            .join("packs")
            .join(library)
            .join(&pack[..2])
            .join(pack)
    }

    /// The store this server keeps its packs in (its local folder or Garage), opened as
    /// its tools open it.
    pub fn blob_store(&self) -> std::sync::Arc<dyn BlobStore> {
        let config = ServerConfig::load_or_create(self.data.path()).unwrap();
        storage::open(
            &config.storage,
            config.s3_credentials.clone(),
            self.data.path(),
        )
        .unwrap()
    }

    /// Bytes of one object, read straight out of its pack in the store.
    pub fn stored_bytes(&self, library: &str, pack: &str, offset: i64, size: i64) -> Vec<u8> {
        self.blob_store()
            .read_range(library, pack, offset as u64, size as u64)
            .unwrap()
    }

    /// Writes `bytes` over a pack's contents at `offset`, in the store (its local folder or
    /// Garage), as a server that serves something else would.
    pub fn overwrite_in_pack(&self, library: &str, pack: &str, offset: u64, bytes: &[u8]) {
        let store = self.blob_store();
        let size = store.pack_size(library, pack).unwrap();
        let mut data = store.read_range(library, pack, 0, size).unwrap();
        data[offset as usize..offset as usize + bytes.len()].copy_from_slice(bytes);
        store.write_pack(library, pack, data.into()).unwrap();
    }

    /// Bytes of every pack in the store.
    pub fn pack_bytes(&self) -> u64 {
        let store = self.blob_store();
        let libraries = store.libraries().unwrap();
        libraries
            .iter()
            .flat_map(|library| store.list_packs(library).unwrap())
            .map(|pack| pack.size)
            .sum()
    }

    /// The database the server keeps its metadata in: its SQLite file, or PostgreSQL.
    pub fn database(&self) -> Database {
        let config = fs::read_to_string(self.data.path().join("server.toml")).unwrap_or_default();
        let named = config.lines().find_map(|line| {
            let value = line
                .trim()
                .strip_prefix("database")?
                .trim()
                .strip_prefix('=')?;
            Some(value.trim().trim_matches('"').to_owned())
        });
        match named {
            Some(url) if url.starts_with("postgres") => Database::Postgres(url),
            Some(other) => Database::Sqlite(other.trim_start_matches("sqlite:").into()),
            None => Database::Sqlite(self.data.path().join("ibackup.db")),
        }
    }

    /// A connection of the test's own to the server's database.
    pub fn db(&self) -> Conn {
        Conn::open(&self.database()).unwrap()
    }

    /// The files of the server (its data directory, and the PostgreSQL cluster when the
    /// metadata is there) that contain `needle`, once the database has written everything
    /// out of its log.
    pub fn files_containing(&self, needle: &[u8]) -> Vec<PathBuf> {
        let db = self.db();
        match db.as_sqlite() {
            Some(sqlite) => sqlite
                .execute_batch("PRAGMA wal_checkpoint(TRUNCATE)")
                .unwrap(),
            None => db.execute_batch("CHECKPOINT").unwrap(),
        }
        let mut found = files_containing(self.data.path(), needle);
        if db.as_sqlite().is_none() {
            found.extend(files_containing(Postgres::shared().data_dir(), needle));
        }
        found
    }

    /// The first column of every row `sql` returns, as text (table and column names).
    pub fn strings(&self, sql: &str) -> Vec<String> {
        self.db()
            .query_map(sql, ibackup_server::params![], |r| r.get(0))
            .unwrap()
    }

    /// The tables of the server's database, by name.
    pub fn tables(&self) -> Vec<String> {
        match self.database() {
            Database::Sqlite(_) => self.strings(
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' ORDER BY name",
            ),
            Database::Postgres(_) => self.strings(
                "SELECT CAST(table_name AS TEXT) FROM information_schema.tables \
                 WHERE table_schema = current_schema() ORDER BY table_name",
            ),
        }
    }

    /// The columns of `table`, in their order.
    pub fn columns(&self, table: &str) -> Vec<String> {
        let sql = match self.database() {
            Database::Sqlite(_) => "SELECT name FROM pragma_table_info(?1) ORDER BY cid",
            Database::Postgres(_) => {
                "SELECT CAST(column_name AS TEXT) FROM information_schema.columns \
                 WHERE table_schema = current_schema() AND CAST(table_name AS TEXT) = ?1 \
                 ORDER BY ordinal_position"
            }
        };
        self.db()
            .query_map(sql, ibackup_server::params![table], |r| r.get(0))
            .unwrap()
    }

    pub fn admin(&self, args: &[&str]) -> Output {
        Command::new(SERVER_BIN)
            .args(["admin", "--data-dir"])
            .arg(self.data.path())
            .args(args)
            .output()
            .unwrap()
    }
}

/// Makes the `server.toml` in `dir` (the default one if there is none) keep packs in
/// `garage`, under a prefix of its own; a file that names a store already is left alone.
pub fn keep_packs_on(dir: &Path, garage: &Garage) {
    let path = dir.join("server.toml");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|_| ibackup_server::config::DEFAULT_CONFIG.to_owned());
    let local = "blob_store = \"local\"";
    if text.contains(local) {
        let prefix = hex::encode(rand::random::<[u8; 8]>());
        fs::write(
            &path,
            text.replace(local, &garage.storage_settings(&prefix)),
        )
        .unwrap();
    }
}

/// Makes the `server.toml` in `dir` (the default one if there is none) keep the metadata in
/// a new database of `postgres`; a file that names a database already is left alone.
pub fn keep_metadata_on(dir: &Path, postgres: &Postgres) {
    let path = dir.join("server.toml");
    let text = fs::read_to_string(&path)
        .unwrap_or_else(|_| ibackup_server::config::DEFAULT_CONFIG.to_owned());
    let unset = "# database = \"sqlite:/srv/ibackup/shared.db\"";
    if text.contains(unset) {
        let line = format!("database = \"{}\"", postgres.create());
        fs::write(&path, text.replace(unset, &line)).unwrap();
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One user's computer: its own config and cache directories.
pub struct TestClient {
    pub home: TempDir,
    pub email: String,
}

pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Self {
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}\nstderr: {}", self.stdout, self.stderr))
    }

    #[track_caller]
    pub fn ok(self) -> Self {
        assert_eq!(
            self.code, 0,
            "stdout: {}\nstderr: {}",
            self.stdout, self.stderr
        );
        self
    }
}

/// The ids of the client's library's snapshots, oldest first.
pub fn snapshot_ids(client: &TestClient) -> Vec<String> {
    let list = client.run(&["snapshots", "--json"]).ok().json();
    list.as_array()
        .unwrap()
        .iter()
        .map(|s| s["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Asserts a command failed with exit 1 and a message containing `needle`.
#[track_caller]
pub fn fails(run: Run, needle: &str) {
    assert_eq!(
        run.code, 1,
        "stdout: {}\nstderr: {}",
        run.stdout, run.stderr
    );
    assert!(
        run.stderr.contains(needle),
        "expected `{needle}` in: {}",
        run.stderr
    );
}

impl TestClient {
    pub fn new(email: &str) -> Self {
        programs_built();
        Self {
            home: tempfile::tempdir().unwrap(),
            email: email.to_owned(),
        }
    }

    pub fn config_dir(&self) -> PathBuf {
        self.home.path().join("config")
    }

    pub fn command(&self) -> Command {
        let mut command = Command::new(CLIENT_BIN);
        command
            .env("HOME", self.home.path())
            .env("IBACKUP_CONFIG_DIR", self.config_dir())
            .env("IBACKUP_CACHE_DIR", self.home.path().join("cache"))
            .env("IBACKUP_PASSWORD", PASSWORD)
            .env_remove("IBACKUP_SERVER")
            .stdin(Stdio::null());
        command
    }

    pub fn run(&self, args: &[&str]) -> Run {
        self.run_with(args, |_| {})
    }

    pub fn run_with(&self, args: &[&str], adjust: impl FnOnce(&mut Command)) -> Run {
        let mut command = self.command();
        command.args(args);
        adjust(&mut command);
        Run::from(command.output().unwrap())
    }

    pub fn register(&self, server: &TestServer) -> Run {
        self.run(&[
            "register",
            "--server",
            &server.url,
            "--email",
            &self.email,
            "--first-name",
            "Test",
            "--last-name",
            "User",
            "--trust-new",
        ])
        .ok()
    }

    /// Logs this computer in to an account another client registered.
    pub fn login(&self, server: &TestServer) -> Run {
        self.run(&[
            "login",
            "--server",
            &server.url,
            "--email",
            &self.email,
            "--trust-new",
        ])
        .ok()
    }

    /// `ibackup restore SPEC --target TARGET`, with `extra` arguments (`--library NAME`).
    pub fn restore(&self, spec: &str, target: &Path, extra: &[&str]) -> Run {
        let mut args = vec!["restore", spec, "--target", target.to_str().unwrap()];
        args.extend_from_slice(extra);
        self.run(&args)
    }

    /// The whole latest snapshot restored into a folder of its own.
    pub fn restore_latest(&self) -> TempDir {
        let out = tempfile::tempdir().unwrap();
        self.run(&[
            "restore",
            "latest:/",
            "--target",
            out.path().to_str().unwrap(),
        ])
        .ok();
        out
    }

    pub fn backup(&self, paths: &[&Path]) -> Run {
        let mut args = vec!["backup".to_owned(), "--json".to_owned()];
        args.extend(paths.iter().map(|p| p.display().to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self.run(&args)
    }

    /// Registers with extra arguments (e.g. `--marketing-email`); returns the JSON answer.
    pub fn register_with(&self, server: &TestServer, extra: &[&str]) -> serde_json::Value {
        let mut args = vec![
            "register",
            "--json",
            "--server",
            &server.url,
            "--email",
            &self.email,
            "--first-name",
            "Test",
            "--last-name",
            "User",
            "--trust-new",
        ];
        args.extend_from_slice(extra);
        self.run(&args).ok().json()
    }

    /// Runs with `input` on standard input.
    pub fn run_input(&self, args: &[&str], input: &str) -> Run {
        let mut child = self
            .command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let output = child.wait_with_output().unwrap();
        Run {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    pub fn account_json(&self) -> serde_json::Value {
        self.run(&["account", "show", "--json"]).ok().json()
    }

    /// The account's private key as someone holding a copy of `session.json` gets it: only
    /// by fetching the session's key share with its token, so `None` once the session ended.
    pub fn private_key_from_session_file(
        &self,
        server: &TestServer,
        file: &str,
    ) -> Option<Vec<u8>> {
        use ibackup_proto::api::b64;
        let value: serde_json::Value = serde_json::from_str(file).unwrap();
        assert!(
            value.get("private_key").is_none(),
            "the private key is in the clear: {file}"
        );
        let token = value["token"].as_str().unwrap();
        let (status, share) = raw_request(
            server,
            "GET",
            ibackup_proto::api::routes::SESSION_KEY_SHARE,
            Some(token),
            None,
        );
        if status != 200 {
            return None;
        }
        let share = b64::decode(share["key_share"].as_str().unwrap()).unwrap();
        let sealed = b64::decode(value["private_key_sealed"].as_str().unwrap()).unwrap();
        let key = ibackup_proto::crypto::SymmetricKey::from_slice(&share).unwrap();
        Some(key.unwrap_secret(&sealed).unwrap().to_vec())
    }

    pub fn session_token(&self) -> String {
        let text = fs::read_to_string(self.config_dir().join("session.json")).unwrap();
        let value: serde_json::Value = serde_json::from_str(&text).unwrap();
        value["token"].as_str().unwrap().to_owned()
    }
}

/// The path of the address-confirmation link in a mail message, if it holds one (soft line
/// breaks of quoted-printable undone).
pub fn confirmation_path(message: &str) -> Option<String> {
    let text = message.replace("=\r\n", "").replace("=\n", "");
    let start = text.find("/api/v1/confirm-address/")?;
    Some(
        text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-'))
            .collect(),
    )
}

/// Sends a raw HTTP request to a test server, with the certificate pinned.
pub fn raw_request(
    server: &TestServer,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, serde_json::Value) {
    raw_request_from(server, None, method, path, token, body)
}

/// [`raw_request`] from the loopback address `from` (any of 127.0.0.0/8), so the server
/// sees another client address.
pub fn raw_request_from(
    server: &TestServer,
    from: Option<std::net::IpAddr>,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<(&str, Vec<u8>)>,
) -> (u16, serde_json::Value) {
    use ibackup_client::tls::PinVerifier;
    let verifier = PinVerifier::new(Some(server.fingerprint.clone()));
    let client = reqwest::blocking::Client::builder()
        .use_preconfigured_tls(verifier.client_config())
        .local_address(from)
        .timeout(std::time::Duration::from_secs(120))
        .build()
        .unwrap();
    let mut request = client.request(method.parse().unwrap(), format!("{}{path}", server.url));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some((content_type, bytes)) = body {
        request = request.header("content-type", content_type).body(bytes);
    }
    let response = request.send().unwrap();
    let status = response.status().as_u16();
    let text = response.text().unwrap();
    let value = serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
    (status, value)
}

/// Makes a tree with nested and empty directories, empty and large files, a symlink, and
/// names with spaces, Unicode and non-UTF-8 bytes. Returns its root.
pub fn make_tree(root: &Path, big_file_bytes: usize, seed: u64) -> PathBuf {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let tree = root.join("data");
    fs::create_dir_all(tree.join("docs/deep/er/still")).unwrap();
    fs::create_dir_all(tree.join("empty dir")).unwrap();
    fs::create_dir_all(tree.join("ünïcødé ✓")).unwrap();
    fs::write(tree.join("empty file"), b"").unwrap();
    fs::write(tree.join("docs/readme.txt"), b"hello, world\n").unwrap();
    fs::write(
        tree.join("docs/deep/er/still/notes with spaces.md"),
        b"# notes\n".repeat(500),
    )
    .unwrap();
    fs::write(tree.join("ünïcødé ✓/日本語.txt"), "こんにちは".repeat(100)).unwrap();
    let odd = std::ffi::OsStr::from_bytes(b"bytes-\xff\xfe-name");
    fs::write(tree.join(odd), b"not utf-8 name").unwrap();
    let mut big = vec![0u8; big_file_bytes];
    rng.fill_bytes(&mut big);
    fs::write(tree.join("docs/random.bin"), &big).unwrap();
    for i in 0..30 {
        let len = rng.gen_range(0..20_000);
        let text: Vec<u8> = (0..len).map(|_| rng.gen_range(b'a'..=b'z')).collect();
        fs::write(tree.join(format!("docs/deep/file-{i:02}.txt")), text).unwrap();
    }
    std::os::unix::fs::symlink("docs/readme.txt", tree.join("link to readme")).unwrap();
    std::os::unix::fs::symlink("/nonexistent/target", tree.join("dangling")).unwrap();
    fs::set_permissions(
        tree.join("docs/readme.txt"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    fs::set_permissions(tree.join("docs/deep/er"), fs::Permissions::from_mode(0o750)).unwrap();
    let script = tree.join("run.sh");
    fs::write(&script, b"#!/bin/sh\necho hi\n").unwrap();
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
    // Fixed times in the past, with nanoseconds: copies made in the same second as the
    // source would otherwise look unchanged to rsync, which then leaves times alone.
    let mut stack = vec![tree.clone()];
    let mut all = Vec::new();
    while let Some(dir) = stack.pop() {
        for entry in fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if fs::symlink_metadata(&path).unwrap().is_dir() {
                stack.push(path.clone());
            }
            all.push(path);
        }
    }
    all.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for (i, path) in all.iter().enumerate() {
        let time = filetime::FileTime::from_unix_time(
            1_500_000_000 + i as i64 * 3_607,
            123_456_789 - i as u32,
        );
        filetime::set_symlink_file_times(path, time, time).unwrap();
    }
    filetime::set_file_mtime(
        tree.join("docs/readme.txt"),
        filetime::FileTime::from_unix_time(1_600_000_000, 123_456_789),
    )
    .unwrap();
    tree
}

/// Asserts two trees are identical: names, kinds, contents, modes, mtimes (to the
/// nanosecond) and symlink targets.
#[track_caller]
pub fn assert_same_tree(expected: &Path, actual: &Path) {
    assert_tree_with(expected, actual, 1);
}

/// As [`assert_same_tree`], with mtimes compared to the second (what tar keeps).
#[track_caller]
pub fn assert_same_tree_to_seconds(expected: &Path, actual: &Path) {
    assert_tree_with(expected, actual, 1_000_000_000);
}

#[track_caller]
fn assert_tree_with(expected: &Path, actual: &Path, mtime_unit_ns: i64) {
    let mut differences = Vec::new();
    compare(
        expected,
        actual,
        Path::new(""),
        mtime_unit_ns,
        &mut differences,
    );
    assert!(
        differences.is_empty(),
        "trees differ:\n{}",
        differences.join("\n")
    );
}

/// What a file is, as a word: file, dir, symlink, fifo, socket, char or block.
pub fn kind_name(t: fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    [
        (t.is_file(), "file"),
        (t.is_dir(), "dir"),
        (t.is_symlink(), "symlink"),
        (t.is_fifo(), "fifo"),
        (t.is_socket(), "socket"),
        (t.is_char_device(), "char"),
        (t.is_block_device(), "block"),
    ]
    .iter()
    .find(|(is, _)| *is)
    .map_or("other", |(_, kind)| kind)
}

/// The names in `dir`, sorted.
pub fn listing(dir: &Path) -> Vec<std::ffi::OsString> {
    let mut names: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    names.sort();
    names
}

fn compare(expected: &Path, actual: &Path, rel: &Path, unit: i64, out: &mut Vec<String>) {
    let (a, b) = (expected.join(rel), actual.join(rel));
    let (ma, mb) = match (fs::symlink_metadata(&a), fs::symlink_metadata(&b)) {
        (Ok(ma), Ok(mb)) => (ma, mb),
        (_, Err(e)) => return out.push(format!("{}: missing ({e})", rel.display())),
        (Err(e), _) => return out.push(format!("{}: unexpected ({e})", rel.display())),
    };
    if ma.file_type() != mb.file_type() {
        return out.push(format!("{}: type differs", rel.display()));
    }
    if ma.file_type().is_symlink() {
        if fs::read_link(&a).unwrap() != fs::read_link(&b).unwrap() {
            out.push(format!("{}: symlink target differs", rel.display()));
        }
    } else {
        if ma.mode() & 0o7777 != mb.mode() & 0o7777 {
            out.push(format!(
                "{}: mode {:o} != {:o}",
                rel.display(),
                ma.mode(),
                mb.mode()
            ));
        }
    }
    let mtime = |m: &fs::Metadata| (m.mtime() * 1_000_000_000 + m.mtime_nsec()) / unit;
    if mtime(&ma) != mtime(&mb) && !rel.as_os_str().is_empty() {
        out.push(format!(
            "{}: mtime {}.{:09} != {}.{:09}",
            rel.display(),
            ma.mtime(),
            ma.mtime_nsec(),
            mb.mtime(),
            mb.mtime_nsec()
        ));
    }
    if ma.is_file() && fs::read(&a).unwrap() != fs::read(&b).unwrap() {
        out.push(format!("{}: content differs", rel.display()));
    }
    if ma.is_dir() {
        let (na, nb) = (listing(&a), listing(&b));
        if na != nb {
            out.push(format!(
                "{}: entries differ: {na:?} vs {nb:?}",
                rel.display()
            ));
        }
        for name in na.iter().filter(|n| nb.contains(n)) {
            compare(expected, actual, &rel.join(name), unit, out);
        }
    }
}

/// Every file below `dir` whose bytes contain `needle`. A file that a running database
/// removes while this walks (PostgreSQL's temporary and recycled files) holds nothing by
/// the time it would be read, and is passed over.
pub fn files_containing(dir: &Path, needle: &[u8]) -> Vec<PathBuf> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(path) = stack.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Err(e) if gone(&e) => continue,
            other => other.unwrap(),
        };
        if meta.is_dir() {
            let entries = match fs::read_dir(&path) {
                Err(e) if gone(&e) => continue,
                other => other.unwrap(),
            };
            stack.extend(entries.filter_map(|e| e.ok()).map(|e| e.path()));
        } else if meta.is_file() {
            let bytes = match fs::read(&path) {
                Err(e) if gone(&e) => continue,
                other => other.unwrap(),
            };
            if bytes.windows(needle.len()).any(|w| w == needle) {
                found.push(path);
            }
        }
    }
    found
}

/// A loopback port nothing listens on now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn write_file(path: &Path, bytes: &[u8]) {
    fs::File::create(path).unwrap().write_all(bytes).unwrap();
}

/// Whether FUSE mounts can run here. With `IBACKUP_REQUIRE_FUSE=1` (CI), a missing FUSE
/// fails the test instead of skipping it.
pub fn fuse_or_skip() -> bool {
    let available = Path::new("/dev/fuse").exists()
        && Command::new("fusermount3")
            .arg("-V")
            .output()
            .is_ok_and(|o| o.status.success());
    if !available {
        if std::env::var("IBACKUP_REQUIRE_FUSE").as_deref() == Ok("1") {
            panic!(
                "FUSE is required (IBACKUP_REQUIRE_FUSE=1) but /dev/fuse or fusermount3 is missing"
            );
        }
        eprintln!("skipped: FUSE is not available here");
    }
    available
}

/// A running `ibackup mount` of a client; unmounted (without waiting) on drop.
pub struct TestMount<'a> {
    pub client: &'a TestClient,
    pub dir: PathBuf,
}

impl<'a> TestMount<'a> {
    pub fn start(client: &'a TestClient, extra: &[&str]) -> Self {
        let dir = client.home.path().join("ibackup");
        let mut args = vec!["mount", dir.to_str().unwrap()];
        if !extra.contains(&"--write-back-delay") {
            args.extend_from_slice(&["--write-back-delay", "0.2"]);
        }
        args.extend_from_slice(extra);
        client.run(&args).ok();
        Self { client, dir }
    }

    /// The live view of the default library.
    pub fn live(&self) -> PathBuf {
        self.dir.join("Backups")
    }

    /// Unmounts, waiting for uploads, and checks that it succeeded with everything
    /// uploaded (a failed upload at unmount fails the test); returns the command's output.
    pub fn unmount(self) -> Run {
        let run = self.client.run(&["umount", self.dir.to_str().unwrap()]);
        assert_eq!(run.code, 0, "umount failed: {}", run.stderr);
        assert!(
            run.stdout.contains("all changes are uploaded"),
            "umount left changes behind: {}{}",
            run.stdout,
            run.stderr
        );
        run
    }

    /// Waits until the mount reports nothing pending.
    pub fn settle(&self) {
        // `status` counts the journal itself, which holds every change whose `close` or
        // call returned.
        for _ in 0..600 {
            let status = self.client.run(&["status", "--json"]).json();
            let mounts = status["mounts"].as_array().cloned().unwrap_or_default();
            let pending: u64 = mounts
                .iter()
                .map(|m| m["pending_operations"].as_u64().unwrap_or(0))
                .sum();
            let snapshot_made = mounts.iter().all(|m| m["last_error"].is_null());
            if pending == 0 && snapshot_made {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        panic!(
            "uploads did not finish in 60 s: {}",
            self.client.run(&["status"]).stdout
        );
    }
}

impl Drop for TestMount<'_> {
    fn drop(&mut self) {
        if is_mounted(&self.dir) {
            let _ = self
                .client
                .run(&["umount", "--no-wait", self.dir.to_str().unwrap()]);
            let _ = Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.dir)
                .output();
        }
    }
}

pub fn is_mounted(dir: &Path) -> bool {
    let dir = fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    ibackup_client::mount::is_mounted(&dir)
}
