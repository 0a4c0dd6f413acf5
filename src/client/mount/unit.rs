//! `ibackup mount --install-unit`: a systemd user unit that mounts at login and unmounts
//! cleanly, and the readiness message such a unit waits for (`sd_notify`).

use std::path::{Path, PathBuf};

use super::MountOptions;
use crate::config::Paths;
use crate::{ClientError, Result};

/// The unit's name for a mount at `mountpoint`, escaped as `systemd-escape --path` does:
/// `/home/alice/ibackup` → `ibackup-mount-home-alice-ibackup.service`.
pub fn unit_name(mountpoint: &Path) -> String {
    let text = mountpoint.to_string_lossy();
    let trimmed = text.trim_matches('/');
    let mut escaped = String::new();
    for (i, byte) in trimmed.bytes().enumerate() {
        match byte {
            b'/' => escaped.push('-'),
            b'.' if i == 0 => escaped.push_str("\\x2e"),
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'.' => escaped.push(byte as char),
            other => escaped.push_str(&format!("\\x{other:02x}")),
        }
    }
    if escaped.is_empty() {
        escaped.push('-');
    }
    format!("ibackup-mount-{escaped}.service")
}

/// Quotes `arg` for an `Exec` line: as is when plain, else in double quotes with `\`, `"`
/// and `$`/`%` escaped as systemd reads them.
fn exec_arg(arg: &str) -> String {
    let plain = !arg.is_empty()
        && arg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-:@=,+".contains(&b));
    if plain {
        return arg.to_owned();
    }
    let mut out = String::from("\"");
    for c in arg.chars() {
        match c {
            '\\' | '"' => {
                out.push('\\');
                out.push(c);
            }
            '$' => out.push_str("$$"),
            '%' => out.push_str("%%"),
            _ => out.push(c),
        }
    }
    out.push('"');
    out
}

/// The unit's text: `Type=notify` (ready once the mount is), `ExecStop` that waits for the
/// uploads (as `ibackup umount` does: for as long as they succeed), restarted on failure.
pub fn unit_text(exe: &Path, paths: &Paths, mountpoint: &Path, options: &MountOptions) -> String {
    let exe = exec_arg(&exe.to_string_lossy());
    let dir = exec_arg(&mountpoint.to_string_lossy());
    let mut start = format!("{exe} mount {dir} --foreground");
    if let Some(library) = &options.library {
        start.push_str(&format!(" --library {}", exec_arg(library)));
    }
    if options.read_only {
        start.push_str(" --read-only");
    }
    if options.allow_other {
        start.push_str(" --allow-other");
    }
    let env = |name: &str, path: &Path| {
        format!(
            "Environment={}\n",
            exec_arg(&format!("{name}={}", path.display()))
        )
    };
    format!(
        "# Made by `ibackup mount --install-unit`; `systemctl --user disable --now {name}`\n\
         # and deleting this file undo it.\n\
         [Unit]\n\
         Description=ibackup mount at {shown}\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         {config}{cache}\
         ExecStart={start}\n\
         ExecStop={exe} umount {dir}\n\
         # Pending uploads are waited for as long as they succeed; past this they stay\n\
         # queued for the next mount.\n\
         TimeoutStopSec=5min\n\
         Restart=on-failure\n\
         RestartSec=10s\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n",
        name = unit_name(mountpoint),
        shown = mountpoint.display(),
        config = env("IBACKUP_CONFIG_DIR", &paths.config_dir),
        cache = env("IBACKUP_CACHE_DIR", &paths.cache_dir),
    )
}

/// Where systemd looks for a user's units.
fn unit_dir() -> Result<PathBuf> {
    if let Some(config) = std::env::var_os("XDG_CONFIG_HOME").filter(|c| !c.is_empty()) {
        return Ok(PathBuf::from(config).join("systemd/user"));
    }
    let home = std::env::var_os("HOME")
        .ok_or_else(|| ClientError::Usage("HOME is not set; set XDG_CONFIG_HOME".into()))?;
    Ok(PathBuf::from(home).join(".config/systemd/user"))
}

/// Writes the unit for a mount at `mountpoint` (made if missing) and returns its path.
pub fn install(paths: &Paths, mountpoint: &Path, options: &MountOptions) -> Result<PathBuf> {
    std::fs::create_dir_all(mountpoint).map_err(ClientError::io(mountpoint))?;
    let mountpoint = std::fs::canonicalize(mountpoint).map_err(ClientError::io(mountpoint))?;
    let exe = std::env::current_exe().map_err(ClientError::io("current executable"))?;
    let dir = unit_dir()?;
    std::fs::create_dir_all(&dir).map_err(ClientError::io(&dir))?;
    let path = dir.join(unit_name(&mountpoint));
    let text = unit_text(&exe, paths, &mountpoint, options);
    crate::fsutil::write_atomic(&path, text.as_bytes(), 0o644).map_err(ClientError::io(&path))?;
    Ok(path)
}

/// Tells the service manager the mount is ready (`READY=1`), or that it is ending, when it
/// started this process as a `Type=notify` service (`NOTIFY_SOCKET` is set); else nothing.
pub fn notify(state: &str) {
    let Some(socket) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sender) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let socket = socket.to_string_lossy().into_owned();
    let sent = match socket.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes())
                .and_then(|address| sender.send_to_addr(state.as_bytes(), &address))
        }
        None => sender.send_to(state.as_bytes(), &socket),
    };
    if let Err(e) = sent {
        tracing::warn!("the service manager was not told {state}: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unit_names_are_escaped_as_systemd_escapes_paths() {
        assert_eq!(
            unit_name(Path::new("/home/alice/ibackup")),
            "ibackup-mount-home-alice-ibackup.service"
        );
        assert_eq!(
            unit_name(Path::new("/mnt/my-photos 2024/.x")),
            "ibackup-mount-mnt-my\\x2dphotos\\x202024-.x.service"
        );
    }

    #[test]
    fn exec_arguments_with_spaces_or_dollars_are_quoted() {
        assert_eq!(exec_arg("/usr/bin/ibackup"), "/usr/bin/ibackup");
        assert_eq!(exec_arg("/mnt/a b"), "\"/mnt/a b\"");
        assert_eq!(exec_arg("Pay$day 100%"), "\"Pay$$day 100%%\"");
    }

    #[test]
    fn a_notify_socket_hears_ready() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let listener = std::os::unix::net::UnixDatagram::bind(&path).unwrap();
        // The only test that sets it; `notify` reads it once per call.
        std::env::set_var("NOTIFY_SOCKET", &path);
        notify("READY=1");
        std::env::remove_var("NOTIFY_SOCKET");
        let mut buf = [0u8; 64];
        let n = listener.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1");
    }
}
