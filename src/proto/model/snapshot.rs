//! A snapshot: a root tree at a point in time, with its parent and what made it.

use serde::{Deserialize, Serialize};

use super::{codec, ModelError};
use crate::crypto::{ObjectId, ObjectKey};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotKind {
    Backup,
    WriteBack,
    Merge,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotSummary {
    pub files: u64,
    pub dirs: u64,
    pub bytes: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Snapshot {
    /// The key of the root tree.
    pub tree: ObjectKey,
    pub parent: Option<ObjectId>,
    /// Nanoseconds since the Unix epoch.
    pub time_ns: i64,
    pub host: String,
    pub username: String,
    /// The account that committed it (its e-mail), for shared libraries.
    #[serde(default)]
    pub author: String,
    /// The source paths of this backup, as the user gave them (lossy UTF-8 for display).
    pub paths: Vec<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    pub kind: SnapshotKind,
    pub summary: SnapshotSummary,
    /// The parent's generation plus one (1 for a first snapshot), so a client can tell an
    /// older head from a newer one without trusting the server (`client::seen`). Absent
    /// (0) in snapshots written before it existed.
    #[serde(default)]
    pub generation: u64,
}

impl Snapshot {
    /// The generation of a snapshot whose parent is `parent`.
    pub fn next_generation(parent: Option<&Snapshot>) -> u64 {
        parent.map_or(0, |p| p.generation) + 1
    }

    pub fn encode(&self) -> Vec<u8> {
        codec::encode(self)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, ModelError> {
        codec::decode(bytes)
    }

    /// The snapshot's time as ISO-8601 UTC to the second, e.g. `2026-11-29T02:45:00Z`.
    pub fn time_text(&self) -> String {
        format_time_ns(self.time_ns)
    }
}

pub fn format_time_ns(time_ns: i64) -> String {
    let secs = time_ns.div_euclid(1_000_000_000).max(0) as u64;
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_time_format() {
        let snapshot = Snapshot {
            tree: ObjectKey::from_bytes([3; 32]),
            parent: None,
            time_ns: 1_795_920_300_000_000_000,
            host: "laptop".into(),
            username: "alice".into(),
            author: "alice@example.com".into(),
            paths: vec!["/home/alice".into()],
            tags: vec![],
            kind: SnapshotKind::Backup,
            summary: SnapshotSummary {
                files: 1,
                dirs: 2,
                bytes: 3,
            },
            generation: 7,
        };
        assert_eq!(Snapshot::decode(&snapshot.encode()).unwrap(), snapshot);
        assert_eq!(Snapshot::next_generation(Some(&snapshot)), 8);
        assert_eq!(Snapshot::next_generation(None), 1);
        assert_eq!(snapshot.time_text(), "2026-11-29T02:45:00Z");
    }
}
