//! Replaying journaled operations onto a library's tree as the server has it now, to make
//! the next snapshot. Directories load on demand; untouched subtrees keep their ids.
//!
//! Merging: an operation whose target moved or vanished is skipped, a write into a removed
//! directory recreates it, and a file changed both here and elsewhere keeps both versions,
//! the local one as `NAME (conflict EMAIL HOST YYYY-MM-DD HHMM)`, naming who made it.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::crypto::ObjectKey;
use crate::model::{ChunkRef, Entry, EntryKind, Tree};
use crate::mount::journal::{join_path, Op};
use crate::mount::vfs::nodes::content_sig;
use crate::repo::trees::TreeWriter;
use crate::Result;

enum Item {
    /// Unchanged: a file, symlink, or a directory not loaded.
    Clean(Entry),
    Dir(EditDir),
}

struct EditDir {
    meta: Entry,
    items: BTreeMap<Vec<u8>, Item>,
}

pub struct EditTree {
    root: EditDir,
    /// Paths written by this replay (so our own earlier writes are not conflicts).
    written: HashSet<Vec<u8>>,
    /// The tree replayed onto is the one the local operations were made on (or one this
    /// mount committed on it): nobody else changed anything, so nothing can conflict.
    alone: bool,
    conflict_suffix: String,
    pub conflicts: Vec<String>,
    /// Hard-link groups the replay changed: the entry every name of the group takes (`None`
    /// when only names came or went, so only the count changes).
    hardlinks: HashMap<u64, Option<Entry>>,
    /// Groups with a name linked to a file whose write has not come yet in this replay: the
    /// file counts as one more name, and the others keep the group's id for when it comes.
    awaiting: HashSet<u64>,
}

fn dir_entry(name: &[u8], mode: u32, uid: u32, gid: u32, mtime_ns: i64) -> Entry {
    Entry {
        mode,
        uid,
        gid,
        mtime_ns,
        ..Entry::new(name, EntryKind::Dir)
    }
}

/// Stored trees known to hold no hard-linked name at or below them. A tree never changes,
/// so what one commit learns holds for every later one: after the first walk of a library,
/// counting a group's names reads only the folders that have links and the trees written
/// since (DECISIONS 95).
#[derive(Default)]
pub struct LinkFree(HashSet<ObjectKey>);

/// Trees [`LinkFree`] remembers at most (32 bytes each); past it, it starts again.
const LINK_FREE_MAX: usize = 1 << 20;

impl LinkFree {
    fn learn(&mut self, tree: ObjectKey) {
        if self.0.len() >= LINK_FREE_MAX {
            self.0.clear();
        }
        self.0.insert(tree);
    }
}

/// Where the names of `groups` are, below `dir` (paths from the root).
struct LinkSearch<'a, 'w> {
    writer: &'a mut TreeWriter<'w>,
    groups: &'a HashSet<u64>,
    free: &'a mut LinkFree,
    found: HashMap<u64, Vec<Vec<u8>>>,
}

impl LinkSearch<'_, '_> {
    fn in_dir(&mut self, dir: &EditDir, prefix: &[u8]) -> Result<()> {
        for (name, item) in &dir.items {
            let path = join_path(prefix, name);
            match item {
                Item::Dir(sub) => self.in_dir(sub, &path)?,
                Item::Clean(entry) => {
                    self.in_entry(entry, path)?;
                }
            }
        }
        Ok(())
    }

    /// Whether `entry`, or anything below it, is a name of any group.
    fn in_entry(&mut self, entry: &Entry, path: Vec<u8>) -> Result<bool> {
        match (entry.kind, entry.subtree) {
            (EntryKind::Dir, Some(subtree)) => {
                if self.free.0.contains(&subtree) {
                    return Ok(false);
                }
                let mut linked = false;
                for child in self.writer.get(&subtree)?.entries {
                    let child_path = join_path(&path, &child.name);
                    linked |= self.in_entry(&child, child_path)?;
                }
                if !linked {
                    self.free.learn(subtree);
                }
                Ok(linked)
            }
            (EntryKind::Dir, None) => Ok(false),
            _ => {
                if self.groups.contains(&entry.link) {
                    self.found.entry(entry.link).or_default().push(path);
                }
                Ok(entry.link != 0)
            }
        }
    }
}

/// Whether `path` is `top` or lies below it.
pub fn within(path: &[u8], top: &[u8]) -> bool {
    path.strip_prefix(top)
        .is_some_and(|rest| rest.is_empty() || rest[0] == b'/')
}

/// `path` after a rename of `from` to `to`: `None` unless it is `from` or below it.
fn moved(path: &[u8], from: &[u8], to: &[u8]) -> Option<Vec<u8>> {
    if !within(path, from) {
        return None;
    }
    let mut out = to.to_vec();
    out.extend_from_slice(&path[from.len()..]);
    Some(out)
}

