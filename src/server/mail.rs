//! Outgoing e-mail. Marketing goes only to accounts that opted in and always carries a
//! one-click opt-out link (also as `List-Unsubscribe`, RFC 8058); service messages (quota,
//! payment) go to every account and say they are not marketing.
//!
//! With `[mail.smtp]` in the configuration messages go through that relay; otherwise each is
//! written atomically as an `.eml` file into `mail-spool/` in the data directory.

use std::path::{Path, PathBuf};

use lettre::message::header::{ContentType, HeaderName, HeaderValue};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{Message, SmtpTransport, Transport};

use super::config::ServerConfig;
use crate::fsutil::{create_private_dir, write_atomic};

pub const SPOOL_DIR: &str = "mail-spool";

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("a sender or recipient address is not usable (check `mail.from` in server.toml)")]
    Address(String),
    #[error("cannot build the message: {0}")]
    Build(String),
    #[error("the mail relay refused or failed: {0}")]
    Smtp(String),
    #[error("cannot write to the mail spool: {0}")]
    Spool(#[from] std::io::Error),
}

pub enum Kind {
    Marketing { optout_url: String },
    Service,
}

#[derive(Clone)]
struct ListUnsubscribe(String);

impl lettre::message::header::Header for ListUnsubscribe {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe")
    }
    fn parse(s: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self(s.to_owned()))
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), self.0.clone())
    }
}

#[derive(Clone)]
struct ListUnsubscribePost;

impl lettre::message::header::Header for ListUnsubscribePost {
    fn name() -> HeaderName {
        HeaderName::new_from_ascii_str("List-Unsubscribe-Post")
    }
    fn parse(_: &str) -> Result<Self, Box<dyn std::error::Error + Send + Sync>> {
        Ok(Self)
    }
    fn display(&self) -> HeaderValue {
        HeaderValue::new(Self::name(), "List-Unsubscribe=One-Click".into())
    }
}

pub struct Mailer {
    from: Mailbox,
    smtp: Option<SmtpTransport>,
    spool: PathBuf,
}

impl Mailer {
    pub fn new(config: &ServerConfig, data_dir: &Path) -> Result<Self, MailError> {
        let from: Mailbox = config
            .mail_from
            .parse()
            .map_err(|_| MailError::Address(config.mail_from.clone()))?;
        let smtp = match &config.smtp {
            None => None,
            Some(smtp) => {
                let mut builder = if smtp.insecure_plaintext {
                    SmtpTransport::builder_dangerous(&smtp.host)
                } else {
                    SmtpTransport::starttls_relay(&smtp.host)
                        .map_err(|e| MailError::Smtp(e.to_string()))?
                };
                builder = builder.port(smtp.port);
                if let (Some(user), Some(password)) = (&smtp.username, &smtp.password) {
                    builder = builder.credentials(Credentials::new(user.clone(), password.clone()));
                }
                Some(builder.build())
            }
        };
        Ok(Self {
            from,
            smtp,
            spool: data_dir.join(SPOOL_DIR),
        })
    }

    pub fn send(&self, to: &str, subject: &str, body: &str, kind: Kind) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|_| MailError::Address(to.to_owned()))?;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(subject)
            .header(ContentType::TEXT_PLAIN);
        let text = match &kind {
            Kind::Marketing { optout_url } => {
                builder = builder
                    .header(ListUnsubscribe(format!("<{optout_url}>")))
                    .header(ListUnsubscribePost);
                format!(
                    "{body}\n\n--\nYou get this because you agreed to news from ibackup. To \
                     stop, open this link (no login needed):\n{optout_url}\nor run `ibackup \
                     account consent off`.\n"
                )
            }
            Kind::Service => format!(
                "{body}\n\n--\nThis is a service message about your ibackup account. It is \
                 sent whatever your marketing choice, and only when your account needs it.\n"
            ),
        };
        let message = builder
            .body(text)
            .map_err(|e| MailError::Build(e.to_string()))?;
        match &self.smtp {
            Some(smtp) => smtp
                .send(&message)
                .map(drop)
                .map_err(|e| MailError::Smtp(e.to_string())),
            None => {
                create_private_dir(&self.spool)?;
                let name = format!("{}-{}.eml", super::db::now(), &super::db::random_id()[..12]);
                write_atomic(&self.spool.join(name), &message.formatted(), 0o600)?;
                Ok(())
            }
        }
    }
}
