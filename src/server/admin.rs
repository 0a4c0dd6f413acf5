//! `ibackup-server admin`: operator commands that work on a data directory directly.

use std::path::Path;

use super::db::accounts;
use super::plans;
use crate::units::{format_size, parse_size};

/// One line per account: e-mail, name, plan, quota, usage.
pub fn user_list(data_dir: &Path) -> anyhow::Result<String> {
    let (database, _) = super::open_data_dir(data_dir)?;
    database.blocking(|conn| {
        let mut out = format!(
            "{:<32} {:<24} {:<10} {:>12} {:>12}\n",
            "E-MAIL", "NAME", "PLAN", "QUOTA", "USED"
        );
        for account in accounts::list(conn)? {
            let quota = plans::quota_for(&account.plan, account.quota_override);
            let used = accounts::used_bytes(conn, account.id)?;
            let marker = if account.quota_override.is_some() {
                "*"
            } else {
                ""
            };
            out.push_str(&format!(
                "{:<32} {:<24} {:<10} {:>12} {:>12}\n",
                account.email,
                format!("{} {}", account.first_name, account.last_name),
                account.plan,
                format!("{}{marker}", format_size(quota)),
                format_size(used)
            ));
        }
        Ok(out)
    })
}

/// Sets an account's quota to `size` (e.g. `10GiB`), or back to its plan's with `plan`.
pub fn set_quota(data_dir: &Path, email: &str, size: &str) -> anyhow::Result<String> {
    let bytes = if size == "plan" {
        None
    } else {
        Some(parse_size(size).map_err(anyhow::Error::msg)?)
    };
    let (database, _) = super::open_data_dir(data_dir)?;
    let email = email.trim().to_lowercase();
    let changed = database.blocking(|conn| accounts::set_quota_override(conn, &email, bytes))?;
    if !changed {
        anyhow::bail!(
            "no account has the e-mail {email}; `ibackup-server admin user list` shows them"
        );
    }
    Ok(match bytes {
        Some(bytes) => format!("quota of {email} set to {}", format_size(bytes)),
        None => format!("quota of {email} follows its plan again"),
    })
}
