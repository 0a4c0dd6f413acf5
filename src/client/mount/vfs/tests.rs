//! The filesystem model without a kernel or a server: a library held in memory, reached
//! through the object seam (`objects`), and the journal the model writes.

use std::sync::Arc;

use super::nodes::ROOT;
use super::{AttrChange, Caller, MountedLibrary, Vfs, VfsError};
use crate::api::types::{LibraryInfo, Permission};
use crate::crypto::LibraryKeys;
use crate::model::EntryKind;
use crate::mount::journal::{Journal, Op};
use crate::repo::memory::MemoryRepo;
use crate::session::OpenLibrary;

const ME: Caller = Caller {
    uid: 1000,
    gid: 1000,
    umask: 0,
};

struct Fixture {
    vfs: Vfs,
    journal: Arc<Journal>,
    live: u64,
    _dir: tempfile::TempDir,
}

fn fixture(permission: Permission) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    // Never asked: an empty library needs no tree or chunk.
    let objects = Arc::new(MemoryRepo::default());
    let journal = Arc::new(Journal::open(&dir.path().join("journal.db")).unwrap());
    let info = library_info(permission);
    let library = OpenLibrary {
        info,
        name: "Backups".into(),
        keys: LibraryKeys::generate(),
    };
    let mounted = vec![MountedLibrary {
        library,
        display: "Backups".into(),
        head: None,
    }];
    let mut vfs = Vfs::new(
        mounted,
        objects,
        (1000, 1000),
        dir.path().join("staging"),
        journal.clone(),
    );
    let live = vfs.lookup(ROOT, b"Backups").unwrap().ino;
    Fixture {
        vfs,
        journal,
        live,
        _dir: dir,
    }
}

fn library_info(permission: Permission) -> LibraryInfo {
    LibraryInfo {
        id: "0123456789abcdef0123456789abcdef".into(),
        name_sealed: Vec::new(),
        name_epoch: 1,
        owner_email: "me@example.com".into(),
        owner_public_key: Vec::new(),
        permission,
        head: None,
        stored_bytes: 0,
        epoch: 1,
        grant: Vec::new(),
        grant_epoch: 1,
        chain: Vec::new(),
        rotate: false,
    }
}

fn ops(f: &Fixture) -> Vec<Op> {
    f.journal
        .pending("0123456789abcdef0123456789abcdef")
        .unwrap()
        .into_iter()
        .map(|(_, op)| op)
        .collect()
}

#[test]
fn layout_has_libraries_and_snapshots() {
    let mut f = fixture(Permission::Owner);
    let fh = f.vfs.opendir(ROOT).unwrap();
    let names: Vec<Vec<u8>> = f
        .vfs
        .readdir(fh, 0)
        .unwrap()
        .iter()
        .map(|e| e.2.clone())
        .collect();
    assert_eq!(
        names,
        vec![
            b".".to_vec(),
            b"..".to_vec(),
            b"Backups".to_vec(),
            b"snapshots".to_vec()
        ]
    );
    let snapshots = f.vfs.lookup(ROOT, b"snapshots").unwrap();
    assert!(snapshots.read_only);
    assert!(matches!(
        f.vfs.mkdir(ROOT, b"x", 0o755, ME),
        Err(VfsError::Access)
    ));
    assert!(matches!(
        f.vfs.mkdir(snapshots.ino, b"x", 0o755, ME),
        Err(VfsError::ReadOnly)
    ));
}

#[test]
fn a_write_that_grows_a_file_past_the_quota_left_is_refused() {
    let mut f = fixture(Permission::Owner);
    let (_, opened) = f.vfs.create(f.live, b"big.bin", 0o644, ME).unwrap();
    f.vfs.write(opened.fh, 0, &[1u8; 10], 16).unwrap();
    assert!(matches!(
        f.vfs.write(opened.fh, 10, &[1u8; 10], 16),
        Err(VfsError::NoSpace)
    ));
    // Rewriting what is there does not grow the file, so it is allowed even when full.
    f.vfs.write(opened.fh, 0, &[2u8; 10], 0).unwrap();
    assert_eq!(f.vfs.read(opened.fh, 0, 100).unwrap().to_vec(), [2u8; 10]);
}

