//! Plans, cards, plan changes with proration, invoices, cancel and reactivate: the routes.
//!
//! Money moves only through a [`PaymentProcessor`](crate::billing::processor::PaymentProcessor);
//! the server keeps a card's brand, last four digits, expiry and the processor's token,
//! never the number or the code.

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;

use super::accounts::account_info;
use super::extract::{ApiJson, Caller};
use crate::api::account::{
    AddCardRequest, CardSummary, ChangePlanRequest, ChangePlanResponse, InvoiceList, PlanInfo,
    PlanList, PlanQuote,
};
use crate::api::types::AccountInfo;
use crate::api::ErrorCode;
use crate::billing::card;
use crate::billing::processor::ProcessorError;
use crate::billing::TURN_SECS;
use crate::config::{Plan, ServerConfig};
use crate::db::{self, accounts, billing};
use crate::error::{ApiError, ApiResult};
use crate::mail::Kind;
use crate::state::AppState;
use crate::units::format_size;
use crate::units::money;

pub async fn plans(State(state): State<AppState>) -> Json<PlanList> {
    let config = &state.config;
    Json(PlanList {
        plans: config
            .plans
            .iter()
            .map(|p| PlanInfo {
                name: p.name.clone(),
                quota_bytes: p.quota_bytes,
                price_cents: p.price_cents,
            })
            .collect(),
        currency: config.currency.clone(),
        period_secs: config.billing_period.as_secs(),
    })
}

fn payment_error(error: ProcessorError) -> ApiError {
    match error {
        ProcessorError::Declined(reason) => ApiError::new(
            ErrorCode::PaymentRequired,
            format!("the card was declined ({reason}); use another card"),
        ),
        ProcessorError::Failed(cause) => ApiError::internal(cause),
    }
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, ProcessorError> + Send + 'static,
) -> ApiResult<Result<T, ProcessorError>> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(ApiError::internal)
}

pub async fn add_card(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<AddCardRequest>,
) -> ApiResult<(StatusCode, Json<CardSummary>)> {
    let checked = card::check(&req, card::this_month()).map_err(ApiError::bad_request)?;
    let cvc = zeroize::Zeroizing::new(req.cvc.clone());
    drop(req);
    let processor = state.processor.clone();
    let summary = CardSummary {
        brand: checked.brand.to_owned(),
        last4: checked.last4.clone(),
        exp_month: checked.exp_month,
        exp_year: checked.exp_year,
    };
    let token = blocking(move || processor.add_card(&checked, &cvc))
        .await?
        .map_err(payment_error)?;
    let stored = billing::Card {
        brand: summary.brand.clone(),
        last4: summary.last4.clone(),
        exp_month: summary.exp_month,
        exp_year: summary.exp_year,
        processor_token: token,
        added_at: db::now(),
    };
    let replaced = state
        .db
        .call(move |conn| billing::set_card(conn, caller.account_id, &stored))
        .await?;
    if let Some(old) = replaced {
        let processor = state.processor.clone();
        if let Err(e) = blocking(move || processor.forget_card(&old)).await? {
            tracing::warn!("could not forget a replaced card at the processor: {e}");
        }
    }
    Ok((StatusCode::CREATED, Json(summary)))
}

/// What a move from `from` to `to` costs now: the price difference over what is left of the
/// paid period (a new paid period starts in full when coming from a free plan).
pub fn prorate(
    config: &ServerConfig,
    from: &Plan,
    to: &Plan,
    period_end: Option<i64>,
    now: i64,
) -> i64 {
    let period = config.billing_period.as_secs() as i64;
    match (from.price_cents, to.price_cents, period_end) {
        (0, new, _) => new as i64,
        (_, _, None) => to.price_cents as i64,
        (old, new, Some(end)) => {
            let left = (end - now).clamp(0, period);
            let diff = new as i64 - old as i64;
            (diff * left + period / 2).div_euclid(period)
        }
    }
}

