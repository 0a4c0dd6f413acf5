//! Wire types shared by client and server: route paths, request and response bodies, error
//! codes and the binary framing of object batches. Pure data: no I/O here.

pub mod account;
pub mod b64;
pub mod error;
pub mod frame;
pub mod links;
pub mod routes;
pub mod types;

pub use error::{ErrorBody, ErrorCode};

/// Bytes of a key grant: a 24-byte nonce, then the box (a 100-byte plaintext and a 16-byte
/// tag); see `crypto::epoch`.
pub const GRANT_BYTES: usize = 24 + 100 + 16;
/// Bytes of a link between key epochs: nonce, the older 32-byte key, tag.
pub const CHAIN_LINK_BYTES: usize = 12 + 32 + 16;
/// Bytes of a sealed roster (a 24-byte nonce, the box's tag, then the owner's record of
/// its members): room for thousands of members, and no more.
pub const ROSTER_BYTES: std::ops::RangeInclusive<usize> = 24 + 16..=1 << 20;

/// Whether `text` has the form of a library, link or pack id: 32 lowercase hex digits (128
/// random bits), safe to use in a path.
pub fn is_random_id(text: &str) -> bool {
    text.len() == 32
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// Checks a library name as a person typed it: 1 to 100 characters; no `/`, `@`, control
/// characters or leading dot; not `snapshots` (the mount reserves it). The server never sees
/// names, so clients check them (and whatever a server hands back, before it becomes a
/// folder name in the mount).
/// An e-mail address as accounts are named: trimmed, lowercase, one `@`, a dot in the
/// domain, no spaces or control characters, at most 254 bytes. The server checks what users
/// send; the client checks what the server sends before showing it or naming a folder.
pub fn check_email(text: &str) -> Result<String, String> {
    let email = text.trim().to_lowercase();
    let valid = email.len() <= 254
        && !email.chars().any(|c| c.is_whitespace() || c.is_control())
        && match email.split_once('@') {
            Some((local, domain)) => {
                !local.is_empty()
                    && !domain.contains('@')
                    && domain.contains('.')
                    && !domain.starts_with('.')
                    && !domain.ends_with('.')
            }
            None => false,
        };
    if valid {
        Ok(email)
    } else {
        Err(format!("`{}` is not a valid e-mail address", text.trim()))
    }
}

pub fn check_library_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    let valid = !name.is_empty()
        && name.chars().count() <= 100
        && !name.starts_with('.')
        && !name.chars().any(|c| c == '/' || c == '@' || c.is_control())
        && name != "snapshots";
    if valid {
        Ok(name.to_owned())
    } else {
        Err(format!(
            "`{name}` cannot name a library: use 1 to 100 characters without `/`, `@` or a \
             leading dot, and not `snapshots`"
        ))
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn library_names() {
        assert!(super::check_library_name("Project X").is_ok());
        for bad in ["", "a/b", "x@y", ".hidden", "snapshots", "tab\there", ".."] {
            assert!(super::check_library_name(bad).is_err(), "{bad}");
        }
    }
}