#[test]
fn a_failed_stage_write_leaves_the_size_the_stage_holds() {
    let mut f = fixture(Permission::Owner);
    let (stat, opened) = f.vfs.create(f.live, b"big.bin", 0o644, ME).unwrap();
    f.vfs.write(opened.fh, 0, b"kept", u64::MAX).unwrap();
    // Accepted (the size grows at once), then the bytes never reach the stage file.
    f.vfs.prepare_write(opened.fh, 4, 1000, u64::MAX).unwrap();
    assert_eq!(f.vfs.stat(stat.ino).unwrap().attr.size, 1004);
    f.vfs.write_failed(opened.fh);
    assert_eq!(f.vfs.stat(stat.ino).unwrap().attr.size, 4);
    assert_eq!(f.vfs.read(opened.fh, 0, 100).unwrap().to_vec(), b"kept");
}

/// The kernel's side of passthrough: it writes the stage file, and the mount never sees it.
fn kernel_writes(opened: &super::Opened, data: &[u8], offset: u64) {
    use std::os::unix::fs::FileExt;
    let stage = opened.stage.as_ref().expect("a staged handle");
    let file = std::fs::OpenOptions::new()
        .write(true)
        .open(format!(
            "/proc/self/fd/{}",
            std::os::fd::AsRawFd::as_raw_fd(&**stage)
        ))
        .unwrap();
    file.write_all_at(data, offset).unwrap();
}

#[test]
fn passed_through_writes_show_in_size_and_time_and_are_journaled_once_changed() {
    let mut f = fixture(Permission::Owner);
    let (stat, opened) = f.vfs.create(f.live, b"log.txt", 0o644, ME).unwrap();
    f.vfs.passed_through(opened.fh).unwrap();
    let created = stat.attr.mtime_ns;
    std::thread::sleep(std::time::Duration::from_millis(20));
    kernel_writes(&opened, b"hello", 0);
    let now = f.vfs.stat(stat.ino).unwrap().attr;
    assert_eq!(now.size, 5);
    assert!(now.mtime_ns > created, "{} <= {created}", now.mtime_ns);
    // An explicit mtime holds until the next write.
    f.vfs
        .setattr(
            stat.ino,
            AttrChange {
                mtime_ns: Some(1_000_000_000),
                ..AttrChange::default()
            },
        )
        .unwrap();
    assert_eq!(f.vfs.stat(stat.ino).unwrap().attr.mtime_ns, 1_000_000_000);
    f.vfs.close(opened.fh).unwrap();
    assert!(
        matches!(
            ops(&f).last(),
            Some(Op::Write {
                mtime_ns: 1_000_000_000,
                ..
            })
        ),
        "{:?}",
        ops(&f)
    );
    // Opened and closed without a write: nothing more to journal.
    let journaled = ops(&f).len();
    let again = f.vfs.open_write(stat.ino, false).unwrap();
    f.vfs.passed_through(again.fh).unwrap();
    f.vfs.close(again.fh).unwrap();
    assert_eq!(ops(&f).len(), journaled);
    assert!(
        f.vfs.passed.is_empty(),
        "the last close ends the bookkeeping"
    );
}

#[test]
fn a_passed_through_file_grown_past_the_quota_is_cut_back_at_flush() {
    let mut f = fixture(Permission::Owner);
    let (stat, opened) = f.vfs.create(f.live, b"big.bin", 0o644, ME).unwrap();
    f.vfs.passed_through(opened.fh).unwrap();
    kernel_writes(&opened, &[7u8; 10], 0);
    f.vfs.flush(opened.fh, 16).unwrap();
    kernel_writes(&opened, &[7u8; 10], 10);
    assert!(matches!(f.vfs.flush(opened.fh, 16), Err(VfsError::NoSpace)));
    assert_eq!(f.vfs.stat(stat.ino).unwrap().attr.size, 16);
    f.vfs.close(opened.fh).unwrap();
    let back = f.vfs.open_read(stat.ino).unwrap();
    assert_eq!(f.vfs.read(back.fh, 0, 100).unwrap().to_vec(), [7u8; 16]);
}

