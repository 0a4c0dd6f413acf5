//! What the privacy policy promises a user can do with their data: export it, delete the
//! account, give feedback, and answer surveys that are stored only as counts.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, State};
use axum::http::StatusCode;
use axum::Json;

use super::accounts::account_info;
use super::extract::{ApiJson, Caller};
use super::sessions::verify;
use crate::api::account::{
    AccountExport, CardSummary, DeleteAccountRequest, Feedback, FeedbackRequest, SurveyAnswers,
    SurveyInfo, SurveyList, SurveyQuestion,
};
use crate::api::ErrorCode;
use crate::db::{self, accounts, billing, libraries, privacy, sessions};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

pub async fn export(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AccountExport>> {
    state.records.flush(&state.db).await?;
    let config = state.config.clone();
    let export = state
        .db
        .call(move |conn| -> ApiResult<AccountExport> {
            let id = caller.account_id;
            let mut sessions = sessions::records_for(conn, id)?;
            for record in &mut sessions {
                record.current = record.id == caller.session_id;
            }
            Ok(AccountExport {
                exported_at: db::now(),
                profile: account_info(conn, &config, id)?,
                card: billing::card(conn, id)?.map(|c| CardSummary {
                    brand: c.brand,
                    last4: c.last4,
                    exp_month: c.exp_month,
                    exp_year: c.exp_year,
                }),
                plan_history: billing::plan_changes(conn, id)?,
                invoices: billing::invoices(conn, id)?,
                consent_history: privacy::consent_events(conn, id)?,
                sessions,
                feedback: privacy::feedback_for(conn, id)?
                    .into_iter()
                    .map(|f| Feedback {
                        at: f.at,
                        rating: f.rating,
                        message: f.message,
                    })
                    .collect(),
                libraries: libraries::export_owned(conn, id)?,
                memberships: libraries::export_memberships(conn, id)?,
                links: crate::db::links::export(conn, id)?,
                holds: crate::db::retention::holds_of(conn, id)?,
                notes: vec![
                    "Library contents are encrypted with keys only you hold; restore them with \
                     `ibackup restore` or the mount."
                        .into(),
                    "Survey answers are kept only as counts, apart from who answered, so none \
                     can be listed as yours."
                        .into(),
                    "The password is stored only as a slow hash of a secret derived from it, \
                     with your key pair wrapped so that only your password or recovery key \
                     opens it."
                        .into(),
                ],
            })
        })
        .await?;
    Ok(Json(export))
}

pub async fn delete(
    State(state): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    caller: Caller,
    ApiJson(req): ApiJson<DeleteAccountRequest>,
) -> ApiResult<StatusCode> {
    let account = state
        .db
        .call(move |conn| -> ApiResult<_> {
            accounts::by_id(conn, caller.account_id)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))
        })
        .await?;
    if req.confirm_email.trim().to_lowercase() != account.email {
        return Err(ApiError::bad_request(
            "the e-mail typed does not match this account's; nothing was deleted",
        ));
    }
    verify(&state, &account.email, req.auth_secret.clone(), peer.ip())
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::InvalidCredentials,
                "the password is wrong; nothing was deleted",
            )
        })?;
    let token = state
        .db
        .call(move |conn| privacy::delete_account(conn, account.id))
        .await?;
    if let Some(token) = token {
        let processor = state.processor.clone();
        let forgot = tokio::task::spawn_blocking(move || processor.forget_card(&token)).await;
        if !matches!(forgot, Ok(Ok(()))) {
            tracing::warn!("a deleted account's card could not be forgotten at the processor");
        }
    }
    Ok(StatusCode::NO_CONTENT)
}

