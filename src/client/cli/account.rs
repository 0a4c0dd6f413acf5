//! `ibackup account ...` and `ibackup feedback`: definitions and how results are shown.

use std::path::PathBuf;

use clap::Subcommand;

use super::print_json;
use crate::account::profile;
use crate::api::account::UpdateProfileRequest;
use crate::api::types::AccountInfo;
use crate::config::Paths;
use crate::session::Session;
use crate::units::{format_size, money};
use crate::{ClientError, Result};

#[derive(Subcommand)]
pub enum AccountCommand {
    /// Your profile: names, e-mail, plan, usage, consent, card, member since.
    Show,
    /// Correct your names or e-mail (a new e-mail needs the password, IBACKUP_PASSWORD or
    /// asked, and is confirmed by a link mailed to it).
    Update {
        #[arg(long)]
        first_name: Option<String>,
        #[arg(long)]
        last_name: Option<String>,
        #[arg(long)]
        email: Option<String>,
    },
    /// The plans this server offers (no login needed with --server).
    Plans {
        #[arg(long, env = "IBACKUP_SERVER")]
        server: Option<String>,
        #[arg(long)]
        trust_new: bool,
    },
    /// Change to another plan; the rest of the period is prorated.
    Plan { name: String },
    /// Payment card.
    Card {
        #[command(subcommand)]
        command: CardCommand,
    },
    /// Charges and credits.
    Invoices,
    /// End the subscription; data stays readable for the grace period, then is deleted.
    Cancel,
    /// Undo a cancel within the grace period.
    Reactivate,
    /// Marketing e-mail: `on` or `off` (service messages always reach you).
    Consent {
        #[arg(value_parser = ["on", "off"])]
        choice: String,
    },
    /// Change the password (IBACKUP_PASSWORD / IBACKUP_NEW_PASSWORD, or asked). Ends every
    /// other session; your data stays readable.
    Password,
    /// Mail the link that confirms your e-mail address again (news and offers wait for it).
    ConfirmEmail,
    /// Make a new account key pair (after a session file or laptop was exposed): every
    /// library key is granted anew, other sessions end, and a new recovery key is shown.
    /// People you share with must verify your new fingerprint.
    RotateKeys,
    /// Make a new recovery key and show it once; the old one stops working. Accounts from
    /// before recovery proofs should run this once (docs/SECURITY.md §3).
    RecoveryKey,
    /// Set a new password with the recovery key shown at sign-up, and log in.
    Recover {
        #[arg(long, env = "IBACKUP_SERVER")]
        server: String,
        #[arg(long)]
        email: String,
        #[arg(long)]
        trust_new: bool,
    },
    /// Your sessions and their records (timing and size only).
    Sessions {
        #[command(subcommand)]
        command: Option<SessionsCommand>,
    },
    /// Surveys: list open ones, or answer one (answering is voluntary).
    Survey {
        id: Option<String>,
        /// QUESTION=CHOICE, numbers from 1 (repeatable); without it you are asked.
        #[arg(long = "answer")]
        answers: Vec<String>,
    },
    /// Everything the server holds about you, as JSON.
    Export {
        /// Write to this file instead of standard output.
        #[arg(long)]
        output: Option<PathBuf>,
    },
    /// Your account key's fingerprint, to read to someone who shares with you.
    Fingerprint,
    /// Delete the account, its libraries and its personal data.
    Delete {
        /// The account's e-mail, to confirm without being asked.
        #[arg(long)]
        confirm: Option<String>,
    },
}

#[derive(Subcommand)]
pub enum CardCommand {
    /// Add or replace the card (asked, or four lines on stdin with --stdin).
    Add {
        /// Read number, expiry MM/YY, security code and name from four lines of stdin.
        #[arg(long)]
        stdin: bool,
    },
    /// The card on file (brand, last four digits, expiry).
    Show,
}

#[derive(Subcommand)]
pub enum SessionsCommand {
    /// End a session (by id or unique prefix), or all but this one with --others.
    Revoke {
        id: Option<String>,
        #[arg(long, conflicts_with = "id")]
        others: bool,
    },
}

