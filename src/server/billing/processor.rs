//! Payment processors. The server hands a card to the processor once and keeps only the
//! token it returns; charges name that token.
//!
//! [`OfflineLedger`] is the bundled processor for self-hosted servers: it records cards and
//! charges in the server's database and moves no money. Like a processor's test mode, it
//! declines the well-known test numbers.

use super::card::CheckedCard;
use crate::db::{billing, random_id, Db, DbError};

#[derive(Debug, thiserror::Error)]
pub enum ProcessorError {
    #[error("the card was declined: {0}")]
    Declined(String),
    #[error("the payment processor failed: {0}")]
    Failed(String),
}

impl From<DbError> for ProcessorError {
    fn from(error: DbError) -> Self {
        ProcessorError::Failed(error.to_string())
    }
}

pub trait PaymentProcessor: Send + Sync {
    /// Verifies and stores a card; returns the token that stands for it from now on.
    fn add_card(&self, card: &CheckedCard, cvc: &str) -> Result<String, ProcessorError>;
    /// Charges the card behind `token`; returns the charge's reference.
    fn charge(
        &self,
        token: &str,
        amount_cents: i64,
        currency: &str,
    ) -> Result<String, ProcessorError>;
    /// Forgets a card (replaced, or its account deleted).
    fn forget_card(&self, token: &str) -> Result<(), ProcessorError>;
}

/// Test numbers and what the ledger does with them.
const DECLINES: &[(&str, &str)] = &[
    ("4000000000000002", "declined"),
    ("4000000000009995", "insufficient funds"),
    ("4000000000000069", "expired card"),
    ("4000000000000127", "incorrect security code"),
];
/// Accepted when added; every charge is declined.
const CHARGES_FAIL: &str = "4000000000000341";

pub struct OfflineLedger {
    db: Db,
}

impl OfflineLedger {
    pub fn new(db: Db) -> Self {
        Self { db }
    }
}

impl PaymentProcessor for OfflineLedger {
    fn add_card(&self, card: &CheckedCard, _cvc: &str) -> Result<String, ProcessorError> {
        if let Some((_, reason)) = DECLINES.iter().find(|(n, _)| *n == card.number.as_str()) {
            return Err(ProcessorError::Declined((*reason).into()));
        }
        let behaviour = if card.number.as_str() == CHARGES_FAIL {
            "charges-fail"
        } else {
            "ok"
        };
        let token = format!("ledger_{}", random_id());
        self.db.blocking(|conn| {
            billing::ledger_add_card(conn, &token, card.brand, &card.last4, behaviour)
        })?;
        Ok(token)
    }

    fn charge(
        &self,
        token: &str,
        amount_cents: i64,
        currency: &str,
    ) -> Result<String, ProcessorError> {
        let id = format!("charge_{}", random_id());
        self.db.blocking(|conn| {
            let behaviour = billing::ledger_card_behaviour(conn, token)?;
            let outcome = match behaviour.as_deref() {
                Some("ok") => "paid",
                Some(_) => "declined",
                None => "unknown-card",
            };
            billing::ledger_record_charge(conn, &id, token, amount_cents, currency, outcome)?;
            match outcome {
                "paid" => Ok(id.clone()),
                "declined" => Err(ProcessorError::Declined("declined by the bank".into())),
                _ => Err(ProcessorError::Declined(
                    "the processor does not know this card; add it again".into(),
                )),
            }
        })
    }

    fn forget_card(&self, token: &str) -> Result<(), ProcessorError> {
        self.db
            .blocking(|conn| billing::ledger_forget_card(conn, token))?;
        Ok(())
    }
}
