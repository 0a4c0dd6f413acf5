//! Registering: a new key pair, login material and recovery key made here, the account and
//! its first library created on the server, then a paid plan's card and plan.

use super::login::{connect, new_login, save_session, DEFAULT_LIBRARY};
use super::password::{read_password, Purpose};
use super::profile;
use crate::api::routes;
use crate::api::types::{AccountInfo, RegisterRequest, SessionResponse};
use crate::config::Paths;
use crate::crypto::{AccountKeyPair, SymmetricKey};
use crate::session::{new_library, Session};
use crate::{client_label, ClientError, Result};

pub struct RegisterOptions {
    pub server: String,
    pub email: String,
    pub first_name: String,
    pub last_name: String,
    pub plan: Option<String>,
    pub marketing_email: bool,
    pub trust_new: bool,
    pub password_stdin: bool,
    /// Read the card for a paid plan from four lines of stdin.
    pub card_stdin: bool,
}

pub struct Registered {
    pub account: AccountInfo,
    /// Why the paid plan asked for could not be set up (the account is on the free plan).
    pub plan_problem: Option<String>,
    /// Shown once; the only way back in if the password is forgotten.
    pub recovery_key: String,
}

pub fn register(paths: &Paths, options: &RegisterOptions) -> Result<Registered> {
    let password = read_password(options.password_stdin, Purpose::New)?;
    let remote = connect(paths, &options.server, options.trust_new)?;
    // A paid plan starts as the free one; the card and the plan follow once the account exists.
    let plans: crate::api::account::PlanList = remote.get(routes::PLANS)?;
    let paid_plan = match &options.plan {
        Some(name) => match plans.plans.iter().find(|p| &p.name == name) {
            Some(plan) if plan.price_cents > 0 => Some(name.clone()),
            Some(_) => None,
            None => {
                let names: Vec<_> = plans.plans.iter().map(|p| p.name.as_str()).collect();
                return Err(ClientError::Usage(format!(
                    "unknown plan `{name}`; choose one of {}",
                    names.join(", ")
                )));
            }
        },
        None => None,
    };
    let card = match &paid_plan {
        Some(_) => Some(profile::read_card(options.card_stdin)?),
        None => None,
    };
    let pair = AccountKeyPair::generate();
    let recovery = SymmetricKey::generate();
    let request = RegisterRequest {
        email: options.email.clone(),
        first_name: options.first_name.clone(),
        last_name: options.last_name.clone(),
        plan: if paid_plan.is_some() {
            None
        } else {
            options.plan.clone()
        },
        marketing_email: options.marketing_email,
        login: new_login(&password, &pair)?,
        public_key: pair.public_bytes().to_vec(),
        recovery_wrapped_private_key: recovery.wrap(pair.secret_bytes().as_ref()),
        recovery_proof: Some(recovery.recovery_proof().to_vec()),
        library: new_library(&pair, DEFAULT_LIBRARY)?.0,
        client: Some(client_label()),
    };
    let response: SessionResponse = remote.post(routes::ACCOUNTS, &request, false)?;
    save_session(paths, &remote, &response, &pair)?;
    let mut account = response.account;
    let mut plan_problem = None;
    if let (Some(plan), Some(card)) = (&paid_plan, &card) {
        let session = Session::load(paths)?;
        let upgraded =
            profile::add_card(&session, card).and_then(|_| profile::change_plan(&session, plan));
        match upgraded {
            Ok(changed) => account = changed.account,
            Err(e) => plan_problem = Some(e.to_string()),
        }
    }
    Ok(Registered {
        account,
        plan_problem,
        recovery_key: recovery.to_display_groups(),
    })
}
