//! provisioner: builds a Kubernetes cluster the hard way from a declarative inventory.
//!
//! The modules follow the pipeline: `inventory` (read and validate) → `pki` (keys and
//! certificates in the state directory) → `render` (every host's files, pure).

pub mod apply;
pub mod bundle;
pub mod certs;
pub mod cli;
pub mod commands;
pub mod component;
pub mod digest;
pub mod history;
pub mod inventory;
pub mod layout;
pub mod logging;
pub mod members;
pub mod pki;
pub mod plan;
pub mod render;
pub mod sandbox;
pub mod shell;
pub mod term;
pub mod testhook;
pub mod transport;
