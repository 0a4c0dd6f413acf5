//! The account on this computer: registering, logging in and out, the profile (plan,
//! billing, sessions, privacy requests), and reading passwords. `register` uses `login` and
//! `profile`; `profile` uses `login`; `login` uses neither.

pub mod keys;
pub mod login;
pub mod password;
pub mod profile;
pub mod register;

pub use login::{login, logout, DEFAULT_LIBRARY};
pub use register::{register, RegisterOptions, Registered};
