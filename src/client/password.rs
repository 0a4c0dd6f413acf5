//! Where the password comes from: `IBACKUP_PASSWORD`, `--password-stdin`, or a prompt on
//! the terminal. It is kept in zeroizing memory and never printed.

use std::io::{BufRead, IsTerminal};

use zeroize::Zeroizing;

use super::{ClientError, Result};

pub const MIN_PASSWORD_CHARS: usize = 8;

pub enum Purpose {
    /// Logging in: ask once.
    Existing,
    /// Choosing a password: ask twice on a terminal and check its length.
    New,
}

pub fn read_password(from_stdin: bool, purpose: Purpose) -> Result<Zeroizing<String>> {
    let password = if from_stdin {
        let mut line = Zeroizing::new(String::new());
        std::io::stdin()
            .lock()
            .read_line(&mut line)
            .map_err(|e| ClientError::Usage(format!("cannot read the password from stdin: {e}")))?;
        Zeroizing::new(line.trim_end_matches(['\n', '\r']).to_owned())
    } else if let Some(value) = std::env::var_os("IBACKUP_PASSWORD") {
        Zeroizing::new(
            value
                .into_string()
                .map_err(|_| ClientError::Usage("IBACKUP_PASSWORD is not valid UTF-8".into()))?,
        )
    } else if std::io::stdin().is_terminal() {
        let first = Zeroizing::new(
            rpassword::prompt_password("Password: ")
                .map_err(|e| ClientError::Usage(format!("cannot read the password: {e}")))?,
        );
        if let Purpose::New = purpose {
            let again = Zeroizing::new(
                rpassword::prompt_password("Password (again): ")
                    .map_err(|e| ClientError::Usage(format!("cannot read the password: {e}")))?,
            );
            if *first != *again {
                return Err(ClientError::Usage(
                    "the two passwords differ; nothing was changed".into(),
                ));
            }
        }
        first
    } else {
        return Err(ClientError::Usage(
            "no password given: set IBACKUP_PASSWORD, pass --password-stdin, or run in a terminal"
                .into(),
        ));
    };
    if password.is_empty() {
        return Err(ClientError::Usage("the password is empty".into()));
    }
    if let Purpose::New = purpose {
        if password.chars().count() < MIN_PASSWORD_CHARS {
            return Err(ClientError::Usage(format!(
                "the password must be at least {MIN_PASSWORD_CHARS} characters"
            )));
        }
    }
    Ok(password)
}

/// A new password: `IBACKUP_NEW_PASSWORD`, or asked twice on the terminal.
pub fn read_new_password() -> Result<Zeroizing<String>> {
    let password =
        if let Some(value) = std::env::var_os("IBACKUP_NEW_PASSWORD") {
            Zeroizing::new(value.into_string().map_err(|_| {
                ClientError::Usage("IBACKUP_NEW_PASSWORD is not valid UTF-8".into())
            })?)
        } else if std::io::stdin().is_terminal() {
            let first = Zeroizing::new(
                rpassword::prompt_password("New password: ")
                    .map_err(|e| ClientError::Usage(format!("cannot read the password: {e}")))?,
            );
            let again = Zeroizing::new(
                rpassword::prompt_password("New password (again): ")
                    .map_err(|e| ClientError::Usage(format!("cannot read the password: {e}")))?,
            );
            if *first != *again {
                return Err(ClientError::Usage(
                    "the two passwords differ; nothing was changed".into(),
                ));
            }
            first
        } else {
            return Err(ClientError::Usage(
                "no new password given: set IBACKUP_NEW_PASSWORD or run in a terminal".into(),
            ));
        };
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ClientError::Usage(format!(
            "the new password must be at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(password)
}

/// A secret line: from the environment variable `var`, or asked on the terminal (hidden).
pub fn read_secret_line(var: &str, prompt: &str) -> Result<Zeroizing<String>> {
    if let Some(value) = std::env::var_os(var) {
        return value
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| ClientError::Usage(format!("{var} is not valid UTF-8")));
    }
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Usage(format!(
            "set {var} or run in a terminal to be asked"
        )));
    }
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|e| ClientError::Usage(format!("cannot read it: {e}")))
}
