//! kubelet stand-in (tests and sandbox only; see the provisioner-standins crate docs).

fn main() -> std::process::ExitCode {
    provisioner_standins::cli::run(
        "kubelet",
        provisioner_standins::kubelet::SUMMARY,
        provisioner_standins::kubelet::run,
    )
}
