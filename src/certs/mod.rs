//! Certificate lifecycle on a running cluster: `certs check`, `certs regenerate` and
//! `certs rotate-ca`.

pub mod check;
pub mod regenerate;
pub mod rotate_ca;
