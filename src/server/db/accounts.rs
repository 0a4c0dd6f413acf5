//! Accounts: identity, plan, login material and the wrapped account key.

use crate::db::{params, Conn, OptionalExtension, Row};

use super::{now, DbError};

pub struct NewAccount<'a> {
    pub email: &'a str,
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub plan: &'a str,
    pub login: NewLogin<'a>,
    pub public_key: &'a [u8],
    pub recovery_wrapped_private_key: &'a [u8],
    /// SHA-256 of the recovery key's proof (absent from older clients).
    pub recovery_proof_hash: Option<&'a [u8]>,
    pub marketing_consent: bool,
}

#[derive(Clone, Debug)]
pub struct AccountRow {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub plan: String,
    pub quota_override: Option<i64>,
    pub auth_hash: String,
    pub kdf_salt: Vec<u8>,
    pub kdf_params: String,
    pub public_key: Vec<u8>,
    pub wrapped_private_key: Vec<u8>,
    pub marketing_consent: bool,
    pub created_at: i64,
    /// `active`, `canceled` (readable until the grace period ends) or `expired` (data gone).
    pub status: String,
    pub canceled_at: Option<i64>,
    /// When the paid period ends and the next charge is due.
    pub period_end: Option<i64>,
    pub quota_warned: bool,
    /// When the address was confirmed by its mailed link; `None` until then.
    pub email_confirmed_at: Option<i64>,
}

const COLUMNS: &str = "id, email, first_name, last_name, plan, quota_override, auth_hash, \
                       kdf_salt, kdf_params, public_key, wrapped_private_key, marketing_consent, \
                       created_at, status, canceled_at, period_end, quota_warned, \
                       email_confirmed_at";

fn from_row(row: &Row<'_>) -> Result<AccountRow, crate::db::DbError> {
    Ok(AccountRow {
        id: row.get(0)?,
        email: row.get(1)?,
        first_name: row.get(2)?,
        last_name: row.get(3)?,
        plan: row.get(4)?,
        quota_override: row.get(5)?,
        auth_hash: row.get(6)?,
        kdf_salt: row.get(7)?,
        kdf_params: row.get(8)?,
        public_key: row.get(9)?,
        wrapped_private_key: row.get(10)?,
        marketing_consent: row.get(11)?,
        created_at: row.get(12)?,
        status: row.get(13)?,
        canceled_at: row.get(14)?,
        period_end: row.get(15)?,
        quota_warned: row.get(16)?,
        email_confirmed_at: row.get(17)?,
    })
}

pub fn insert(conn: &Conn, account: &NewAccount<'_>) -> Result<i64, DbError> {
    conn.query_row(
        "INSERT INTO accounts (email, first_name, last_name, plan, auth_hash, kdf_salt, \
         kdf_params, public_key, wrapped_private_key, recovery_wrapped_private_key, \
         marketing_consent, created_at, recovery_proof_hash) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) RETURNING id",
        params![
            account.email,
            account.first_name,
            account.last_name,
            account.plan,
            account.login.auth_hash,
            account.login.kdf_salt,
            account.login.kdf_params,
            account.public_key,
            account.login.wrapped_private_key,
            account.recovery_wrapped_private_key,
            account.marketing_consent,
            now(),
            account.recovery_proof_hash,
        ],
        |row| row.get(0),
    )
}

pub fn by_email(conn: &Conn, email: &str) -> Result<Option<AccountRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE email = ?1");
    conn.query_row(&sql, params![email], from_row).optional()
}

pub fn by_id(conn: &Conn, id: i64) -> Result<Option<AccountRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM accounts WHERE id = ?1");
    conn.query_row(&sql, params![id], from_row).optional()
}

pub fn list(conn: &Conn) -> Result<Vec<AccountRow>, DbError> {
    let sql = format!("SELECT {COLUMNS} FROM accounts ORDER BY id");
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params![], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Distinct bytes stored in all libraries the account owns: what its quota is charged.
pub fn used_bytes(conn: &Conn, account_id: i64) -> Result<u64, DbError> {
    let used: i64 = conn.query_row(
        "SELECT CAST(COALESCE(SUM(stored_bytes), 0) AS BIGINT) FROM libraries WHERE owner_id = ?1",
        params![account_id],
        |row| row.get(0),
    )?;
    Ok(used.max(0) as u64)
}

/// Sets (or with `None` clears) an administrator's quota override. False if no such e-mail.
pub fn set_quota_override(conn: &Conn, email: &str, bytes: Option<u64>) -> Result<bool, DbError> {
    let changed = conn.execute(
        "UPDATE accounts SET quota_override = ?2 WHERE email = ?1",
        params![email, bytes.map(|b| b.min(i64::MAX as u64) as i64)],
    )?;
    Ok(changed == 1)
}

pub struct Profile<'a> {
    pub first_name: &'a str,
    pub last_name: &'a str,
    pub email: &'a str,
}

