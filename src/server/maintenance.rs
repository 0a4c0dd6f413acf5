//! Work the server does on a timer (and `ibackup-server admin maintenance` does at once):
//! purge old session records and throttle entries, renew paid periods, end canceled
//! accounts past their grace period, warn accounts near their quota, and collect the pack
//! files of deleted libraries.

use std::sync::Arc;

use super::billing::money;
use super::billing::processor::PaymentProcessor;
use super::config::ServerConfig;
use super::db::{self, accounts, billing, libraries, sessions, Db};
use super::error::ServerResult;
use super::mail::{Kind, Mailer};
use super::storage::BlobStore;
use crate::units::format_size;

#[derive(Debug, Default, serde::Serialize)]
pub struct Report {
    pub session_records_purged: usize,
    pub renewed: usize,
    pub renewals_declined: usize,
    pub accounts_expired: usize,
    pub quota_warnings: usize,
    pub libraries_collected: usize,
    pub collection: Option<super::gc::GcReport>,
    /// Objects the scheduled verify found damaged (when it was due).
    pub objects_damaged: usize,
}

pub struct Maintenance {
    pub db: Db,
    pub blobs: std::sync::Arc<dyn BlobStore>,
    pub config: Arc<ServerConfig>,
    pub processor: Arc<dyn PaymentProcessor>,
    pub mailer: Arc<Mailer>,
}

fn date(secs: i64) -> String {
    crate::model::snapshot::format_time_ns(secs * 1_000_000_000)[..10].to_owned()
}

impl Maintenance {
    fn service_mail(&self, to: &str, subject: &str, body: &str) {
        if let Err(e) = self.mailer.send(to, subject, body, Kind::Service) {
            tracing::warn!("service mail not sent: {e}");
        }
    }

    /// One pass; blocking (database, processor, mail).
    pub fn run_once(&self) -> ServerResult<Report> {
        let mut report = Report::default();
        let now = db::now();
        let config = &self.config;
        report.session_records_purged = self.db.blocking(|conn| {
            db::throttle::purge_before(conn, (now - super::throttle::FORGET_AFTER_SECS) * 1000)?;
            sessions::drop_expired_shares(
                conn,
                now - config.idle_timeout.as_secs() as i64,
                now - config.absolute_timeout.as_secs() as i64,
            )?;
            sessions::purge_before(conn, now - config.record_retention.as_secs() as i64)
        })?;
        self.renew(now, &mut report)?;
        self.expire(now, &mut report)?;
        self.warn_quotas(&mut report)?;
        report.libraries_collected = self.collect()?;
        let due = super::verify::last_run(&self.db)?
            .is_none_or(|at| at + self.config.verify_interval.as_secs() as i64 <= now);
        if due {
            let verified = super::verify::verify(&self.db, &*self.blobs, None)?;
            report.objects_damaged = verified.damaged.len();
        }
        let options = super::gc::GcOptions::new(self.config.gc_grace);
        report.collection = Some(super::gc::collect(
            &self.db,
            &*self.blobs,
            &options,
            &|_, _| {},
        )?);
        Ok(report)
    }

    /// Runs `change` in the account's billing turn (see `billing::in_turn`), or skips the
    /// account this pass when a request holds the turn; the next pass sees it again.
    fn in_turn(
        &self,
        account_id: i64,
        now: i64,
        change: impl FnOnce() -> ServerResult<()>,
    ) -> ServerResult<()> {
        let until = now + super::billing::TURN_SECS;
        if !self
            .db
            .blocking(|conn| billing::take_turn(conn, account_id, now, until))?
        {
            return Ok(());
        }
        let result = change();
        self.db
            .blocking(|conn| billing::end_turn(conn, account_id))?;
        result
    }

    fn renew(&self, now: i64, report: &mut Report) -> ServerResult<()> {
        let due = self.db.blocking(|conn| billing::due_renewals(conn, now))?;
        for (account_id, _) in due {
            self.in_turn(account_id, now, || self.renew_one(account_id, now, report))?;
        }
        Ok(())
    }

