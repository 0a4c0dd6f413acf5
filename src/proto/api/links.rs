//! Link bodies (JSON). A link hands out one folder of a library to people without an
//! account: its key travels in the URL's fragment, which is never sent to the server; the
//! server knows only the id of the folder's tree and serves what is reachable from it.

use serde::{Deserialize, Serialize};

use crate::crypto::ObjectId;

/// A new link of a library, made by its owner. `id` is chosen by the client (32 hex digits)
/// because the pointer of a `follow` link is sealed bound to it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateLinkRequest {
    pub id: String,
    /// The tree the link shows.
    pub root: ObjectId,
    /// Re-pointed by the owner's client at each commit, to show the newest snapshot.
    #[serde(default)]
    pub follow: bool,
    /// `follow` only: the root tree's key, sealed under the link key from the fragment.
    #[serde(default, with = "super::b64")]
    pub pointer: Vec<u8>,
    /// What the owner's clients need to list and re-point the link (library, path, the link
    /// key), boxed to the owner's own account key: the server cannot read it.
    #[serde(with = "super::b64")]
    pub label_sealed: Vec<u8>,
    /// A password visitors must give; the server keeps only its Argon2id hash.
    #[serde(default)]
    pub password: Option<String>,
    #[serde(default)]
    pub expires_in_secs: Option<u64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinkInfo {
    pub id: String,
    pub library_id: String,
    pub follow: bool,
    #[serde(with = "super::b64")]
    pub label_sealed: Vec<u8>,
    pub has_password: bool,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinkList {
    pub links: Vec<LinkInfo>,
}

/// A `follow` link's new root, after a commit.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PointerUpdate {
    pub root: ObjectId,
    #[serde(with = "super::b64")]
    pub pointer: Vec<u8>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct OpenLinkRequest {
    #[serde(default)]
    pub password: Option<String>,
}

/// What a visitor gets for opening a link: a token for fetching (an hour), and the root.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct OpenLinkResponse {
    pub token: String,
    pub root: ObjectId,
    pub follow: bool,
    #[serde(default, with = "super::b64")]
    pub pointer: Vec<u8>,
    pub expires_at: Option<i64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinkFetchRequest {
    pub token: String,
    pub ids: Vec<ObjectId>,
}
