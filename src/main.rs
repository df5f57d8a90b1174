use std::process::ExitCode;

use clap::Parser;

use provisioner::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    provisioner::logging::init(cli.verbose);
    match provisioner::commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // The command printed its report; the code is its verdict.
            if let Some(exit) = err.downcast_ref::<provisioner::commands::Exit>() {
                return ExitCode::from(exit.0);
            }
            let invalid = err
                .downcast_ref::<provisioner::inventory::Invalid>()
                .is_some();
            if invalid {
                eprintln!("{err}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {err:#}");
                ExitCode::from(1)
            }
        }
    }
}