pub fn date(secs: i64) -> String {
    crate::model::snapshot::format_time_ns(secs.saturating_mul(1_000_000_000))
        .replace('T', " ")
        .trim_end_matches('Z')
        .to_owned()
}

fn print_account(info: &AccountInfo) {
    println!("Name:          {} {}", info.first_name, info.last_name);
    if info.email_confirmed {
        println!("E-mail:        {}", info.email);
    } else {
        println!(
            "E-mail:        {} (not confirmed: open the link mailed to it, or `ibackup account \
             confirm-email` to send it again)",
            info.email
        );
    }
    println!("Plan:          {}", info.plan);
    println!(
        "Storage:       {} of {} used",
        format_size(info.used_bytes),
        format_size(info.quota_bytes)
    );
    let status = match (info.status.as_str(), info.delete_after) {
        ("canceled", Some(until)) => format!(
            "canceled; data readable until {}, then deleted (`ibackup account reactivate` \
             undoes it)",
            date(until)
        ),
        (status, _) => status.to_owned(),
    };
    println!("Subscription:  {status}");
    if let Some(end) = info.period_end {
        println!("Paid until:    {}", date(end));
    }
    match &info.card {
        Some(card) => println!(
            "Card:          {} ending {}, expires {:02}/{}",
            card.brand, card.last4, card.exp_month, card.exp_year
        ),
        None => println!("Card:          none"),
    }
    println!(
        "Marketing:     {}",
        if info.marketing_email {
            "yes, you agreed to news and offers (`ibackup account consent off` stops them)"
        } else {
            "no (`ibackup account consent on` to receive news and offers)"
        }
    );
    println!("Member since:  {}", date(info.created_at));
}

pub fn run(paths: &Paths, json: bool, command: AccountCommand) -> Result<()> {
    // Without a session: a plan list before signing up, a recovery after a lost password.
    match command {
        AccountCommand::Plans { server, trust_new } => {
            return plans(paths, json, server.as_deref(), trust_new)
        }
        AccountCommand::Recover {
            server,
            email,
            trust_new,
        } => return recover(paths, json, &server, &email, trust_new),
        _ => {}
    }
    let session = &Session::load(paths)?;
    match command {
        AccountCommand::Plans { .. } | AccountCommand::Recover { .. } => {
            unreachable!("answered above")
        }
        AccountCommand::Show => show(session, json),
        AccountCommand::Update {
            first_name,
            last_name,
            email,
        } => update(paths, session, json, first_name, last_name, email),
        AccountCommand::Plan { name } => plan(session, json, &name),
        AccountCommand::Card { command } => card(session, json, command),
        AccountCommand::Invoices => invoices(session, json),
        AccountCommand::Cancel => cancel(session, json),
        AccountCommand::Reactivate => reactivate(session, json),
        AccountCommand::Consent { choice } => consent(session, json, &choice),
        AccountCommand::Password => password(session, json),
        AccountCommand::ConfirmEmail => confirm_email(session, json),
        AccountCommand::RotateKeys => rotate_keys(paths, session, json),
        AccountCommand::RecoveryKey => recovery_key(session, json),
        AccountCommand::Sessions { command: None } => list_sessions(session, json),
        AccountCommand::Sessions {
            command: Some(SessionsCommand::Revoke { id, others }),
        } => revoke_sessions(session, json, id, others),
        AccountCommand::Survey { id: None, .. } => list_surveys(session, json),
        AccountCommand::Survey {
            id: Some(id),
            answers,
        } => answer_survey(session, json, id, answers),
        AccountCommand::Fingerprint => fingerprint(session, json),
        AccountCommand::Export { output } => export(session, output),
        AccountCommand::Delete { confirm } => delete(paths, session, json, confirm),
    }
}

