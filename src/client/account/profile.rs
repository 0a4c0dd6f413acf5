//! `ibackup account`: the profile, plan and card, consent, sessions, password and recovery,
//! surveys, feedback, export and deletion. Each is one call to the server, except where the
//! password is involved: it never leaves this process, only secrets derived from it.

use std::io::{BufRead, IsTerminal};

use zeroize::Zeroizing;

use super::login::{connect, derive_existing, new_login, save_session};
use super::password::{
    prompt_hidden, prompt_line, read_new_password, read_password, read_secret_line, Purpose,
};
use crate::api::account::{
    AccountExport, AddCardRequest, CardSummary, ChangePlanRequest, ChangePlanResponse,
    ConsentRequest, DeleteAccountRequest, FeedbackRequest, InvoiceList, PasswordChangeRequest,
    PlanList, RecoveryChallenge, RecoveryCompleteRequest, RecoveryKeyRequest, RecoveryStartRequest,
    SessionList, SessionsEnded, SurveyAnswer, SurveyAnswers, SurveyInfo, SurveyList,
    UpdateProfileRequest,
};
use crate::api::routes;
use crate::api::types::{AccountInfo, SessionResponse};
use crate::config::{Paths, SessionFile};
use crate::crypto::{AccountKeyPair, SymmetricKey};
use crate::session::Session;
use crate::{client_label, ClientError, Result};

pub fn show(session: &Session) -> Result<AccountInfo> {
    Ok(session.remote.get(routes::ACCOUNT)?)
}

/// Plans, from the logged-in server or from `server`.
pub fn plans(paths: &Paths, server: Option<&str>, trust_new: bool) -> Result<PlanList> {
    let remote = match server {
        Some(server) => connect(paths, server, trust_new)?,
        None => Session::load(paths)?.remote,
    };
    Ok(remote.get(routes::PLANS)?)
}

/// Changes names or the address; a new address needs the password.
pub fn update(
    paths: &Paths,
    session: &Session,
    request: &UpdateProfileRequest,
) -> Result<AccountInfo> {
    let mut request = request.clone();
    let new_address = request
        .email
        .as_deref()
        .is_some_and(|email| email.trim().to_lowercase() != session.email);
    if new_address && request.current_auth_secret.is_none() {
        let password = read_password(false, Purpose::Existing)?;
        let (_, auth) = derive_existing(&session.remote, &session.email, &password)?;
        request.current_auth_secret = Some(auth.to_vec());
    }
    let info: AccountInfo = session.remote.patch(routes::ACCOUNT, &request)?;
    if info.email != session.email {
        let mut file = SessionFile::load(paths)?;
        file.email = info.email.clone();
        file.save(paths)?;
    }
    Ok(info)
}

pub fn consent(session: &Session, marketing_email: bool) -> Result<AccountInfo> {
    Ok(session
        .remote
        .put(routes::ACCOUNT_CONSENT, &ConsentRequest { marketing_email })?)
}

pub fn change_plan(session: &Session, plan: &str) -> Result<ChangePlanResponse> {
    Ok(session.remote.put(
        routes::ACCOUNT_PLAN,
        &ChangePlanRequest { plan: plan.into() },
    )?)
}

pub fn invoices(session: &Session) -> Result<InvoiceList> {
    Ok(session.remote.get(routes::ACCOUNT_INVOICES)?)
}

pub fn cancel(session: &Session) -> Result<AccountInfo> {
    Ok(session
        .remote
        .post(routes::ACCOUNT_CANCEL, &serde_json::json!({}), false)?)
}

pub fn reactivate(session: &Session) -> Result<AccountInfo> {
    Ok(session
        .remote
        .post(routes::ACCOUNT_REACTIVATE, &serde_json::json!({}), false)?)
}

