//! Checks on user-supplied text at the server boundary. Each failure says what is allowed.

use super::error::ApiError;

/// Normalises and checks an e-mail address: trimmed, lower-case, one `@`, a dot in the
/// domain, no spaces or control characters, at most 254 characters.
pub fn email(text: &str) -> Result<String, ApiError> {
    crate::api::check_email(text).map_err(ApiError::bad_request)
}

/// A first or last name: 1 to 100 characters, no control characters.
pub fn person_name(field: &str, text: &str) -> Result<String, ApiError> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(ApiError::bad_request(format!(
            "{field} must be 1 to 100 characters without control characters"
        )));
    }
    Ok(name.to_owned())
}

/// A library name sealed by the client: nonce, ciphertext and tag of a name of at most
/// 400 bytes (100 characters of up to four bytes each).
pub fn sealed_name(value: &[u8]) -> Result<(), ApiError> {
    bytes_len("name_sealed", value, 12 + 16 + 1..=12 + 16 + 400)
}

/// A binary field with a length in `range`.
pub fn bytes_len(
    field: &str,
    value: &[u8],
    range: std::ops::RangeInclusive<usize>,
) -> Result<(), ApiError> {
    if range.contains(&value.len()) {
        Ok(())
    } else {
        Err(ApiError::bad_request(format!(
            "{field} must be {} to {} bytes, got {}",
            range.start(),
            range.end(),
            value.len()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails() {
        assert_eq!(email(" Alice@Example.COM ").unwrap(), "alice@example.com");
        for bad in [
            "", "alice", "a@b", "a b@c.d", "@c.d", "a@@c.d", "a@.d", "a@d.",
        ] {
            assert!(email(bad).is_err(), "{bad}");
        }
    }
}
