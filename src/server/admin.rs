//! `ibackup-server admin`, `announce`, `survey` and `feedback`: operator commands that work
//! on a data directory directly (also while the server runs).

use std::path::Path;

use serde::Deserialize;

use super::db::{self, accounts, privacy};
use super::error::{ServerError, ServerResult};
use super::http::privacy::questions;
use super::http::profile::optout_token;
use super::mail::Kind;
use super::DataDirOptions;
use crate::api::account::SurveyQuestion;
use crate::units::{format_size, parse_size};

/// One line per account: e-mail, name, plan, status, quota, usage.
pub fn user_list(place: &DataDirOptions) -> ServerResult<String> {
    let data = super::open_data_dir(place)?;
    data.db.blocking(|conn| {
        let mut out = format!(
            "{:<32} {:<24} {:<10} {:<9} {:>12} {:>12}\n",
            "E-MAIL", "NAME", "PLAN", "STATUS", "QUOTA", "USED"
        );
        for account in accounts::list(conn)? {
            let quota = data.config.quota_for(&account.plan, account.quota_override);
            let used = accounts::used_bytes(conn, account.id)?;
            let marker = if account.quota_override.is_some() {
                "*"
            } else {
                ""
            };
            out.push_str(&format!(
                "{:<32} {:<24} {:<10} {:<9} {:>12} {:>12}\n",
                account.email,
                format!("{} {}", account.first_name, account.last_name),
                account.plan,
                account.status,
                format!("{}{marker}", format_size(quota)),
                format_size(used)
            ));
        }
        Ok(out)
    })
}

/// Sets an account's quota to `size` (e.g. `10GiB`), or back to its plan's with `plan`.
pub fn set_quota(place: &DataDirOptions, email: &str, size: &str) -> ServerResult<String> {
    let bytes = if size == "plan" {
        None
    } else {
        Some(parse_size(size).map_err(ServerError::Refused)?)
    };
    let data = super::open_data_dir(place)?;
    let email = email.trim().to_lowercase();
    let changed = data
        .db
        .blocking(|conn| accounts::set_quota_override(conn, &email, bytes))?;
    if !changed {
        return Err(ServerError::Refused(format!(
            "no account has the e-mail {email}; `ibackup-server admin user list` shows them"
        )));
    }
    Ok(match bytes {
        Some(bytes) => format!("quota of {email} set to {}", format_size(bytes)),
        None => format!("quota of {email} follows its plan again"),
    })
}

/// Collects unreferenced data now (`ibackup-server gc`), with a progress bar on a terminal.
pub fn gc(
    place: &DataDirOptions,
    options: &super::gc::GcOptions,
) -> ServerResult<super::gc::GcReport> {
    use std::io::IsTerminal;
    let data = super::open_data_dir(place)?;
    let bar = if std::io::stderr().is_terminal() {
        indicatif::ProgressBar::new(0)
    } else {
        indicatif::ProgressBar::hidden()
    };
    let report = super::gc::collect(&data.db, &*data.blobs, options, &|done, total| {
        bar.set_length(total);
        bar.set_position(done);
    })?;
    bar.finish_and_clear();
    Ok(report)
}

/// Stored bytes per account (blobs and index rows of the libraries it owns).
pub fn usage(place: &DataDirOptions) -> ServerResult<String> {
    let data = super::open_data_dir(place)?;
    data.db.blocking(|conn| {
        let mut out = format!("{:<32} {:>10} {:>14}\n", "E-MAIL", "LIBRARIES", "STORED");
        for account in accounts::list(conn)? {
            let libraries = db::libraries::count_owned(conn, account.id)?;
            out.push_str(&format!(
                "{:<32} {:>10} {:>14}\n",
                account.email,
                libraries,
                format_size(accounts::used_bytes(conn, account.id)?)
            ));
        }
        Ok(out)
    })
}

/// Runs one maintenance pass now.
pub fn maintenance(place: &DataDirOptions) -> ServerResult<super::maintenance::Report> {
    super::open_data_dir(place)?.maintenance().run_once()
}

