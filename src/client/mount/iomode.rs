//! Which open files of an inode the kernel passes through to their stage file, mirroring
//! the kernel's rule (`fs/fuse/iomode.c`): while one open of an inode is passed through,
//! every open of it must be, with the same backing file; while one is cached (served
//! through the mount), none may be passed through. Getting this wrong fails the caller's
//! `open` with EIO, so the mount keeps the same books.
//!
//! The kernel ends an open before its release reaches the mount, so these books may show
//! an open the kernel already ended, never the reverse; both rules stay safe that way.

use std::collections::HashMap;

/// How the kernel is to serve a new open.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice<'a, B> {
    /// Through the mount (the page cache and read/write requests).
    Cached,
    /// Passed through to this backing file, already registered for the inode.
    Reuse(&'a B),
    /// Passed through to a backing file to register now.
    New,
    /// Passed-through opens exist but this one cannot be passed through.
    Busy,
}

#[derive(Debug)]
enum Mode {
    Cached,
    Backed,
}

#[derive(Debug)]
pub struct IoModes<B> {
    cached: HashMap<u64, usize>,
    backed: HashMap<u64, (B, usize)>,
    handles: HashMap<u64, (u64, Mode)>,
}

impl<B> Default for IoModes<B> {
    fn default() -> Self {
        IoModes {
            cached: HashMap::new(),
            backed: HashMap::new(),
            handles: HashMap::new(),
        }
    }
}

impl<B> IoModes<B> {
    /// How to serve an open of `ino`; `can_pass`: this open has a stage file and
    /// passthrough is on.
    pub fn choose(&self, ino: u64, can_pass: bool) -> Choice<'_, B> {
        match (self.backed.get(&ino), can_pass) {
            (Some((backing, _)), true) => Choice::Reuse(backing),
            (Some(_), false) => Choice::Busy,
            (None, _) if self.cached.get(&ino).is_some_and(|n| *n > 0) => Choice::Cached,
            (None, true) => Choice::New,
            (None, false) => Choice::Cached,
        }
    }

    /// Handle `fh` of `ino` was opened through the mount.
    pub fn opened_cached(&mut self, ino: u64, fh: u64) {
        *self.cached.entry(ino).or_default() += 1;
        self.handles.insert(fh, (ino, Mode::Cached));
    }

    /// Handle `fh` of `ino` was passed through: to `new`, just registered, or else to the
    /// backing file the inode already has.
    pub fn opened_backed(&mut self, ino: u64, fh: u64, new: Option<B>) {
        match (self.backed.get_mut(&ino), new) {
            (Some((_, opens)), _) => *opens += 1,
            (None, Some(backing)) => {
                self.backed.insert(ino, (backing, 1));
            }
            (None, None) => return,
        }
        self.handles.insert(fh, (ino, Mode::Backed));
    }

    /// The backing file registered for `ino`, if any.
    pub fn backing(&self, ino: u64) -> Option<&B> {
        self.backed.get(&ino).map(|(backing, _)| backing)
    }

    /// Handle `fh` was released; returns the inode's backing file once its last
    /// passed-through open is gone (dropping it unregisters it).
    pub fn released(&mut self, fh: u64) -> Option<B> {
        let (ino, mode) = self.handles.remove(&fh)?;
        match mode {
            Mode::Cached => {
                if let Some(n) = self.cached.get_mut(&ino) {
                    *n -= 1;
                    if *n == 0 {
                        self.cached.remove(&ino);
                    }
                }
                None
            }
            Mode::Backed => {
                let (_, opens) = self.backed.get_mut(&ino)?;
                *opens -= 1;
                if *opens > 0 {
                    return None;
                }
                self.backed.remove(&ino).map(|(backing, _)| backing)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_inode_is_either_passed_through_or_cached_until_its_last_open_ends() {
        let mut modes: IoModes<&str> = IoModes::default();
        assert_eq!(modes.choose(7, true), Choice::New);
        modes.opened_backed(7, 1, Some("stage"));
        // Further opens reuse the backing file; one that cannot be passed through waits.
        assert_eq!(modes.choose(7, true), Choice::Reuse(&"stage"));
        assert_eq!(modes.choose(7, false), Choice::Busy);
        modes.opened_backed(7, 2, None);
        assert_eq!(modes.released(1), None);
        assert_eq!(modes.released(2), Some("stage"));
        assert_eq!(modes.backing(7), None);

        // A cached open keeps later ones cached, even those that could pass through.
        modes.opened_cached(7, 3);
        assert_eq!(modes.choose(7, true), Choice::Cached);
        assert_eq!(
            modes.choose(8, true),
            Choice::New,
            "other inodes are not affected"
        );
        assert_eq!(modes.released(3), None);
        assert_eq!(modes.choose(7, true), Choice::New);
        assert_eq!(modes.choose(7, false), Choice::Cached);
        assert_eq!(modes.released(99), None, "unknown handles are ignored");
    }
}
