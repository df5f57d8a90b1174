//! Decisions about certificates, pure: how `certs list` shows them, what `certs check` and
//! `status` expect on each host, what `certs regenerate` reissues, and how `state recover`
//! finds each secret on the hosts.
//! Rolling certificates out is the runner's (`apply::rollout`, `apply::rotate_ca`).

pub mod check;
pub mod list;
pub mod recover;
pub mod regenerate;