/// What a change to `plan` would cost now, as `change_plan` would charge it, without
/// changing anything (the web page shows it before the owner confirms).
pub async fn quote(
    State(state): State<AppState>,
    caller: Caller,
    axum::extract::Path(plan): axum::extract::Path<String>,
) -> ApiResult<Json<PlanQuote>> {
    let config = state.config.clone();
    let to = config
        .plan(plan.trim())
        .cloned()
        .ok_or_else(|| ApiError::not_found(config.unknown_plan(plan.trim())))?;
    let now = db::now();
    let name = to.name.clone();
    let amount = state
        .db
        .read(move |conn| -> ApiResult<i64> {
            let account = accounts::by_id(conn, caller.account_id)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
            let from = config.plan_or_default(&account.plan);
            Ok(prorate(&config, from, &to, account.period_end, now))
        })
        .await?;
    Ok(Json(PlanQuote {
        plan: name,
        amount_cents: amount,
        currency: state.config.currency.clone(),
    }))
}

pub async fn change_plan(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<ChangePlanRequest>,
) -> ApiResult<Json<ChangePlanResponse>> {
    let config = state.config.clone();
    let to = config
        .plan(req.plan.trim())
        .cloned()
        .ok_or_else(|| ApiError::bad_request(config.unknown_plan(req.plan.trim())))?;
    in_turn(
        &state,
        caller.account_id,
        change_plan_in_turn(&state, caller, to),
    )
    .await
}

/// A plan change, in the account's billing turn: what is read here stays true until the
/// change is written.
async fn change_plan_in_turn(
    state: &AppState,
    caller: Caller,
    to: Plan,
) -> ApiResult<Json<ChangePlanResponse>> {
    let config = state.config.clone();
    let now = db::now();
    let (account, from, amount, card) = {
        let config = config.clone();
        let to = to.clone();
        state
            .db
            .call(move |conn| -> ApiResult<_> {
                let account = accounts::by_id(conn, caller.account_id)?
                    .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
                ensure_active(&account, &config)?;
                if account.plan == to.name {
                    return Err(ApiError::bad_request(format!(
                        "you are on plan `{}` already",
                        to.name
                    )));
                }
                let used = accounts::used_bytes(conn, account.id)?;
                if used > to.quota_bytes {
                    let mut error = ApiError::new(
                        ErrorCode::UsageAboveLimit,
                        format!(
                            "you store {} and plan `{}` allows {}; delete snapshots or \
                             libraries first, or choose a larger plan",
                            format_size(used),
                            to.name,
                            format_size(to.quota_bytes)
                        ),
                    );
                    error.0.used = Some(used);
                    error.0.limit = Some(to.quota_bytes);
                    return Err(error);
                }
                let from = config.plan_or_default(&account.plan).clone();
                let amount = prorate(&config, &from, &to, account.period_end, now);
                let card = billing::card(conn, account.id)?;
                Ok((account, from, amount, card))
            })
            .await?
    };
    let currency = config.currency.clone();
    let mut charge_ref = None;
    if to.price_cents > 0 && card.is_none() {
        return Err(ApiError::new(
            ErrorCode::PaymentRequired,
            format!(
                "plan `{}` costs {} per period and needs a card; add one with `ibackup account \
                 card add`",
                to.name,
                money(to.price_cents as i64, &currency)
            ),
        ));
    }
    if amount > 0 {
        let token = card.expect("checked above").processor_token;
        let processor = state.processor.clone();
        let charged_currency = currency.clone();
        match blocking(move || processor.charge(&token, amount, &charged_currency)).await? {
            Ok(reference) => charge_ref = Some(reference),
            Err(error) => {
                let description = format!("plan {} (declined)", to.name);
                let record_currency = currency.clone();
                state
                    .db
                    .call(move |conn| {
                        billing::add_invoice(
                            conn,
                            account.id,
                            &billing::NewInvoice {
                                description: &description,
                                amount_cents: amount,
                                currency: &record_currency,
                                status: "declined",
                                processor_ref: None,
                            },
                        )
                    })
                    .await?;
                send_service_mail(
                    state,
                    account.email.clone(),
                    "ibackup: a payment failed".into(),
                    format!(
                        "A charge of {} for plan `{}` was declined. Your plan stays `{}`.\n\
                         Add another card with `ibackup account card add`.",
                        money(amount, &currency),
                        to.name,
                        from.name
                    ),
                );
                return Err(payment_error(error));
            }
        }
    }
    let period_end = match (to.price_cents, account.period_end) {
        (0, _) => None,
        (_, Some(end)) if from.price_cents > 0 => Some(end),
        _ => Some(now + config.billing_period.as_secs() as i64),
    };
    let info = {
        let config = config.clone();
        let to = to.clone();
        state
            .db
            .call(move |conn| -> ApiResult<AccountInfo> {
                let tx = conn.transaction()?;
                accounts::set_plan(&tx, account.id, &to.name, period_end)?;
                billing::record_plan_change(
                    &tx,
                    account.id,
                    &billing::PlanChange {
                        at: now,
                        from_plan: Some(from.name.clone()),
                        to_plan: to.name.clone(),
                        amount_cents: amount,
                    },
                )?;
                if amount != 0 {
                    let description = format!("plan {} -> {} (prorated)", from.name, to.name);
                    billing::add_invoice(
                        &tx,
                        account.id,
                        &billing::NewInvoice {
                            description: &description,
                            amount_cents: amount,
                            currency: &config.currency,
                            status: if amount > 0 { "paid" } else { "credit" },
                            processor_ref: charge_ref.as_deref(),
                        },
                    )?;
                }
                tx.commit()?;
                account_info(conn, &config, account.id)
            })
            .await?
    };
    Ok(Json(ChangePlanResponse {
        account: info,
        amount_cents: amount,
        currency,
    }))
}