/// Reads a card: four lines from standard input (number, expiry MM/YY, security code, name
/// on the card), or asked on the terminal with the number and code hidden.
pub fn read_card(from_stdin: bool) -> Result<AddCardRequest> {
    let (number, expiry, cvc, name) = if from_stdin {
        let stdin = std::io::stdin();
        let mut lines = stdin.lock().lines();
        let mut next = |what: &str| -> Result<Zeroizing<String>> {
            match lines.next() {
                Some(Ok(line)) => Ok(Zeroizing::new(line.trim().to_owned())),
                _ => Err(ClientError::Usage(format!(
                    "standard input ended before the {what}; give four lines: number, expiry \
                     MM/YY, security code, name"
                ))),
            }
        };
        (
            next("card number")?,
            next("expiry")?,
            next("security code")?,
            next("name")?,
        )
    } else if std::io::stdin().is_terminal() {
        (
            prompt_hidden("Card number: ")?,
            Zeroizing::new(prompt_line("Expiry (MM/YY): ")?),
            prompt_hidden("Security code (CVC): ")?,
            Zeroizing::new(prompt_line("Name on the card: ")?),
        )
    } else {
        return Err(ClientError::Usage(
            "give the card with --stdin (four lines: number, expiry MM/YY, security code, name) \
             or run in a terminal"
                .into(),
        ));
    };
    let (month, year) = expiry
        .split_once('/')
        .and_then(|(m, y)| Some((m.trim().parse().ok()?, y.trim().parse().ok()?)))
        .ok_or_else(|| {
            ClientError::Usage(format!(
                "expiry `{}` is not MM/YY (e.g. 08/29)",
                expiry.as_str()
            ))
        })?;
    Ok(AddCardRequest {
        number: number.to_string(),
        exp_month: month,
        exp_year: year,
        cvc: cvc.to_string(),
        name: name.to_string(),
    })
}

pub fn add_card(session: &Session, card: &AddCardRequest) -> Result<CardSummary> {
    Ok(session.remote.post(routes::ACCOUNT_CARD, card, false)?)
}

pub fn sessions(session: &Session) -> Result<SessionList> {
    Ok(session.remote.get(routes::ACCOUNT_SESSIONS)?)
}

/// Revokes the session whose id starts with `prefix`; returns its full id.
pub fn revoke_session(session: &Session, prefix: &str) -> Result<String> {
    let list = sessions(session)?;
    let matches: Vec<_> = list
        .sessions
        .iter()
        .filter(|s| !prefix.is_empty() && s.id.starts_with(prefix))
        .collect();
    let id = match matches.as_slice() {
        [one] => one.id.clone(),
        [] => {
            return Err(ClientError::Usage(format!(
                "no session starts with `{prefix}`; `ibackup account sessions` lists them"
            )))
        }
        _ => {
            return Err(ClientError::Usage(format!(
                "`{prefix}` matches {} sessions; give more of the id",
                matches.len()
            )))
        }
    };
    session
        .remote
        .delete(&routes::ACCOUNT_SESSION.replace("{session}", &id))?;
    Ok(id)
}

pub fn revoke_other_sessions(session: &Session) -> Result<SessionsEnded> {
    Ok(session.remote.post(
        routes::ACCOUNT_SESSIONS_REVOKE_OTHERS,
        &serde_json::json!({}),
        false,
    )?)
}

/// Changes the password: the account key is wrapped anew, nothing is re-encrypted, and
/// every other session ends.
pub fn change_password(session: &Session) -> Result<SessionsEnded> {
    let current = read_password(false, Purpose::Existing)?;
    let new = read_new_password()?;
    let (_, current_auth) = derive_existing(&session.remote, &session.email, &current)?;
    Ok(session.remote.post(
        routes::ACCOUNT_PASSWORD,
        &PasswordChangeRequest {
            current_auth_secret: current_auth.to_vec(),
            login: new_login(&new, &session.keys)?,
        },
        false,
    )?)
}

