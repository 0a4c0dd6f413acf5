//! Billing's parts below the routes (`http::billing`): the payment processor, cards, and
//! the rules the routes and the maintenance pass share.
//!
//! Money moves only through a [`processor::PaymentProcessor`]; the server keeps a card's
//! brand, last four digits, expiry and the processor's token, never the number or the code.

pub mod card;
pub mod processor;

pub use crate::units::money;

/// Longest a billing turn may be held (a processor call included) before it runs out.
pub const TURN_SECS: i64 = 300;
