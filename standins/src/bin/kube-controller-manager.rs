//! kube-controller-manager stand-in (tests and sandbox only; see the provisioner-standins crate docs).

fn main() -> std::process::ExitCode {
    provisioner_standins::cli::run(
        "kube-controller-manager",
        provisioner_standins::controller_manager::SUMMARY,
        provisioner_standins::controller_manager::run,
    )
}
