//! Where the password comes from: `IBACKUP_PASSWORD`, `--password-stdin`, or a prompt on
//! the terminal. It is kept in zeroizing memory and never printed.

use std::io::{BufRead, IsTerminal};

use zeroize::Zeroizing;

use crate::{ClientError, Result};

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
    } else if let Some(value) = env_secret("IBACKUP_PASSWORD") {
        value?
    } else if std::io::stdin().is_terminal() {
        match purpose {
            Purpose::New => prompt_twice("Password")?,
            Purpose::Existing => prompt_hidden("Password: ")?,
        }
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

/// The secret in environment variable `var`, if set.
fn env_secret(var: &str) -> Option<Result<Zeroizing<String>>> {
    std::env::var_os(var).map(|value| {
        value
            .into_string()
            .map(Zeroizing::new)
            .map_err(|_| ClientError::Usage(format!("{var} is not valid UTF-8")))
    })
}

/// Asks on the terminal without echo.
pub fn prompt_hidden(prompt: &str) -> Result<Zeroizing<String>> {
    rpassword::prompt_password(prompt)
        .map(Zeroizing::new)
        .map_err(|e| ClientError::Usage(format!("cannot read from the terminal: {e}")))
}

/// Asks on the terminal (the prompt on stderr) and returns the trimmed line.
pub fn prompt_line(prompt: &str) -> Result<String> {
    use std::io::Write;
    eprint!("{prompt}");
    let _ = std::io::stderr().flush();
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| ClientError::Usage(format!("cannot read from the terminal: {e}")))?;
    Ok(line.trim().to_owned())
}

/// Asks for a new secret twice and checks both agree.
fn prompt_twice(label: &str) -> Result<Zeroizing<String>> {
    let first = prompt_hidden(&format!("{label}: "))?;
    let again = prompt_hidden(&format!("{label} (again): "))?;
    if *first != *again {
        return Err(ClientError::Usage(
            "the two passwords differ; nothing was changed".into(),
        ));
    }
    Ok(first)
}

/// A new password: `IBACKUP_NEW_PASSWORD`, or asked twice on the terminal.
pub fn read_new_password() -> Result<Zeroizing<String>> {
    let password = if let Some(value) = env_secret("IBACKUP_NEW_PASSWORD") {
        value?
    } else if std::io::stdin().is_terminal() {
        prompt_twice("New password")?
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
    if let Some(value) = env_secret(var) {
        return value;
    }
    if !std::io::stdin().is_terminal() {
        return Err(ClientError::Usage(format!(
            "set {var} or run in a terminal to be asked"
        )));
    }
    prompt_hidden(prompt)
}
