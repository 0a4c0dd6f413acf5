//! Cards on file (brand, last four, expiry and the processor's token; never the number or
//! the security code), plan history, invoices, and the offline processor's own ledger.

use crate::db::{params, Conn, OptionalExtension};

use super::{now, DbError};
pub use crate::api::account::{Invoice, PlanChange};

#[derive(Clone, Debug)]
pub struct Card {
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub processor_token: String,
    pub added_at: i64,
}

pub fn card(conn: &Conn, account_id: i64) -> Result<Option<Card>, DbError> {
    conn.query_row(
        "SELECT brand, last4, exp_month, exp_year, processor_token, added_at FROM cards \
             WHERE account_id = ?1",
        params![account_id],
        |row| {
            Ok(Card {
                brand: row.get(0)?,
                last4: row.get(1)?,
                exp_month: row.get(2)?,
                exp_year: row.get(3)?,
                processor_token: row.get(4)?,
                added_at: row.get(5)?,
            })
        },
    )
    .optional()
}

/// Stores the card summary, replacing an earlier card; returns the replaced card's token.
pub fn set_card(conn: &Conn, account_id: i64, card: &Card) -> Result<Option<String>, DbError> {
    let old = self::card(conn, account_id)?.map(|c| c.processor_token);
    conn.execute(
        "INSERT INTO cards (account_id, brand, last4, exp_month, exp_year, \
         processor_token, added_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
         ON CONFLICT (account_id) DO UPDATE SET brand = excluded.brand, \
         last4 = excluded.last4, exp_month = excluded.exp_month, exp_year = excluded.exp_year, \
         processor_token = excluded.processor_token, added_at = excluded.added_at",
        params![
            account_id,
            card.brand,
            card.last4,
            card.exp_month,
            card.exp_year,
            card.processor_token,
            now()
        ],
    )?;
    Ok(old)
}

pub fn record_plan_change(
    conn: &Conn,
    account_id: i64,
    change: &PlanChange,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO plan_changes (account_id, at, from_plan, to_plan, amount_cents) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![
            account_id,
            change.at,
            change.from_plan,
            change.to_plan,
            change.amount_cents
        ],
    )?;
    Ok(())
}

pub fn plan_changes(conn: &Conn, account_id: i64) -> Result<Vec<PlanChange>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT at, from_plan, to_plan, amount_cents FROM plan_changes WHERE account_id = ?1 \
         ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok(PlanChange {
                at: row.get(0)?,
                from_plan: row.get(1)?,
                to_plan: row.get(2)?,
                amount_cents: row.get(3)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub struct NewInvoice<'a> {
    pub description: &'a str,
    pub amount_cents: i64,
    pub currency: &'a str,
    pub status: &'a str,
    pub processor_ref: Option<&'a str>,
}

pub fn add_invoice(conn: &Conn, account_id: i64, invoice: &NewInvoice<'_>) -> Result<i64, DbError> {
    conn.query_row(
        "INSERT INTO invoices (account_id, at, description, amount_cents, currency, status, \
         processor_ref) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            account_id,
            now(),
            invoice.description,
            invoice.amount_cents,
            invoice.currency,
            invoice.status,
            invoice.processor_ref
        ],
        |row| row.get(0),
    )
}

pub fn invoices(conn: &Conn, account_id: i64) -> Result<Vec<Invoice>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, at, description, amount_cents, currency, status, processor_ref FROM invoices \
         WHERE account_id = ?1 ORDER BY id",
    )?;
    let rows = stmt
        .query_map(params![account_id], |row| {
            Ok(Invoice {
                id: row.get(0)?,
                at: row.get(1)?,
                description: row.get(2)?,
                amount_cents: row.get(3)?,
                currency: row.get(4)?,
                status: row.get(5)?,
                processor_ref: row.get(6)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Paid accounts whose period ended before `time`: `(account id, plan)`.
pub fn due_renewals(conn: &Conn, time: i64) -> Result<Vec<(i64, String)>, DbError> {
    let mut stmt = conn.prepare(
        "SELECT id, plan FROM accounts WHERE status = 'active' AND period_end IS NOT NULL \
         AND period_end <= ?1",
    )?;
    let rows = stmt
        .query_map(params![time], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

pub fn set_period_end(conn: &Conn, account_id: i64, end: Option<i64>) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET period_end = ?2 WHERE id = ?1",
        params![account_id, end],
    )?;
    Ok(())
}

// The offline processor's ledger. A real processor keeps this on its side.

pub fn ledger_add_card(
    conn: &Conn,
    token: &str,
    brand: &str,
    last4: &str,
    behaviour: &str,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO ledger_cards (token, brand, last4, behaviour, created_at) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![token, brand, last4, behaviour, now()],
    )?;
    Ok(())
}

pub fn ledger_card_behaviour(conn: &Conn, token: &str) -> Result<Option<String>, DbError> {
    conn.query_row(
        "SELECT behaviour FROM ledger_cards WHERE token = ?1",
        params![token],
        |row| row.get(0),
    )
    .optional()
}

pub fn ledger_forget_card(conn: &Conn, token: &str) -> Result<(), DbError> {
    conn.execute("DELETE FROM ledger_cards WHERE token = ?1", params![token])?;
    Ok(())
}

pub fn ledger_record_charge(
    conn: &Conn,
    id: &str,
    token: &str,
    amount_cents: i64,
    currency: &str,
    outcome: &str,
) -> Result<(), DbError> {
    conn.execute(
        "INSERT INTO ledger_charges (id, token, amount_cents, currency, at, outcome) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![id, token, amount_cents, currency, now(), outcome],
    )?;
    Ok(())
}

/// Takes the account's billing turn until `until` (seconds) unless another holds it;
/// true when taken. A turn left by a crashed server runs out by itself.
pub fn take_turn(conn: &Conn, account_id: i64, now: i64, until: i64) -> Result<bool, DbError> {
    Ok(conn.execute(
        "UPDATE accounts SET billing_lock_until = ?3 WHERE id = ?1 \
         AND (billing_lock_until IS NULL OR billing_lock_until <= ?2)",
        params![account_id, now, until],
    )? == 1)
}

pub fn end_turn(conn: &Conn, account_id: i64) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET billing_lock_until = NULL WHERE id = ?1",
        params![account_id],
    )?;
    Ok(())
}
