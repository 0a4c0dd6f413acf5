//! Request and response bodies of the account side: plans and billing, the profile,
//! sessions, consent, surveys, feedback, export and deletion.

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, ZeroizeOnDrop};

use super::types::{AccountInfo, LoginMaterial};

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanInfo {
    pub name: String,
    pub quota_bytes: u64,
    /// Per billing period.
    pub price_cents: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanList {
    pub plans: Vec<PlanInfo>,
    pub currency: String,
    pub period_secs: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangePlanRequest {
    pub plan: String,
}

/// `GET /api/v1/account/plan/quote/{plan}`: what changing to `plan` now would charge
/// (positive) or credit (negative), before the caller confirms it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanQuote {
    pub plan: String,
    pub amount_cents: i64,
    pub currency: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ChangePlanResponse {
    pub account: AccountInfo,
    /// Charged (positive) or credited (negative) for the rest of the period.
    pub amount_cents: i64,
    pub currency: String,
}

/// A card as the client sends it once. Never logged: `Debug` shows only the last four.
#[derive(Clone, Serialize, Deserialize, Zeroize, ZeroizeOnDrop)]
pub struct AddCardRequest {
    pub number: String,
    pub exp_month: u32,
    pub exp_year: u32,
    pub cvc: String,
    pub name: String,
}

impl std::fmt::Debug for AddCardRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let digits: String = self.number.chars().filter(char::is_ascii_digit).collect();
        let last4 = &digits[digits.len().saturating_sub(4)..];
        write!(f, "AddCardRequest {{ number: ****{last4}, .. }}")
    }
}

