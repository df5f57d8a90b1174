//! The shared `main` of the five stand-ins: command line, version, help, runtime, signals, exit
//! codes.

use std::future::Future;
use std::process::ExitCode;

use anyhow::Result;
use tokio::signal::unix::{signal, SignalKind};

use crate::flags::{self, Flags, Parsed};
use crate::say;
use crate::version;

/// Runs a stand-in: `body` validates its inputs and then serves; it only returns on failure
/// (exit 1). SIGTERM or SIGINT end the process with exit 0, as for the real components.
pub fn run<F, Fut>(component: &'static str, summary: &str, body: F) -> ExitCode
where
    F: FnOnce(Flags) -> Fut,
    Fut: Future<Output = Result<()>>,
{
    crate::log::set_component(component);
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let flags = match flags::parse(component, version::minor(), &argv) {
        Ok(Parsed::Run(f)) => f,
        Ok(Parsed::Version) => {
            println!("Kubernetes {} (stand-in)", version::git_version());
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Help) => {
            print!("{}", help_text(component, summary));
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            // pflag's wording, so scripts and tests match the real component's message.
            eprintln!("Error: {e} (stand-in {component})");
            eprintln!("[stand-in {component}] run '{component} --help' for usage");
            return ExitCode::FAILURE;
        }
    };
    for w in &flags.warnings {
        say!("{w}");
    }
    say!(
        "starting: a test stand-in for {component} {}, not the real component",
        version::git_version()
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            say!("cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        tokio::select! {
            r = body(flags) => r,
            s = shutdown_signal() => {
                say!("received {s}, shutting down");
                Ok(())
            }
        }
    });
    // Do not wait for connection tasks still open: the process is ending.
    runtime.shutdown_background();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            say!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn shutdown_signal() -> &'static str {
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the default action (termination) still applies.
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}

fn help_text(component: &str, summary: &str) -> String {
    format!(
        "{component} (stand-in) - a test double for the Kubernetes {component} {v}\n\n\
         {summary}\n\n\
         This is NOT the real {component}. It accepts exactly the flags of the real {component} {v}\n\
         (strictly: an unknown flag is an error), checks every file they name, and serves the\n\
         few endpoints the provisioner's tests use. Every log line it writes says \"stand-in\".\n\n\
         Usage:\n  {component} [flags]\n\n\
         Flags: those of the real {component} {v}; see its reference page.\n\
         \x20     --version   print \"Kubernetes {v} (stand-in)\" and exit\n\
         \x20 -h, --help      print this help and exit\n\n\
         Test-only environment: STANDIN_ROOT=<dir> opens every absolute path under <dir>.\n",
        v = version::git_version()
    )
}