/// Refuses changes to a canceled or expired account.
pub fn ensure_active(account: &accounts::AccountRow, config: &ServerConfig) -> ApiResult<()> {
    match account.status.as_str() {
        "active" => Ok(()),
        "canceled" => {
            let until = account.canceled_at.unwrap_or(0) + config.cancel_grace.as_secs() as i64;
            Err(ApiError::new(
                ErrorCode::AccountInactive,
                format!(
                    "the subscription was canceled: your data can be read until {}, not \
                     changed; `ibackup account reactivate` resumes it",
                    crate::model::snapshot::format_time_ns(until * 1_000_000_000)
                ),
            ))
        }
        _ => Err(ApiError::new(
            ErrorCode::AccountInactive,
            "the subscription ended and its data was deleted; `ibackup account reactivate` \
             starts again on the free plan",
        )),
    }
}

pub async fn invoices(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<InvoiceList>> {
    let invoices = state
        .db
        .call(move |conn| billing::invoices(conn, caller.account_id))
        .await?;
    Ok(Json(InvoiceList { invoices }))
}

pub async fn cancel(State(state): State<AppState>, caller: Caller) -> ApiResult<Json<AccountInfo>> {
    in_turn(&state, caller.account_id, cancel_in_turn(&state, caller)).await
}

async fn cancel_in_turn(state: &AppState, caller: Caller) -> ApiResult<Json<AccountInfo>> {
    let config = state.config.clone();
    let info = state
        .db
        .call(move |conn| -> ApiResult<AccountInfo> {
            let account = accounts::by_id(conn, caller.account_id)?
                .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
            ensure_active(&account, &config)?;
            let tx = conn.transaction()?;
            // The paid period stays on record (a reactivation within it costs nothing);
            // renewals skip canceled accounts.
            accounts::set_status(&tx, account.id, "canceled", Some(db::now()))?;
            tx.commit()?;
            account_info(conn, &config, account.id)
        })
        .await?;
    Ok(Json(info))
}

pub async fn reactivate(
    State(state): State<AppState>,
    caller: Caller,
) -> ApiResult<Json<AccountInfo>> {
    in_turn(
        &state,
        caller.account_id,
        reactivate_in_turn(&state, caller),
    )
    .await
}

async fn reactivate_in_turn(state: &AppState, caller: Caller) -> ApiResult<Json<AccountInfo>> {
    let config = state.config.clone();
    let now = db::now();
    let (account, plan, card) = {
        let config = config.clone();
        state
            .db
            .call(move |conn| -> ApiResult<_> {
                let account = accounts::by_id(conn, caller.account_id)?
                    .ok_or_else(|| ApiError::unauthorized("this account no longer exists"))?;
                let plan = config.plan_or_default(&account.plan).clone();
                let card = billing::card(conn, account.id)?;
                Ok((account, plan, card))
            })
            .await?
    };
    let grace_end = account.canceled_at.unwrap_or(0) + config.cancel_grace.as_secs() as i64;
    match account.status.as_str() {
        "active" => {
            return Err(ApiError::bad_request(
                "the subscription is active; there is nothing to reactivate",
            ))
        }
        "canceled" if now < grace_end => {}
        _ => {
            // The data is gone (or about to be): start again on the free plan.
            let config = config.clone();
            let info = state
                .db
                .call(move |conn| -> ApiResult<AccountInfo> {
                    let tx = conn.transaction()?;
                    crate::db::libraries::delete_owned(&tx, account.id)?;
                    accounts::set_plan(&tx, account.id, &config.default_plan().name, None)?;
                    accounts::set_status(&tx, account.id, "active", None)?;
                    tx.commit()?;
                    account_info(conn, &config, account.id)
                })
                .await?;
            return Ok(Json(info));
        }
    }
    let mut period_end = account.period_end.filter(|end| *end > now);
    let mut charge_ref = None;
    if plan.price_cents > 0 && period_end.is_none() {
        let card = card.ok_or_else(|| {
            ApiError::new(
                ErrorCode::PaymentRequired,
                format!(
                    "plan `{}` needs a card; add one with `ibackup account card add`, or choose \
                     the free plan after reactivating",
                    plan.name
                ),
            )
        })?;
        let processor = state.processor.clone();
        let amount = plan.price_cents as i64;
        let currency = config.currency.clone();
        charge_ref = Some(
            blocking(move || processor.charge(&card.processor_token, amount, &currency))
                .await?
                .map_err(payment_error)?,
        );
        period_end = Some(now + config.billing_period.as_secs() as i64);
    }
    let info = state
        .db
        .call(move |conn| -> ApiResult<AccountInfo> {
            let tx = conn.transaction()?;
            accounts::set_status(&tx, account.id, "active", None)?;
            billing::set_period_end(&tx, account.id, period_end)?;
            if let Some(reference) = &charge_ref {
                let description = format!("plan {} (reactivated)", plan.name);
                billing::add_invoice(
                    &tx,
                    account.id,
                    &billing::NewInvoice {
                        description: &description,
                        amount_cents: plan.price_cents as i64,
                        currency: &config.currency,
                        status: "paid",
                        processor_ref: Some(reference),
                    },
                )?;
            }
            tx.commit()?;
            account_info(conn, &config, account.id)
        })
        .await?;
    Ok(Json(info))
}

/// How long a request waits for another billing change of the same account to finish.
const TURN_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

/// Runs `change` as the account's only billing change in progress (plan, cancel,
/// reactivate, and the maintenance pass's renewal and expiry take the same turn). A double
/// click or two computers at once wait for each other, so a charge or credit is never made
/// twice and a state read before a charge is still true when the change is written. The
/// turn is a database row, so it holds across servers too.
async fn in_turn<T>(
    state: &AppState,
    account_id: i64,
    change: impl std::future::Future<Output = ApiResult<T>>,
) -> ApiResult<T> {
    let started = std::time::Instant::now();
    loop {
        let now = db::now();
        let taken = state
            .db
            .call(move |conn| billing::take_turn(conn, account_id, now, now + TURN_SECS))
            .await?;
        if taken {
            break;
        }
        if started.elapsed() > TURN_WAIT {
            return Err(ApiError::busy("another change to this account's billing"));
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let result = change.await;
    let ended = state
        .db
        .call(move |conn| billing::end_turn(conn, account_id))
        .await;
    if let Err(e) = ended {
        tracing::warn!("a billing turn was not ended (it runs out by itself): {e:?}");
    }
    result
}

/// Sends a service message in the background; a failure is logged, not shown to the user.
pub fn send_service_mail(state: &AppState, to: String, subject: String, body: String) {
    let mailer = state.mailer.clone();
    tokio::task::spawn_blocking(move || {
        if let Err(e) = mailer.send(&to, &subject, &body, Kind::Service) {
            tracing::warn!("service mail not sent: {e}");
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proration() {
        let config = ServerConfig::parse(crate::config::DEFAULT_CONFIG).unwrap();
        let free = config.plan("free").unwrap();
        let personal = config.plan("personal").unwrap();
        let pro = config.plan("pro").unwrap();
        let period = config.billing_period.as_secs() as i64;
        assert_eq!(prorate(&config, free, personal, None, 0), 499);
        // Half the period left: half the difference, either way.
        assert_eq!(prorate(&config, personal, pro, Some(period / 2), 0), 250);
        assert_eq!(prorate(&config, pro, personal, Some(period / 2), 0), -250);
        assert_eq!(prorate(&config, personal, free, Some(period / 2), 0), -249);
        // Past the period's end nothing is owed either way.
        assert_eq!(prorate(&config, personal, pro, Some(0), 10), 0);
        assert_eq!(money(-250, "USD"), "-2.50 USD");
    }
}
