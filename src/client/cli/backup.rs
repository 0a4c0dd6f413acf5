//! `ibackup backup`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use super::{print_json, print_warnings};
use crate::backup::BackupOptions;
use crate::config::Paths;
use crate::session::Session;
use crate::units::format_size;
use crate::Result;

pub(super) fn run(
    paths: &Paths,
    json: bool,
    sources: Vec<PathBuf>,
    library: String,
    tags: Vec<String>,
) -> Result<ExitCode> {
    let session = Session::load(paths)?;
    let options = BackupOptions {
        paths: sources,
        library,
        tags,
        progress: !json && std::io::stderr().is_terminal(),
    };
    let summary = crate::backup::run(&session, &options)?;
    print_warnings(&summary.warnings);
    if json {
        print_json(&summary);
    } else {
        println!(
            "Files: {} new, {} changed, {} unmodified; {} directories\n\
             Read {}, uploaded {} ({} chunks) in {:.1}s\n\
             Snapshot {} saved",
            summary.files_new,
            summary.files_changed,
            summary.files_unmodified,
            summary.dirs,
            format_size(summary.bytes_read),
            format_size(summary.bytes_uploaded),
            summary.chunks_uploaded,
            summary.duration_secs,
            summary.snapshot.map(|id| id.short()).unwrap_or_default(),
        );
    }
    if !summary.warnings.is_empty() {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
