//! The web front end's files, embedded in the binary: the signed-in pages (`/`: sign in,
//! My Profile), the page a link opens in a browser (`/l/{link}`), and their scripts and
//! style (`/assets/...`). The page decrypts in the
//! browser: it asks the server only what `ibackup get` asks (docs/PROTOCOL.md, links), and
//! the key in the link's fragment is never sent. Built from `web/` by `scripts/web`.

use axum::extract::Path;
use axum::http::header::{
    CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, REFERRER_POLICY, X_CONTENT_TYPE_OPTIONS,
    X_FRAME_OPTIONS,
};
use axum::http::HeaderName;
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

/// `GET /assets/{name}`: the page's script and style. Revalidated on each use, so a new
/// server version is picked up at once.
pub async fn asset(Path(name): Path<String>) -> Result<Response, ApiError> {
    let (content_type, body) = match name.as_str() {
        "link.js" => ("text/javascript; charset=utf-8", LINK_SCRIPT),
        "app.js" => ("text/javascript; charset=utf-8", APP_SCRIPT),
        "save-worker.js" => ("text/javascript; charset=utf-8", SAVE_WORKER),
        "zstd.wasm" => ("application/wasm", ZSTD_WASM),
        "style.css" => ("text/css; charset=utf-8", STYLE),
        "icon.svg" => ("image/svg+xml", ICON),
        _ => return Err(ApiError::not_found("no such file")),
    };
    Ok((headers(content_type, "no-cache"), body).into_response())
}