#[test]
fn a_write_is_journaled_when_its_descriptor_closes_not_only_at_release() {
    let mut f = fixture(Permission::Owner);
    let (_, opened) = f.vfs.create(f.live, b"notes.txt", 0o644, ME).unwrap();
    f.vfs.write(opened.fh, 0, b"x", u64::MAX).unwrap();
    // `close` waits for flush; the release comes after `close` returned.
    f.vfs.flush(opened.fh, u64::MAX).unwrap();
    assert_eq!(ops(&f).len(), 1);
    f.vfs.close(opened.fh).unwrap();
    assert_eq!(ops(&f).len(), 1, "nothing new to journal at release");

    // The same, passed through: the kernel writes the stage, the mount sees the change.
    let (_, opened) = f.vfs.create(f.live, b"log.txt", 0o644, ME).unwrap();
    f.vfs.passed_through(opened.fh).unwrap();
    kernel_writes(&opened, b"x", 0);
    f.vfs.flush(opened.fh, u64::MAX).unwrap();
    assert_eq!(ops(&f).len(), 2);
    f.vfs.close(opened.fh).unwrap();
    assert_eq!(ops(&f).len(), 2, "nothing new to journal at release");
}

#[test]
fn create_write_read_and_journal_on_close() {
    let mut f = fixture(Permission::Owner);
    let (stat, opened) = f.vfs.create(f.live, b"notes.txt", 0o640, ME).unwrap();
    assert_eq!(stat.attr.mode, 0o640);
    f.vfs.write(opened.fh, 0, b"hello ", u64::MAX).unwrap();
    f.vfs.write(opened.fh, 6, b"world", u64::MAX).unwrap();
    assert!(
        ops(&f).is_empty(),
        "nothing is journaled before close or fsync"
    );
    assert_eq!(
        f.vfs.read(opened.fh, 0, 100).unwrap().to_vec(),
        b"hello world"
    );
    f.vfs.close(opened.fh).unwrap();
    match ops(&f).as_slice() {
        [Op::Write {
            path,
            mode,
            base: None,
            ..
        }] => {
            assert_eq!(path, b"notes.txt");
            assert_eq!(*mode, 0o640);
        }
        other => panic!("unexpected journal: {other:?}"),
    }
    assert_eq!(f.vfs.lookup(f.live, b"notes.txt").unwrap().attr.size, 11);
    assert!(matches!(
        f.vfs.create(f.live, b"notes.txt", 0o644, ME),
        Err(VfsError::Exists)
    ));
    let again = f.vfs.open_read(stat.ino).unwrap();
    assert_eq!(f.vfs.read(again.fh, 6, 3).unwrap().to_vec(), b"wor");
}