    /// Charges one account's next period, if it is still due now that its turn is held.
    fn renew_one(&self, account_id: i64, now: i64, report: &mut Report) -> ServerResult<()> {
        let config = &self.config;
        let period = config.billing_period.as_secs() as i64;
        let Some(account) = self.db.blocking(|conn| accounts::by_id(conn, account_id))? else {
            return Ok(());
        };
        let still_due =
            account.status == "active" && account.period_end.is_some_and(|end| end <= now);
        if !still_due {
            return Ok(());
        }
        let plan_name = account.plan.clone();
        let price = config.plan(&plan_name).map(|p| p.price_cents).unwrap_or(0) as i64;
        if price == 0 {
            self.db
                .blocking(|conn| billing::set_period_end(conn, account_id, None))?;
            return Ok(());
        }
        let card = self.db.blocking(|conn| billing::card(conn, account_id))?;
        let charged = match &card {
            Some(card) => self
                .processor
                .charge(&card.processor_token, price, &config.currency)
                .map_err(|e| e.to_string()),
            None => Err("no card on file".into()),
        };
        let description = format!("plan {plan_name}, renewal");
        let (status, reference) = match &charged {
            Ok(reference) => ("paid", Some(reference.as_str())),
            Err(_) => ("declined", None),
        };
        self.db.blocking(|conn| -> ServerResult<()> {
            let tx = conn.transaction()?;
            billing::add_invoice(
                &tx,
                account_id,
                &billing::NewInvoice {
                    description: &description,
                    amount_cents: price,
                    currency: &config.currency,
                    status,
                    processor_ref: reference,
                },
            )?;
            if charged.is_ok() {
                let end = account.period_end.unwrap_or(now) + period;
                billing::set_period_end(&tx, account_id, Some(end.max(now + 1)))?;
            } else {
                accounts::set_status(&tx, account_id, "canceled", Some(now))?;
                billing::set_period_end(&tx, account_id, None)?;
            }
            tx.commit()?;
            Ok(())
        })?;
        match charged {
            Ok(_) => report.renewed += 1,
            Err(reason) => {
                let until = now + config.cancel_grace.as_secs() as i64;
                self.service_mail(
                    &account.email,
                    "ibackup: payment failed, subscription paused",
                    &format!(
                        "The renewal of plan `{plan_name}` ({}) failed: {reason}.\n\
                         Your data stays readable until {}. Add a card with `ibackup \
                         account card add`, then run `ibackup account reactivate`.",
                        money(price, &config.currency),
                        date(until)
                    ),
                );
                report.renewals_declined += 1;
            }
        }
        Ok(())
    }

    fn expire(&self, now: i64, report: &mut Report) -> ServerResult<()> {
        let grace = self.config.cancel_grace.as_secs() as i64;
        let ended: Vec<i64> = self.db.blocking(|conn| {
            accounts::list(conn).map(|all| {
                all.into_iter()
                    .filter(|a| past_grace(a, grace, now))
                    .map(|a| a.id)
                    .collect()
            })
        })?;
        for account_id in ended {
            self.in_turn(account_id, now, || {
                let expired = self
                    .db
                    .blocking(|conn| expire_one(conn, &self.config, account_id, now))?;
                if let Some(email) = expired {
                    self.service_mail(
                        &email,
                        "ibackup: your stored data was deleted",
                        "Your subscription was canceled and its grace period has ended, so the \
                         data you stored was deleted. Your account remains; `ibackup account \
                         reactivate` starts again on the free plan, and `ibackup account \
                         delete` removes it.",
                    );
                    report.accounts_expired += 1;
                }
                Ok(())
            })?;
        }
        Ok(())
    }

    fn warn_quotas(&self, report: &mut Report) -> ServerResult<()> {
        let config = &self.config;
        let all = self.db.blocking(|conn| accounts::list(conn))?;
        for account in all.into_iter().filter(|a| a.status == "active") {
            let used = self
                .db
                .blocking(|conn| accounts::used_bytes(conn, account.id))?;
            let quota = config.quota_for(&account.plan, account.quota_override);
            let high = quota > 0 && used.saturating_mul(10) >= quota.saturating_mul(9);
            let low = used.saturating_mul(10) < quota.saturating_mul(8);
            if high && !account.quota_warned {
                self.service_mail(
                    &account.email,
                    "ibackup: your storage is nearly full",
                    &format!(
                        "You use {} of the {} your plan `{}` allows. When it is full, new \
                         backups stop. Delete old snapshots, or see `ibackup account plans`.",
                        format_size(used),
                        format_size(quota),
                        account.plan
                    ),
                );
                self.db
                    .blocking(|conn| accounts::set_quota_warned(conn, account.id, true))?;
                report.quota_warnings += 1;
            } else if low && account.quota_warned {
                self.db
                    .blocking(|conn| accounts::set_quota_warned(conn, account.id, false))?;
            }
        }
        Ok(())
    }

    /// Removes the packs of libraries that no longer exist; returns of how many.
    pub fn collect(&self) -> ServerResult<usize> {
        // Stored libraries first: one stored now belongs to a library created before, which
        // the read below then sees unless it was deleted.
        let folders = self.blobs.libraries()?;
        let live = self.db.blocking(|conn| libraries::all_ids(conn))?;
        let mut removed = 0;
        for library in folders {
            if !live.contains(&library) {
                self.blobs.remove_library(&library)?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

fn past_grace(account: &accounts::AccountRow, grace: i64, now: i64) -> bool {
    account.status == "canceled" && account.canceled_at.unwrap_or(now) + grace <= now
}

/// Deletes the data of an account whose cancellation outlived its grace period, reading
/// its status again in the same transaction (a reactivation just before must win).
/// Returns the account's e-mail when it expired.
pub fn expire_one(
    conn: &mut crate::db::Conn,
    config: &ServerConfig,
    account_id: i64,
    now: i64,
) -> Result<Option<String>, db::DbError> {
    let tx = db::immediate(conn)?;
    let Some(account) = accounts::by_id(&tx, account_id)? else {
        return Ok(None);
    };
    if !past_grace(&account, config.cancel_grace.as_secs() as i64, now) {
        return Ok(None);
    }
    libraries::delete_owned(&tx, account.id)?;
    accounts::set_status(&tx, account.id, "expired", account.canceled_at)?;
    accounts::set_plan(&tx, account.id, &config.default_plan().name, None)?;
    tx.commit()?;
    Ok(Some(account.email))
}
