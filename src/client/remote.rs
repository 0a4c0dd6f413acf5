//! The server's HTTP API, seen from the client (blocking reqwest over pinned TLS).
//!
//! Idempotent requests (reads, `missing`, uploads, fetches) are retried with backoff when the
//! connection fails, so a short server restart does not fail a backup. Errors the server
//! returns keep its message, which says what to do.

use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::Url;
use serde::de::DeserializeOwned;
use serde::Serialize;
use zeroize::Zeroizing;

use super::tls::PinVerifier;
use crate::api::{ErrorBody, ErrorCode};

#[derive(Debug, thiserror::Error)]
pub enum RemoteError {
    #[error("{}", .body.message)]
    Api { status: u16, body: ErrorBody },
    #[error("cannot reach the server at {url}: {detail}")]
    Unreachable { url: String, detail: String },
    #[error(
        "THE SERVER'S CERTIFICATE HAS CHANGED. {url} presented {presented}, but {pinned} is \
         pinned. Someone may be intercepting the connection. If the server's certificate was \
         replaced on purpose, remove its line from {known_file} and log in again."
    )]
    CertificateChanged {
        url: String,
        pinned: String,
        presented: String,
        known_file: String,
    },
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
}

/// Told of every request sent: method, path, HTTP status (0 when no answer came) and the
/// time to the answer's headers. Set once per process, by `ibackup-load`; ibackup itself
/// never sets it.
pub type Observer = fn(&reqwest::Method, &str, u16, Duration);

static OBSERVER: std::sync::OnceLock<Observer> = std::sync::OnceLock::new();

/// Has every request of this process reported to `observer` (the first call wins).
pub fn observe_requests(observer: Observer) {
    let _ = OBSERVER.set(observer);
}

/// Attempts of a request answered "unavailable" (a store behind the server is down).
const UNAVAILABLE_ATTEMPTS: u32 = 3;

impl RemoteError {
    pub fn code(&self) -> Option<ErrorCode> {
        match self {
            RemoteError::Api { body, .. } => Some(body.error),
            _ => None,
        }
    }
}

#[derive(Clone)]
pub struct Remote {
    http: Client,
    base: String,
    token: Option<Zeroizing<String>>,
    verifier: Option<Arc<PinVerifier>>,
    /// Where pins live, named in the certificate-change error.
    known_file: String,
    /// The newest library heads seen from this server (absent for link visitors).
    seen: Option<super::seen::SeenHeads>,
}

/// Checks a server URL: `https://`, or `http://` to a loopback address only.
pub fn parse_server_url(server: &str) -> Result<Url, String> {
    let url = Url::parse(server.trim()).map_err(|e| {
        format!("`{server}` is not a server URL ({e}); write e.g. https://backup.example.com:8443")
    })?;
    match url.scheme() {
        "https" => Ok(url),
        "http" => {
            let loopback = match url.host() {
                Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
                Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
                Some(url::Host::Domain(name)) => name == "localhost",
                None => false,
            };
            if loopback {
                Ok(url)
            } else {
                Err(
                    "plain http:// is allowed only to a server on this machine (loopback); use \
                     https:// so passwords and keys travel encrypted"
                        .into(),
                )
            }
        }
        other => Err(format!("unsupported scheme `{other}://`; use https://")),
    }
}