#[test]
fn directories_rename_and_remove_with_posix_errors() {
    let mut f = fixture(Permission::Owner);
    let dir = f.vfs.mkdir(f.live, b"dir", 0o755, ME).unwrap().ino;
    let (file, opened) = f.vfs.create(dir, b"a", 0o644, ME).unwrap();
    f.vfs.close(opened.fh).unwrap();
    assert!(matches!(
        f.vfs.remove(f.live, b"dir", true),
        Err(VfsError::NotEmpty)
    ));
    assert!(matches!(
        f.vfs.remove(f.live, b"dir", false),
        Err(VfsError::IsDir)
    ));
    assert!(matches!(
        f.vfs.remove(dir, b"a", true),
        Err(VfsError::NotDir)
    ));
    assert!(matches!(
        f.vfs.lookup(dir, b"missing"),
        Err(VfsError::NotFound)
    ));
    assert!(matches!(
        f.vfs.rename(f.live, b"dir", dir, b"inside", false),
        Err(VfsError::Invalid(_))
    ));
    let other = f.vfs.mkdir(f.live, b"other", 0o755, ME).unwrap().ino;
    f.vfs.rename(dir, b"a", other, b"b", false).unwrap();
    assert_eq!(f.vfs.lookup(other, b"b").unwrap().ino, file.ino);
    let (_, opened) = f.vfs.create(other, b"c", 0o644, ME).unwrap();
    f.vfs.close(opened.fh).unwrap();
    assert!(matches!(
        f.vfs.rename(other, b"b", other, b"c", true),
        Err(VfsError::Exists)
    ));
    f.vfs.rename(other, b"b", other, b"c", false).unwrap();
    assert!(matches!(f.vfs.lookup(other, b"b"), Err(VfsError::NotFound)));
    f.vfs.remove(f.live, b"dir", true).unwrap();
    let kinds: Vec<&str> = ops(&f)
        .iter()
        .map(|op| match op {
            Op::Mkdir { .. } => "mkdir",
            Op::Write { .. } => "write",
            Op::Rename { .. } => "rename",
            Op::Remove { .. } => "remove",
            _ => "other",
        })
        .collect();
    assert_eq!(
        kinds,
        ["mkdir", "write", "mkdir", "rename", "write", "rename", "remove"]
    );
}

#[test]
fn setattr_truncate_symlink_and_xattrs() {
    let mut f = fixture(Permission::Owner);
    let (stat, opened) = f.vfs.create(f.live, b"f", 0o644, ME).unwrap();
    f.vfs.write(opened.fh, 0, b"0123456789", u64::MAX).unwrap();
    f.vfs.close(opened.fh).unwrap();
    let after = f
        .vfs
        .setattr(
            stat.ino,
            AttrChange {
                mode: Some(0o600),
                size: Some(4),
                mtime_ns: Some(1_000_000_000),
                ..AttrChange::default()
            },
        )
        .unwrap();
    assert_eq!(
        (after.attr.mode, after.attr.size, after.attr.mtime_ns),
        (0o600, 4, 1_000_000_000)
    );
    let link = f.vfs.symlink(f.live, b"l", b"f", ME).unwrap();
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(f.vfs.readlink(link.ino).unwrap(), b"f");
    f.vfs
        .set_xattr(stat.ino, b"user.tag", Some(b"blue"))
        .unwrap();
    assert_eq!(f.vfs.xattrs(stat.ino).unwrap()[0].value, b"blue");
    assert!(matches!(
        f.vfs
            .set_xattr(stat.ino, b"system.posix_acl_access", Some(b"x")),
        Err(VfsError::Invalid(_))
    ));
    assert!(matches!(
        f.vfs
            .set_xattr(stat.ino, b"security.capability", Some(b"x")),
        Err(VfsError::NotSupported)
    ));
    f.vfs.set_xattr(stat.ino, b"user.tag", None).unwrap();
    assert!(matches!(
        f.vfs.set_xattr(stat.ino, b"user.tag", None),
        Err(VfsError::NoAttribute)
    ));
}

#[test]
fn drop_setid_clears_setuid_and_executable_setgid_of_files_only() {
    let mut f = fixture(Permission::Owner);
    let mode = |f: &mut Fixture, ino| f.vfs.stat(ino).unwrap().attr.mode;
    for (before, after) in [(0o6755, 0o755), (0o6745, 0o2745), (0o644, 0o644)] {
        let (stat, opened) = f.vfs.create(f.live, b"f", before, ME).unwrap();
        f.vfs.close(opened.fh).unwrap();
        f.vfs.drop_setid(stat.ino).unwrap();
        assert_eq!(mode(&mut f, stat.ino), after, "{before:o}");
        f.vfs.remove(f.live, b"f", false).unwrap();
    }
    let dir = f.vfs.mkdir(f.live, b"d", 0o2775, ME).unwrap();
    f.vfs.drop_setid(dir.ino).unwrap();
    assert_eq!(mode(&mut f, dir.ino), 0o2775);
}

