//! The pages a mailed link opens (opt-out, address confirmation): a question and one
//! button that posts back to the same link. Opening a link changes nothing, since mail
//! scanners follow links; the button does. Callers pass fixed text, never user input.

use axum::http::header::{CONTENT_SECURITY_POLICY, CONTENT_TYPE};
use axum::http::HeaderName;

/// A page's headers (HTML; no scripts, styles or forms to elsewhere) and body.
pub type Page = ([(HeaderName, &'static str); 2], String);

/// What a confirmation page says.
pub struct Confirm {
    pub title: &'static str,
    pub question: &'static str,
    pub detail: Option<&'static str>,
    /// A hidden form field sent with the button (name, value).
    pub field: Option<(&'static str, &'static str)>,
    pub button: &'static str,
}

impl Confirm {
    pub fn page(&self) -> Page {
        let detail = self
            .detail
            .map(|d| format!("<p>{d}</p>"))
            .unwrap_or_default();
        let field = self
            .field
            .map(|(name, value)| {
                format!("<input type=\"hidden\" name=\"{name}\" value=\"{value}\">")
            })
            .unwrap_or_default();
        let body = format!(
            "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta \
             name=\"viewport\" content=\"width=device-width\"><title>{}</title></head><body>\
             <h1>{}</h1>{detail}<form method=\"post\">{field}<button type=\"submit\">{}\
             </button></form></body></html>\n",
            self.title, self.question, self.button
        );
        (
            [
                (CONTENT_TYPE, "text/html; charset=utf-8"),
                (
                    CONTENT_SECURITY_POLICY,
                    "default-src 'none'; form-action 'self'",
                ),
            ],
            body,
        )
    }
}