/// Where `path` was before `renames` (`(from, to)`, in the order made): the path to look
/// up in the tree they were made on.
pub fn before_renames(path: &[u8], renames: &[(&[u8], &[u8])]) -> Vec<u8> {
    renames
        .iter()
        .rev()
        .fold(path.to_vec(), |path, (from, to)| {
            moved(&path, to, from).unwrap_or(path)
        })
}

fn split(path: &[u8]) -> Vec<Vec<u8>> {
    path.split(|b| *b == b'/')
        .filter(|p| !p.is_empty())
        .map(<[u8]>::to_vec)
        .collect()
}

fn load(writer: &mut TreeWriter<'_>, meta: Entry) -> Result<EditDir> {
    let items = match meta.subtree {
        Some(id) => writer
            .get(&id)?
            .entries
            .into_iter()
            .map(|e| (e.name.clone(), Item::Clean(e)))
            .collect(),
        None => BTreeMap::new(),
    };
    Ok(EditDir { meta, items })
}

impl EditDir {
    /// The directory `name` below this one, loaded; made if missing and `create`.
    fn subdir(
        &mut self,
        writer: &mut TreeWriter<'_>,
        name: &[u8],
        create: bool,
    ) -> Result<Option<&mut EditDir>> {
        let loaded = match self.items.remove(name) {
            Some(Item::Dir(dir)) => Some(dir),
            Some(Item::Clean(entry)) if entry.kind == EntryKind::Dir => Some(load(writer, entry)?),
            Some(other) => {
                self.items.insert(name.to_vec(), other);
                return Ok(None);
            }
            None if create => {
                let now = crate::mount::vfs::now_ns();
                Some(EditDir {
                    meta: dir_entry(name, 0o755, 0, 0, now),
                    items: BTreeMap::new(),
                })
            }
            None => None,
        };
        Ok(match loaded {
            Some(dir) => {
                self.items.insert(name.to_vec(), Item::Dir(dir));
                match self.items.get_mut(name) {
                    Some(Item::Dir(dir)) => Some(dir),
                    _ => unreachable!("just inserted"),
                }
            }
            None => None,
        })
    }
}

impl EditTree {
    /// `author` names who made the local changes (`EMAIL HOST`) in conflict copies.
    pub fn new(writer: &mut TreeWriter<'_>, root: Option<ObjectKey>, author: &str) -> Result<Self> {
        let mut meta = dir_entry(b"", 0o755, 0, 0, 0);
        meta.subtree = root;
        let stamp = crate::model::snapshot::format_time_ns(crate::mount::vfs::now_ns());
        let suffix = format!(
            " (conflict {author} {} {}{})",
            &stamp[..10],
            &stamp[11..13],
            &stamp[14..16]
        );
        Ok(Self {
            root: load(writer, meta)?,
            written: HashSet::new(),
            alone: false,
            conflict_suffix: suffix,
            conflicts: Vec::new(),
            hardlinks: HashMap::new(),
            awaiting: HashSet::new(),
        })
    }

    /// Says the tree replayed onto is the one the local view showed, or this mount's own
    /// commit on it: a single writer never makes conflict copies of its own files.
    pub fn alone(&mut self) {
        self.alone = true;
    }

