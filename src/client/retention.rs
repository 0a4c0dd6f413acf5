//! `ibackup library policy` and `ibackup forget`: a library's retention policy, which
//! snapshots it keeps and why, and forgetting snapshots by hand. The server applies the same
//! policy with the same code (`model::retention`) on its schedule; what forgetting frees is
//! collected there.

use serde::Serialize;

use super::repo::Repo;
use super::session::{OpenLibrary, Session};
use super::snapshots::{self, SnapshotView};
use super::store::Store;
use super::{ClientError, Result};
use crate::api::routes;
use crate::api::types::{ForgetRequest, ForgetResponse};
use crate::model::retention::{decide, Candidate, Policy};

/// Changes to a policy; `None` leaves a rule as it is.
#[derive(Default)]
pub struct PolicyChange {
    pub keep_last: Option<u32>,
    pub keep_within: Option<std::time::Duration>,
    pub keep_hourly: Option<u32>,
    pub keep_daily: Option<u32>,
    pub keep_weekly: Option<u32>,
    pub keep_monthly: Option<u32>,
    pub keep_yearly: Option<u32>,
    /// Tags whose snapshots are always kept (replacing the list, when given).
    pub keep_tags: Option<Vec<String>>,
}

impl PolicyChange {
    pub fn is_empty(&self) -> bool {
        self.keep_last.is_none()
            && self.keep_within.is_none()
            && self.keep_hourly.is_none()
            && self.keep_daily.is_none()
            && self.keep_weekly.is_none()
            && self.keep_monthly.is_none()
            && self.keep_yearly.is_none()
            && self.keep_tags.is_none()
    }
}

/// A policy as a person reads it (tags by name where this computer can tell them).
#[derive(Debug, Serialize)]
pub struct PolicyView {
    pub library: String,
    pub keep_last: u32,
    pub keep_within: Option<String>,
    pub keep_hourly: u32,
    pub keep_daily: u32,
    pub keep_weekly: u32,
    pub keep_monthly: u32,
    pub keep_yearly: u32,
    pub keep_tags: Vec<String>,
}

fn policy_path(library: &OpenLibrary) -> String {
    routes::library(routes::LIBRARY_POLICY, &library.info.id)
}

fn view(library: &OpenLibrary, policy: &Policy, tags: &[String]) -> PolicyView {
    let name_of = |mac: &String| {
        tags.iter()
            .find(|t| library.keys.tag_mac(t) == *mac)
            .cloned()
            .unwrap_or_else(|| format!("(a tag hashed {})", &mac[..8]))
    };
    PolicyView {
        library: library.display(),
        keep_last: policy.keep_last,
        keep_within: (policy.keep_within_secs > 0).then(|| {
            humantime::format_duration(std::time::Duration::from_secs(policy.keep_within_secs))
                .to_string()
        }),
        keep_hourly: policy.keep_hourly,
        keep_daily: policy.keep_daily,
        keep_weekly: policy.keep_weekly,
        keep_monthly: policy.keep_monthly,
        keep_yearly: policy.keep_yearly,
        keep_tags: policy.keep_tags.iter().map(name_of).collect(),
    }
}

/// Shows the policy of library `name`, changed first by `change` if it changes anything.
pub fn policy(session: &Session, name: &str, change: PolicyChange) -> Result<PolicyView> {
    let library = session.open_library(name)?;
    let mut policy: Policy = session.remote.get(&policy_path(&library))?;
    let mut tags: Vec<String> = Vec::new();
    if !change.is_empty() {
        if !library.info.permission.can_write() {
            return Err(ClientError::Usage(format!(
                "`{name}` was shared with you read-only; its owner sets its policy"
            )));
        }
        let set = |slot: &mut u32, value: Option<u32>| {
            if let Some(value) = value {
                *slot = value;
            }
        };
        set(&mut policy.keep_last, change.keep_last);
        set(&mut policy.keep_hourly, change.keep_hourly);
        set(&mut policy.keep_daily, change.keep_daily);
        set(&mut policy.keep_weekly, change.keep_weekly);
        set(&mut policy.keep_monthly, change.keep_monthly);
        set(&mut policy.keep_yearly, change.keep_yearly);
        if let Some(within) = change.keep_within {
            policy.keep_within_secs = within.as_secs();
        }
        if let Some(keep_tags) = change.keep_tags {
            policy.keep_tags = keep_tags.iter().map(|t| library.keys.tag_mac(t)).collect();
            tags = keep_tags;
        }
        policy = session.remote.put(&policy_path(&library), &policy)?;
    } else {
        let store = Store::new(&session.remote, &library);
        tags = snapshots::list(&store)?
            .into_iter()
            .flat_map(|s| s.tags)
            .collect();
    }
    Ok(view(&library, &policy, &tags))
}

