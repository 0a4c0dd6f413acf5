//! Route paths (see `docs/PROTOCOL.md`). `{library}` stands for a library id.

pub const HEALTH: &str = "/api/v1/health";
pub const PRELOGIN: &str = "/api/v1/prelogin";
pub const ACCOUNTS: &str = "/api/v1/accounts";
pub const ACCOUNT: &str = "/api/v1/account";
pub const SESSIONS: &str = "/api/v1/sessions";
pub const SESSION_CURRENT: &str = "/api/v1/sessions/current";
pub const LIBRARIES: &str = "/api/v1/libraries";
pub const LIBRARY_HEAD: &str = "/api/v1/libraries/{library}/head";
pub const LIBRARY_SNAPSHOTS: &str = "/api/v1/libraries/{library}/snapshots";
pub const OBJECTS_MISSING: &str = "/api/v1/libraries/{library}/objects/missing";
pub const OBJECTS_UPLOAD: &str = "/api/v1/libraries/{library}/objects/upload";
pub const OBJECTS_FETCH: &str = "/api/v1/libraries/{library}/objects/fetch";

/// Most ids one `missing` or `fetch` request may name.
pub const MAX_IDS_PER_REQUEST: usize = 10_000;
/// Largest upload or fetch body, in bytes.
pub const MAX_BATCH_BYTES: usize = 64 << 20;
/// Largest JSON request body, in bytes.
pub const MAX_JSON_BYTES: usize = 1 << 20;

/// Fills a library id into a route template.
pub fn library(template: &str, library_id: &str) -> String {
    template.replace("{library}", library_id)
}