#[test]
fn read_only_share_refuses_changes() {
    let mut f = fixture(Permission::Read);
    assert!(matches!(
        f.vfs.mkdir(f.live, b"x", 0o755, ME),
        Err(VfsError::Access)
    ));
    assert!(matches!(
        f.vfs.create(f.live, b"x", 0o644, ME),
        Err(VfsError::Access)
    ));
}

/// A library in memory with one snapshot holding `docs/hello.txt`, mounted through the
/// object seam: the read path and the snapshot folders, with no server.
#[test]
fn committed_files_and_snapshot_folders_read_through_the_object_seam() {
    use crate::model::{Entry, Snapshot, SnapshotKind, Tree};
    use crate::repo::trees::TreeWriter;
    use crate::repo::Repo;

    let dir = tempfile::tempdir().unwrap();
    let repo = Arc::new(MemoryRepo::default());
    let text = b"hello through the seam";
    let chunks = repo.store_chunk(text);
    let entry = |name: &[u8], kind| Entry {
        mode: 0o644,
        uid: 1000,
        gid: 1000,
        mtime_ns: 1_700_000_000_000_000_000,
        ..Entry::new(name, kind)
    };
    let mut writer = TreeWriter::new(repo.as_ref(), Default::default());
    let docs = writer.add(Tree::new(vec![Entry {
        size: text.len() as u64,
        chunks,
        ..entry(b"hello.txt", EntryKind::File)
    }]));
    let root = writer.add(Tree::new(vec![Entry {
        subtree: Some(docs),
        mode: 0o755,
        ..entry(b"docs", EntryKind::Dir)
    }]));
    writer.flush().unwrap();
    let (head, _) = repo
        .upload_snapshot(&Snapshot {
            tree: root,
            parent: None,
            time_ns: 1_700_000_000_000_000_000,
            host: "laptop".into(),
            username: "me".into(),
            author: "me@example.com".into(),
            paths: vec!["/docs".into()],
            tags: Vec::new(),
            kind: SnapshotKind::Backup,
            summary: Default::default(),
            generation: 1,
        })
        .unwrap();
    repo.set_head(None, head).unwrap().unwrap();

    let mut info = library_info(Permission::Owner);
    info.head = Some(head);
    let library = OpenLibrary {
        info,
        name: "Backups".into(),
        keys: repo.keys().clone(),
    };
    let journal = Arc::new(Journal::open(&dir.path().join("journal.db")).unwrap());
    let mut vfs = Vfs::new(
        vec![MountedLibrary {
            library,
            display: "Backups".into(),
            head: Some((head, root)),
        }],
        repo.clone(),
        (1000, 1000),
        dir.path().join("staging"),
        journal,
    );
    let read_file = |vfs: &mut Vfs, dir: u64| {
        let docs = vfs.lookup(dir, b"docs").unwrap();
        let file = vfs.lookup(docs.ino, b"hello.txt").unwrap();
        assert_eq!(file.attr.size, text.len() as u64);
        let opened = vfs.open_read(file.ino).unwrap();
        // A read past the first bytes takes a slice of the chunk.
        let tail = vfs.read(opened.fh, 6, 100).unwrap().to_vec();
        vfs.close(opened.fh).unwrap();
        tail
    };
    let live = vfs.lookup(ROOT, b"Backups").unwrap().ino;
    assert_eq!(read_file(&mut vfs, live), b"through the seam");

    let snapshots = vfs.lookup(ROOT, b"snapshots").unwrap().ino;
    let listed = vfs.lookup(snapshots, b"Backups").unwrap().ino;
    let fh = vfs.opendir(listed).unwrap();
    let names: Vec<Vec<u8>> = vfs
        .readdir(fh, 2)
        .unwrap()
        .iter()
        .map(|e| e.2.clone())
        .collect();
    vfs.releasedir(fh);
    assert_eq!(names.len(), 2, "one snapshot and `latest`: {names:?}");
    assert!(names.contains(&b"latest".to_vec()));
    let stamp = names.iter().find(|n| n.as_slice() != b"latest").unwrap();
    let snapshot = vfs.lookup(listed, stamp).unwrap();
    assert!(snapshot.immutable);
    assert_eq!(read_file(&mut vfs, snapshot.ino), b"through the seam");
}

