//! The web front end's files, embedded in the binary: the signed-in pages (`/`: sign in,
//! My Profile), the page a link opens in a browser (`/l/{link}`), and their scripts and
//! style (`/assets/...`). The page decrypts in the
//! browser: it asks the server only what `ibackup get` asks (docs/PROTOCOL.md, links), and
//! the key in the link's fragment is never sent. Built from `web/` by `scripts/web`.

use std::sync::OnceLock;

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, ETAG, IF_NONE_MATCH, REFERRER_POLICY,
    X_CONTENT_TYPE_OPTIONS, X_FRAME_OPTIONS,
};
use axum::http::{HeaderMap, HeaderName, StatusCode};
use axum::response::{IntoResponse, Response};

use super::super::error::ApiError;
use crate::api::is_random_id;

const PAGE_HTML: &str = include_str!("../../../web/static/link.html");
const LINK_SCRIPT: &[u8] = include_bytes!("../../../web/dist/link.js");
const APP_HTML: &str = include_str!("../../../web/static/app.html");
const APP_SCRIPT: &[u8] = include_bytes!("../../../web/dist/app.js");
const SAVE_WORKER: &[u8] = include_bytes!("../../../web/dist/save-worker.js");
const ZSTD_WASM: &[u8] = include_bytes!("../../../web/dist/zstd.wasm");
const ICON: &[u8] = include_bytes!("../../../web/static/icon.svg");
const STYLE: &[u8] = include_bytes!("../../../web/static/style.css");

/// Scripts, styles and workers only from this server, nothing inline, no plugins; requests
/// and frames (the hidden frame of a download, `web/src/saver.js`) only to this server,
/// and no page of it inside a frame. WebAssembly may be compiled from the page's own
/// script and this server's `zstd.wasm` (BLAKE3 over whole chunks, zstd for uploads,
/// `web/src/blob.js`): `'wasm-unsafe-eval'` allows that and no evaluation of text as
/// script.
const POLICY: &str = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; \
                      connect-src 'self'; img-src 'self'; worker-src 'self'; \
                      frame-src 'self'; form-action 'none'; frame-ancestors 'none'; \
                      base-uri 'none'";

/// What every page and asset is sent with.
fn headers(content_type: &'static str, cache: &'static str) -> [(HeaderName, &'static str); 6] {
    [
        (CONTENT_TYPE, content_type),
        (CONTENT_SECURITY_POLICY, POLICY),
        (X_FRAME_OPTIONS, "DENY"),
        (X_CONTENT_TYPE_OPTIONS, "nosniff"),
        (REFERRER_POLICY, "no-referrer"),
        (CACHE_CONTROL, cache),
    ]
}

/// `GET /l/{link}`: the page that opens a link. Whether the link exists is the page's
/// first request to ask, as for `ibackup get`.
pub async fn link_page(Path(link): Path<String>) -> Result<Response, ApiError> {
    if !is_random_id(&link) {
        return Err(ApiError::not_found(
            "no such link: a link's address is /l/ and 32 hex digits, then # and its key",
        ));
    }
    Ok((headers("text/html; charset=utf-8", "no-store"), PAGE_HTML).into_response())
}

/// `GET /`: sign in, and My Profile once signed in (the session cookie).
pub async fn app_page() -> Response {
    (headers("text/html; charset=utf-8", "no-store"), APP_HTML).into_response()
}

/// The page's scripts, style and WebAssembly: name, type and contents.
const ASSETS: [(&str, &str, &[u8]); 6] = [
    ("link.js", "text/javascript; charset=utf-8", LINK_SCRIPT),
    ("app.js", "text/javascript; charset=utf-8", APP_SCRIPT),
    (
        "save-worker.js",
        "text/javascript; charset=utf-8",
        SAVE_WORKER,
    ),
    ("zstd.wasm", "application/wasm", ZSTD_WASM),
    ("style.css", "text/css; charset=utf-8", STYLE),
    ("icon.svg", "image/svg+xml", ICON),
];

/// Each asset's entity tag: the start of its BLAKE3, quoted, made once.
fn entity_tag(index: usize) -> &'static str {
    static TAGS: OnceLock<Vec<String>> = OnceLock::new();
    let tags = TAGS.get_or_init(|| {
        ASSETS
            .iter()
            .map(|(_, _, body)| format!("\"{}\"", &blake3::hash(body).to_hex()[..32]))
            .collect()
    });
    &tags[index]
}

/// Whether an `If-None-Match` value names `tag` (or is `*`); weak tags compare as strong
/// ones for a GET (RFC 9110, 13.1.2).
fn names_tag(if_none_match: &str, tag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|candidate| {
        candidate == "*" || candidate.strip_prefix("W/").unwrap_or(candidate) == tag
    })
}

/// `GET /assets/{name}`: the page's script, style and WebAssembly. Revalidated on each
/// use, so a new server version is picked up at once; the entity tag lets a browser that
/// has the same file keep it (304, no body).
pub async fn asset(Path(name): Path<String>, request: HeaderMap) -> Result<Response, ApiError> {
    let index = ASSETS
        .iter()
        .position(|(asset, _, _)| *asset == name)
        .ok_or_else(|| ApiError::not_found("no such file"))?;
    let (_, content_type, body) = ASSETS[index];
    let tag = entity_tag(index);
    let unchanged = request
        .get(IF_NONE_MATCH)
        .and_then(|value| value.to_str().ok())
        .is_some_and(|value| names_tag(value, tag));
    let tagged = [(ETAG, tag)];
    if unchanged {
        return Ok((
            StatusCode::NOT_MODIFIED,
            headers(content_type, "no-cache"),
            tagged,
        )
            .into_response());
    }
    Ok((headers(content_type, "no-cache"), tagged, body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tag_is_named_alone_in_a_list_weak_or_by_a_star() {
        let tag = "\"abc\"";
        assert!(names_tag("\"abc\"", tag));
        assert!(names_tag("\"x\", W/\"abc\"", tag));
        assert!(names_tag("*", tag));
        assert!(!names_tag("\"abcd\"", tag));
        assert!(!names_tag("abc", tag));
        assert!(!names_tag("", tag));
    }

    #[test]
    fn every_asset_has_its_own_tag() {
        let tags: std::collections::HashSet<_> = (0..ASSETS.len()).map(entity_tag).collect();
        assert_eq!(tags.len(), ASSETS.len());
    }
}
