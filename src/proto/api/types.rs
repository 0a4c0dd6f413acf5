//! Request and response bodies (JSON).

use serde::{Deserialize, Serialize};

use crate::crypto::kdf::KdfParams;
use crate::crypto::{BlobKind, ObjectId};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    /// The certificate this server presents (`SHA256:` and hex), when it ends TLS itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub certificate: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreloginRequest {
    pub email: String,
}

/// The salt and cost with which the client derives its keys from the password. The server
/// answers the same way for unknown addresses, so this does not reveal who has an account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PreloginResponse {
    #[serde(with = "super::b64")]
    pub salt: Vec<u8>,
    pub kdf: KdfParams,
}

/// What a password becomes on the client, sent at sign-up and whenever the password
/// changes: the auth secret (the server stores only its hash), the salt and cost to derive it
/// again, and the account's private key wrapped under the key the password also gives.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginMaterial {
    #[serde(with = "super::b64")]
    pub auth_secret: Vec<u8>,
    #[serde(with = "super::b64")]
    pub salt: Vec<u8>,
    pub kdf: KdfParams,
    #[serde(with = "super::b64")]
    pub wrapped_private_key: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RegisterRequest {
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    #[serde(default)]
    pub plan: Option<String>,
    #[serde(default)]
    pub marketing_email: bool,
    #[serde(flatten)]
    pub login: LoginMaterial,
    #[serde(with = "super::b64")]
    pub public_key: Vec<u8>,
    /// The same private key wrapped under the recovery key.
    #[serde(with = "super::b64")]
    pub recovery_wrapped_private_key: Vec<u8>,
    /// `SymmetricKey::recovery_proof` of the recovery key; `account recover` must show it.
    #[serde(default, with = "super::b64::option")]
    pub recovery_proof: Option<Vec<u8>>,
    /// The default library, its first epoch key granted by the new account to itself.
    pub library: CreateLibraryRequest,
    #[serde(default)]
    pub client: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LoginRequest {
    pub email: String,
    #[serde(with = "super::b64")]
    pub auth_secret: Vec<u8>,
    #[serde(default)]
    pub client: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountInfo {
    pub id: i64,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub plan: String,
    pub quota_bytes: u64,
    pub used_bytes: u64,
    pub marketing_email: bool,
    /// Whether the address was confirmed by its mailed link (marketing waits for it).
    #[serde(default)]
    pub email_confirmed: bool,
    /// Seconds since the Unix epoch.
    pub created_at: i64,
    /// `active`, `canceled` (readable until `delete_after`) or `expired` (data deleted).
    #[serde(default)]
    pub status: String,
    #[serde(default)]
    pub canceled_at: Option<i64>,
    #[serde(default)]
    pub delete_after: Option<i64>,
    /// End of the paid period, when the next charge is due.
    #[serde(default)]
    pub period_end: Option<i64>,
    #[serde(default)]
    pub card: Option<super::account::CardSummary>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountKeys {
    #[serde(with = "super::b64")]
    pub public_key: Vec<u8>,
    #[serde(with = "super::b64")]
    pub wrapped_private_key: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionResponse {
    /// The bearer token. Shown once; the server keeps only its hash.
    pub token: String,
    pub session_id: String,
    pub account: AccountInfo,
    pub keys: AccountKeys,
    /// The key the client seals the account key under in its session file; the server
    /// drops it when the session ends, which makes a copied file useless. Absent from
    /// servers before it existed.
    #[serde(default, with = "super::b64::option")]
    pub key_share: Option<Vec<u8>>,
}

/// `GET /api/v1/sessions/current/key-share`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyShare {
    #[serde(with = "super::b64")]
    pub key_share: Vec<u8>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Permission {
    Owner,
    ReadWrite,
    Read,
}

impl Permission {
    pub fn can_write(self) -> bool {
        matches!(self, Permission::Owner | Permission::ReadWrite)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Permission::Owner => "owner",
            Permission::ReadWrite => "read-write",
            Permission::Read => "read",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "owner" => Some(Permission::Owner),
            "read-write" => Some(Permission::ReadWrite),
            "read" => Some(Permission::Read),
            _ => None,
        }
    }
}

/// A library as the server shows it to one member. The server never sees the name or any
/// key: the name is sealed under an epoch key, and the caller's epoch key comes as a grant
/// boxed by the owner, which the client checks against the owner's key as it trusts it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LibraryInfo {
    pub id: String,
    /// The name, encrypted under the key of epoch `name_epoch`.
    #[serde(with = "super::b64")]
    pub name_sealed: Vec<u8>,
    pub name_epoch: u32,
    pub owner_email: String,
    /// The owner's account public key (X25519); grants open only with it.
    #[serde(with = "super::b64")]
    pub owner_public_key: Vec<u8>,
    pub permission: Permission,
    pub head: Option<ObjectId>,
    pub stored_bytes: u64,
    /// The library's newest key epoch.
    pub epoch: u32,
    /// The caller's grant of the key of epoch `grant_epoch`, from the owner.
    #[serde(with = "super::b64")]
    pub grant: Vec<u8>,
    pub grant_epoch: u32,
    /// For each epoch after the first, the key of the epoch before it, sealed under it.
    #[serde(default)]
    pub chain: Vec<ChainLink>,
    /// A member left: the owner's client should start a new epoch.
    #[serde(default)]
    pub rotate: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChainLink {
    pub epoch: u32,
    #[serde(with = "super::b64")]
    pub link: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LibraryList {
    pub libraries: Vec<LibraryInfo>,
}

/// A new library: its id (32 hex digits the client chose, since grants and the sealed name
/// are bound to it), its sealed name, and the owner's grant of epoch 1 to itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CreateLibraryRequest {
    pub id: String,
    #[serde(with = "super::b64")]
    pub name_sealed: Vec<u8>,
    #[serde(with = "super::b64")]
    pub grant: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RenameLibraryRequest {
    #[serde(with = "super::b64")]
    pub name_sealed: Vec<u8>,
    pub name_epoch: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContactRequest {
    pub email: String,
}

/// An account's public key, for sharing with it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ContactKey {
    pub email: String,
    #[serde(with = "super::b64")]
    pub public_key: Vec<u8>,
}

/// Grants a member access: the newest epoch's key boxed from the owner to them.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AddMemberRequest {
    pub email: String,
    pub permission: Permission,
    pub epoch: u32,
    #[serde(with = "super::b64")]
    pub grant: Vec<u8>,
    /// The owner's roster with the new member in it, sealed by the owner's client to its
    /// own key (docs/FORMAT.md, "Rosters"); the server keeps it as it came.
    #[serde(with = "super::b64")]
    pub roster: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberInfo {
    pub email: String,
    pub permission: Permission,
    #[serde(with = "super::b64")]
    pub public_key: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberList {
    pub members: Vec<MemberInfo>,
    /// The owner's sealed roster, for the owner's clients (none before the first share
    /// since rosters exist); members are sent none.
    #[serde(
        default,
        with = "super::b64::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub roster: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MemberGrant {
    pub email: String,
    #[serde(with = "super::b64")]
    pub grant: Vec<u8>,
}

/// Starts key epoch `epoch` (the current one + 1), removing `remove` in the same step: the
/// link to the previous epoch, the name sealed anew, and a grant for every member who stays
/// (the owner included).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RotateRequest {
    #[serde(default)]
    pub remove: Option<String>,
    /// Members the owner's client did not add (not in its roster): removed in the same
    /// step, and never granted the new key.
    #[serde(default)]
    pub refuse: Vec<String>,
    /// The owner's roster of the new epoch, sealed to its own key.
    #[serde(with = "super::b64")]
    pub roster: Vec<u8>,
    pub epoch: u32,
    #[serde(with = "super::b64")]
    pub link: Vec<u8>,
    #[serde(with = "super::b64")]
    pub name_sealed: Vec<u8>,
    pub grants: Vec<MemberGrant>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IdList {
    pub ids: Vec<ObjectId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MissingResponse {
    pub missing: Vec<ObjectId>,
}

/// What the server is told about a snapshot in plaintext: its time and parent, and keyed
/// hashes of its tags (so a policy can keep tagged snapshots without the server learning
/// the tags).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    pub time_ns: i64,
    pub parent: Option<ObjectId>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_macs: Vec<String>,
}

/// The trees a mount reads inside (the roots of snapshots with open files): collection
/// keeps them for `ttl_secs`, and the mount renews this at each poll.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HoldRequest {
    /// The mount's random id (32 hex digits).
    pub holder: String,
    pub roots: Vec<ObjectId>,
    pub ttl_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForgetRequest {
    pub ids: Vec<ObjectId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ForgetResponse {
    pub forgotten: u64,
}

/// One object in an upload batch; its bytes follow the header in order.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct UploadObject {
    pub id: ObjectId,
    pub kind: BlobKind,
    pub len: u32,
    /// Objects this one references (a tree's chunks and subtrees, a snapshot's tree).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub refs: Vec<ObjectId>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot: Option<SnapshotMeta>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UploadHeader {
    pub objects: Vec<UploadObject>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UploadResponse {
    pub stored: u64,
    pub stored_bytes: u64,
    pub already_present: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeadUpdate {
    pub expected: Option<ObjectId>,
    pub new: ObjectId,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct HeadResponse {
    pub head: Option<ObjectId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotRecord {
    pub id: ObjectId,
    pub time_ns: i64,
    pub parent: Option<ObjectId>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SnapshotList {
    pub snapshots: Vec<SnapshotRecord>,
}