/// `account plans`: needs no session.
fn plans(paths: &Paths, json: bool, server: Option<&str>, trust_new: bool) -> Result<()> {
    let list = profile::plans(paths, server, trust_new)?;
    if json {
        print_json(&list);
    } else {
        let days = list.period_secs as f64 / 86_400.0;
        println!("{:<12} {:>10} {:>16}", "PLAN", "STORAGE", "PRICE");
        for plan in &list.plans {
            println!(
                "{:<12} {:>10} {:>16}",
                plan.name,
                format_size(plan.quota_bytes),
                if plan.price_cents == 0 {
                    "free".to_owned()
                } else {
                    money(plan.price_cents as i64, &list.currency)
                }
            );
        }
        println!("Prices are per {days:.0} days; `ibackup account plan NAME` changes plan.");
    }
    Ok(())
}

/// `account recover`: needs no session.
fn recover(paths: &Paths, json: bool, server: &str, email: &str, trust_new: bool) -> Result<()> {
    let info = profile::recover(paths, server, email, trust_new)?;
    if json {
        print_json(&info);
    } else {
        println!(
            "New password set for {}; you are logged in and every other session has \
             ended. Your data is unchanged.",
            info.email
        );
    }
    Ok(())
}

/// `account show`.
fn show(session: &Session, json: bool) -> Result<()> {
    let info = profile::show(session)?;
    if json {
        print_json(&info);
    } else {
        print_account(&info);
    }

    Ok(())
}

/// `account update`.
fn update(
    paths: &Paths,
    session: &Session,
    json: bool,
    first_name: Option<String>,
    last_name: Option<String>,
    email: Option<String>,
) -> Result<()> {
    let request = UpdateProfileRequest {
        first_name,
        last_name,
        email,
        current_auth_secret: None,
    };
    let info = profile::update(paths, session, &request)?;
    if json {
        print_json(&info);
    } else {
        println!("Profile updated.");
        print_account(&info);
    }

    Ok(())
}

/// `account plan NAME`.
fn plan(session: &Session, json: bool, name: &str) -> Result<()> {
    let changed = profile::change_plan(session, name)?;
    if json {
        print_json(&changed);
    } else {
        let what = match changed.amount_cents {
            0 => "nothing to pay".to_owned(),
            n if n > 0 => format!("charged {}", money(n, &changed.currency)),
            n => format!("credited {}", money(-n, &changed.currency)),
        };
        println!(
            "You are on plan `{}` now ({} of storage); {what}.",
            changed.account.plan,
            format_size(changed.account.quota_bytes)
        );
    }

    Ok(())
}

/// `account card add|show`.
fn card(session: &Session, json: bool, command: CardCommand) -> Result<()> {
    match command {
        CardCommand::Add { stdin } => {
            let card = profile::read_card(stdin)?;
            let summary = profile::add_card(session, &card)?;
            if json {
                print_json(&summary);
            } else {
                println!(
                    "Card {} ending {} (expires {:02}/{}) is on file. Only these details \
                             are kept; the number and code went to the payment processor.",
                    summary.brand, summary.last4, summary.exp_month, summary.exp_year
                );
            }
        }
        CardCommand::Show => {
            let info = profile::show(session)?;
            if json {
                print_json(&info.card);
            } else {
                match info.card {
                    Some(card) => println!(
                        "{} ending {}, expires {:02}/{}",
                        card.brand, card.last4, card.exp_month, card.exp_year
                    ),
                    None => println!("No card on file; `ibackup account card add` adds one."),
                }
            }
        }
    }
    Ok(())
}

/// `account invoices`.
fn invoices(session: &Session, json: bool) -> Result<()> {
    let list = profile::invoices(session)?;
    if json {
        print_json(&list);
    } else if list.invoices.is_empty() {
        println!("No charges yet.");
    } else {
        println!(
            "{:<6} {:<20} {:>14} {:<9} DESCRIPTION",
            "ID", "DATE", "AMOUNT", "STATUS"
        );
        for i in &list.invoices {
            println!(
                "{:<6} {:<20} {:>14} {:<9} {}",
                i.id,
                date(i.at),
                money(i.amount_cents, &i.currency),
                i.status,
                i.description
            );
        }
    }

    Ok(())
}

/// `account cancel`.
fn cancel(session: &Session, json: bool) -> Result<()> {
    let info = profile::cancel(session)?;
    if json {
        print_json(&info);
    } else {
        println!(
            "Subscription canceled. Uploads stop now; your data stays readable until \
             {}, then it is deleted. `ibackup account reactivate` undoes this until \
             then.",
            info.delete_after.map(date).unwrap_or_default()
        );
    }

    Ok(())
}

