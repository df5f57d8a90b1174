//! kube-apiserver stand-in (tests and sandbox only; see the provisioner-standins crate docs).

fn main() -> std::process::ExitCode {
    provisioner_standins::cli::run(
        "kube-apiserver",
        provisioner_standins::apiserver::SUMMARY,
        provisioner_standins::apiserver::run,
    )
}
