//! POSIX ACLs, kept as the extended attributes Linux gives them (`system.posix_acl_access`
//! and `system.posix_acl_default`, in the kernel's xattr form), so a backup of an ext4
//! folder with ACLs shows them in the mount and a restore puts them back. The kernel does
//! the rest (FUSE_POSIX_ACL): it checks access against them where the mount checks
//! permissions (`allow_other`), and keeps an access ACL and the mode in step on `chmod` and
//! `setfacl`. What is the file system's: a new file or folder in a folder with a default
//! ACL inherits it, and the mode asked for is masked by it instead of by the umask.

/// A file's access ACL, and a folder's default ACL for what is made in it.
pub const ACCESS: &[u8] = b"system.posix_acl_access";
pub const DEFAULT: &[u8] = b"system.posix_acl_default";

const VERSION: u32 = 2;
const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;

/// One entry: tag, permission bits (rwx), and the user or group it names.
type Entry = (u16, u16, u32);

/// Whether `name` is one of the two ACL attributes.
pub fn is_acl(name: &[u8]) -> bool {
    name == ACCESS || name == DEFAULT
}

/// The entries of an ACL in xattr form: version 2, then 8 bytes an entry (tag, permission,
/// id, little-endian). `None` if it is not one.
fn parse(value: &[u8]) -> Option<Vec<Entry>> {
    let (version, rest) = value.split_first_chunk::<4>()?;
    if u32::from_le_bytes(*version) != VERSION || rest.len() % 8 != 0 {
        return None;
    }
    rest.chunks_exact(8)
        .map(|entry| {
            let tag = u16::from_le_bytes([entry[0], entry[1]]);
            let perm = u16::from_le_bytes([entry[2], entry[3]]);
            let id = u32::from_le_bytes([entry[4], entry[5], entry[6], entry[7]]);
            let known = matches!(tag, USER_OBJ | USER | GROUP_OBJ | GROUP | MASK | OTHER);
            (known && perm <= 7).then_some((tag, perm, id))
        })
        .collect()
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut value = VERSION.to_le_bytes().to_vec();
    for (tag, perm, id) in entries {
        value.extend_from_slice(&tag.to_le_bytes());
        value.extend_from_slice(&perm.to_le_bytes());
        value.extend_from_slice(&id.to_le_bytes());
    }
    value
}

/// Whether `value` is an ACL in xattr form, with the three entries every ACL has.
pub fn valid(value: &[u8]) -> bool {
    parse(value).is_some_and(|entries| {
        [USER_OBJ, GROUP_OBJ, OTHER]
            .iter()
            .all(|tag| entries.iter().filter(|e| e.0 == *tag).count() == 1)
    })
}

/// What a new node made with `mode` (the umask not applied) in a folder whose default ACL
/// is `default` takes: its mode, and its access ACL unless the mode says all of it (as
/// Linux's `posix_acl_create_masq`). `None` if `default` is not an ACL.
pub fn inherit(default: &[u8], mode: u32) -> Option<(u32, Option<Vec<u8>>)> {
    let mut entries = parse(default)?;
    let mut bits = mode & 0o777;
    let mut extended = false;
    let (mut group_obj, mut mask) = (None, None);
    for (i, (tag, perm, _)) in entries.iter_mut().enumerate() {
        match *tag {
            USER_OBJ => {
                *perm &= (bits >> 6) as u16 & 7;
                bits &= (u32::from(*perm) << 6) | !0o700;
            }
            USER | GROUP => extended = true,
            GROUP_OBJ => group_obj = Some(i),
            OTHER => {
                *perm &= bits as u16 & 7;
                bits &= u32::from(*perm) | !0o7;
            }
            MASK => {
                mask = Some(i);
                extended = true;
            }
            _ => {}
        }
    }
    let group = mask.or(group_obj)?;
    entries[group].1 &= (bits >> 3) as u16 & 7;
    bits &= (u32::from(entries[group].1) << 3) | !0o70;
    let mode = (mode & !0o777) | (bits & 0o777);
    Some((mode, extended.then(|| encode(&entries))))
}

/// The permission bits an access ACL gives the mode (owner; mask, or group without one;
/// other), and whether the ACL says no more than those (no named users or groups: the
/// mode alone can stand for it). `None` if `value` is not an ACL.
pub fn mode_bits(value: &[u8]) -> Option<(u32, bool)> {
    let entries = parse(value)?;
    let perm = |tag: u16| entries.iter().find(|e| e.0 == tag).map(|e| u32::from(e.1));
    let group = perm(MASK).or(perm(GROUP_OBJ))?;
    let bits = (perm(USER_OBJ)? << 6) | (group << 3) | perm(OTHER)?;
    let plain = !entries.iter().any(|e| matches!(e.0, USER | GROUP | MASK));
    Some((bits, plain))
}