/// Sends a marketing message to every account that agreed to marketing e-mail, each with
/// its own opt-out link. Returns how many were sent.
pub fn announce(place: &DataDirOptions, subject: &str, body_file: &Path) -> ServerResult<usize> {
    let body = std::fs::read_to_string(body_file).map_err(ServerError::io(format!(
        "cannot read {}",
        body_file.display()
    )))?;
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().any(char::is_control) {
        return Err(ServerError::Refused(
            "the subject must be one line of text".into(),
        ));
    }
    if body.trim().is_empty() {
        return Err(ServerError::Refused(format!(
            "{} is empty; write the message into it",
            body_file.display()
        )));
    }
    let data = super::open_data_dir(place)?;
    let recipients = data.db.blocking(|conn| accounts::consenting(conn))?;
    let mut sent = 0;
    for account in &recipients {
        let optout_url = format!(
            "{}{}",
            data.config.public_url,
            crate::api::routes::OPTOUT.replace("{token}", &optout_token(&data.secret, account.id))
        );
        match data.mailer.send(
            &account.email,
            subject,
            &body,
            Kind::Marketing { optout_url },
        ) {
            Ok(()) => sent += 1,
            Err(e) => eprintln!("not sent to account {}: {e}", account.id),
        }
    }
    Ok(sent)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SurveyFile {
    title: String,
    questions: Vec<SurveyQuestion>,
}

/// Creates a survey from a TOML file (`title`, then `[[questions]]` with `text` and
/// `choices`); returns its id.
pub fn survey_create(place: &DataDirOptions, file: &Path) -> ServerResult<String> {
    let text = std::fs::read_to_string(file)
        .map_err(ServerError::io(format!("cannot read {}", file.display())))?;
    let survey: SurveyFile = toml::from_str(&text)
        .map_err(|e| ServerError::Refused(format!("{}: {e}", file.display())))?;
    if survey.title.trim().is_empty() {
        return Err(ServerError::Refused(format!(
            "{}: give the survey a title",
            file.display()
        )));
    }
    if survey.questions.is_empty() || survey.questions.len() > 50 {
        return Err(ServerError::Refused(format!(
            "{}: a survey has 1 to 50 questions",
            file.display()
        )));
    }
    for (i, q) in survey.questions.iter().enumerate() {
        if q.text.trim().is_empty() || !(2..=20).contains(&q.choices.len()) {
            return Err(ServerError::Refused(format!(
                "{}: question {} needs a text and 2 to 20 choices",
                file.display(),
                i + 1
            )));
        }
    }
    let data = super::open_data_dir(place)?;
    let row = privacy::SurveyRow {
        id: db::random_id()[..12].to_owned(),
        title: survey.title.trim().to_owned(),
        questions: serde_json::to_string(&survey.questions).expect("questions are JSON"),
        created_at: db::now(),
        closed_at: None,
    };
    data.db
        .blocking(|conn| privacy::create_survey(conn, &row))?;
    Ok(row.id)
}

pub fn survey_list(place: &DataDirOptions) -> ServerResult<String> {
    let data = super::open_data_dir(place)?;
    data.db.blocking(|conn| {
        let k = data.config.survey_min_respondents;
        let mut out = format!("{:<14} {:>11}  TITLE\n", "ID", "RESPONDENTS");
        for survey in privacy::surveys(conn)? {
            let tally = Tally::read(conn, &survey, k)?;
            let n = tally.respondents();
            out.push_str(&format!("{:<14} {:>11}  {}\n", survey.id, n, survey.title));
        }
        Ok(out)
    })
}

/// A survey's counts as they may be shown: each only when at least `k` chose it.
struct Tally {
    questions: Vec<SurveyQuestion>,
    counts: Vec<(u32, u32, u64)>,
    respondents: u64,
    k: u64,
}

impl Tally {
    fn read(conn: &crate::db::Conn, survey: &privacy::SurveyRow, k: u64) -> ServerResult<Self> {
        Ok(Self {
            questions: questions(survey)?,
            counts: privacy::survey_counts(conn, &survey.id)?,
            respondents: privacy::respondents(conn, &survey.id)?,
            k,
        })
    }

    fn count(&self, question: usize, choice: usize) -> u64 {
        self.counts
            .iter()
            .find(|(q, c, _)| *q as usize == question && *c as usize == choice)
            .map_or(0, |(_, _, n)| *n)
    }

    fn shown(&self, count: u64) -> String {
        if count >= self.k {
            count.to_string()
        } else {
            format!("<{}", self.k)
        }
    }

    fn any_hidden(&self) -> bool {
        self.questions
            .iter()
            .enumerate()
            .any(|(qi, question)| (0..question.choices.len()).any(|ci| self.count(qi, ci) < self.k))
    }

    /// The number of respondents, rounded down to a multiple of `k` while any count is
    /// hidden: the exact total minus the shown counts would give a hidden count away.
    fn respondents(&self) -> String {
        let (total, k) = (self.respondents, self.k);
        if !self.any_hidden() {
            total.to_string()
        } else if total < k {
            format!("<{k}")
        } else {
            format!("{}+", total / k * k)
        }
    }
}

/// Counts per answer, each shown only when at least `min_respondents` chose it.
pub fn survey_report(place: &DataDirOptions, survey_id: &str) -> ServerResult<String> {
    let data = super::open_data_dir(place)?;
    let k = data.config.survey_min_respondents;
    data.db.blocking(|conn| {
        let survey = privacy::surveys(conn)?
            .into_iter()
            .find(|s| s.id == survey_id)
            .ok_or_else(|| {
                ServerError::Refused(format!(
                    "no survey `{survey_id}`; `ibackup-server survey list` shows them"
                ))
            })?;
        let tally = Tally::read(conn, &survey, k)?;
        let mut out = format!(
            "{}\n{} respondents; counts under {k} are hidden, and while any is, the total \
             is rounded down to a multiple of {k}.\n",
            survey.title,
            tally.respondents()
        );
        for (qi, question) in tally.questions.iter().enumerate() {
            out.push_str(&format!("\n{}. {}\n", qi + 1, question.text));
            for (ci, choice) in question.choices.iter().enumerate() {
                let shown = tally.shown(tally.count(qi, ci));
                out.push_str(&format!("   {shown:>6}  {choice}\n"));
            }
        }
        Ok(out)
    })
}

pub fn feedback_list(place: &DataDirOptions) -> ServerResult<String> {
    let data = super::open_data_dir(place)?;
    data.db.blocking(|conn| {
        let mut out = format!("{:<20} {:<6} {:<32} MESSAGE\n", "TIME", "RATING", "FROM");
        for f in privacy::all_feedback(conn)? {
            out.push_str(&format!(
                "{:<20} {:<6} {:<32} {}\n",
                &crate::model::snapshot::format_time_ns(f.at * 1_000_000_000)[..19],
                f.rating,
                f.email.as_deref().unwrap_or("(deleted account)"),
                f.message.as_deref().unwrap_or("").replace('\n', " ")
            ));
        }
        Ok(out)
    })
}
