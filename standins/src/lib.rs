//! Stand-ins for the Kubernetes server binaries, used only by the tests and the sandbox.
//!
//! Each stand-in accepts exactly the command line and config files of the real component at the
//! build's target version, checks every file those point at, talks over the same TLS links with
//! the same certificates, and fails (exit 1, reason on stderr) where the real component would.
//! None of them runs a pod or programs a packet: they exist so that `provisioner apply` and its
//! health gate can be tested end to end on machines where the real binaries are not available.
//! Every line they log contains "stand-in".
//!
//! Test hook: when the environment variable `STANDIN_ROOT` is set, every absolute path the
//! stand-ins open (certificates, configs, sockets, logs) is taken relative to it instead of `/`.
//! It exists only so the tests can run the stand-ins against a rendered tree without writing to
//! `/etc`; production units never set it.

pub mod log;

pub mod apiclient;
pub mod apiserver;
pub mod cli;
pub mod config;
pub mod controller_manager;
pub mod controlplane;
pub mod filecheck;
pub mod files;
pub mod flags;
pub mod health;
pub mod identity;
pub mod kubeconfig;
pub mod kubelet;
pub mod net;
pub mod proxy;
pub mod scheduler;
pub mod timefmt;
pub mod tls;
pub mod version;
