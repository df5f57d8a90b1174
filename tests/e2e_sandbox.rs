//! End to end on sandbox machines (systemd-nspawn containers booting Debian with real sshd and
//! systemd), running the real programs: Kubernetes, etcd, containerd, runc and the CNI plugins,
//! built from their upstream Go modules into the test bundle (tests/testbed/make-test-bundle.sh).
//! Needs root, systemd-nspawn and debootstrap (see .ci/run).
//!
//! One scenario per file under `tests/e2e/`, each a sequence of named steps (`== step: NAME` on
//! stderr); the tests below run them one at a time (the machines share a subnet and names).
//! The support: the machines (`machines.rs`), a cluster on them and its checks (`cluster.rs`),
//! the probe that keeps connecting (`probe.rs`), the hard way's smoke test (`smoke.rs`) with
//! NetworkPolicy enforced (`netpol.rs`), a dual-stack cluster's own checks (`dual_stack.rs`),
//! `status` on a running cluster (`status.rs`),
//! `etcd snapshot` (`snapshot.rs`), `reset` (`reset.rs`). Upgrades (`upgrade.rs`) also need the
//! previous minor's test bundle (`PROVISIONER_TEST_BUNDLE_PREVIOUS`); the node-local API load
//! balancer has its own (`api_lb.rs`), which also pulls through a registry mirror on the test
//! host (`registry.rs`).

mod common;

#[path = "e2e/cis.rs"]
mod cis;
#[path = "e2e/cluster.rs"]
mod cluster;
#[path = "e2e/dual_stack.rs"]
mod dual_stack;
#[path = "e2e/machines.rs"]
mod machines;
#[path = "e2e/netpol.rs"]
mod netpol;
#[path = "e2e/probe.rs"]
mod probe;
#[path = "e2e/registry.rs"]
mod registry;
#[path = "e2e/reset.rs"]
mod reset;
#[path = "e2e/smoke.rs"]
mod smoke;
#[path = "e2e/snapshot.rs"]
mod snapshot;
#[path = "e2e/status.rs"]
mod status;
#[path = "e2e/step.rs"]
mod step;
#[path = "e2e/upstream.rs"]
mod upstream;

#[path = "e2e/api_lb.rs"]
mod api_lb;
#[path = "e2e/certificates.rs"]
mod certificates;
#[path = "e2e/control_plane.rs"]
mod control_plane;
#[path = "e2e/converged.rs"]
mod converged;
#[path = "e2e/crash_resume.rs"]
mod crash_resume;
#[path = "e2e/failures.rs"]
mod failures;
#[path = "e2e/faults.rs"]
mod faults;
#[path = "e2e/nodes.rs"]
mod nodes;
#[path = "e2e/upgrade.rs"]
mod upgrade;

#[test]
fn three_control_planes_and_two_workers_come_up_and_stay_converged() {
    converged::run();
}

#[test]
fn failures_are_reported_precisely_and_the_sudo_path_works() {
    failures::run();
}

#[test]
fn certificates_are_checked_and_regenerated_while_the_cluster_keeps_serving() {
    certificates::run();
}

#[test]
fn faults_leave_no_partial_file_and_the_next_apply_converges() {
    faults::run();
}

#[test]
fn regenerate_and_rotate_ca_resume_after_a_crash() {
    crash_resume::run();
}

#[test]
fn an_upgrade_keeps_serving_rolls_back_and_stops_at_a_broken_kubelet() {
    upgrade::run();
}

#[test]
fn workers_join_and_leave_while_the_workload_keeps_answering() {
    nodes::run();
}

#[test]
fn nodes_keep_the_api_through_their_local_balancer_while_an_api_server_is_down() {
    api_lb::run();
}

#[test]
fn the_control_plane_grows_one_etcd_learner_at_a_time_while_serving() {
    control_plane::run();
}