    /// The directory holding `path` and the last component; `None` if it cannot exist.
    fn parent<'a>(
        &'a mut self,
        writer: &mut TreeWriter<'_>,
        path: &[u8],
        create: bool,
    ) -> Result<Option<(&'a mut EditDir, Vec<u8>)>> {
        let mut parts = split(path);
        let Some(name) = parts.pop() else {
            return Ok(None);
        };
        let mut dir = &mut self.root;
        for part in parts {
            match dir.subdir(writer, &part, create)? {
                Some(next) => dir = next,
                None => return Ok(None),
            }
        }
        Ok(Some((dir, name)))
    }

    fn entry_mut<'a>(
        &'a mut self,
        writer: &mut TreeWriter<'_>,
        path: &[u8],
    ) -> Result<Option<&'a mut Entry>> {
        let Some((dir, name)) = self.parent(writer, path, false)? else {
            return Ok(None);
        };
        Ok(match dir.items.get_mut(&name) {
            Some(Item::Clean(entry)) => Some(entry),
            Some(Item::Dir(sub)) => Some(&mut sub.meta),
            None => None,
        })
    }

    pub fn apply(
        &mut self,
        writer: &mut TreeWriter<'_>,
        op: &Op,
        contents: &HashMap<String, (Vec<ChunkRef>, u64)>,
    ) -> Result<()> {
        match op {
            Op::Write {
                path,
                stage,
                mode,
                uid,
                gid,
                mtime_ns,
                xattrs,
                base,
                link,
                atime_ns,
            } => {
                let Some((chunks, size)) = contents.get(stage) else {
                    return Ok(());
                };
                let ours = self.alone || self.written.contains(path);
                let suffix = self.conflict_suffix.clone();
                let Some((dir, name)) = self.parent(writer, path, true)? else {
                    return Ok(());
                };
                let clash = match dir.items.get(&name) {
                    None => false,
                    Some(_) if ours => false,
                    Some(Item::Clean(e)) if e.kind == EntryKind::File => {
                        base.as_deref() != Some(content_sig(&e.chunks).as_str())
                    }
                    Some(_) => true,
                };
                let name = if clash {
                    let mut renamed = name.clone();
                    renamed.extend_from_slice(suffix.as_bytes());
                    renamed
                } else {
                    name
                };
                let entry = Entry {
                    name: name.clone(),
                    kind: EntryKind::File,
                    mode: *mode,
                    uid: *uid,
                    gid: *gid,
                    mtime_ns: *mtime_ns,
                    size: *size,
                    inode: 0,
                    atime_ns: *atime_ns,
                    // Written now: changed when modified.
                    ctime_ns: None,
                    // A conflict copy is a file of its own.
                    link: if clash { 0 } else { *link },
                    nlink: 0,
                    rdev: 0,
                    xattrs: xattrs.clone(),
                    chunks: chunks.clone(),
                    target: None,
                    subtree: None,
                };
                let linked = (entry.link != 0).then(|| entry.clone());
                dir.items.insert(name.clone(), Item::Clean(entry));
                if let Some(linked) = linked {
                    self.awaiting.remove(&linked.link);
                    self.hardlinks.insert(linked.link, Some(linked));
                }
                if clash {
                    self.conflicts
                        .push(String::from_utf8_lossy(&name).into_owned());
                } else {
                    self.written.insert(path.clone());
                }
            }
            Op::Mkdir {
                path,
                mode,
                uid,
                gid,
                mtime_ns,
            } => {
                if let Some((dir, name)) = self.parent(writer, path, true)? {
                    if let std::collections::btree_map::Entry::Vacant(slot) = dir.items.entry(name)
                    {
                        let meta = dir_entry(slot.key(), *mode, *uid, *gid, *mtime_ns);
                        slot.insert(Item::Dir(EditDir {
                            meta,
                            items: BTreeMap::new(),
                        }));
                    }
                }
            }
            Op::Symlink {
                path,
                target,
                uid,
                gid,
                mtime_ns,
            } => {
                if let Some((dir, name)) = self.parent(writer, path, true)? {
                    let mut entry = dir_entry(&name, 0o777, *uid, *gid, *mtime_ns);
                    entry.kind = EntryKind::Symlink;
                    entry.size = target.len() as u64;
                    entry.target = Some(target.clone());
                    dir.items.insert(name, Item::Clean(entry));
                }
            }
            Op::Special {
                path,
                kind,
                mode,
                uid,
                gid,
                rdev,
                mtime_ns,
            } => {
                if let Some((dir, name)) = self.parent(writer, path, true)? {
                    let mut entry = dir_entry(&name, *mode, *uid, *gid, *mtime_ns);
                    entry.kind = *kind;
                    entry.rdev = *rdev;
                    dir.items.insert(name, Item::Clean(entry));
                }
            }
            Op::Link { from, to, link } => {
                let source = self
                    .entry_mut(writer, from)?
                    .filter(|e| e.kind != EntryKind::Dir);
                let Some(source) = source else {
                    // A name linked to a file still being written (its content is journaled
                    // at close, after this): the name holds the group's place from now on,
                    // so what later happens to it (a rename, a removal, another file put
                    // there) happens to it in order; the group's version fills it in when
                    // its write comes, in this replay or a later one.
                    let placeholder = Entry {
                        mode: 0o644,
                        link: *link,
                        ..Entry::new(b"", EntryKind::File)
                    };
                    self.put_name(writer, to, &placeholder)?;
                    self.hardlinks.entry(*link).or_insert(None);
                    self.awaiting.insert(*link);
                    return Ok(());
                };
                source.link = *link;
                let source = source.clone();
                self.put_name(writer, to, &source)?;
                // A version from earlier in this replay is newer than `from`'s entry.
                let group = self.hardlinks.entry(*link).or_insert(None);
                if group.is_none() {
                    *group = Some(source);
                }
            }
            Op::Remove { path } => {
                if let Some((dir, name)) = self.parent(writer, path, false)? {
                    if let Some(Item::Clean(gone)) = dir.items.remove(&name) {
                        if gone.link != 0 {
                            self.hardlinks.entry(gone.link).or_insert(None);
                        }
                    }
                }
                self.written
                    .retain(|written| moved(written, path, b"").is_none());
            }
            Op::Rename { from, to } => {
                let taken = match self.parent(writer, from, false)? {
                    Some((dir, name)) => dir.items.remove(&name),
                    None => None,
                };
                if let Some(mut item) = taken {
                    if let Some((dir, name)) = self.parent(writer, to, true)? {
                        match &mut item {
                            Item::Clean(e) => e.name = name.clone(),
                            Item::Dir(d) => d.meta.name = name.clone(),
                        }
                        dir.items.insert(name, item);
                    }
                    // What this replay wrote moves with it, a folder's files too.
                    let written: Vec<Vec<u8>> = self
                        .written
                        .iter()
                        .filter(|path| within(path, from))
                        .cloned()
                        .collect();
                    for path in written {
                        self.written.remove(&path);
                        self.written.extend(moved(&path, from, to));
                    }
                }
            }
            Op::SetAttr {
                path,
                mode,
                uid,
                gid,
                mtime_ns,
                atime_ns,
                ctime_ns,
            } => {
                let changed = match self.entry_mut(writer, path)? {
                    Some(entry) => {
                        entry.mode = mode.unwrap_or(entry.mode);
                        entry.uid = uid.unwrap_or(entry.uid);
                        entry.gid = gid.unwrap_or(entry.gid);
                        entry.mtime_ns = mtime_ns.unwrap_or(entry.mtime_ns);
                        entry.atime_ns = atime_ns.or(entry.atime_ns);
                        set_ctime(entry, *ctime_ns);
                        (entry.link != 0).then(|| entry.clone())
                    }
                    None => None,
                };
                if let Some(changed) = changed {
                    self.attributes_changed(changed);
                }
            }
            Op::SetXattrs {
                path,
                xattrs,
                ctime_ns,
            } => {
                let changed = match self.entry_mut(writer, path)? {
                    Some(entry) => {
                        entry.xattrs = xattrs.clone();
                        set_ctime(entry, *ctime_ns);
                        (entry.link != 0).then(|| entry.clone())
                    }
                    None => None,
                };
                if let Some(changed) = changed {
                    self.attributes_changed(changed);
                }
            }
        }
        Ok(())
    }

    /// Puts `entry` at `path` under the name there (another name of a hard-linked file).
    fn put_name(&mut self, writer: &mut TreeWriter<'_>, path: &[u8], entry: &Entry) -> Result<()> {
        if let Some((dir, name)) = self.parent(writer, path, true)? {
            let entry = Entry {
                name: name.clone(),
                ..entry.clone()
            };
            dir.items.insert(name, Item::Clean(entry));
        }
        Ok(())
    }

    /// A linked entry's attributes changed. If its group already changed in this replay,
    /// the change goes onto that version (this name's content may be older: the names are
    /// brought in line only at the end); otherwise this entry is the group's version.
    fn attributes_changed(&mut self, changed: Entry) {
        match self.hardlinks.get_mut(&changed.link) {
            Some(Some(group)) => {
                group.mode = changed.mode;
                group.uid = changed.uid;
                group.gid = changed.gid;
                group.mtime_ns = changed.mtime_ns;
                group.atime_ns = changed.atime_ns;
                group.xattrs = changed.xattrs;
            }
            _ => {
                self.hardlinks.insert(changed.link, Some(changed));
            }
        }
    }

    /// Brings every name of each hard-link group the replay changed in line: the same
    /// content and attributes, and the count of names. The names may be anywhere in the
    /// library, so this reads every tree (only when a replay touched a group).
    fn settle_links(&mut self, writer: &mut TreeWriter<'_>, free: &mut LinkFree) -> Result<()> {
        if self.hardlinks.is_empty() {
            return Ok(());
        }
        let groups: HashSet<u64> = self.hardlinks.keys().copied().collect();
        let mut search = LinkSearch {
            writer,
            groups: &groups,
            free,
            found: HashMap::new(),
        };
        search.in_dir(&self.root, b"")?;
        let mut members = search.found;
        for (link, source) in std::mem::take(&mut self.hardlinks) {
            let paths = members.remove(&link).unwrap_or_default();
            let count = paths.len() as u32 + u32::from(self.awaiting.contains(&link));
            for path in paths {
                let Some(entry) = self.entry_mut(writer, &path)? else {
                    continue;
                };
                if let Some(source) = &source {
                    let name = std::mem::take(&mut entry.name);
                    *entry = Entry {
                        name,
                        ..source.clone()
                    };
                }
                (entry.link, entry.nlink) = if count > 1 { (link, count) } else { (0, 0) };
            }
        }
        Ok(())
    }

    /// Queues the changed trees (children first) and returns the root's id. `free` is what
    /// earlier commits learned of where the library has no hard links.
    pub fn write(&mut self, writer: &mut TreeWriter<'_>, free: &mut LinkFree) -> Result<ObjectKey> {
        self.settle_links(writer, free)?;
        fn write_dir(dir: &mut EditDir, writer: &mut TreeWriter<'_>) -> ObjectKey {
            let entries = dir
                .items
                .values_mut()
                .map(|item| match item {
                    Item::Clean(entry) => entry.clone(),
                    Item::Dir(sub) => {
                        let mut meta = sub.meta.clone();
                        meta.subtree = Some(write_dir(sub, writer));
                        meta
                    }
                })
                .collect();
            writer.add(Tree::new(entries))
        }
        Ok(write_dir(&mut self.root, writer))
    }

    /// The content signature of the file at `path` now, if it is a file.
    pub fn file_sig(&mut self, writer: &mut TreeWriter<'_>, path: &[u8]) -> Result<Option<String>> {
        Ok(self
            .entry_mut(writer, path)?
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| content_sig(&e.chunks)))
    }
}