/// Asks the server to mail the address's confirmation link again.
pub fn resend_confirmation(session: &Session) -> Result<()> {
    session
        .remote
        .post::<_, ()>(routes::ACCOUNT_CONFIRM_EMAIL, &serde_json::json!({}), false)?;
    Ok(())
}

/// Makes a new recovery key (the old one stops working); returns it to show once.
pub fn new_recovery_key(session: &Session) -> Result<String> {
    let current = read_password(false, Purpose::Existing)?;
    let (_, current_auth) = derive_existing(&session.remote, &session.email, &current)?;
    let recovery = SymmetricKey::generate();
    session.remote.post::<_, ()>(
        routes::ACCOUNT_RECOVERY_KEY,
        &RecoveryKeyRequest {
            current_auth_secret: current_auth.to_vec(),
            recovery_wrapped_private_key: recovery.wrap(session.keys.secret_bytes().as_ref()),
            recovery_proof: recovery.recovery_proof().to_vec(),
        },
        false,
    )?;
    Ok(recovery.to_display_groups())
}

/// Sets a new password with the recovery key and logs in; the data stays readable.
pub fn recover(paths: &Paths, server: &str, email: &str, trust_new: bool) -> Result<AccountInfo> {
    let remote = connect(paths, server, trust_new)?;
    let recovery_text = read_secret_line("IBACKUP_RECOVERY_KEY", "Recovery key: ")?;
    let recovery = SymmetricKey::from_display_groups(&recovery_text).map_err(|_| {
        ClientError::Usage(
            "that is not a recovery key: it is the groups of letters and digits shown once at \
             sign-up"
                .into(),
        )
    })?;
    let new = read_new_password()?;
    let challenge: RecoveryChallenge = remote.post(
        routes::RECOVERY_CHALLENGE,
        &RecoveryStartRequest {
            email: email.into(),
        },
        false,
    )?;
    let mismatch = || {
        ClientError::Usage(format!(
            "this recovery key does not open the account {email}; check the key and the e-mail"
        ))
    };
    let secret = recovery
        .unwrap_secret(&challenge.recovery_wrapped_private_key)
        .map_err(|_| mismatch())?;
    let keys = AccountKeyPair::from_secret_bytes(&secret)?;
    let answer = keys.open(&challenge.challenge).map_err(|_| mismatch())?;
    let response: SessionResponse = remote.post(
        routes::RECOVERY_COMPLETE,
        &RecoveryCompleteRequest {
            email: email.into(),
            answer: answer.to_vec(),
            recovery_proof: Some(recovery.recovery_proof().to_vec()),
            login: new_login(&new, &keys)?,
            client: Some(client_label()),
        },
        false,
    )?;
    let remote = remote.with_token(&response.token);
    save_session(paths, &remote, &response, &keys)?;
    Ok(response.account)
}

pub fn surveys(session: &Session) -> Result<Vec<SurveyInfo>> {
    Ok(session.remote.get::<SurveyList>(routes::SURVEYS)?.surveys)
}

/// Parses `Q=C` (both from 1) into an answer.
pub fn parse_answer(text: &str) -> Result<SurveyAnswer> {
    let parsed = text.split_once('=').and_then(|(q, c)| {
        let q: u32 = q.trim().parse().ok()?;
        let c: u32 = c.trim().parse().ok()?;
        (q >= 1 && c >= 1).then(|| SurveyAnswer {
            question: q - 1,
            choice: c - 1,
        })
    });
    parsed.ok_or_else(|| {
        ClientError::Usage(format!(
            "`{text}` is not an answer; write QUESTION=CHOICE with numbers from 1, e.g. 2=3"
        ))
    })
}

