//! `ibackup register`, `login` and `logout`.

use std::process::ExitCode;

use super::{print_json, ServerArgs};
use crate::account::{self as accounts, RegisterOptions, DEFAULT_LIBRARY};
use crate::config::Paths;
use crate::units::format_size;
use crate::Result;

pub(super) fn register(paths: &Paths, json: bool, options: &RegisterOptions) -> Result<ExitCode> {
    let registered = accounts::register(paths, options)?;
    if json {
        print_json(&serde_json::json!({
            "account": registered.account,
            "recovery_key": registered.recovery_key,
            "plan_problem": registered.plan_problem,
        }));
    } else {
        println!(
            "Account {} created and logged in; library `{DEFAULT_LIBRARY}` is ready.\n\n\
             Your recovery key (shown only this once; keep it somewhere safe):\n\n    {}\n\n\
             It lets you set a new password without losing your data if you forget \
             yours. ibackup cannot read your files, so without the password or this \
             key nobody can recover them.\n\nA link to confirm your address was mailed to \
             {}; news and offers, if you chose them, wait for it.",
            registered.account.email, registered.recovery_key, registered.account.email
        );
    }
    if let Some(problem) = &registered.plan_problem {
        eprintln!(
            "ibackup: the account is on the free plan for now: {problem}. Run `ibackup \
             account card add`, then `ibackup account plan NAME`."
        );
        return Ok(ExitCode::from(3));
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn login(
    paths: &Paths,
    json: bool,
    server: &ServerArgs,
    email: &str,
) -> Result<ExitCode> {
    let account = accounts::login(
        paths,
        &server.server,
        email,
        server.trust_new,
        server.password_stdin,
    )?;
    if json {
        print_json(&account);
    } else {
        println!(
            "Logged in as {} ({} plan, {} of {} used).",
            account.email,
            account.plan,
            format_size(account.used_bytes),
            format_size(account.quota_bytes)
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn logout(paths: &Paths, json: bool) -> Result<ExitCode> {
    let confirmed = accounts::logout(paths)?;
    if json {
        print_json(&serde_json::json!({ "logged_out": true, "server_confirmed": confirmed }));
    } else if confirmed {
        println!("Logged out.");
    } else {
        println!(
            "Logged out here; the server could not be reached, so the session stays \
             valid there until it expires."
        );
    }
    Ok(ExitCode::SUCCESS)
}
