//! Route paths (see `docs/PROTOCOL.md`). `{library}` stands for a library id.

pub const HEALTH: &str = "/api/v1/health";
pub const PRELOGIN: &str = "/api/v1/prelogin";
pub const ACCOUNTS: &str = "/api/v1/accounts";
pub const ACCOUNT: &str = "/api/v1/account";
pub const SESSIONS: &str = "/api/v1/sessions";
pub const SESSION_CURRENT: &str = "/api/v1/sessions/current";
pub const SESSION_KEY_SHARE: &str = "/api/v1/sessions/current/key-share";
pub const PLANS: &str = "/api/v1/plans";
pub const ACCOUNT_PLAN: &str = "/api/v1/account/plan";
pub const ACCOUNT_PLAN_QUOTE: &str = "/api/v1/account/plan/quote/{plan}";
pub const ACCOUNT_CARD: &str = "/api/v1/account/card";
pub const ACCOUNT_INVOICES: &str = "/api/v1/account/invoices";
pub const ACCOUNT_CANCEL: &str = "/api/v1/account/cancel";
pub const ACCOUNT_REACTIVATE: &str = "/api/v1/account/reactivate";
pub const ACCOUNT_CONSENT: &str = "/api/v1/account/consent";
pub const ACCOUNT_PASSWORD: &str = "/api/v1/account/password";
pub const ACCOUNT_RECOVERY_KEY: &str = "/api/v1/account/recovery-key";
pub const ACCOUNT_KEYS: &str = "/api/v1/account/keys";
pub const ACCOUNT_CONFIRM_EMAIL: &str = "/api/v1/account/confirm-email";
pub const CONFIRM_ADDRESS: &str = "/api/v1/confirm-address/{token}";
pub const ACCOUNT_SESSIONS: &str = "/api/v1/account/sessions";
pub const ACCOUNT_SESSION: &str = "/api/v1/account/sessions/{session}";
pub const ACCOUNT_SESSIONS_REVOKE_OTHERS: &str = "/api/v1/account/sessions/revoke-others";
pub const ACCOUNT_EXPORT: &str = "/api/v1/account/export";
pub const ACCOUNT_DELETE: &str = "/api/v1/account/delete";
pub const RECOVERY_CHALLENGE: &str = "/api/v1/recovery/challenge";
pub const RECOVERY_COMPLETE: &str = "/api/v1/recovery/complete";
pub const OPTOUT: &str = "/api/v1/optout/{token}";
pub const FEEDBACK: &str = "/api/v1/feedback";
pub const SURVEYS: &str = "/api/v1/surveys";
pub const SURVEY_ANSWERS: &str = "/api/v1/surveys/{survey}/answers";
pub const LIBRARIES: &str = "/api/v1/libraries";
pub const LIBRARY: &str = "/api/v1/libraries/{library}";
pub const LIBRARY_MEMBERS: &str = "/api/v1/libraries/{library}/members";
pub const LIBRARY_ROTATE: &str = "/api/v1/libraries/{library}/rotate";
pub const LIBRARY_LEAVE: &str = "/api/v1/libraries/{library}/leave";
pub const CONTACT_LOOKUP: &str = "/api/v1/contacts/lookup";
pub const LIBRARY_LINKS: &str = "/api/v1/libraries/{library}/links";
pub const LINKS: &str = "/api/v1/links";
pub const LINK: &str = "/api/v1/links/{link}";
pub const LINK_POINTER: &str = "/api/v1/links/{link}/pointer";
pub const LINK_OPEN: &str = "/api/v1/links/{link}/open";
pub const LINK_FETCH: &str = "/api/v1/links/{link}/fetch";
/// Where a link points a browser (the page is the web front end's); `ibackup get` takes it.
pub const LINK_PAGE: &str = "/l/{link}";
/// The web front end's signed-in pages (sign in, My Profile).
pub const WEB_APP: &str = "/";
/// The web front end's script and style (`server::http::web`).
pub const ASSET: &str = "/assets/{name}";
pub const LIBRARY_HEAD: &str = "/api/v1/libraries/{library}/head";
pub const LIBRARY_POLICY: &str = "/api/v1/libraries/{library}/policy";
pub const LIBRARY_FORGET: &str = "/api/v1/libraries/{library}/forget";
pub const LIBRARY_HOLDS: &str = "/api/v1/libraries/{library}/holds";
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

/// Fills a link id into a route template.
pub fn link(template: &str, link_id: &str) -> String {
    template.replace("{link}", link_id)
}
