//! One mount process per library at a time on this computer. Mounts of one account share
//! its write-back journal; two processes showing the same library would both upload its
//! journaled changes (twice, or each over the other's). Each mount holds a lock per
//! library it shows (`writeback/locks/LIBRARY_ID`, `flock`, given back when the process
//! ends, however it ends), so a second mount of a library waits for the first to finish
//! uploading after its unmount, or is refused; mounts of different libraries run side by
//! side (a `--library` mount each, as fstests' test and scratch mounts are).

use std::collections::HashMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::Mutex;

use rustix::fs::{flock, FlockOperation};

pub struct Locks {
    dir: PathBuf,
    held: Mutex<HashMap<String, File>>,
}

impl Locks {
    pub fn new(dir: PathBuf) -> Self {
        Self {
            dir,
            held: Mutex::new(HashMap::new()),
        }
    }

    /// Whether this process holds `library`'s lock now (taking it if nobody else does).
    pub fn take(&self, library: &str) -> bool {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        if held.contains_key(library) {
            return true;
        }
        if crate::fsutil::create_private_dir(&self.dir).is_err() {
            return false;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(self.dir.join(library));
        let Ok(file) = file else {
            return false;
        };
        if flock(&file, FlockOperation::NonBlockingLockExclusive).is_err() {
            return false;
        }
        held.insert(library.to_owned(), file);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_library_is_held_by_one_holder_until_it_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let first = Locks::new(dir.path().join("locks"));
        let second = Locks::new(dir.path().join("locks"));
        assert!(first.take("aa"));
        assert!(first.take("aa"), "taken again by its holder");
        assert!(!second.take("aa"), "held elsewhere");
        assert!(second.take("bb"), "another library is free");
        drop(first);
        assert!(second.take("aa"), "free once its holder is gone");
    }
}
