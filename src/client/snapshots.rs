//! Listing a library's snapshots and resolving what a user typed (`latest`, an id or a
//! unique prefix of one) to a snapshot.

use serde::Serialize;

use super::repo::Repo;
use super::store::Store;
use super::{ClientError, Result};
use crate::crypto::ObjectId;
use crate::model::{Snapshot, SnapshotSummary};

#[derive(Debug, Serialize)]
pub struct SnapshotView {
    pub id: ObjectId,
    pub short_id: String,
    pub time: String,
    pub time_ns: i64,
    pub parent: Option<ObjectId>,
    /// The id of the root tree (never its key).
    pub tree: ObjectId,
    pub host: String,
    pub username: String,
    /// Who committed it (the account's e-mail).
    pub author: String,
    pub paths: Vec<String>,
    pub tags: Vec<String>,
    pub kind: crate::model::SnapshotKind,
    pub summary: SnapshotSummary,
    /// Whether this is the library's head.
    pub latest: bool,
}

/// Every committed snapshot of the library, oldest first.
pub fn list(store: &Store<'_>) -> Result<Vec<SnapshotView>> {
    let records = store.snapshots()?;
    let head = store.head()?;
    let ids: Vec<ObjectId> = records.iter().map(|r| r.id).collect();
    let snapshots = store.load_snapshots(&ids)?;
    Ok(ids
        .into_iter()
        .zip(snapshots)
        .map(|(id, s)| SnapshotView {
            short_id: id.short(),
            time: s.time_text(),
            time_ns: s.time_ns,
            parent: s.parent,
            tree: s.tree.id(),
            host: s.host,
            username: s.username,
            author: s.author,
            paths: s.paths,
            tags: s.tags,
            kind: s.kind,
            summary: s.summary,
            latest: Some(id) == head,
            id,
        })
        .collect())
}

/// Resolves `latest` (the head), a full id, or a unique id prefix.
pub fn resolve(store: &Store<'_>, spec: &str) -> Result<(ObjectId, Snapshot)> {
    let spec = spec.trim().to_lowercase();
    let id = if spec == "latest" {
        store.head()?.ok_or_else(|| {
            ClientError::Usage("the library has no snapshots yet; run `ibackup backup PATH`".into())
        })?
    } else {
        if spec.is_empty() || !spec.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(ClientError::Usage(format!(
                "`{spec}` is not a snapshot: give `latest`, an id or an id prefix \
                 (`ibackup snapshots` lists them)"
            )));
        }
        let matches: Vec<ObjectId> = store
            .snapshots()?
            .into_iter()
            .map(|r| r.id)
            .filter(|id| id.to_hex().starts_with(&spec))
            .collect();
        match matches.as_slice() {
            [one] => *one,
            [] => {
                return Err(ClientError::Usage(format!(
                    "no snapshot id starts with `{spec}`; `ibackup snapshots` lists them"
                )))
            }
            many => {
                let shown: Vec<String> = many.iter().map(|id| id.short()).collect();
                return Err(ClientError::Usage(format!(
                    "`{spec}` matches {} snapshots ({}); give more digits",
                    many.len(),
                    shown.join(", ")
                )));
            }
        }
    };
    Ok((id, store.load_snapshot(&id)?))
}
