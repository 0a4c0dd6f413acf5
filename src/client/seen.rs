//! The newest state of each library this computer has seen, so a server that shows an older
//! one is refused instead of believed.
//!
//! Every snapshot carries a generation inside its encrypted body: its parent's plus one.
//! The server cannot change it without the library key, and it cannot invent a snapshot.
//! What it can do is serve an old head (a rollback: the next write would then build on it
//! and older data would win) or a different branch. So the client remembers, per server
//! and library, the highest generation and the head it had, and refuses a head of a lower
//! generation, or another head at the same generation, loudly. Heads of generation 0 were
//! written before generations existed and are only remembered, not compared.
//!
//! A head of a higher generation must descend from the one seen: otherwise a server could
//! set the head back (dropping a commit) and let other writers build past it. The store
//! walks the new head's parents back to the seen generation and requires the seen head on
//! that path ([`Store::checked_head`](super::store::Store::checked_head)). The walk is
//! bounded ([`DESCENT_WALK`] snapshots); past the bound, or where a parent was forgotten
//! (retention removes snapshots), it cannot tell and takes the head with a warning in the
//! log, as it took every higher head before.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::config::{read_json, write_json, Paths};
use super::{ClientError, Result};
use crate::crypto::ObjectId;

/// How many parents a new head's descent from the seen one is followed back.
pub const DESCENT_WALK: usize = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Seen {
    generation: u64,
    head: ObjectId,
}

#[derive(Default, Serialize, Deserialize)]
struct SeenFile {
    /// Server URL → library id → the newest head seen.
    servers: BTreeMap<String, BTreeMap<String, Seen>>,
}

/// The seen heads of one server, for one computer (the file is shared by every `ibackup`
/// process of the user; a lock file keeps their updates apart).
#[derive(Clone, Debug)]
pub struct SeenHeads {
    dir: PathBuf,
    file: PathBuf,
    server: String,
}

impl SeenHeads {
    pub fn new(paths: &Paths, server: &str) -> Self {
        Self {
            dir: paths.config_dir.clone(),
            file: paths.seen_heads(),
            server: server.to_owned(),
        }
    }

    /// Checks `head` (of `generation`) of library `library` (`name` in messages) against
    /// the newest this computer has seen, and remembers it if it is newer.
    pub fn check(&self, library: &str, name: &str, head: ObjectId, generation: u64) -> Result<()> {
        let _lock = self.lock()?;
        let mut file: SeenFile = read_json(&self.file)?.unwrap_or_default();
        let seen = file.servers.get(&self.server).and_then(|l| l.get(library));
        if let Some(seen) = seen {
            let older = generation < seen.generation;
            let forked = generation == seen.generation && generation > 0 && head != seen.head;
            if older || forked {
                return Err(refused(
                    name,
                    if older { "OLDER" } else { "ALTERED" },
                    head,
                    generation,
                    seen.head,
                    seen.generation,
                ));
            }
            if generation == seen.generation {
                return Ok(());
            }
        }
        file.servers
            .entry(self.server.clone())
            .or_default()
            .insert(library.to_owned(), Seen { generation, head });
        write_json(&self.dir, &self.file, &file)
    }

    /// The newest head seen of `library`, with its generation.
    pub fn newest(&self, library: &str) -> Result<Option<(ObjectId, u64)>> {
        let _lock = self.lock()?;
        let file: SeenFile = read_json(&self.file)?.unwrap_or_default();
        Ok(file
            .servers
            .get(&self.server)
            .and_then(|l| l.get(library))
            .map(|seen| (seen.head, seen.generation)))
    }

    /// Whether `head` is the newest head this computer has seen of `library` (checked
    /// already, so it needs no check again).
    pub fn is_newest(&self, library: &str, head: ObjectId) -> Result<bool> {
        Ok(self.newest(library)?.is_some_and(|(seen, _)| seen == head))
    }

    /// Forgets what was seen of `library`, so the server's current head is taken as it is.
    pub fn forget(&self, library: &str) -> Result<bool> {
        let _lock = self.lock()?;
        let mut file: SeenFile = read_json(&self.file)?.unwrap_or_default();
        let forgotten = file
            .servers
            .get_mut(&self.server)
            .and_then(|l| l.remove(library))
            .is_some();
        write_json(&self.dir, &self.file, &file)?;
        Ok(forgotten)
    }

    /// An exclusive lock on `seen_heads.lock`, held until dropped.
    fn lock(&self) -> Result<std::fs::File> {
        let path = self.file.with_extension("lock");
        crate::fsutil::create_private_dir(&self.dir).map_err(ClientError::io(&self.dir))?;
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(ClientError::io(&path))?;
        // Released when the file is closed.
        rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| ClientError::io(&path)(e.into()))?;
        Ok(file)
    }
}

/// The error for a head that is not the newest this computer saw, nor built on it.
pub fn refused(
    name: &str,
    how: &str,
    head: ObjectId,
    generation: u64,
    seen: ObjectId,
    seen_generation: u64,
) -> ClientError {
    ClientError::State(format!(
        "THE SERVER IS SHOWING AN {how} STATE OF LIBRARY `{name}`.\n\
         Its head is snapshot {} of generation {generation}, but this computer has seen \
         snapshot {} of generation {seen_generation}{}.\n\
         The server may have been restored from an old backup, or it is hiding newer \
         snapshots from you. Nothing was read or changed.\n\
         Ask whoever runs the server. If you accept losing what is newer, run `ibackup \
         library accept-rollback {name}`.",
        head.short(),
        seen.short(),
        if how == "ALTERED" && generation > seen_generation {
            ", which the new head does not build on"
        } else {
            ""
        }
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> ObjectId {
        ObjectId::from_bytes([n; 32])
    }

    #[test]
    fn older_or_other_heads_are_refused_newer_ones_remembered() {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            config_dir: dir.path().join("config"),
            cache_dir: dir.path().join("cache"),
        };
        let seen = SeenHeads::new(&paths, "https://server");
        seen.check("lib", "Backups", id(1), 3).unwrap();
        seen.check("lib", "Backups", id(1), 3).unwrap();
        seen.check("lib", "Backups", id(2), 4).unwrap();
        assert!(seen.is_newest("lib", id(2)).unwrap());
        assert!(!seen.is_newest("lib", id(1)).unwrap());
        let older = seen.check("lib", "Backups", id(1), 3).unwrap_err();
        assert!(older.to_string().contains("OLDER STATE"), "{older}");
        let other = seen.check("lib", "Backups", id(3), 4).unwrap_err();
        assert!(other.to_string().contains("ALTERED"), "{other}");
        // Another server, or another library, is another history.
        SeenHeads::new(&paths, "https://other")
            .check("lib", "B", id(1), 1)
            .unwrap();
        seen.check("lib2", "Photos", id(1), 1).unwrap();
        // Heads from before generations are not compared.
        seen.check("old", "Old", id(1), 0).unwrap();
        seen.check("old", "Old", id(2), 0).unwrap();
        assert!(seen.forget("lib").unwrap());
        seen.check("lib", "Backups", id(1), 3).unwrap();
    }
}
