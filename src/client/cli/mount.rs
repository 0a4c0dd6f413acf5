//! `ibackup mount` (and `--install-unit`), `umount` and `status`.

use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;

use super::{print_json, print_warnings};
use crate::config::Paths;
use crate::mount::MountOptions;
use crate::session::Session;
use crate::units::{count, format_size};
use crate::Result;

pub(super) fn install_unit(paths: &Paths, json: bool, options: &MountOptions) -> Result<ExitCode> {
    let (path, name) = crate::mount::install_unit(paths, options)?;
    if json {
        print_json(&serde_json::json!({ "unit": path, "name": name }));
    } else {
        println!("Wrote {}", path.display());
        println!("Turn it on (mounts now and at every login):");
        println!("  systemctl --user daemon-reload && systemctl --user enable --now {name}");
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn mount(paths: &Paths, json: bool, options: &MountOptions) -> Result<ExitCode> {
    let mountpoint = crate::mount::mount(paths, options)?;
    if !options.foreground {
        if json {
            print_json(&serde_json::json!({ "mounted": mountpoint }));
        } else {
            println!(
                "Mounted at {}; `ibackup umount` ends it.",
                mountpoint.display()
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn umount(
    paths: &Paths,
    json: bool,
    mountpoint: Option<&Path>,
    no_wait: bool,
) -> Result<ExitCode> {
    let progress = !json && std::io::stderr().is_terminal();
    let record = crate::mount::umount(paths, mountpoint, no_wait, progress)?;
    if json {
        print_json(&record);
    } else if record.uploads.pending_operations > 0 {
        println!(
            "Unmounted {}; {} ({}) stay queued and upload at the next mount.",
            record.mountpoint.display(),
            count(record.uploads.pending_files, "file"),
            format_size(record.uploads.pending_bytes)
        );
    } else {
        println!(
            "Unmounted {}; all changes are uploaded.",
            record.mountpoint.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn status(paths: &Paths, json: bool) -> Result<ExitCode> {
    let mounts = crate::mount::status(paths);
    // Works without a session or the server; what the server says of shares is
    // added when it can be asked.
    let queued = crate::mount::queued(paths);
    let warnings = match Session::load(paths) {
        Ok(session) => crate::sharing::roster_warnings(&session)
            .unwrap_or_else(|e| vec![format!("the server could not be asked: {e}")]),
        Err(_) => Vec::new(),
    };
    if !json {
        print_warnings(&warnings);
    }
    if json {
        print_json(&serde_json::json!({
            "mounts": mounts,
            "queued": queued,
            "warnings": warnings,
        }));
    } else if mounts.is_empty() {
        println!("Nothing mounted.");
        if let Some(queued) = &queued {
            println!(
                "{} ({}, {}) queued for upload by the next `ibackup mount`",
                count(queued.pending_operations, "change"),
                count(queued.pending_files, "file"),
                format_size(queued.pending_bytes)
            );
        }
    } else {
        for m in &mounts {
            println!(
                "{}: {} ({}) pending upload{}",
                m.mountpoint.display(),
                count(m.uploads.pending_files, "file"),
                format_size(m.uploads.pending_bytes),
                m.uploads
                    .last_error
                    .as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            );
            if m.passthrough {
                println!("  writes go straight to local disk (FUSE passthrough)");
            }
            for conflict in &m.uploads.conflicts {
                println!("  conflict kept as: {conflict}");
            }
            for kept in &m.uploads.set_aside {
                println!(
                    "  not uploaded (the library is no longer shared with you), kept \
                     in: {kept}"
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
