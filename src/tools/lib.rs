//! ibackup's test tools: `fuzz` drives every decoder of untrusted bytes with mutated inputs
//! (docs/SECURITY.md), for `tests/fuzz.rs` and `scripts/fuzz`; the `ibackup-load` program
//! (`load.rs`) runs simulated clients against a server for `scripts/load`. Release builds of
//! ibackup leave this crate out.

pub mod fuzz;
mod mount_seeds;
