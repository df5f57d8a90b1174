use std::process::ExitCode;

use clap::Parser;

use provisioner::cli::Cli;

fn main() -> ExitCode {
    let cli = Cli::parse();
    provisioner::logging::init(cli.verbose);
    match provisioner::commands::run(cli) {
        // The command printed its report; the code is its verdict.
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            if err
                .downcast_ref::<provisioner::plan::identity::Mismatch>()
                .is_some()
            {
                eprintln!("error: {err}");
                return ExitCode::from(provisioner::plan::identity::EXIT_IDENTITY);
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