/// One snapshot and what retention makes of it.
#[derive(Debug, Serialize)]
pub struct Decision {
    pub id: String,
    pub time: String,
    pub author: String,
    pub kind: crate::model::SnapshotKind,
    pub keep: bool,
    /// The rules that keep it (`last`, `hourly`, ..., `tag`, `head`); none when it goes.
    pub reasons: Vec<String>,
}

/// What the library's policy keeps and drops now, oldest first.
pub fn plan(
    session: &Session,
    library: &OpenLibrary,
) -> Result<(Policy, Vec<(SnapshotView, Decision)>)> {
    let policy: Policy = session.remote.get(&policy_path(library))?;
    let store = Store::new(&session.remote, library);
    let list = snapshots::list(&store)?;
    let candidates: Vec<Candidate> = list
        .iter()
        .map(|s| Candidate {
            time_ns: s.time_ns,
            head: s.latest,
            kept_tag: s
                .tags
                .iter()
                .any(|t| policy.keep_tags.contains(&library.keys.tag_mac(t))),
        })
        .collect();
    let decisions = decide(&policy, &candidates);
    Ok((
        policy,
        list.into_iter()
            .zip(decisions)
            .map(|(s, reasons)| {
                let decision = Decision {
                    id: s.short_id.clone(),
                    time: s.time.clone(),
                    author: s.author.clone(),
                    kind: s.kind,
                    keep: !reasons.is_empty(),
                    reasons,
                };
                (s, decision)
            })
            .collect(),
    ))
}

#[derive(Debug, Serialize)]
pub struct Forgotten {
    pub library: String,
    pub dry_run: bool,
    pub forgotten: u64,
    /// With the policy (no snapshots named): every snapshot and why it stays or goes.
    pub decisions: Vec<Decision>,
}

/// Forgets the snapshots `specs` name (ids or unique prefixes), or with none named, those
/// the library's policy no longer keeps. `dry_run` only says what would go.
pub fn forget(session: &Session, name: &str, specs: &[String], dry_run: bool) -> Result<Forgotten> {
    let library = session.open_library(name)?;
    if !library.info.permission.can_write() && !dry_run {
        return Err(ClientError::Usage(format!(
            "`{name}` was shared with you read-only; you cannot forget its snapshots"
        )));
    }
    let store = Store::new(&session.remote, &library);
    let (ids, decisions) = if specs.is_empty() {
        let (_, planned) = plan(session, &library)?;
        let ids = planned
            .iter()
            .filter(|(_, d)| !d.keep)
            .map(|(s, _)| s.id)
            .collect();
        (ids, planned.into_iter().map(|(_, d)| d).collect())
    } else {
        let head = store.head()?;
        let mut ids = Vec::new();
        for spec in specs {
            if spec.trim() == "latest" {
                return Err(ClientError::Usage(
                    "the latest snapshot is the library's current state and cannot be forgotten"
                        .into(),
                ));
            }
            let (id, _) = snapshots::resolve(&store, spec)?;
            if Some(id) == head {
                return Err(ClientError::Usage(format!(
                    "snapshot {} is the library's current state and cannot be forgotten",
                    id.short()
                )));
            }
            ids.push(id);
        }
        (ids, Vec::new())
    };
    let forgotten = if dry_run || ids.is_empty() {
        0
    } else {
        let path = routes::library(routes::LIBRARY_FORGET, &library.info.id);
        session
            .remote
            .post::<_, ForgetResponse>(&path, &ForgetRequest { ids: ids.clone() }, false)?
            .forgotten
    };
    Ok(Forgotten {
        library: library.display(),
        dry_run,
        forgotten: if dry_run { ids.len() as u64 } else { forgotten },
        decisions,
    })
}
