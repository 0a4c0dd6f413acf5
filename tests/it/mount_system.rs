//! Issue 27: the mount as Linux users mount things: one library (or a folder in it) at a
//! mount point's root with its snapshots in a hidden `.snapshots/`, and the errors people
//! hit said in one line with nothing left mounted.

use std::fs;
use std::path::Path;

use crate::sharing::share;
use crate::util::{fuse_or_skip, is_mounted, write_file, TestClient, TestMount, TestServer};

/// Unmounts `0` when dropped, should a test fail while it is mounted (the mount process
/// would otherwise stay, its server gone).
struct Unmounted(std::path::PathBuf);

impl Drop for Unmounted {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = std::process::Command::new("fusermount3")
                .arg("-uz")
                .arg(&self.0)
                .output();
        }
    }
}

/// Mounts `client`'s `library` at `dir` (made empty); the run's outcome.
fn mount_library(
    client: &TestClient,
    dir: &Path,
    library: &str,
    extra: &[&str],
) -> crate::util::Run {
    fs::create_dir_all(dir).unwrap();
    let mut args = vec!["mount", dir.to_str().unwrap(), "--library", library];
    args.extend_from_slice(&["--write-back-delay", "0.2"]);
    args.extend_from_slice(extra);
    client.run(&args)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn restored(client: &TestClient, path: &str) -> Option<Vec<u8>> {
    fs::read(client.restore_latest().path().join(path)).ok()
}

#[test]
fn one_library_or_a_folder_in_it_is_the_mounts_root_with_hidden_snapshots() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let alice = TestClient::new("alice-library@example.com");
    alice.register(&server);
    let mount = TestMount::start(&alice, &[]);
    fs::create_dir(mount.live().join("docs")).unwrap();
    write_file(
        &mount.live().join("docs/a.txt"),
        b"written in the whole mount",
    );
    mount.unmount();

    // The library at the root: its folders, no list of libraries, snapshots hidden.
    let dir = alice.home.path().join("backups");
    let _unmounted = Unmounted(dir.clone());
    let run = mount_library(&alice, &dir, "Backups", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(names(&dir), vec!["docs"]);
    assert_eq!(
        fs::read(dir.join(".snapshots/latest/docs/a.txt")).unwrap(),
        b"written in the whole mount"
    );
    assert!(fs::write(dir.join(".snapshots/latest/new.txt"), b"x").is_err());
    write_file(&dir.join("top.txt"), b"written at the root");
    fs::create_dir(dir.join("made")).unwrap();
    let run = alice.run(&["umount", dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert!(!is_mounted(&dir));
    assert_eq!(
        restored(&alice, "top.txt").as_deref(),
        Some(&b"written at the root"[..])
    );

    // A folder of it at the root: what is written there lands in that folder.
    let run = mount_library(&alice, &dir, "Backups:docs", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(names(&dir), vec!["a.txt"]);
    write_file(&dir.join("b.txt"), b"written in docs");
    alice.run(&["umount", dir.to_str().unwrap()]).ok();
    assert_eq!(
        restored(&alice, "docs/b.txt").as_deref(),
        Some(&b"written in docs"[..])
    );
}

#[test]
fn mounts_that_cannot_be_made_say_why_and_leave_nothing_mounted() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let alice = TestClient::new("alice-refused@example.com");
    alice.register(&server);
    let bob = TestClient::new("bob-refused@example.com");
    bob.register(&server);
    let mount = TestMount::start(&alice, &[]);
    write_file(&mount.live().join("shared.txt"), b"for bob to read");
    mount.unmount();
    share(&alice, "bob-refused@example.com", "--read");

    let dir = alice.home.path().join("mnt");
    let _unmounted = Unmounted(dir.clone());
    for (library, said) in [
        ("Nope", "no library named 'Nope'"),
        (
            "Backups:no/such/folder",
            "there is no folder 'no/such/folder' in Backups",
        ),
    ] {
        let run = mount_library(&alice, &dir, library, &[]);
        assert_ne!(run.code, 0, "{library}");
        assert!(run.stderr.contains(said), "{library}: {}", run.stderr);
        assert_eq!(run.stderr.trim().lines().count(), 1, "{}", run.stderr);
        assert!(!is_mounted(&dir), "{library} left a mount");
    }

    // Not an empty folder: refused, its files untouched.
    write_file(&dir.join("mine.txt"), b"already here");
    let run = mount_library(&alice, &dir, "Backups", &[]);
    assert_ne!(run.code, 0);
    assert!(run.stderr.contains("is not empty"), "{}", run.stderr);
    assert!(!is_mounted(&dir));
    assert_eq!(fs::read(dir.join("mine.txt")).unwrap(), b"already here");

    // A library shared read-only: only with --read-only.
    let bobs = bob.home.path().join("shared");
    let _unmounted = Unmounted(bobs.clone());
    let shared = "Backups@alice-refused@example.com";
    let run = mount_library(&bob, &bobs, shared, &[]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr.contains("read-only: mount it with --read-only"),
        "{}",
        run.stderr
    );
    assert!(!is_mounted(&bobs));
    let run = mount_library(&bob, &bobs, shared, &["--read-only"]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(
        fs::read(bobs.join("shared.txt")).unwrap(),
        b"for bob to read"
    );
    assert!(fs::write(bobs.join("mine.txt"), b"x").is_err());
    bob.run(&["umount", bobs.to_str().unwrap()]).ok();
}

/// `/sbin/mount.fuse.ibackup` linked to `client` while it lives (one test at a time), and
/// put back as it was after: a developer's own link, or none, survives the suite.
struct HelperLink {
    previous: Option<std::path::PathBuf>,
    _held: std::sync::MutexGuard<'static, ()>,
}

const HELPER: &str = "/sbin/mount.fuse.ibackup";

fn point_helper(target: Option<&Path>) {
    let link = Path::new(HELPER);
    let staged = Path::new("/sbin/.mount.fuse.ibackup.new");
    let _ = fs::remove_file(staged);
    match target {
        Some(target) => {
            std::os::unix::fs::symlink(target, staged).unwrap();
            fs::rename(staged, link).unwrap();
        }
        None => {
            let _ = fs::remove_file(link);
        }
    }
}

impl Drop for HelperLink {
    fn drop(&mut self) {
        if fs::read_link(HELPER).ok() != self.previous {
            point_helper(self.previous.as_deref());
        }
    }
}

fn helper_link(client: &Path) -> Option<HelperLink> {
    static HELD: std::sync::Mutex<()> = std::sync::Mutex::new(());
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: the mount helper's link cannot be made here");
        return None;
    }
    let held = HELD.lock().unwrap_or_else(|p| p.into_inner());
    let previous = fs::read_link(HELPER).ok();
    if previous.as_deref() != Some(client) {
        point_helper(Some(client));
    }
    Some(HelperLink {
        previous,
        _held: held,
    })
}

fn system(program: &str, args: &[&str]) -> crate::util::Run {
    crate::util::Run::from(
        std::process::Command::new(program)
            .args(args)
            .output()
            .unwrap(),
    )
}

/// Waits until no mount of `client` runs (the process ended after an unmount).
fn mounts_end(client: &TestClient) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !client.run(&["status", "--json"]).json()["mounts"]
        .as_array()
        .unwrap()
        .is_empty()
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the mount did not end"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}

#[test]
fn mount_t_fuse_ibackup_and_an_fstab_line_mount_a_library_and_umount_ends_it() {
    if !fuse_or_skip() {
        return;
    }
    let Some(_helper) = helper_link(Path::new(crate::util::CLIENT_BIN)) else {
        return;
    };
    let server = TestServer::start();
    let alice = TestClient::new("alice-fstab@example.com");
    alice.register(&server);
    let config = alice.config_dir();
    let cache = alice.home.path().join("cache");
    let options = format!("config={},cache={}", config.display(), cache.display());
    let dir = alice.home.path().join("photos");
    let _unmounted = Unmounted(dir.clone());
    fs::create_dir_all(&dir).unwrap();

    // mount -t: ready when it returns.
    let source = "alice-fstab@example.com:Backups";
    let run = system(
        "mount",
        &[
            "-t",
            "fuse.ibackup",
            source,
            dir.to_str().unwrap(),
            "-o",
            &options,
        ],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(is_mounted(&dir));
    // The mount table names the source, as for any file system (fstests looks it up so).
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = table
        .lines()
        .find(|l| l.contains(dir.to_str().unwrap()))
        .unwrap();
    assert!(line.contains(" alice-fstab@example.com:Backups "), "{line}");
    write_file(&dir.join("by-mount-t.txt"), b"mounted by mount -t");
    // umount as for any file system: the mount uploads what is pending, then ends.
    let run = system("umount", &[dir.to_str().unwrap()]);
    assert_eq!(run.code, 0, "{}", run.stderr);

    // An fstab line, mounted by its mount point alone (read-only here), at once: the new
    // mount waits for the last one's upload and shows it (fstests' cycle mounts).
    let fstab = alice.home.path().join("fstab");
    fs::write(
        &fstab,
        format!(
            "# ibackup\n{source}  {}  fuse.ibackup  {options},ro,_netdev,nofail,noauto  0 0\n",
            dir.display()
        ),
    )
    .unwrap();
    let run = system(
        "mount",
        &["-T", fstab.to_str().unwrap(), dir.to_str().unwrap()],
    );
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        fs::read(dir.join("by-mount-t.txt")).unwrap(),
        b"mounted by mount -t"
    );
    assert!(fs::write(dir.join("refused.txt"), b"x").is_err(), "ro");
    assert!(dir.join(".snapshots/latest/by-mount-t.txt").exists());
    system("umount", &[dir.to_str().unwrap()]);
    mounts_end(&alice);
    assert_eq!(
        restored(&alice, "by-mount-t.txt").as_deref(),
        Some(&b"mounted by mount -t"[..])
    );

    // The wrong account for that config: one line, nothing mounted.
    let run = system(
        "mount",
        &[
            "-t",
            "fuse.ibackup",
            "mallory@example.com:Backups",
            dir.to_str().unwrap(),
            "-o",
            &options,
        ],
    );
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("is signed in as alice-fstab@example.com, not mallory@example.com"),
        "{}",
        run.stderr
    );
    assert!(!is_mounted(&dir));
}

/// `mount --install-unit`: the unit passes `systemd-analyze verify`, and its commands
/// behave as systemd expects of a `Type=notify` service: `READY=1` once the mount is
/// ready, and `ExecStop` ends it after the uploads. (No systemd runs where the tests do,
/// so the test starts the unit's commands itself, as the service manager would.)
#[test]
fn the_systemd_unit_verifies_says_ready_when_mounted_and_stops_after_uploading() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let alice = TestClient::new("alice-unit@example.com");
    alice.register(&server);
    let xdg = alice.home.path().join("xdg");
    let dir = alice.home.path().join("at-login");
    let _unmounted = Unmounted(dir.clone());
    let run = alice.run_with(
        &[
            "mount",
            dir.to_str().unwrap(),
            "--library",
            "Backups",
            "--install-unit",
            "--json",
        ],
        |command| {
            command.env("XDG_CONFIG_HOME", &xdg);
        },
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let unit = std::path::PathBuf::from(run.json()["unit"].as_str().unwrap());
    assert!(
        unit.starts_with(xdg.join("systemd/user")),
        "{}",
        unit.display()
    );
    assert!(!is_mounted(&dir), "--install-unit mounts nothing itself");
    let text = fs::read_to_string(&unit).unwrap();
    for line in [
        "Type=notify",
        "Restart=on-failure",
        "WantedBy=default.target",
    ] {
        assert!(text.lines().any(|l| l == line), "no {line} in\n{text}");
    }
    if std::process::Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok()
    {
        let runtime = tempfile::tempdir().unwrap();
        let verified = std::process::Command::new("systemd-analyze")
            .args(["--user", "verify", unit.to_str().unwrap()])
            .env("XDG_RUNTIME_DIR", runtime.path())
            .env("HOME", alice.home.path())
            .output()
            .unwrap();
        assert!(verified.status.success(), "{verified:?}");
    } else {
        eprintln!("systemd-analyze is not installed here: the unit is not verified");
    }

    // Started as systemd starts it: READY=1 only once the mount is there.
    let value = |key: &str| -> Vec<String> {
        text.lines()
            .filter_map(|l| l.strip_prefix(key))
            .map(str::to_owned)
            .collect()
    };
    let notify_dir = tempfile::tempdir().unwrap();
    let socket = notify_dir.path().join("notify");
    let listener = std::os::unix::net::UnixDatagram::bind(&socket).unwrap();
    listener
        .set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .unwrap();
    let start = value("ExecStart=").remove(0);
    let words: Vec<&str> = start.split(' ').collect();
    let mut service = std::process::Command::new(words[0]);
    service.args(&words[1..]).env("NOTIFY_SOCKET", &socket);
    for pair in value("Environment=") {
        let (name, value) = pair.split_once('=').unwrap();
        service.env(name, value);
    }
    let mut service = service
        .env("IBACKUP_PASSWORD", "unused")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut said = [0u8; 64];
    let n = listener.recv(&mut said).expect("no READY=1 within 60 s");
    assert_eq!(&said[..n], b"READY=1");
    assert!(is_mounted(&dir), "READY=1 before the mount was there");
    write_file(&dir.join("from-the-unit.txt"), b"written under systemd");

    // ExecStop: waits for the upload, and the service ends well.
    let stop = value("ExecStop=").remove(0);
    let words: Vec<&str> = stop.split(' ').collect();
    let mut stopping = std::process::Command::new(words[0]);
    stopping.args(&words[1..]);
    for pair in value("Environment=") {
        let (name, value) = pair.split_once('=').unwrap();
        stopping.env(name, value);
    }
    assert!(stopping.status().unwrap().success());
    assert!(service.wait().unwrap().success());
    let n = listener.recv(&mut said).unwrap();
    assert_eq!(&said[..n], b"STOPPING=1");
    assert!(!is_mounted(&dir));
    assert_eq!(
        restored(&alice, "from-the-unit.txt").as_deref(),
        Some(&b"written under systemd"[..])
    );
}

/// Mounts of one account share its write-back journal: two mounts of different libraries
/// run side by side (as fstests' test and scratch mounts do), each uploading only its own;
/// a second mount of the same library is refused (after waiting for the first, which may
/// be uploading after its unmount), rather than both uploading its changes.
#[test]
fn two_mounts_of_one_account_share_no_library() {
    if !fuse_or_skip() {
        return;
    }
    let server = TestServer::start();
    let alice = TestClient::new("alice-two@example.com");
    alice.register(&server);
    alice.run(&["library", "create", "Scratch"]).ok();
    let (first, second, again) = (
        alice.home.path().join("first"),
        alice.home.path().join("second"),
        alice.home.path().join("again"),
    );
    let _unmounted = [&first, &second, &again].map(|dir| Unmounted(dir.clone()));
    let run = mount_library(&alice, &first, "Backups", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    // Started from a shell inside the first mount, the second's process must not keep the
    // first busy (fstests' generic/282 and 366 found it did: it worked from the caller's
    // folder).
    fs::create_dir_all(&second).unwrap();
    let run = alice.run_with(
        &[
            "mount",
            second.to_str().unwrap(),
            "--library",
            "Scratch",
            "--write-back-delay",
            "0.2",
        ],
        |command| {
            command.current_dir(&first);
        },
    );
    assert_eq!(run.code, 0, "{}", run.stderr);
    let status = alice.run(&["status", "--json"]).json();
    for mount in status["mounts"].as_array().unwrap() {
        let cwd = fs::read_link(format!("/proc/{}/cwd", mount["pid"])).unwrap();
        assert_eq!(cwd, Path::new("/"), "{mount}");
    }
    write_file(&first.join("in-backups.txt"), b"backups");
    write_file(&second.join("in-scratch.txt"), b"scratch");
    let run = mount_library(&alice, &again, "Backups", &[]);
    assert_ne!(run.code, 0);
    assert!(
        run.stderr
            .contains("Backups is mounted by another ibackup mount"),
        "{}",
        run.stderr
    );
    assert!(!is_mounted(&again));
    for dir in [&first, &second] {
        let run = alice.run(&["umount", dir.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        assert!(
            run.stdout.contains("all changes are uploaded"),
            "{}",
            run.stdout
        );
    }
    assert_eq!(
        restored(&alice, "in-backups.txt").as_deref(),
        Some(&b"backups"[..])
    );
    // The one freed, the same library mounts again at once.
    let run = mount_library(&alice, &again, "Backups", &[]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    assert_eq!(fs::read(again.join("in-backups.txt")).unwrap(), b"backups");
    alice.run(&["umount", again.to_str().unwrap()]).ok();
}

/// The line `line` in `/etc/fstab` while it lives (user mounts are allowed by that file
/// alone).
struct FstabLine(String);

impl FstabLine {
    fn add(line: &str) -> Self {
        let fstab = fs::read_to_string("/etc/fstab").unwrap_or_default();
        let mut text = fstab.trim_end_matches('\n').to_owned();
        text.push_str(&format!("\n{line}\n"));
        fs::write("/etc/.fstab.ibackup-test", text).unwrap();
        fs::rename("/etc/.fstab.ibackup-test", "/etc/fstab").unwrap();
        Self(line.to_owned())
    }
}

impl Drop for FstabLine {
    fn drop(&mut self) {
        let fstab = fs::read_to_string("/etc/fstab").unwrap_or_default();
        let kept: Vec<&str> = fstab.lines().filter(|l| *l != self.0).collect();
        let _ = fs::write("/etc/.fstab.ibackup-test", kept.join("\n") + "\n");
        let _ = fs::rename("/etc/.fstab.ibackup-test", "/etc/fstab");
    }
}

/// Runs `script` with `sh` as nobody, from `/`.
fn as_nobody(script: &str) -> crate::util::Run {
    let (code, stderr) = crate::mount_posix::as_nobody(Path::new("/"), script);
    crate::util::Run {
        code,
        stdout: String::new(),
        stderr,
    }
}

/// The client binary where nobody may run it: this build, or a copy of it in `keep` when
/// the build lies in a folder nobody may enter (a checkout under /root).
fn client_for_nobody(keep: &Path) -> std::path::PathBuf {
    let build = Path::new(crate::util::CLIENT_BIN);
    if as_nobody(&format!("test -x '{}'", build.display())).code == 0 {
        return build.to_owned();
    }
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(keep, fs::Permissions::from_mode(0o755)).unwrap();
    let copy = keep.join("ibackup");
    fs::copy(build, &copy).unwrap();
    fs::set_permissions(&copy, fs::Permissions::from_mode(0o755)).unwrap();
    copy
}

/// An fstab line with `user`: an ordinary user mounts it with `mount DIR` (mount(8) runs
/// the helper with the user's rights, which mounts through fusermount3), writes, and
/// unmounts it with `umount DIR`; the mount uploads and ends.
#[test]
fn an_ordinary_user_mounts_and_unmounts_a_user_fstab_line() {
    if !fuse_or_skip() {
        return;
    }
    let keep = tempfile::tempdir().unwrap();
    if !rustix::process::geteuid().is_root() {
        eprintln!("not root: /etc/fstab cannot be changed here");
        return;
    }
    let Some(_helper) = helper_link(&client_for_nobody(keep.path())) else {
        return;
    };
    let server = TestServer::start();
    let alice = TestClient::new("alice-user-fstab@example.com");
    alice.register(&server);
    let home = alice.home.path();
    let (config, cache, dir) = (alice.config_dir(), home.join("cache"), home.join("photos"));
    fs::create_dir_all(&cache).unwrap();
    fs::create_dir_all(&dir).unwrap();
    let _unmounted = Unmounted(dir.clone());
    // The account's folders and the mount point are nobody's.
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(home, fs::Permissions::from_mode(0o755)).unwrap();
    for path in [&config, &cache, &dir] {
        let run = system("chown", &["-R", "65534:65534", path.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
    }
    let _line = FstabLine::add(&format!(
        "alice-user-fstab@example.com:Backups  {}  fuse.ibackup  config={},cache={},user,noauto  0 0",
        dir.display(),
        config.display(),
        cache.display()
    ));

    let run = as_nobody(&format!("mount '{}'", dir.display()));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    let table = fs::read_to_string("/proc/self/mountinfo").unwrap();
    let line = table
        .lines()
        .find(|l| l.contains(dir.to_str().unwrap()))
        .expect("mounted");
    assert!(
        line.contains("user_id=65534"),
        "mounted as the user: {line}"
    );
    let run = as_nobody(&format!(
        "echo by the user > '{0}/user.txt' && umount '{0}'",
        dir.display()
    ));
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    assert!(!is_mounted(&dir));
    mounts_end(&alice);
    assert_eq!(
        restored(&alice, "user.txt").as_deref(),
        Some(&b"by the user\n"[..])
    );
}

/// fstests' generic/184: a device node made in the mount opens the device when root mounts
/// with `-o devices`; by default the mount is `nodev` and it opens nothing (a device node
/// in a library someone shared must not open this computer's devices).
#[test]
fn device_nodes_open_only_on_a_mount_with_dev() {
    if !fuse_or_skip() {
        return;
    }
    let Some(_helper) = helper_link(Path::new(crate::util::CLIENT_BIN)) else {
        return;
    };
    let server = TestServer::start();
    let alice = TestClient::new("alice-dev@example.com");
    alice.register(&server);
    let options = format!(
        "config={},cache={}",
        alice.config_dir().display(),
        alice.home.path().join("cache").display()
    );
    let dir = alice.home.path().join("mnt");
    fs::create_dir_all(&dir).unwrap();
    let _unmounted = Unmounted(dir.clone());
    for (extra, opens) in [("", false), (",devices", true)] {
        let run = system(
            "mount",
            &[
                "-t",
                "fuse.ibackup",
                "alice-dev@example.com:Backups",
                dir.to_str().unwrap(),
                "-o",
                &format!("{options}{extra}"),
            ],
        );
        assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
        let null = dir.join("null");
        let _ = fs::remove_file(&null);
        let made = system(
            "mknod",
            &["-m", "666", null.to_str().unwrap(), "c", "1", "3"],
        );
        assert_eq!(made.code, 0, "{}", made.stderr);
        let written = fs::write(&null, b"fred");
        assert_eq!(written.is_ok(), opens, "-o{extra}: {written:?}");
        if !opens {
            let error = written.unwrap_err();
            assert_eq!(error.raw_os_error(), Some(libc::EACCES), "nodev");
        }
        let run = system("umount", &[dir.to_str().unwrap()]);
        assert_eq!(run.code, 0, "{}", run.stderr);
        mounts_end(&alice);
    }
}