#[test]
fn special_files_access_times_link_counts_and_long_names_are_as_on_ext4() {
    let mut f = fixture(Permission::Owner);
    let fifo = f
        .vfs
        .mknod(f.live, b"pipe", EntryKind::Fifo, 0o640, 0, ME)
        .unwrap();
    assert_eq!(
        (fifo.kind, fifo.rdev, fifo.attr.mode),
        (EntryKind::Fifo, 0, 0o640)
    );
    let tty = f
        .vfs
        .mknod(f.live, b"tty", EntryKind::CharDevice, 0o620, 0x0401, ME)
        .unwrap();
    assert_eq!((tty.kind, tty.rdev), (EntryKind::CharDevice, 0x0401));
    assert!(matches!(
        f.vfs.mknod(f.live, b"plain", EntryKind::File, 0o644, 0, ME),
        Err(VfsError::Invalid(_))
    ));
    assert!(matches!(
        f.vfs.open_read(fifo.ino),
        Err(VfsError::Invalid(_))
    ));

    // An explicit access time is kept apart from the modification time.
    let (file, opened) = f.vfs.create(f.live, b"f", 0o644, ME).unwrap();
    f.vfs.close(opened.fh).unwrap();
    let change = AttrChange {
        atime_ns: Some(7_000_000_000),
        mtime_ns: Some(9_000_000_000),
        ..AttrChange::default()
    };
    let set = f.vfs.setattr(file.ino, change).unwrap();
    assert_eq!(set.attr.atime_ns, Some(7_000_000_000));
    assert_eq!(set.attr.mtime_ns, 9_000_000_000);

    // 2 + subdirectories.
    let dir = f.vfs.mkdir(f.live, b"d", 0o755, ME).unwrap();
    assert_eq!(dir.nlink, 2);
    f.vfs.mkdir(dir.ino, b"a", 0o755, ME).unwrap();
    f.vfs.mkdir(dir.ino, b"b", 0o755, ME).unwrap();
    f.vfs
        .mknod(dir.ino, b"p", EntryKind::Fifo, 0o644, 0, ME)
        .unwrap();
    assert_eq!(f.vfs.stat(dir.ino).unwrap().nlink, 4);

    let long = vec![b'n'; 256];
    assert!(matches!(
        f.vfs.lookup(f.live, &long),
        Err(VfsError::NameTooLong)
    ));
    assert!(matches!(
        f.vfs.mkdir(f.live, &long, 0o755, ME),
        Err(VfsError::NameTooLong)
    ));

    // In a set-group-ID directory, new nodes take its group; directories its bit too.
    let shared = f.vfs.mkdir(f.live, b"shared", 0o2775, ME).unwrap();
    let staff = AttrChange {
        gid: Some(50),
        ..AttrChange::default()
    };
    f.vfs.setattr(shared.ino, staff).unwrap();
    let sub = f.vfs.mkdir(shared.ino, b"sub", 0o755, ME).unwrap();
    assert_eq!((sub.attr.gid, sub.attr.mode), (50, 0o2755));
    let (inner, opened) = f.vfs.create(shared.ino, b"x", 0o644, ME).unwrap();
    f.vfs.close(opened.fh).unwrap();
    assert_eq!((inner.attr.gid, inner.attr.mode), (50, 0o644));

    let journaled = ops(&f);
    assert!(journaled.iter().any(|op| matches!(
        op,
        Op::Special { path, kind: EntryKind::CharDevice, rdev: 0x0401, mode: 0o620, .. }
            if path == b"tty"
    )));
    assert!(journaled.iter().any(|op| matches!(
        op,
        Op::SetAttr { path, atime_ns: Some(7_000_000_000), .. } if path == b"f"
    )));
}