/// Asks each question on the terminal; an empty line skips it.
pub fn ask_survey(survey: &SurveyInfo) -> Result<Vec<SurveyAnswer>> {
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Usage(
            "give answers with --answer QUESTION=CHOICE, or run in a terminal to be asked".into(),
        ));
    }
    eprintln!(
        "{} (every question may be skipped with Enter)",
        survey.title
    );
    let mut answers = Vec::new();
    for (qi, question) in survey.questions.iter().enumerate() {
        eprintln!("\n{}. {}", qi + 1, question.text);
        for (ci, choice) in question.choices.iter().enumerate() {
            eprintln!("   {}) {choice}", ci + 1);
        }
        loop {
            let line = prompt_line("choice: ")?;
            if line.is_empty() {
                break;
            }
            match line.parse::<u32>() {
                Ok(c) if c >= 1 && (c as usize) <= question.choices.len() => {
                    answers.push(SurveyAnswer {
                        question: qi as u32,
                        choice: c - 1,
                    });
                    break;
                }
                _ => eprintln!("type a number from 1 to {}", question.choices.len()),
            }
        }
    }
    Ok(answers)
}

pub fn answer_survey(session: &Session, id: &str, answers: Vec<SurveyAnswer>) -> Result<()> {
    session.remote.post::<_, serde_json::Value>(
        &routes::SURVEY_ANSWERS.replace("{survey}", id),
        &SurveyAnswers { answers },
        false,
    )?;
    Ok(())
}

pub fn feedback(session: &Session, rating: u8, message: Option<String>) -> Result<()> {
    session.remote.post::<_, serde_json::Value>(
        routes::FEEDBACK,
        &FeedbackRequest { rating, message },
        false,
    )?;
    Ok(())
}

/// Everything the server holds about the account; library names, which the server holds
/// only sealed, are opened here and shown beside the sealed bytes.
pub fn export(session: &Session) -> Result<AccountExport> {
    let mut export: AccountExport = session.remote.get(routes::ACCOUNT_EXPORT)?;
    let names: std::collections::HashMap<String, String> = session
        .libraries()?
        .into_iter()
        .map(|library| (library.info.id.clone(), library.name))
        .collect();
    for library in &mut export.libraries {
        library.name = names.get(&library.id).cloned();
    }
    for membership in &mut export.memberships {
        membership.library = names.get(&membership.library_id).cloned();
    }
    Ok(export)
}

/// Deletes the account after the user types its e-mail again (or passes it) and the
/// password; then forgets the session here.
pub fn delete(paths: &Paths, session: &Session, confirm: Option<String>) -> Result<()> {
    let typed = match confirm {
        Some(text) => text,
        None if std::io::stdin().is_terminal() => prompt_line(&format!(
            "This deletes the account {}, its libraries and all their snapshots, for good.\n\
                 Type the account's e-mail to confirm: ",
            session.email
        ))?,
        None => {
            return Err(ClientError::Usage(
                "confirm with --confirm EMAIL, or run in a terminal to be asked".into(),
            ))
        }
    };
    if crate::mount::status(paths).iter().any(|m| m.running) {
        return Err(ClientError::Usage(
            "unmount first (`ibackup umount`), so nothing is left uploading to an account \
             that is about to go; nothing was deleted"
                .into(),
        ));
    }
    if typed.trim().to_lowercase() != session.email {
        return Err(ClientError::Usage(
            "the e-mail typed does not match this account's; nothing was deleted".into(),
        ));
    }
    let password = read_password(false, Purpose::Existing)?;
    let (_, auth) = derive_existing(&session.remote, &session.email, &password)?;
    session.remote.post::<_, serde_json::Value>(
        routes::ACCOUNT_DELETE,
        &DeleteAccountRequest {
            confirm_email: typed,
            auth_secret: auth.to_vec(),
        },
        false,
    )?;
    SessionFile::delete(paths)?;
    // The account's encrypted caches and write-back journal on this computer go too.
    let local = crate::mount::account_dir(paths, session);
    if let Err(e) = std::fs::remove_dir_all(&local) {
        if e.kind() != std::io::ErrorKind::NotFound {
            eprintln!(
                "ibackup: could not remove this computer's cache {}: {e}",
                local.display()
            );
        }
    }
    Ok(())
}