/// Keeps the status-change time a journaled change set, where it is later than the
/// modification time (otherwise the entry says nothing: it is the modification time).
fn set_ctime(entry: &mut Entry, ctime_ns: Option<i64>) {
    entry.ctime_ns = ctime_ns.or(entry.ctime_ns).filter(|c| *c > entry.mtime_ns);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crypto::BlobKind;
    use crate::objects::ObjectSource;
    use crate::repo::memory::MemoryRepo;

    fn mkdir(path: &str) -> Op {
        Op::Mkdir {
            path: path.as_bytes().to_vec(),
            mode: 0o755,
            uid: 1000,
            gid: 1000,
            mtime_ns: 1,
        }
    }

    fn write(path: &str, stage: &str, base: Option<String>) -> Op {
        Op::Write {
            path: path.as_bytes().to_vec(),
            stage: stage.into(),
            mode: 0o644,
            uid: 1000,
            gid: 1000,
            mtime_ns: 1,
            xattrs: Vec::new(),
            base,
            link: 0,
            atime_ns: None,
        }
    }

    /// Each `(stage, content)` stored as the chunks of a staged file, as the uploader has them.
    fn staged(repo: &MemoryRepo, files: &[(&str, &[u8])]) -> HashMap<String, (Vec<ChunkRef>, u64)> {
        files
            .iter()
            .map(|(stage, data)| {
                (
                    (*stage).to_owned(),
                    (repo.store_chunk(data), data.len() as u64),
                )
            })
            .collect()
    }

    /// Replays `ops` onto `root` as the uploader does; returns the new root's key.
    fn replay(
        repo: &MemoryRepo,
        root: Option<ObjectKey>,
        ops: &[Op],
        contents: &HashMap<String, (Vec<ChunkRef>, u64)>,
    ) -> (ObjectKey, Vec<String>) {
        replay_learning(repo, root, ops, contents, &mut LinkFree::default())
    }

    /// `replay`, with what earlier replays learned of where there are no hard links.
    fn replay_learning(
        repo: &MemoryRepo,
        root: Option<ObjectKey>,
        ops: &[Op],
        contents: &HashMap<String, (Vec<ChunkRef>, u64)>,
        free: &mut LinkFree,
    ) -> (ObjectKey, Vec<String>) {
        let mut writer = TreeWriter::new(repo, HashMap::new());
        let mut edit = EditTree::new(&mut writer, root, "me@example.com laptop").unwrap();
        for op in ops {
            edit.apply(&mut writer, op, contents).unwrap();
        }
        let root = edit.write(&mut writer, free).unwrap();
        writer.flush().unwrap();
        (root, edit.conflicts)
    }

    /// `path -> content` of every file below `root`, read back through the store.
    fn files(repo: &MemoryRepo, root: ObjectKey, prefix: &str, out: &mut Vec<(String, Vec<u8>)>) {
        for entry in repo.load_tree(&root).unwrap().entries {
            let path = format!("{prefix}{}", String::from_utf8_lossy(&entry.name));
            match entry.kind {
                EntryKind::Dir => files(repo, entry.subtree.unwrap(), &format!("{path}/"), out),
                _ => {
                    let keys: Vec<ObjectKey> = entry.chunks.iter().map(|c| c.key).collect();
                    let content = repo.load(BlobKind::Chunk, &keys).unwrap().concat();
                    out.push((path, content));
                }
            }
        }
    }

    #[test]
    fn a_replay_merges_with_what_another_writer_committed() {
        let repo = MemoryRepo::default();
        let contents = staged(
            &repo,
            &[
                ("original", b"original"),
                ("theirs", b"edited elsewhere"),
                ("mine", b"edited here"),
                ("new", b"a new file"),
            ],
        );

        // The head as another writer left it: shared.txt was "original", then theirs.
        let (base, _) = replay(
            &repo,
            None,
            &[write("shared.txt", "original", None)],
            &contents,
        );
        let original = Some(content_sig(&contents["original"].0));
        let (head, _) = replay(
            &repo,
            Some(base),
            &[write("shared.txt", "theirs", original.clone())],
            &contents,
        );

        // Here: shared.txt edited from "original", a folder made and a file moved into it,
        // and a removal of something that no longer exists (skipped).
        let ours = [
            write("shared.txt", "mine", original),
            Op::Mkdir {
                path: b"docs".to_vec(),
                mode: 0o755,
                uid: 1000,
                gid: 1000,
                mtime_ns: 1,
            },
            write("docs/draft.txt", "new", None),
            Op::Rename {
                from: b"docs/draft.txt".to_vec(),
                to: b"docs/final.txt".to_vec(),
            },
            Op::Remove {
                path: b"gone/already".to_vec(),
            },
        ];
        let (merged, conflicts) = replay(&repo, Some(head), &ours, &contents);
        let mut found = Vec::new();
        files(&repo, merged, "", &mut found);
        let names: Vec<&str> = found.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(conflicts.len(), 1);
        let copy = &conflicts[0];
        assert!(
            copy.starts_with("shared.txt (conflict me@example.com laptop "),
            "{copy}"
        );
        assert_eq!(names, vec!["docs/final.txt", "shared.txt", copy.as_str()]);
        assert_eq!(found[0].1, b"a new file");
        assert_eq!(found[1].1, b"edited elsewhere", "theirs keeps the name");
        assert_eq!(found[2].1, b"edited here", "ours is the copy");

        // A new file where someone else made one of the same name meanwhile: both kept.
        let (_, conflicts) = replay(
            &repo,
            Some(merged),
            &[write("docs/final.txt", "mine", None)],
            &contents,
        );
        assert_eq!(conflicts.len(), 1);
        assert!(
            conflicts[0].starts_with("final.txt (conflict "),
            "{conflicts:?}"
        );
    }

    /// Issue 27: a folder renamed while its files were being written. The replay knew the
    /// file at the old path was its own but not at the new one, so the next write of the
    /// moved file (made here: no base) was taken for someone else's and kept as a conflict
    /// copy, with another client's commit in between or not.
    #[test]
    fn a_folder_renamed_between_writes_of_its_files_is_no_conflict() {
        let repo = MemoryRepo::default();
        let contents = staged(&repo, &[("one", b"first"), ("two", b"second")]);
        let rename = |from: &str, to: &str| Op::Rename {
            from: from.as_bytes().to_vec(),
            to: to.as_bytes().to_vec(),
        };
        let ops = [
            mkdir("d"),
            mkdir("d/sub"),
            write("d/sub/f", "one", None),
            rename("d", "e"),
            write("e/sub/f", "two", None),
        ];
        let (root, conflicts) = replay(&repo, None, &ops, &contents);
        assert!(conflicts.is_empty(), "{conflicts:?}");
        let mut found = Vec::new();
        files(&repo, root, "", &mut found);
        assert_eq!(found, vec![("e/sub/f".to_owned(), b"second".to_vec())]);
    }

    /// A replay onto the tree the local view showed (nobody else wrote since) never makes
    /// a conflict copy, whatever bases the journal holds (a file written again after its
    /// first version was committed, while it stayed open).
    #[test]
    fn a_replay_with_nobody_else_writing_makes_no_conflict_copy() {
        let repo = MemoryRepo::default();
        let contents = staged(&repo, &[("one", b"first"), ("two", b"second")]);
        let (head, _) = replay(&repo, None, &[write("f", "one", None)], &contents);
        let stale = [write("f", "two", None)];
        let (_, conflicts) = replay(&repo, Some(head), &stale, &contents);
        assert_eq!(conflicts.len(), 1, "someone else's file of the same name");
        let mut writer = TreeWriter::new(&repo, HashMap::new());
        let mut edit = EditTree::new(&mut writer, Some(head), "me@example.com laptop").unwrap();
        edit.alone();
        edit.apply(&mut writer, &stale[0], &contents).unwrap();
        let root = edit.write(&mut writer, &mut LinkFree::default()).unwrap();
        writer.flush().unwrap();
        assert!(edit.conflicts.is_empty(), "{:?}", edit.conflicts);
        let mut found = Vec::new();
        files(&repo, root, "", &mut found);
        assert_eq!(found, vec![("f".to_owned(), b"second".to_vec())]);
    }

    /// Issue 27 (found by the operation mix): a name linked to a file still being written
    /// was put in place only at the end of the replay, over whatever came to that path
    /// after it: here another file written there after the name was removed, which took
    /// the group's content and mode in the snapshot.
    #[test]
    fn a_name_linked_before_its_files_first_write_keeps_its_place_in_order() {
        let repo = MemoryRepo::default();
        let contents = staged(
            &repo,
            &[
                ("group", b"the linked file"),
                ("other", b"a file of its own"),
            ],
        );
        let mut linked_write = write("c/f3", "group", None);
        if let Op::Write { link, .. } = &mut linked_write {
            *link = 7;
        }
        let ops = [
            mkdir("c"),
            mkdir("b"),
            Op::Link {
                from: b"c/f3".to_vec(),
                to: b"b/f2".to_vec(),
                link: 7,
            },
            linked_write.clone(),
            Op::Rename {
                from: b"b/f2".to_vec(),
                to: b"b/moved".to_vec(),
            },
            Op::Remove {
                path: b"b/moved".to_vec(),
            },
            write("b/f2", "other", None),
        ];
        let (root, conflicts) = replay(&repo, None, &ops, &contents);
        assert!(conflicts.is_empty(), "{conflicts:?}");
        let found = linked(&repo, root);
        assert_eq!(
            found,
            vec![
                ("b/f2".into(), 0, 0, 0o644, b"a file of its own".to_vec()),
                ("c/f3".into(), 0, 0, 0o644, b"the linked file".to_vec()),
            ]
        );
        // The name kept, moved: it shows the group's content where it went.
        let (root, _) = replay(&repo, None, &ops[..5], &contents);
        let found = linked(&repo, root);
        assert_eq!(found.len(), 2, "{found:?}");
        assert_eq!(found[0].0, "b/moved");
        assert_eq!(found[0].4, b"the linked file");
        assert_eq!((found[0].1, found[0].2), (7, 2));
        // The file's write in a later replay than the name's link: the name waits there.
        let (first, _) = replay(&repo, None, &ops[..3], &contents);
        let (root, _) = replay(&repo, Some(first), &[linked_write], &contents);
        let found = linked(&repo, root);
        assert_eq!(found[0].0, "b/f2");
        assert_eq!(found[0].4, b"the linked file");
        assert_eq!(found[1].0, "c/f3");
    }

    #[test]
    fn paths_are_looked_up_where_they_were_before_later_renames() {
        let renames: [(&[u8], &[u8]); 3] = [(b"d", b"e"), (b"e/x", b"y"), (b"dd", b"ee")];
        assert_eq!(before_renames(b"e/sub/f", &renames), b"d/sub/f");
        assert_eq!(before_renames(b"y/f", &renames), b"d/x/f");
        assert_eq!(before_renames(b"ee", &renames), b"dd");
        assert_eq!(before_renames(b"eel/f", &renames), b"eel/f");
        assert_eq!(before_renames(b"e", &renames[..1]), b"d");
    }

    /// `path -> (link, nlink, mode, content)` of every file below `root`.
    fn linked(repo: &MemoryRepo, root: ObjectKey) -> Vec<(String, u64, u32, u32, Vec<u8>)> {
        let mut out = Vec::new();
        let mut stack = vec![(String::new(), root)];
        while let Some((prefix, key)) = stack.pop() {
            for entry in repo.load_tree(&key).unwrap().entries {
                let path = format!("{prefix}{}", String::from_utf8_lossy(&entry.name));
                if entry.kind == EntryKind::Dir {
                    stack.push((format!("{path}/"), entry.subtree.unwrap()));
                    continue;
                }
                let keys: Vec<ObjectKey> = entry.chunks.iter().map(|c| c.key).collect();
                let content = repo.load(BlobKind::Chunk, &keys).unwrap().concat();
                out.push((path, entry.link, entry.nlink, entry.mode, content));
            }
        }
        out.sort();
        out
    }

    #[test]
    fn every_name_of_a_hard_linked_file_takes_its_changes_and_count() {
        let repo = MemoryRepo::default();
        let contents = staged(&repo, &[("v1", b"first"), ("v2", b"second")]);
        let link = |from: &str, to: &str| Op::Link {
            from: from.as_bytes().to_vec(),
            to: to.as_bytes().to_vec(),
            link: 42,
        };
        // A name linked before the file's first write is journaled (written at close).
        let mut first = write("a", "v1", None);
        if let Op::Write { link, .. } = &mut first {
            *link = 42;
        }
        let (base, _) = replay(
            &repo,
            None,
            &[
                mkdir("far"),
                mkdir("far/away"),
                link("a", "early"),
                first,
                link("a", "far/away/b"),
            ],
            &contents,
        );
        let named = |nlink: u32, mode: u32, content: &[u8], names: &[&str]| {
            names
                .iter()
                .map(|n| (n.to_string(), 42u64, nlink, mode, content.to_vec()))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            linked(&repo, base),
            named(3, 0o644, b"first", &["a", "early", "far/away/b"])
        );

        // Written and chmod-ed through one name, one name removed: the others follow, in
        // directories the replay never opened.
        let mut second = write("early", "v2", Some(content_sig(&contents["v1"].0)));
        if let Op::Write { link, .. } = &mut second {
            *link = 42;
        }
        // Through a name whose entry still holds the old content: the kernel sends the
        // written file's times under whichever name it has.
        let chmod = Op::SetAttr {
            path: b"far/away/b".to_vec(),
            mode: Some(0o600),
            uid: None,
            gid: None,
            mtime_ns: None,
            atime_ns: None,
            ctime_ns: None,
        };
        let (after, _) = replay(
            &repo,
            Some(base),
            &[
                second,
                chmod,
                Op::Remove {
                    path: b"a".to_vec(),
                },
            ],
            &contents,
        );
        assert_eq!(
            linked(&repo, after),
            named(2, 0o600, b"second", &["early", "far/away/b"])
        );

        // The last other name gone: a plain file again.
        let (single, _) = replay(
            &repo,
            Some(after),
            &[Op::Remove {
                path: b"early".to_vec(),
            }],
            &contents,
        );
        assert_eq!(
            linked(&repo, single),
            vec![("far/away/b".to_owned(), 0, 0, 0o600, b"second".to_vec())]
        );
    }

    #[test]
    fn counting_a_group_again_reads_only_folders_with_links_once_the_rest_is_known() {
        let repo = MemoryRepo::default();
        let contents = staged(
            &repo,
            &[("v1", b"first"), ("v2", b"second"), ("v3", b"third")],
        );
        // Forty folders of a file each, and one file with a second name two levels down.
        let mut ops: Vec<Op> = (0..40)
            .flat_map(|n| {
                [
                    mkdir(&format!("d{n}")),
                    write(&format!("d{n}/f{n}"), "v1", None),
                ]
            })
            .collect();
        let mut first = write("a", "v1", None);
        if let Op::Write { link, .. } = &mut first {
            *link = 7;
        }
        ops.extend([
            mkdir("deep"),
            mkdir("deep/er"),
            first,
            Op::Link {
                from: b"a".to_vec(),
                to: b"deep/er/b".to_vec(),
                link: 7,
            },
        ]);
        let (base, _) = replay(&repo, None, &ops, &contents);
        let through = |stage: &str, was: &str| {
            let mut op = write("a", stage, Some(content_sig(&contents[was].0)));
            if let Op::Write { link, .. } = &mut op {
                *link = 7;
            }
            op
        };

        // The first write through a name reads every folder to find the others.
        let mut free = LinkFree::default();
        let before = repo.trees_loaded();
        let (after, _) = replay_learning(
            &repo,
            Some(base),
            &[through("v2", "v1")],
            &contents,
            &mut free,
        );
        let first_walk = repo.trees_loaded() - before;
        assert!(first_walk >= 43, "{first_walk} trees read");
        assert_eq!(
            linked(&repo, after)
                .into_iter()
                .filter(|(_, link, ..)| *link == 7)
                .map(|(path, _, nlink, _, content)| (path, nlink, content))
                .collect::<Vec<_>>(),
            [
                ("a".to_owned(), 2, b"second".to_vec()),
                ("deep/er/b".to_owned(), 2, b"second".to_vec())
            ]
        );

        // The next reads the root and the folders on the way to the other name, not the forty.
        let before = repo.trees_loaded();
        let (again, _) = replay_learning(
            &repo,
            Some(after),
            &[through("v3", "v2")],
            &contents,
            &mut free,
        );
        let second_walk = repo.trees_loaded() - before;
        assert!(second_walk <= 4, "{second_walk} trees read");
        let b = linked(&repo, again)
            .into_iter()
            .find(|(path, ..)| path == "deep/er/b")
            .unwrap();
        assert_eq!((b.2, b.4), (2, b"third".to_vec()));
    }

    #[test]
    fn a_fifo_takes_a_second_name() {
        let repo = MemoryRepo::default();
        let ops = [
            mkdir("t"),
            mkdir("t/sub"),
            Op::Special {
                path: b"t/pipe".to_vec(),
                kind: EntryKind::Fifo,
                mode: 0o644,
                uid: 0,
                gid: 0,
                rdev: 0,
                mtime_ns: 1,
            },
            Op::Link {
                from: b"t/pipe".to_vec(),
                to: b"t/sub/pipe2".to_vec(),
                link: 9,
            },
        ];
        let (root, _) = replay(&repo, None, &ops, &HashMap::new());
        let names: Vec<(String, u64, u32)> = linked(&repo, root)
            .into_iter()
            .map(|(path, link, nlink, _, _)| (path, link, nlink))
            .collect();
        assert_eq!(
            names,
            [
                ("t/pipe".to_owned(), 9, 2),
                ("t/sub/pipe2".to_owned(), 9, 2)
            ]
        );
    }
}
