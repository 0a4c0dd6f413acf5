//! `ibackup snapshots` and `forget`.

use std::process::ExitCode;

use super::{print_json, shown};
use crate::config::Paths;
use crate::session::Session;
use crate::store::Store;
use crate::units::{count, format_size};
use crate::Result;

pub(super) fn list(paths: &Paths, json: bool, library: &str) -> Result<ExitCode> {
    let session = Session::load(paths)?;
    let open = session.open_library(library)?;
    let store = Store::new(&session.remote, &open);
    let list = crate::snapshots::list(&store)?;
    if json {
        print_json(&list);
    } else if list.is_empty() {
        println!("No snapshots yet in `{library}`; run `ibackup backup PATH`.");
    } else {
        println!(
            "{:<10} {:<22} {:<24} {:<16} {:>10}  PATHS",
            "ID", "TIME", "AUTHOR", "HOST", "SIZE"
        );
        // Author, host and paths are what any writer of the library put there.
        for s in &list {
            println!(
                "{:<10} {:<22} {:<24} {:<16} {:>10}  {}{}",
                s.short_id,
                s.time,
                shown(&s.author),
                shown(&s.host),
                format_size(s.summary.bytes),
                shown(&s.paths.join(", ")),
                if s.latest { "  (latest)" } else { "" }
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn forget(
    paths: &Paths,
    json: bool,
    snapshots: &[String],
    library: &str,
    dry_run: bool,
) -> Result<ExitCode> {
    let session = Session::load(paths)?;
    let done = crate::retention::forget(&session, library, snapshots, dry_run)?;
    if json {
        print_json(&done);
    } else {
        if !done.decisions.is_empty() {
            println!("{:<10} {:<22} {:<24} {:<6} WHY", "ID", "TIME", "AUTHOR", "");
            for d in &done.decisions {
                println!(
                    "{:<10} {:<22} {:<24} {:<6} {}",
                    d.id,
                    d.time,
                    d.author,
                    if d.keep { "keep" } else { "forget" },
                    if d.keep {
                        d.reasons.join(", ")
                    } else {
                        "no rule keeps it".into()
                    }
                );
            }
        }
        println!(
            "{} {} of `{}`{}",
            if dry_run { "Would forget" } else { "Forgot" },
            count(done.forgotten, "snapshot"),
            done.library,
            if dry_run || done.forgotten == 0 {
                ".".to_owned()
            } else {
                "; the server frees their space at its next collection.".to_owned()
            }
        );
    }
    Ok(ExitCode::SUCCESS)
}
