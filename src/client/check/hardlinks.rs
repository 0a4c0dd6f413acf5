//! The hard links of each snapshot agree with themselves: every name of one file (the
//! entries sharing a nonzero `link`) holds the same contents and says how many names the
//! file has in the snapshot (docs/FORMAT.md, "Hard links"). A writer that removes or adds
//! a name without counting the others (a stale `nlink`) makes the mount show a wrong link
//! count and a restore join files that differ.

use std::collections::hash_map::DefaultHasher;
use std::collections::HashMap;
use std::hash::{Hash, Hasher};

use super::join;
use crate::crypto::ObjectKey;
use crate::model::{EntryKind, Tree};

/// What a tree holds that the count needs: its folders, and its names with a `link`.
#[derive(Default)]
struct Held {
    folders: Vec<(Vec<u8>, ObjectKey)>,
    /// (name, link, nlink, fingerprint of the contents).
    linked: Vec<(Vec<u8>, u64, u32, u64)>,
}

/// The trees of a library as a check reads them (each once), then each snapshot's groups.
#[derive(Default)]
pub struct LinkCounts {
    trees: HashMap<ObjectKey, Held>,
    /// Whether a tree or one below it has a linked name (filled as snapshots are counted).
    below: HashMap<ObjectKey, bool>,
}

/// One group of a snapshot whose names disagree: where one of them is, and how.
pub struct Disagreement {
    pub tree: ObjectKey,
    pub path: String,
    pub problem: String,
}

/// The names of one group met in a snapshot.
struct Group {
    names: u32,
    counts: Vec<u32>,
    contents: Vec<u64>,
    first: (ObjectKey, String),
}

impl LinkCounts {
    /// Notes tree `key`'s folders and linked names.
    pub fn record(&mut self, key: ObjectKey, tree: &Tree) {
        let mut held = Held::default();
        for entry in &tree.entries {
            match (entry.kind, entry.subtree) {
                (EntryKind::Dir, Some(sub)) => held.folders.push((entry.name.clone(), sub)),
                _ if entry.link != 0 => {
                    let mut contents = DefaultHasher::new();
                    entry.size.hash(&mut contents);
                    for chunk in &entry.chunks {
                        chunk.key.as_bytes().hash(&mut contents);
                    }
                    held.linked.push((
                        entry.name.clone(),
                        entry.link,
                        entry.nlink,
                        contents.finish(),
                    ));
                }
                _ => {}
            }
        }
        if !held.folders.is_empty() || !held.linked.is_empty() {
            self.trees.insert(key, held);
        }
    }

    fn has_links(&mut self, key: &ObjectKey) -> bool {
        if let Some(known) = self.below.get(key) {
            return *known;
        }
        let (linked, folders) = match self.trees.get(key) {
            Some(held) => (
                !held.linked.is_empty(),
                held.folders.iter().map(|(_, sub)| *sub).collect::<Vec<_>>(),
            ),
            None => (false, Vec::new()),
        };
        // Every folder is looked at, so each tree below gets its answer once.
        let mut any = linked;
        for sub in folders {
            any |= self.has_links(&sub);
        }
        self.below.insert(*key, any);
        any
    }

    /// The groups of the snapshot whose root tree is `root` whose names disagree.
    pub fn check_snapshot(&mut self, root: ObjectKey) -> Vec<Disagreement> {
        let mut groups: HashMap<u64, Group> = HashMap::new();
        let mut stack = vec![(root, String::new())];
        while let Some((key, path)) = stack.pop() {
            if !self.has_links(&key) {
                continue;
            }
            let Some(held) = self.trees.get(&key) else {
                continue;
            };
            for (name, sub) in &held.folders {
                stack.push((*sub, join(&path, name)));
            }
            for (name, link, nlink, contents) in &held.linked {
                let group = groups.entry(*link).or_insert_with(|| Group {
                    names: 0,
                    counts: Vec::new(),
                    contents: Vec::new(),
                    first: (key, join(&path, name)),
                });
                group.names += 1;
                group.counts.push((*nlink).max(1));
                group.contents.push(*contents);
            }
        }
        let mut out: Vec<Disagreement> = groups
            .into_values()
            .filter_map(|group| {
                let problem = if group.contents.iter().any(|c| *c != group.contents[0]) {
                    format!(
                        "the {} names of one hard-linked file hold different contents",
                        group.names
                    )
                } else if let Some(count) = group.counts.iter().find(|c| **c != group.names) {
                    format!(
                        "a hard-linked file has {} name{} in this snapshot, but its entries say {count}",
                        group.names,
                        if group.names == 1 { "" } else { "s" }
                    )
                } else {
                    return None;
                };
                Some(Disagreement {
                    tree: group.first.0,
                    path: group.first.1,
                    problem,
                })
            })
            .collect();
        out.sort_by(|a, b| a.path.cmp(&b.path));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChunkRef, Entry};

    fn file(name: &str, link: u64, nlink: u32, chunk: u8) -> Entry {
        let mut entry = Entry::new(name.as_bytes(), EntryKind::File);
        entry.size = 5;
        entry.chunks = vec![ChunkRef {
            key: ObjectKey::from_bytes([chunk; 32]),
            len: 5,
        }];
        (entry.link, entry.nlink) = (link, nlink);
        entry
    }

    fn dir(name: &str, sub: ObjectKey) -> Entry {
        let mut entry = Entry::new(name.as_bytes(), EntryKind::Dir);
        entry.subtree = Some(sub);
        entry
    }

    #[test]
    fn names_that_miscount_or_differ_are_found_and_agreeing_ones_pass() {
        let (sub, root) = (
            ObjectKey::from_bytes([1; 32]),
            ObjectKey::from_bytes([2; 32]),
        );
        let mut counts = LinkCounts::default();
        counts.record(sub, &Tree::new(vec![file("b", 7, 2, 9)]));
        counts.record(root, &Tree::new(vec![file("a", 7, 2, 9), dir("d", sub)]));
        assert!(counts.check_snapshot(root).is_empty());

        // One name removed without counting again: the other still says 2.
        let lone = ObjectKey::from_bytes([3; 32]);
        counts.record(lone, &Tree::new(vec![dir("d", sub)]));
        let found = counts.check_snapshot(lone);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].path, "/d/b");
        assert!(found[0]
            .problem
            .contains("has 1 name in this snapshot, but its entries say 2"));

        // A name whose contents are not the others'.
        let other = ObjectKey::from_bytes([4; 32]);
        counts.record(other, &Tree::new(vec![file("a", 7, 2, 8), dir("d", sub)]));
        let found = counts.check_snapshot(other);
        assert_eq!(found.len(), 1);
        assert!(
            found[0].problem.contains("different contents"),
            "{}",
            found[0].problem
        );

        // A lone linked name that says 1 is what a writer that settled leaves: fine.
        let settled = ObjectKey::from_bytes([5; 32]);
        counts.record(settled, &Tree::new(vec![file("a", 7, 0, 9)]));
        assert!(counts.check_snapshot(settled).is_empty());
    }
}
