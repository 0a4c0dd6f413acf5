//! The mount helper: `mount -t fuse.ibackup SOURCE DIR -o OPTIONS`, an `/etc/fstab` line
//! of type `fuse.ibackup`, and `mount DIR` for such a line, as for any file system.
//!
//! mount(8) runs `/sbin/mount.fuse.ibackup SOURCE DIR [-sfnv] [-o OPTIONS]` (a link to
//! `ibackup`, which knows itself by that name); without that link, `mount.fuse3` runs
//! `ibackup SOURCE DIR -o OPTIONS`, which is taken the same way. SOURCE is
//! `EMAIL:LIBRARY[:PATH]`: the account signed in under the config folder that `config=`
//! names must be EMAIL, and the mount is `ibackup mount DIR --library LIBRARY[:PATH]`,
//! ready when this returns.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use crate::config::{Paths, SessionFile};
use crate::mount::{mount, MountOptions};
use crate::{ClientError, Result};

/// Whether `ibackup` was started as a mount helper: by the name of the helper's link, or
/// by `mount.fuse3` with `SOURCE DIR` (a source is `EMAIL:LIBRARY`, which no command is).
pub fn is_helper(args: &[OsString]) -> bool {
    let called = args
        .first()
        .and_then(|arg0| Path::new(arg0).file_name())
        .and_then(|name| name.to_str())
        .unwrap_or_default();
    if called.starts_with("mount.fuse.ibackup") || called == "mount.ibackup" {
        return true;
    }
    args.get(1)
        .and_then(|source| source.to_str())
        .is_some_and(|source| {
            !source.starts_with('-') && source.contains('@') && source.contains(':')
        })
}

/// Runs the helper on `args` (as the process got them) and says what went wrong in one line.
pub fn main(args: Vec<OsString>) -> ExitCode {
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("mount.fuse.ibackup: {error}");
            ExitCode::from(32)
        }
    }
}

/// What the helper was asked.
#[derive(Debug, PartialEq)]
struct Request {
    email: String,
    library: String,
    dir: PathBuf,
    config: Option<PathBuf>,
    cache: Option<PathBuf>,
    read_only: bool,
    allow_other: bool,
    devices: bool,
}

fn usage(what: &str) -> ClientError {
    ClientError::Usage(format!(
        "{what}; use: mount -t fuse.ibackup EMAIL:LIBRARY[:PATH] DIR -o config=CONFIG_DIR[,ro,allow_other]"
    ))
}

fn parse(args: &[OsString]) -> Result<Request> {
    let mut positional = Vec::new();
    let mut options = Vec::new();
    let mut rest = args.iter().skip(1);
    while let Some(arg) = rest.next() {
        let text = arg
            .to_str()
            .ok_or_else(|| usage("an argument is not UTF-8"))?;
        match text {
            "-o" => {
                let value = rest.next().ok_or_else(|| usage("-o without options"))?;
                let value = value
                    .to_str()
                    .ok_or_else(|| usage("options are not UTF-8"))?;
                options.extend(
                    value
                        .split(',')
                        .filter(|o| !o.is_empty())
                        .map(str::to_owned),
                );
            }
            // mount(8)'s own: sloppy, fake, no mtab, verbose; and the type it was given.
            "-s" | "-f" | "-n" | "-v" => {}
            "-t" | "-N" => {
                rest.next();
            }
            _ if text.starts_with("-o") => {
                options.extend(
                    text[2..]
                        .split(',')
                        .filter(|o| !o.is_empty())
                        .map(str::to_owned),
                );
            }
            _ if text.starts_with('-') => return Err(usage(&format!("unknown flag {text}"))),
            _ => positional.push(text.to_owned()),
        }
    }
    let [source, dir] = <[String; 2]>::try_from(positional)
        .map_err(|_| usage("give the source and the mount point"))?;
    let (email, library) = source
        .split_once(':')
        .filter(|(email, library)| email.contains('@') && !library.is_empty())
        .ok_or_else(|| usage(&format!("the source '{source}' is not EMAIL:LIBRARY")))?;
    let mut request = Request {
        email: email.to_owned(),
        library: library.to_owned(),
        dir: PathBuf::from(dir),
        config: None,
        cache: None,
        read_only: false,
        allow_other: false,
        devices: false,
    };
    for option in options {
        let (name, value) = match option.split_once('=') {
            Some((name, value)) => (name, Some(value)),
            None => (option.as_str(), None),
        };
        match (name, value) {
            ("config", Some(dir)) => request.config = Some(PathBuf::from(dir)),
            ("cache", Some(dir)) => request.cache = Some(PathBuf::from(dir)),
            ("ro", None) => request.read_only = true,
            ("rw", None) => request.read_only = false,
            ("allow_other", None) => request.allow_other = true,
            // mount(8) drops `dev`, the kernel's default, before it runs a helper, and
            // the mount is `nodev` unless asked: `devices` asks in its stead.
            ("devices" | "dev", None) => request.devices = true,
            ("nodev", None) => request.devices = false,
            // Implied by allow_other (the kernel then checks modes); alone it changes
            // nothing for the one user who may enter.
            ("default_permissions", None) => {}
            // mount(8)'s and systemd's business, or what the mount always does.
            (
                "user" | "users" | "nouser" | "owner" | "group" | "_netdev" | "nofail" | "auto"
                | "noauto" | "defaults" | "exec" | "noexec" | "suid" | "nosuid" | "async" | "sync"
                | "dirsync" | "silent" | "loud" | "mand" | "nomand",
                None,
            ) => {}
            // The mount never changes access times on reads (it is `noatime`): options
            // that keep it so are taken, those that ask for access times are refused.
            (
                "noatime" | "norelatime" | "nostrictatime" | "nodiratime" | "lazytime"
                | "nolazytime",
                None,
            ) => {}
            ("atime" | "relatime" | "strictatime" | "diratime", None) => {
                return Err(usage(&format!(
                    "'{option}' asks for access times, which an ibackup mount does not keep \
                     (it is always noatime): remove the option"
                )))
            }
            (name, _) if name.starts_with("x-") || name == "comment" => {}
            _ => {
                return Err(usage(&format!(
                    "unknown option '{option}' (known: config=, cache=, ro, rw, allow_other, \
                     default_permissions, devices and mount's own)"
                )))
            }
        }
    }
    Ok(request)
}