/// `account reactivate`.
fn reactivate(session: &Session, json: bool) -> Result<()> {
    let info = profile::reactivate(session)?;
    // After the grace period the data is gone: start again with the default library.
    let created = if session.libraries()?.is_empty() {
        Some(session.create_library(crate::account::DEFAULT_LIBRARY)?)
    } else {
        None
    };
    if json {
        print_json(&info);
    } else {
        println!("Subscription active again on plan `{}`.", info.plan);
        if let Some(library) = created {
            println!(
                "Your earlier data was deleted after the grace period; library `{}` is \
                 ready for new backups.",
                library.name
            );
        }
    }

    Ok(())
}

/// `account consent on|off`.
fn consent(session: &Session, json: bool, choice: &str) -> Result<()> {
    let info = profile::consent(session, choice == "on")?;
    if json {
        print_json(&info);
    } else if info.marketing_email {
        println!("You will receive news and offers; `ibackup account consent off` stops them.");
    } else {
        println!("You will receive no marketing e-mail. Service messages still reach you.");
    }

    Ok(())
}

/// `account password`.
fn password(session: &Session, json: bool) -> Result<()> {
    let ended = profile::change_password(session)?;
    if json {
        print_json(&ended);
    } else {
        println!(
            "Password changed; {} other sessions ended. Your data is unchanged.",
            ended.sessions_ended
        );
    }

    Ok(())
}

/// `account confirm-email`.
fn confirm_email(session: &Session, json: bool) -> Result<()> {
    profile::resend_confirmation(session)?;
    if json {
        print_json(&serde_json::json!({ "sent_to": session.email }));
    } else {
        println!(
            "A confirmation link was mailed to {}; open it within a week.",
            session.email
        );
    }

    Ok(())
}

/// `account rotate-keys`.
fn rotate_keys(paths: &Paths, session: &Session, json: bool) -> Result<()> {
    let rotated = crate::account::keys::rotate_keys(paths, session)?;
    if json {
        print_json(&rotated);
    } else {
        println!(
            "New account key; {} other sessions ended.\nYour fingerprint is now {}.",
            rotated.sessions_ended, rotated.fingerprint
        );
        if !rotated.members_to_tell.is_empty() {
            println!(
                "Read it to {}: until each runs `ibackup contact verify {} FINGERPRINT`, \
                 their computers refuse your libraries as a changed key.",
                rotated.members_to_tell.join(", "),
                session.email
            );
        }
        println!(
            "Your new recovery key (the old one no longer works). Write it down; it is \
             shown only now:\n\n    {}\n",
            rotated.recovery_key
        );
    }

    Ok(())
}

/// `account recovery-key`.
fn recovery_key(session: &Session, json: bool) -> Result<()> {
    let key = profile::new_recovery_key(session)?;
    if json {
        print_json(&serde_json::json!({ "recovery_key": key }));
    } else {
        println!(
            "Your new recovery key (the old one no longer works). Write it down and keep \
             it apart from your password; it is shown only now:\n\n    {key}\n"
        );
    }

    Ok(())
}

/// `account sessions`.
fn list_sessions(session: &Session, json: bool) -> Result<()> {
    let list = profile::sessions(session)?;
    if json {
        print_json(&list);
    } else {
        println!(
            "{:<10} {:<20} {:<20} {:<16} {:>8} {:>10} {:>10} {:>9}  CLIENT",
            "ID", "STARTED", "LAST SEEN", "ADDRESS", "REQUESTS", "UP", "DOWN", "TIME"
        );
        for s in &list.sessions {
            let state = if s.current {
                "  (this one)"
            } else if s.revoked_at.is_some() {
                "  (ended)"
            } else {
                ""
            };
            println!(
                "{:<10} {:<20} {:<20} {:<16} {:>8} {:>10} {:>10} {:>8.1}s  {}{state}",
                &s.id[..8.min(s.id.len())],
                date(s.created_at),
                date(s.last_seen),
                s.address.as_deref().unwrap_or("-"),
                s.requests,
                format_size(s.bytes_up.max(0) as u64),
                format_size(s.bytes_down.max(0) as u64),
                s.transfer_ms as f64 / 1000.0,
                s.client.as_deref().unwrap_or("-"),
            );
        }
    }

    Ok(())
}

