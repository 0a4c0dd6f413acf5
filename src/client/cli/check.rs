//! `ibackup check`.

use std::process::ExitCode;

use super::print_json;
use crate::config::Paths;
use crate::session::Session;
use crate::units::{count, format_size};
use crate::Result;

pub(super) fn run(
    paths: &Paths,
    json: bool,
    library: &str,
    share: Option<f64>,
) -> Result<ExitCode> {
    let session = Session::load(paths)?;
    let report = crate::check::run(&session, library, share)?;
    if json {
        print_json(&report);
    } else {
        println!(
            "Checked `{}`: {}, {}, {} ({} read, {})",
            report.library,
            count(report.snapshots, "snapshot"),
            count(report.trees, "tree"),
            count(report.chunks, "chunk"),
            report.chunks_read,
            format_size(report.bytes_read)
        );
        for d in &report.damage {
            println!(
                "DAMAGED: snapshot {} {}: object {}: {}",
                d.snapshot, d.path, d.object, d.problem
            );
        }
        if report.damage.is_empty() {
            println!("No errors were found.");
        }
    }
    if !report.damage.is_empty() {
        return Ok(ExitCode::FAILURE);
    }
    Ok(ExitCode::SUCCESS)
}