/// The access ACL `value` after a `chmod` to `mode`: the owner, mask (or group) and other
/// entries take the mode's bits, as Linux's `posix_acl_chmod`.
pub fn chmod(value: &[u8], mode: u32) -> Option<Vec<u8>> {
    let mut entries = parse(value)?;
    let has_mask = entries.iter().any(|e| e.0 == MASK);
    for (tag, perm, _) in entries.iter_mut() {
        match *tag {
            USER_OBJ => *perm = (mode >> 6) as u16 & 7,
            MASK => *perm = (mode >> 3) as u16 & 7,
            GROUP_OBJ if !has_mask => *perm = (mode >> 3) as u16 & 7,
            OTHER => *perm = mode as u16 & 7,
            _ => {}
        }
    }
    Some(encode(&entries))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(entries: &[Entry]) -> Vec<u8> {
        encode(entries)
    }

    #[test]
    fn a_default_acl_masks_the_mode_asked_for_and_is_inherited() {
        // setfacl -d -m u::rwx,u:1000:rwx,g::r-x,m::rwx,o::---
        let default = acl(&[
            (USER_OBJ, 7, u32::MAX),
            (USER, 7, 1000),
            (GROUP_OBJ, 5, u32::MAX),
            (MASK, 7, u32::MAX),
            (OTHER, 0, u32::MAX),
        ]);
        assert!(valid(&default));
        // A file made 0666: the mask takes the group bits, other gets nothing.
        let (mode, access) = inherit(&default, 0o100666).unwrap();
        assert_eq!(mode, 0o100660);
        assert_eq!(
            parse(&access.unwrap()).unwrap(),
            vec![
                (USER_OBJ, 6, u32::MAX),
                (USER, 7, 1000),
                (GROUP_OBJ, 5, u32::MAX),
                (MASK, 6, u32::MAX),
                (OTHER, 0, u32::MAX),
            ]
        );
        // Only the three base entries: the mode says it all, no access ACL.
        let plain = acl(&[
            (USER_OBJ, 7, u32::MAX),
            (GROUP_OBJ, 5, u32::MAX),
            (OTHER, 5, u32::MAX),
        ]);
        assert_eq!(inherit(&plain, 0o40777), Some((0o40755, None)));
        assert_eq!(
            inherit(&plain, 0o2700),
            Some((0o2700, None)),
            "set-ID bits kept"
        );
    }

    #[test]
    fn the_mode_and_an_access_acl_stay_in_step() {
        let extended = acl(&[
            (USER_OBJ, 6, u32::MAX),
            (USER, 4, 65534),
            (GROUP_OBJ, 0, u32::MAX),
            (MASK, 4, u32::MAX),
            (OTHER, 0, u32::MAX),
        ]);
        assert_eq!(
            mode_bits(&extended),
            Some((0o640, false)),
            "the mask shows as group"
        );
        let changed = chmod(&extended, 0o100751).unwrap();
        assert_eq!(mode_bits(&changed), Some((0o751, false)));
        assert_eq!(
            parse(&changed).unwrap()[1],
            (USER, 4, 65534),
            "named entries stay"
        );
        let plain = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 5, 0), (OTHER, 4, 0)]);
        assert_eq!(mode_bits(&plain), Some((0o754, true)));
        assert_eq!(
            mode_bits(&chmod(&plain, 0o600).unwrap()),
            Some((0o600, true))
        );
    }

    #[test]
    fn what_is_not_an_acl_is_refused() {
        assert!(!valid(b""));
        assert!(!valid(&[2, 0, 0, 0, 1]));
        assert!(!valid(&acl(&[(USER_OBJ, 7, 0)])), "no group or other entry");
        assert!(!valid(&acl(&[
            (USER_OBJ, 9, 0),
            (GROUP_OBJ, 0, 0),
            (OTHER, 0, 0)
        ])));
        let mut other_version = acl(&[(USER_OBJ, 7, 0), (GROUP_OBJ, 0, 0), (OTHER, 0, 0)]);
        other_version[0] = 1;
        assert!(!valid(&other_version));
        assert_eq!(inherit(b"junk", 0o644), None);
    }
}
