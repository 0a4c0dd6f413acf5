//! Consent history, feedback, surveys (answers kept only as counts, apart from who answered)
//! and login throttling.

use crate::db::{params, Conn, OptionalExtension};

use super::{now, DbError};
pub use crate::api::account::ConsentEvent;

pub fn consent_events(conn: &Conn, account_id: i64) -> Result<Vec<ConsentEvent>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT at, marketing, source FROM consent_events WHERE account_id = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok(ConsentEvent {
                at: row.get(0)?,
                marketing: row.get(1)?,
                source: row.get(2)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

#[derive(Clone, Debug)]
pub struct Feedback {
    pub at: i64,
    pub rating: u8,
    pub message: Option<String>,
    /// Only in the operator's list.
    pub email: Option<String>,
}

pub fn add_feedback(
    conn: &Conn,
    account_id: i64,
    rating: u8,
    message: Option<&str>,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO feedback (account_id, at, rating, message) VALUES (?1, ?2, ?3, ?4)",
        params![account_id, now(), rating, message],
    )?;
    Ok(())
}

pub fn feedback_for(conn: &Conn, account_id: i64) -> Result<Vec<Feedback>, DbError> {
    let mut stmt =
        conn.prepare("SELECT at, rating, message FROM feedback WHERE account_id = ?1 ORDER BY id")?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok(Feedback {
                at: row.get(0)?,
                rating: row.get(1)?,
                message: row.get(2)?,
                email: None,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn all_feedback(conn: &Conn) -> Result<Vec<Feedback>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT f.at, f.rating, f.message, a.email FROM feedback f \
         LEFT JOIN accounts a ON a.id = f.account_id ORDER BY f.id",
    )?;
    let rows = stmt
        .query_map(params![], |row| {
            Ok(Feedback {
                at: row.get(0)?,
                rating: row.get(1)?,
                message: row.get(2)?,
                email: row.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Before an account is deleted: its ratings stay (without a link to it), its messages go,
/// since they may name the person.
pub fn forget_feedback_messages(conn: &Conn, account_id: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE feedback SET message = NULL WHERE account_id = ?1",
        params![account_id],
    )?;
    Ok(())
}

#[derive(Clone, Debug)]
pub struct SurveyRow {
    pub id: String,
    pub title: String,
    /// JSON: `[{"text": "...", "choices": ["...", ...]}, ...]`.
    pub questions: String,
    pub created_at: i64,
    pub closed_at: Option<i64>,
}

pub fn create_survey(conn: &Conn, survey: &SurveyRow) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO surveys (id, title, questions, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![survey.id, survey.title, survey.questions, survey.created_at],
    )?;
    Ok(())
}

pub fn surveys(conn: &Conn) -> Result<Vec<SurveyRow>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, title, questions, created_at, closed_at FROM surveys ORDER BY created_at, id",
    )?;
    let rows = stmt
        .query_map(params![], |row| {
            Ok(SurveyRow {
                id: row.get(0)?,
                title: row.get(1)?,
                questions: row.get(2)?,
                created_at: row.get(3)?,
                closed_at: row.get(4)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn has_responded(conn: &Conn, survey_id: &str, respondent: &[u8]) -> Result<bool, DbError> {
    Ok(conn
        .query_row(
            "SELECT 1 FROM survey_respondents WHERE survey_id = ?1 AND respondent = ?2",
            params![survey_id, respondent],
            |_| Ok(()),
        )
        .optional()?
        .is_some())
}

/// Records that `respondent` answered and adds one to each chosen answer's count.
pub fn record_response(
    conn: &Conn,
    survey_id: &str,
    respondent: &[u8],
    answers: &[(u32, u32)],
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO survey_respondents (survey_id, respondent) VALUES (?1, ?2)",
        params![survey_id, respondent],
    )?;
    for (question, choice) in answers {
        conn.execute(
            "INSERT INTO survey_counts (survey_id, question, choice, count) VALUES (?1, ?2, ?3, 1) \
             ON CONFLICT (survey_id, question, choice) DO UPDATE SET count = survey_counts.count + 1",
            params![survey_id, question, choice],
        )?;
    }
    Ok(())
}

pub fn respondents(conn: &Conn, survey_id: &str) -> Result<u64, DbError> {
    let n: i64 = conn.query_row(
        "SELECT COUNT(*) FROM survey_respondents WHERE survey_id = ?1",
        params![survey_id],
        |row| row.get(0),
    )?;
    Ok(n as u64)
}

/// `(question, choice, count)` for every answer given at least once.
pub fn survey_counts(conn: &Conn, survey_id: &str) -> Result<Vec<(u32, u32, u64)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT question, choice, count FROM survey_counts WHERE survey_id = ?1 \
         ORDER BY question, choice",
    )?;
    let rows = stmt
        .query_map(params![survey_id], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?))
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Removes an account's personal data and its libraries (their pack files go at the next
/// collection). Invoices stay, without a link to the person, as accounting law requires.
/// Returns the processor token of its card, to forget there.
pub fn delete_account(conn: &mut Conn, account_id: i64) -> Result<Option<String>, DbError> {
    let tx = conn.transaction()?;
    let token = super::billing::card(&tx, account_id)?.map(|c| c.processor_token);
    super::libraries::delete_owned(&tx, account_id)?;
    forget_feedback_messages(&tx, account_id)?;
    super::accounts::delete(&tx, account_id)?;
    tx.commit()?;
    // Nothing of the deleted rows may linger in SQLite's write-ahead log. (PostgreSQL
    // reuses the space of deleted rows at its next vacuum: docs/PRIVACY.md.)
    if let Some(sqlite) = conn.as_sqlite() {
        sqlite.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    }
    Ok(token)
}