/// What the service keeps of a card.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CardSummary {
    pub brand: String,
    pub last4: String,
    pub exp_month: u32,
    pub exp_year: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PlanChange {
    pub at: i64,
    pub from_plan: Option<String>,
    pub to_plan: String,
    pub amount_cents: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Invoice {
    pub id: i64,
    pub at: i64,
    pub description: String,
    /// Positive: charged; negative: credited.
    pub amount_cents: i64,
    pub currency: String,
    /// `paid`, `credit` or `declined`.
    pub status: String,
    pub processor_ref: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct InvoiceList {
    pub invoices: Vec<Invoice>,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct UpdateProfileRequest {
    #[serde(default)]
    pub first_name: Option<String>,
    #[serde(default)]
    pub last_name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    /// Required with a new `email`: the password's auth secret.
    #[serde(default, with = "super::b64::option")]
    pub current_auth_secret: Option<Vec<u8>>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsentRequest {
    pub marketing_email: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ConsentEvent {
    pub at: i64,
    pub marketing: bool,
    /// `sign-up`, `profile` or `link`.
    pub source: String,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct PasswordChangeRequest {
    #[serde(with = "super::b64")]
    pub current_auth_secret: Vec<u8>,
    #[serde(flatten)]
    pub login: LoginMaterial,
}

/// A new recovery key: the private key wrapped under it and its proof, with the password.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryKeyRequest {
    #[serde(with = "super::b64")]
    pub current_auth_secret: Vec<u8>,
    #[serde(with = "super::b64")]
    pub recovery_wrapped_private_key: Vec<u8>,
    #[serde(with = "super::b64")]
    pub recovery_proof: Vec<u8>,
}

/// A library key granted anew by an account whose key pair changes: to itself (each
/// library it belongs to) and to each member of the libraries it owns.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct KeyGrant {
    pub library: String,
    pub email: String,
    pub epoch: u32,
    #[serde(with = "super::b64")]
    pub grant: Vec<u8>,
}

/// A new account key pair: its public key, the private key wrapped under the password and
/// a new recovery key, and every grant that named the old key, made again from the new one.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RotateKeysRequest {
    #[serde(with = "super::b64")]
    pub current_auth_secret: Vec<u8>,
    #[serde(with = "super::b64")]
    pub public_key: Vec<u8>,
    #[serde(flatten)]
    pub login: super::types::LoginMaterial,
    #[serde(with = "super::b64")]
    pub recovery_wrapped_private_key: Vec<u8>,
    #[serde(with = "super::b64")]
    pub recovery_proof: Vec<u8>,
    pub grants: Vec<KeyGrant>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionsEnded {
    pub sessions_ended: u64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryStartRequest {
    pub email: String,
}

/// The private key wrapped under the recovery key, and a challenge sealed to the account's
/// public key that only the private key opens.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryChallenge {
    #[serde(with = "super::b64")]
    pub recovery_wrapped_private_key: Vec<u8>,
    #[serde(with = "super::b64")]
    pub challenge: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RecoveryCompleteRequest {
    pub email: String,
    /// The opened challenge (enough only for accounts made before recovery proofs).
    #[serde(with = "super::b64")]
    pub answer: Vec<u8>,
    /// The recovery key's proof; required when the account registered one.
    #[serde(default, with = "super::b64::option")]
    pub recovery_proof: Option<Vec<u8>>,
    #[serde(flatten)]
    pub login: LoginMaterial,
    #[serde(default)]
    pub client: Option<String>,
}

/// A session and its record: timing and size only.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionRecord {
    pub id: String,
    #[serde(default)]
    pub current: bool,
    pub client: Option<String>,
    pub address: Option<String>,
    pub created_at: i64,
    pub last_seen: i64,
    pub revoked_at: Option<i64>,
    pub requests: i64,
    pub bytes_up: i64,
    pub bytes_down: i64,
    pub transfer_ms: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SessionList {
    pub sessions: Vec<SessionRecord>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FeedbackRequest {
    pub rating: u8,
    #[serde(default)]
    pub message: Option<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Feedback {
    pub at: i64,
    pub rating: u8,
    pub message: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SurveyQuestion {
    pub text: String,
    pub choices: Vec<String>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SurveyInfo {
    pub id: String,
    pub title: String,
    pub questions: Vec<SurveyQuestion>,
    pub answered: bool,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SurveyList {
    pub surveys: Vec<SurveyInfo>,
}

#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct SurveyAnswer {
    /// Index of the question, from 0.
    pub question: u32,
    /// Index of the chosen answer, from 0.
    pub choice: u32,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SurveyAnswers {
    pub answers: Vec<SurveyAnswer>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeleteAccountRequest {
    /// The account's e-mail, typed again.
    pub confirm_email: String,
    #[serde(with = "super::b64")]
    pub auth_secret: Vec<u8>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LibrarySummary {
    pub id: String,
    /// The name as the server holds it: sealed under the library's key.
    #[serde(with = "super::b64")]
    pub name_sealed: Vec<u8>,
    pub name_epoch: u32,
    /// The name, opened by the client that asked for the export.
    #[serde(default)]
    pub name: Option<String>,
    pub stored_bytes: i64,
    pub created_at: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Membership {
    pub library_id: String,
    /// The library's name, opened by the client that asked for the export.
    #[serde(default)]
    pub library: Option<String>,
    pub owner_email: String,
    pub permission: String,
}

/// A tree one of the account's mounts holds (`PUT holds`), until `expires_at`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Hold {
    pub library_id: String,
    pub holder: String,
    /// The held tree's id, hex.
    pub root: String,
    pub expires_at: i64,
}

/// Everything the server holds about one account.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AccountExport {
    pub exported_at: i64,
    pub profile: AccountInfo,
    pub card: Option<CardSummary>,
    pub plan_history: Vec<PlanChange>,
    pub invoices: Vec<Invoice>,
    pub consent_history: Vec<ConsentEvent>,
    pub sessions: Vec<SessionRecord>,
    pub feedback: Vec<Feedback>,
    pub libraries: Vec<LibrarySummary>,
    pub memberships: Vec<Membership>,
    /// Links the account made (their labels are sealed to the account's own key).
    #[serde(default)]
    pub links: Vec<super::links::LinkInfo>,
    /// Snapshot trees the account's mounts keep from collection while files are open.
    #[serde(default)]
    pub holds: Vec<Hold>,
    /// What is held but not listed, and why.
    pub notes: Vec<String>,
}