/// `account sessions revoke [ID | --others]`.
fn revoke_sessions(session: &Session, json: bool, id: Option<String>, others: bool) -> Result<()> {
    if others {
        let ended = profile::revoke_other_sessions(session)?;
        if json {
            print_json(&ended);
        } else {
            println!("{} other sessions ended.", ended.sessions_ended);
        }
    } else {
        let prefix =
            id.ok_or_else(|| ClientError::Usage("name a session id, or use --others".into()))?;
        let id = profile::revoke_session(session, &prefix)?;
        if json {
            print_json(&serde_json::json!({ "revoked": id }));
        } else {
            println!("Session {} ended.", &id[..8]);
        }
    }

    Ok(())
}

/// `account survey`.
fn list_surveys(session: &Session, json: bool) -> Result<()> {
    let surveys = profile::surveys(session)?;
    if json {
        print_json(&surveys);
    } else if surveys.is_empty() {
        println!("No open surveys.");
    } else {
        for s in &surveys {
            println!(
                "{}  {}{}",
                s.id,
                s.title,
                if s.answered {
                    "  (answered, thank you)"
                } else {
                    ""
                }
            );
        }
        println!("Answering is voluntary: `ibackup account survey ID`.");
    }

    Ok(())
}

/// `account survey ID [ANSWER...]`.
fn answer_survey(session: &Session, json: bool, id: String, answers: Vec<String>) -> Result<()> {
    let answers = if answers.is_empty() {
        let survey = profile::surveys(session)?
            .into_iter()
            .find(|s| s.id == id)
            .ok_or_else(|| {
                ClientError::Usage(format!(
                    "no open survey `{id}`; `ibackup account survey` lists them"
                ))
            })?;
        profile::ask_survey(&survey)?
    } else {
        answers
            .iter()
            .map(|a| profile::parse_answer(a))
            .collect::<Result<_>>()?
    };
    profile::answer_survey(session, &id, answers)?;
    if json {
        print_json(&serde_json::json!({ "answered": id }));
    } else {
        println!("Thank you. Answers are kept only as counts, not with your name.");
    }

    Ok(())
}

/// `account fingerprint`.
fn fingerprint(session: &Session, json: bool) -> Result<()> {
    let fingerprint = session.fingerprint();
    if json {
        print_json(&serde_json::json!({ "email": session.email, "fingerprint": fingerprint }));
    } else {
        println!("{fingerprint}");
    }

    Ok(())
}

/// `account export`.
fn export(session: &Session, output: Option<PathBuf>) -> Result<()> {
    let export = profile::export(session)?;
    let text = serde_json::to_string_pretty(&export).expect("serialises");
    match output {
        Some(path) => {
            crate::fsutil::write_atomic(&path, text.as_bytes(), 0o600)
                .map_err(ClientError::io(&path))?;
            eprintln!(
                "Wrote everything the server holds about you to {}.",
                path.display()
            );
        }
        None => println!("{text}"),
    }

    Ok(())
}

/// `account delete`.
fn delete(paths: &Paths, session: &Session, json: bool, confirm: Option<String>) -> Result<()> {
    profile::delete(paths, session, confirm)?;
    if json {
        print_json(&serde_json::json!({ "deleted": session.email }));
    } else {
        println!(
            "Account {} deleted with its libraries and personal data; only invoice \
             amounts and dates stay, as accounting law requires. Logged out here.",
            session.email
        );
    }

    Ok(())
}

/// `ibackup feedback`.
pub fn feedback(paths: &Paths, json: bool, rating: u8, message: Option<String>) -> Result<()> {
    let session = Session::load(paths)?;
    profile::feedback(&session, rating, message)?;
    if json {
        print_json(&serde_json::json!({ "sent": true }));
    } else {
        println!("Thank you for your feedback.");
    }
    Ok(())
}
