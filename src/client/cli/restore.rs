//! `ibackup restore` and `get` (a link).

use std::path::PathBuf;
use std::process::ExitCode;

use super::{print_json, print_warnings};
use crate::config::Paths;
use crate::restore::RestoreOptions;
use crate::session::Session;
use crate::units::format_size;
use crate::{ClientError, Result};

pub(super) fn run(paths: &Paths, json: bool, options: &RestoreOptions) -> Result<ExitCode> {
    let session = Session::load(paths)?;
    let summary = crate::restore::run(&session, options)?;
    print_warnings(&summary.warnings);
    if json {
        print_json(&summary);
    } else {
        let specials = match summary.specials {
            0 => String::new(),
            n => format!(", {n} FIFOs, sockets or devices"),
        };
        println!(
            "Restored {} files, {} directories, {} symlinks{specials} ({}) in {:.1}s",
            summary.files,
            summary.dirs,
            summary.symlinks,
            format_size(summary.bytes),
            summary.duration_secs
        );
    }
    if !summary.warnings.is_empty() {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn get(
    json: bool,
    url: &str,
    target: Option<PathBuf>,
    password_stdin: bool,
) -> Result<ExitCode> {
    let link = crate::links::parse(url)?;
    let password = if password_stdin {
        let mut line = String::new();
        std::io::stdin()
            .read_line(&mut line)
            .map_err(ClientError::io("standard input"))?;
        Some(zeroize::Zeroizing::new(
            line.trim_end_matches(['\r', '\n']).to_owned(),
        ))
    } else {
        std::env::var("IBACKUP_LINK_PASSWORD")
            .ok()
            .map(zeroize::Zeroizing::new)
    };
    let target = target.unwrap_or_else(|| crate::links::default_target(&link));
    let summary = crate::links::get(&link, &target, password)?;
    print_warnings(&summary.warnings);
    if json {
        print_json(&summary);
    } else {
        println!(
            "Downloaded {} files, {} directories ({}) into {}",
            summary.files,
            summary.dirs,
            format_size(summary.bytes),
            target.display()
        );
    }
    if !summary.warnings.is_empty() {
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}