#[test]
fn a_failed_truncation_leaves_no_handle_open_and_an_unlinked_open_file_has_no_links() {
    let mut f = fixture(Permission::Owner);
    let (file, opened) = f.vfs.create(f.live, b"f", 0o644, ME).unwrap();
    f.vfs.close(opened.fh).unwrap();
    let too_big = AttrChange {
        size: Some(i64::MAX as u64),
        ..AttrChange::default()
    };
    assert!(f.vfs.setattr(file.ino, too_big).is_err());
    // An open handle would hold up unmounting for good.
    assert!(f.vfs.handles.is_empty());
    assert_eq!(f.vfs.stat(file.ino).unwrap().attr.size, 0);

    let opened = f.vfs.open_read(file.ino).unwrap();
    f.vfs.remove(f.live, b"f", false).unwrap();
    assert_eq!(f.vfs.stat(file.ino).unwrap().nlink, 0);
    f.vfs.close(opened.fh).unwrap();
}

#[test]
fn library_names_from_their_owners_become_safe_folder_names() {
    let mut f = fixture(Permission::Owner);
    let mut named = |display: &str, id: &str| {
        let mut info = library_info(Permission::Read);
        info.id = id.into();
        f.vfs.attach(MountedLibrary {
            library: OpenLibrary {
                info,
                name: display.into(),
                keys: LibraryKeys::generate(),
            },
            display: display.into(),
            head: None,
        });
    };
    named("snapshots", "aaaaaaaa11111111aaaaaaaa11111111");
    named(
        "../etc@evil@example.com",
        "bbbbbbbb22222222bbbbbbbb22222222",
    );
    named("..", "cccccccc33333333cccccccc33333333");
    named(&"x".repeat(300), "dddddddd44444444dddddddd44444444");
    named("Backups", "eeeeeeee55555555eeeeeeee55555555");
    let fh = f.vfs.opendir(ROOT).unwrap();
    let mut names: Vec<String> = f
        .vfs
        .readdir(fh, 2)
        .unwrap()
        .iter()
        .map(|e| String::from_utf8(e.2.clone()).unwrap())
        .collect();
    names.sort();
    let long = "x".repeat(255);
    let mut expected = vec![
        "..∕etc@evil@example.com".to_owned(),
        "Backups".to_owned(),
        "Backups (eeeeeeee)".to_owned(),
        "library-aaaaaaaa".to_owned(),
        "library-cccccccc".to_owned(),
        "snapshots".to_owned(),
        long,
    ];
    expected.sort();
    assert_eq!(names, expected);
    // The real snapshots folder is still the one at the root.
    let snapshots = f.vfs.lookup(ROOT, b"snapshots").unwrap();
    assert!(snapshots.read_only);
}

#[test]
fn a_node_dropped_when_the_view_was_rebuilt_is_stale_not_missing() {
    let mut f = fixture(Permission::Owner);
    let (made, opened) = f.vfs.create(f.live, b"old", 0o644, ME).unwrap();
    f.vfs.close(opened.fh).unwrap();
    // Another client's head shown: the kernel may still name the old node for a second
    // (its entry timeout); ESTALE makes it look the name up again, ENOENT would not.
    let root = crate::crypto::IdKey::new([1; 32]).object_key(1, b"a tree");
    f.vfs
        .show_new_head(0, crate::crypto::ObjectId::from_bytes([5; 32]), root);
    assert!(matches!(f.vfs.stat(made.ino), Err(VfsError::Stale)));
    assert!(matches!(f.vfs.open_read(made.ino), Err(VfsError::Stale)));
}
