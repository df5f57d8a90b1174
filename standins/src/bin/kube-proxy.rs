//! kube-proxy stand-in (tests and sandbox only; see the provisioner-standins crate docs).

fn main() -> std::process::ExitCode {
    provisioner_standins::cli::run(
        "kube-proxy",
        provisioner_standins::proxy::SUMMARY,
        provisioner_standins::proxy::run,
    )
}