/// Sets the names and the address; a changed address is unconfirmed again.
pub fn update_profile(conn: &Conn, id: i64, profile: &Profile<'_>) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET first_name = ?2, last_name = ?3, \
         email_confirmed_at = CASE WHEN email = ?4 THEN email_confirmed_at END, email = ?4 \
         WHERE id = ?1",
        params![id, profile.first_name, profile.last_name, profile.email],
    )?;
    Ok(())
}

pub fn set_email_confirmed(conn: &Conn, id: i64, at: Option<i64>) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET email_confirmed_at = ?2 WHERE id = ?1",
        params![id, at],
    )?;
    Ok(())
}

/// Sets marketing consent and records the change with where it was made.
pub fn set_consent(conn: &Conn, id: i64, marketing: bool, source: &str) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET marketing_consent = ?2 WHERE id = ?1",
        params![id, marketing],
    )?;
    conn.execute(
        "INSERT INTO consent_events (account_id, at, marketing, source) VALUES (?1, ?2, ?3, ?4)",
        params![id, now(), marketing, source],
    )?;
    Ok(())
}

pub struct NewLogin<'a> {
    pub auth_hash: &'a str,
    pub kdf_salt: &'a [u8],
    pub kdf_params: &'a str,
    pub wrapped_private_key: &'a [u8],
}

pub fn set_login(conn: &Conn, id: i64, login: &NewLogin<'_>) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET auth_hash = ?2, kdf_salt = ?3, kdf_params = ?4, \
         wrapped_private_key = ?5 WHERE id = ?1",
        params![
            id,
            login.auth_hash,
            login.kdf_salt,
            login.kdf_params,
            login.wrapped_private_key
        ],
    )?;
    Ok(())
}

pub fn set_public_key(conn: &Conn, id: i64, public_key: &[u8]) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET public_key = ?2 WHERE id = ?1",
        params![id, public_key],
    )?;
    Ok(())
}

/// The SHA-256 of the account's recovery proof, if it registered one.
pub fn recovery_proof_hash(conn: &Conn, id: i64) -> Result<Option<Vec<u8>>, DbError> {
    conn.query_row(
        "SELECT recovery_proof_hash FROM accounts WHERE id = ?1",
        params![id],
        |row| row.get(0),
    )
}

/// A new recovery key: the private key wrapped under it, and its proof's hash.
pub fn set_recovery(
    conn: &Conn,
    id: i64,
    wrapped_private_key: &[u8],
    proof_hash: &[u8],
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET recovery_wrapped_private_key = ?2, recovery_proof_hash = ?3 \
         WHERE id = ?1",
        params![id, wrapped_private_key, proof_hash],
    )?;
    Ok(())
}

pub fn recovery_wrapped_key(conn: &Conn, id: i64) -> Result<Vec<u8>, DbError> {
    conn.query_row(
        "SELECT recovery_wrapped_private_key FROM accounts WHERE id = ?1",
        params![id],
        |row| row.get(0),
    )
}

pub fn set_plan(conn: &Conn, id: i64, plan: &str, period_end: Option<i64>) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET plan = ?2, period_end = ?3, quota_warned = 0 WHERE id = ?1",
        params![id, plan, period_end],
    )?;
    Ok(())
}

pub fn set_status(
    conn: &Conn,
    id: i64,
    status: &str,
    canceled_at: Option<i64>,
) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET status = ?2, canceled_at = ?3 WHERE id = ?1",
        params![id, status, canceled_at],
    )?;
    Ok(())
}

pub fn set_quota_warned(conn: &Conn, id: i64, warned: bool) -> Result<(), DbError> {
    conn.execute(
        "UPDATE accounts SET quota_warned = ?2 WHERE id = ?1",
        params![id, warned],
    )?;
    Ok(())
}

/// Accounts that agreed to marketing e-mail and are not closed.
pub fn consenting(conn: &Conn) -> Result<Vec<AccountRow>, DbError> {
    let sql = format!(
        "SELECT {COLUMNS} FROM accounts WHERE marketing_consent = 1 AND status != 'expired' \
         AND email_confirmed_at IS NOT NULL ORDER BY id"
    );
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(params![], from_row)?
        .collect::<Result<_, _>>()?;
    Ok(rows)
}

/// Removes the account row; sessions, cards, consent and plan history go with it (cascade),
/// invoices and feedback lose their link to it, and the holds its mounts set go too.
pub fn delete(conn: &Conn, id: i64) -> Result<(), DbError> {
    conn.execute("DELETE FROM holds WHERE account_id = ?1", params![id])?;
    conn.execute("DELETE FROM accounts WHERE id = ?1", params![id])?;
    Ok(())
}

/// Whether the account's subscription allows changes (not canceled or expired).
pub fn is_active(conn: &Conn, id: i64) -> Result<bool, DbError> {
    let status: Option<String> = conn
        .query_row(
            "SELECT status FROM accounts WHERE id = ?1",
            params![id],
            |row| row.get(0),
        )
        .optional()?;
    Ok(status.as_deref() == Some("active"))
}
