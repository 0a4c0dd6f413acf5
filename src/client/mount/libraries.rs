//! The libraries a mount shows, kept in line with what the server lists.

use std::sync::Mutex;

use super::vfs::{MountedLibrary, Vfs};
use crate::api::types::Permission;
use crate::session::{OpenLibrary, Session};
use crate::store::Store;
use crate::{ClientError, Result};

/// A library as a mount shows it, with its head's root tree; `--read-only` shows every
/// library as if shared read-only.
pub(super) fn mounted_library(
    session: &Session,
    mut library: OpenLibrary,
    read_only: bool,
) -> Result<MountedLibrary> {
    // Named as the account sees it (its own libraries without `@OWNER`), read-only or not.
    let display = library.display();
    if read_only {
        library.info.permission = Permission::Read;
    }
    let head = match library.info.head {
        Some(head) => {
            let store = Store::new(&session.remote, &library);
            Some((head, store.checked_head(head)?.tree))
        }
        None => None,
    };
    Ok(MountedLibrary {
        display,
        library,
        head,
    })
}

/// Brings the mounted libraries in line with what the server lists now: libraries shared
/// since appear, unshared or deleted ones disappear, and rotated keys or changed
/// permissions are taken (a removed member's next upload would be refused otherwise).
/// `only`: the id of the one library a `--library` mount shows.
pub fn refresh_libraries(
    vfs: &Mutex<Vfs>,
    session: &Session,
    read_only: bool,
    only: Option<&str>,
    locks: &super::locks::Locks,
) -> Result<()> {
    let listed: Vec<_> = session
        .libraries()?
        .into_iter()
        .filter(|l| only.is_none_or(|id| l.info.id == id))
        .collect();
    let shown: Vec<(usize, String, u32, Permission, bool)> = {
        let vfs = vfs.lock().unwrap_or_else(|p| p.into_inner());
        vfs.libraries
            .iter()
            .enumerate()
            .map(|(index, view)| {
                let info = &view.library.info;
                (
                    index,
                    info.id.clone(),
                    info.grant_epoch,
                    info.permission,
                    view.gone,
                )
            })
            .collect()
    };
    for (index, id, _, _, gone) in &shown {
        if !gone && !listed.iter().any(|l| &l.info.id == id) {
            vfs.lock().unwrap_or_else(|p| p.into_inner()).detach(*index);
        }
    }
    for library in listed {
        let (library, refused) = crate::sharing::rotate_if_asked(session, library)?;
        if !refused.is_empty() {
            let warning = crate::sharing::refused_warning(&library.name, &refused);
            tracing::warn!("{warning}");
        }
        let current = shown
            .iter()
            .find(|(_, id, _, _, gone)| *id == library.info.id && !gone);
        match current {
            // Shown by another mount on this computer: not here too.
            None if !locks.take(&library.info.id) => {}
            None => {
                let mounted = mounted_library(session, library, read_only)?;
                vfs.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .attach(mounted);
            }
            Some((index, _, epoch, permission, _)) => {
                let mut library = library;
                if read_only {
                    library.info.permission = Permission::Read;
                }
                if *epoch != library.info.grant_epoch || *permission != library.info.permission {
                    vfs.lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .update_library(*index, library);
                }
            }
        }
    }
    Ok(())
}

/// The library `--library NAME[:PATH]` names among `listed` (by the name the account sees:
/// `NAME` for its own, `NAME@OWNER` for one shared with it), and the folder in it (`PATH`,
/// `/`-separated; empty for its root). A name that itself holds `:` is taken whole first.
pub fn choose_library(
    listed: Vec<OpenLibrary>,
    wanted: &str,
    read_only: bool,
) -> Result<(OpenLibrary, Vec<Vec<u8>>)> {
    let split = wanted
        .rsplit_once(':')
        .filter(|(name, _)| !listed.iter().any(|l| l.display() == wanted) && !name.is_empty());
    let (name, path) = split.unwrap_or((wanted, ""));
    let Some(library) = listed.into_iter().find(|l| l.display() == name) else {
        return Err(ClientError::Usage(format!(
            "no library named '{name}' on this account; `ibackup library list` names them \
             (one shared with you is NAME@OWNER)"
        )));
    };
    if !read_only && !library.info.permission.can_write() {
        return Err(ClientError::Usage(format!(
            "'{name}' is shared with you read-only: mount it with --read-only (-o ro)"
        )));
    }
    let folder = path
        .split('/')
        .filter(|part| !part.is_empty())
        .map(|part| part.as_bytes().to_vec())
        .collect();
    Ok((library, folder))
}