pub async fn feedback(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<FeedbackRequest>,
) -> ApiResult<StatusCode> {
    if !(1..=5).contains(&req.rating) {
        return Err(ApiError::bad_request("the rating must be 1 to 5"));
    }
    let message = match req.message.as_deref().map(str::trim) {
        Some("") | None => None,
        Some(text) if text.chars().count() > 4000 => {
            return Err(ApiError::bad_request(
                "the message is longer than 4000 characters; shorten it",
            ))
        }
        Some(text) => Some(text.to_owned()),
    };
    state
        .db
        .call(move |conn| {
            privacy::add_feedback(conn, caller.account_id, req.rating, message.as_deref())
        })
        .await?;
    Ok(StatusCode::CREATED)
}

/// Who answered a survey, as a keyed hash that only refuses a second answer: it cannot be
/// turned back into the account without the server's secret, and answers are not stored
/// beside it.
fn respondent(secret: &[u8; 32], survey_id: &str, public_key: &[u8]) -> [u8; 32] {
    let mut hasher = blake3::Hasher::new_keyed(secret);
    hasher.update(b"survey respondent\0");
    hasher.update(survey_id.as_bytes());
    hasher.update(public_key);
    *hasher.finalize().as_bytes()
}

pub fn questions(row: &privacy::SurveyRow) -> Result<Vec<SurveyQuestion>, db::DbError> {
    serde_json::from_str(&row.questions).map_err(|e| db::DbError::Corrupt(e.to_string()))
}

pub async fn surveys(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<SurveyList>> {
    let secret = state.secret.clone();
    let list = state
        .db
        .call(move |conn| -> ApiResult<SurveyList> {
            let account = accounts::by_id(conn, caller.account_id)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
            let mut surveys = Vec::new();
            for row in privacy::surveys(conn)? {
                if row.closed_at.is_some() {
                    continue;
                }
                let who = respondent(&secret, &row.id, &account.public_key);
                surveys.push(SurveyInfo {
                    answered: privacy::has_responded(conn, &row.id, &who)?,
                    questions: questions(&row)?,
                    id: row.id,
                    title: row.title,
                });
            }
            Ok(SurveyList { surveys })
        })
        .await?;
    Ok(Json(list))
}

pub async fn answer(
    State(state): State<AppState>,
    caller: Caller,
    Path(survey_id): Path<String>,
    ApiJson(req): ApiJson<SurveyAnswers>,
) -> ApiResult<StatusCode> {
    let secret = state.secret.clone();
    state
        .db
        .call(move |conn| -> ApiResult<()> {
            let tx = conn.transaction()?;
            let row = privacy::surveys(&tx)?
                .into_iter()
                .find(|s| s.id == survey_id && s.closed_at.is_none())
                .ok_or_else(|| {
                    ApiError::not_found(format!(
                        "no open survey `{survey_id}`; `ibackup account survey` lists them"
                    ))
                })?;
            let questions = questions(&row)?;
            let mut seen = std::collections::HashSet::new();
            let mut answers = Vec::new();
            for a in &req.answers {
                let question = questions.get(a.question as usize).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "question {} does not exist; this survey has {}",
                        a.question + 1,
                        questions.len()
                    ))
                })?;
                if a.choice as usize >= question.choices.len() {
                    return Err(ApiError::bad_request(format!(
                        "question {} has {} choices; {} is not one",
                        a.question + 1,
                        question.choices.len(),
                        a.choice + 1
                    )));
                }
                if !seen.insert(a.question) {
                    return Err(ApiError::bad_request(format!(
                        "question {} is answered twice",
                        a.question + 1
                    )));
                }
                answers.push((a.question, a.choice));
            }
            let account = accounts::by_id(&tx, caller.account_id)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
            let who = respondent(&secret, &row.id, &account.public_key);
            if privacy::has_responded(&tx, &row.id, &who)? {
                return Err(ApiError::new(
                    ErrorCode::AlreadyExists,
                    "you answered this survey already; thank you",
                ));
            }
            // Counts are kept in a fixed order, whatever order the answers came in.
            answers.sort_unstable();
            privacy::record_response(&tx, &row.id, &who, &answers)?;
            tx.commit()?;
            Ok(())
        })
        .await?;
    Ok(StatusCode::CREATED)
}