impl Remote {
    /// A client for `server`. For `https://`, `pinned` is the accepted certificate fingerprint,
    /// or `None` to probe (accept and record whatever is presented; send nothing secret).
    pub fn new(server: &Url, pinned: Option<String>, known_file: String) -> Result<Self, String> {
        let mut builder = Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(600))
            .user_agent(concat!("ibackup/", env!("CARGO_PKG_VERSION")))
            .pool_max_idle_per_host(8)
            // Below the server's default idle limit (30 s), so a pooled connection is not
            // reused just as the server closes it.
            .pool_idle_timeout(Duration::from_secs(20));
        let verifier = if server.scheme() == "https" {
            let verifier = PinVerifier::new(pinned);
            builder = builder.use_preconfigured_tls(verifier.client_config());
            Some(verifier)
        } else {
            None
        };
        let http = builder
            .build()
            .map_err(|e| format!("cannot set up HTTPS: {e}"))?;
        let base = server.as_str().trim_end_matches('/').to_owned();
        Ok(Self {
            http,
            base,
            token: None,
            verifier,
            known_file,
            seen: None,
        })
    }

    pub fn with_seen(mut self, seen: super::seen::SeenHeads) -> Self {
        self.seen = Some(seen);
        self
    }

    pub fn seen(&self) -> Option<&super::seen::SeenHeads> {
        self.seen.as_ref()
    }

    pub fn with_token(mut self, token: &str) -> Self {
        self.token = Some(Zeroizing::new(token.to_owned()));
        self
    }

    pub fn base(&self) -> &str {
        &self.base
    }

    /// The fingerprint presented on the last TLS handshake (`None` over plain HTTP).
    pub fn presented_fingerprint(&self) -> Option<String> {
        self.verifier.as_ref().and_then(|v| v.presented())
    }

    fn request(&self, method: reqwest::Method, path: &str) -> RequestBuilder {
        let builder = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => builder.bearer_auth(token.as_str()),
            None => builder,
        }
    }

    fn transport_error(&self, error: reqwest::Error) -> RemoteError {
        if let Some(verifier) = &self.verifier {
            if verifier.mismatched() {
                return RemoteError::CertificateChanged {
                    url: self.base.clone(),
                    pinned: verifier.pinned().unwrap_or_default().to_owned(),
                    presented: verifier.presented().unwrap_or_default(),
                    known_file: self.known_file.clone(),
                };
            }
        }
        let mut detail = error.to_string();
        let mut source = std::error::Error::source(&error);
        while let Some(cause) = source {
            detail = format!("{detail}: {cause}");
            source = cause.source();
        }
        RemoteError::Unreachable {
            url: self.base.clone(),
            detail,
        }
    }

    /// Sends a request, retrying failed connections if `retry`. A "busy" or "unavailable"
    /// answer means the server did nothing, so that is retried in any case, after the wait
    /// it asks for (an unavailable store fewer times: its outages are longer, and the
    /// server retried already).
    fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        make: impl Fn(RequestBuilder) -> RequestBuilder,
        retry: bool,
    ) -> Result<Response, RemoteError> {
        let attempts = 6;
        let mut delay = Duration::from_millis(250);
        for attempt in 1..=attempts {
            let started = Instant::now();
            let sent = make(self.request(method.clone(), path)).send();
            if let Some(observe) = OBSERVER.get() {
                let status = sent.as_ref().map_or(0, |r| r.status().as_u16());
                observe(&method, path, status, started.elapsed());
            }
            let wait = match sent {
                Ok(response) => match check(response) {
                    Err(RemoteError::Api { body, .. })
                        if body.error == ErrorCode::Busy && attempt < attempts
                            || body.error == ErrorCode::Unavailable
                                && attempt < UNAVAILABLE_ATTEMPTS =>
                    {
                        Duration::from_secs(body.retry_after.unwrap_or(1).clamp(1, 30))
                    }
                    answered => return answered,
                },
                Err(error) => {
                    let error = self.transport_error(error);
                    let transient = matches!(error, RemoteError::Unreachable { .. });
                    if !retry || !transient || attempt == attempts {
                        return Err(error);
                    }
                    delay
                }
            };
            std::thread::sleep(wait);
            delay = (delay * 2).min(Duration::from_secs(5));
        }
        unreachable!("the loop returns on its last attempt")
    }

    pub fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, RemoteError> {
        json(self.send(reqwest::Method::GET, path, |r| r, true)?)
    }

    pub fn post<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
        retry: bool,
    ) -> Result<T, RemoteError> {
        json(self.send(reqwest::Method::POST, path, |r| r.json(body), retry)?)
    }

    pub fn put<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, RemoteError> {
        json(self.send(reqwest::Method::PUT, path, |r| r.json(body), false)?)
    }

    pub fn patch<B: Serialize, T: DeserializeOwned>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<T, RemoteError> {
        json(self.send(reqwest::Method::PATCH, path, |r| r.json(body), false)?)
    }

    pub fn delete(&self, path: &str) -> Result<(), RemoteError> {
        self.send(reqwest::Method::DELETE, path, |r| r, false)
            .map(drop)
    }

    /// Posts a binary body (an upload batch); uploads are idempotent, so this retries.
    pub fn post_bytes<T: DeserializeOwned>(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<T, RemoteError> {
        let body = bytes::Bytes::from(body);
        json(self.send(
            reqwest::Method::POST,
            path,
            |r| {
                r.header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone())
            },
            true,
        )?)
    }

    /// Posts JSON and returns the binary answer (a fetch).
    pub fn post_for_bytes<B: Serialize>(
        &self,
        path: &str,
        body: &B,
    ) -> Result<bytes::Bytes, RemoteError> {
        let response = self.send(reqwest::Method::POST, path, |r| r.json(body), true)?;
        response.bytes().map_err(|e| self.transport_error(e))
    }
}

fn check(response: Response) -> Result<Response, RemoteError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }
    let text = response.text().unwrap_or_default();
    match serde_json::from_str::<ErrorBody>(&text) {
        Ok(body) => Err(RemoteError::Api {
            status: status.as_u16(),
            body,
        }),
        Err(_) => Err(RemoteError::Protocol(format!(
            "HTTP {status}: {}",
            text.chars().take(200).collect::<String>()
        ))),
    }
}

fn json<T: DeserializeOwned>(response: Response) -> Result<T, RemoteError> {
    let bytes = response
        .bytes()
        .map_err(|e| RemoteError::Protocol(e.to_string()))?;
    let bytes = if bytes.is_empty() {
        &b"null"[..]
    } else {
        &bytes[..]
    };
    serde_json::from_slice(bytes).map_err(|e| RemoteError::Protocol(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert!(parse_server_url("https://example.com:8443").is_ok());
        assert!(parse_server_url("http://127.0.0.1:8080").is_ok());
        assert!(parse_server_url("http://localhost:8080").is_ok());
        assert!(parse_server_url("http://[::1]:8080").is_ok());
        assert!(parse_server_url("http://example.com").is_err());
        assert!(parse_server_url("ftp://example.com").is_err());
        assert!(parse_server_url("not a url").is_err());
    }
}