/// Where the helper keeps its caches: `cache=`, or `IBACKUP_CACHE_DIR`, or beside the
/// config folder as the account's own commands have it (`~/.cache/ibackup` for
/// `~/.config/ibackup`, so `ibackup status` there sees this mount), or in it.
fn cache_dir(request: &Request, config: &Path) -> PathBuf {
    if let Some(cache) = &request.cache {
        return cache.clone();
    }
    if let Some(cache) = std::env::var_os("IBACKUP_CACHE_DIR") {
        return PathBuf::from(cache);
    }
    let home = config
        .parent()
        .filter(|_| config.is_absolute() && config.ends_with(".config/ibackup"))
        .and_then(Path::parent);
    match home {
        Some(home) => home.join(".cache/ibackup"),
        None => config.join("cache"),
    }
}

/// Where programs are looked for when mount(8) gives its helper no `PATH` (it clears the
/// environment): `fusermount3` must be found.
const DEFAULT_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

fn run(args: &[OsString]) -> Result<()> {
    let request = parse(args)?;
    if std::env::var_os("PATH").is_none_or(|path| path.is_empty()) {
        // Before any thread starts: nothing else reads the environment yet.
        std::env::set_var("PATH", DEFAULT_PATH);
    }
    let config = match &request.config {
        Some(config) => config.clone(),
        None => Paths::from_env()?.config_dir,
    };
    let paths = Paths {
        cache_dir: cache_dir(&request, &config),
        config_dir: config,
    };
    let session = SessionFile::load(&paths).map_err(|_| {
        ClientError::Usage(format!(
            "nobody is signed in with the config at {}: run `ibackup login` there first \
             (IBACKUP_CONFIG_DIR={} ibackup login, as its user)",
            paths.config_dir.display(),
            paths.config_dir.display()
        ))
    })?;
    if !session.email.eq_ignore_ascii_case(&request.email) {
        return Err(ClientError::Usage(format!(
            "the config at {} is signed in as {}, not {}",
            paths.config_dir.display(),
            session.email,
            request.email
        )));
    }
    let options = MountOptions {
        mountpoint: Some(request.dir),
        foreground: false,
        cache_size: 10 << 30,
        memory_cache: 128 << 20,
        write_back_delay: 2.0,
        read_only: request.read_only,
        allow_other: request.allow_other,
        devices: request.devices,
        poll_interval: 30.0,
        fsname: Some(format!("{}:{}", request.email, request.library)),
        library: Some(request.library),
        install_unit: false,
    };
    mount(&paths, &options).map(drop)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(line: &str) -> Vec<OsString> {
        line.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn mounts_arguments_are_read_as_mount_gives_them() {
        let got = parse(&args(
            "/sbin/mount.fuse.ibackup alice@example.com:Photos:2024/summer /mnt/p -n -o \
             rw,config=/home/alice/.config/ibackup,user,_netdev,nofail,allow_other,x-systemd.automount",
        ))
        .unwrap();
        assert_eq!(
            got,
            Request {
                email: "alice@example.com".into(),
                library: "Photos:2024/summer".into(),
                dir: "/mnt/p".into(),
                config: Some("/home/alice/.config/ibackup".into()),
                cache: None,
                read_only: false,
                allow_other: true,
                devices: false,
            }
        );
        assert_eq!(
            cache_dir(&got, got.config.as_deref().unwrap()),
            Path::new("/home/alice/.cache/ibackup")
        );
        let ro = parse(&args(
            "ibackup bob@example.com:Backups /b -oro,config=/etc/ib,nodiratime,noatime",
        ))
        .unwrap();
        assert!(ro.read_only);
        assert_eq!(
            cache_dir(&ro, Path::new("/etc/ib")),
            Path::new("/etc/ib/cache")
        );
    }

    #[test]
    fn what_a_mount_line_gets_wrong_is_said() {
        for (line, said) in [
            ("mount.fuse.ibackup Photos /mnt", "is not EMAIL:LIBRARY"),
            (
                "mount.fuse.ibackup a@b.c:Photos",
                "give the source and the mount point",
            ),
            (
                "mount.fuse.ibackup a@b.c:Photos /mnt -o colour=blue",
                "unknown option 'colour=blue'",
            ),
            ("mount.fuse.ibackup a@b.c:Photos /mnt -x", "unknown flag -x"),
            (
                "mount.fuse.ibackup a@b.c:Photos /mnt -o relatime",
                "'relatime' asks for access times",
            ),
        ] {
            let error = parse(&args(line)).unwrap_err().to_string();
            assert!(error.contains(said), "{line}: {error}");
        }
    }

    #[test]
    fn the_helper_knows_itself_by_name_or_by_its_source() {
        assert!(is_helper(&args("/sbin/mount.fuse.ibackup a@b.c:L /m")));
        assert!(is_helper(&args("ibackup a@b.c:L /m -o config=/c")));
        assert!(!is_helper(&args("ibackup mount /m --library L")));
        assert!(!is_helper(&args("ibackup restore latest:/ --target /t")));
    }
}
