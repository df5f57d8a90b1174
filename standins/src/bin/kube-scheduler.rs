//! kube-scheduler stand-in (tests and sandbox only; see the provisioner-standins crate docs).

fn main() -> std::process::ExitCode {
    provisioner_standins::cli::run(
        "kube-scheduler",
        provisioner_standins::scheduler::SUMMARY,
        provisioner_standins::scheduler::run,
    )
}
