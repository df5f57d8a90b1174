//! The services provisioner installs and the phases that start them, each named by type with
//! its properties in one table. Everything else (render, plan, the runner) asks these tables
//! instead of spelling a unit's name.

use std::fmt;

use crate::layout::{
    ETCD_CLIENT_PORT, ETCD_METRICS_PORT, ETCD_PEER_PORT, IMAGE_STORE, RELEASES_DIR, UNIT_DIR,
};

/// A systemd unit provisioner installs and manages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    Etcd,
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    /// The node-local API load balancer, on workers that are not control-plane hosts.
    KubeApiLb,
    Containerd,
    Kubelet,
    KubeProxy,
    /// Routes to the other workers' pod ranges (a oneshot unit).
    PodRoutes,
    /// The network policy engine on each worker (kube-router's firewall alone).
    KubeRouter,
    /// The scheduled etcd snapshot (a timer), when the inventory asks for one.
    EtcdSnapshot,
}

/// What kind of systemd unit it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Service,
    Timer,
}

/// One row of the unit table.
pub struct UnitProps {
    /// The unit's name, without `.service`; also its template's name.
    pub name: &'static str,
    pub kind: Kind,
    /// Bundle programs whose change restarts the unit (installed in [`BIN_DIR`]).
    pub binaries: &'static [Program],
    /// Ports it listens on, checked free before its first start.
    pub ports: &'static [u16],
    /// The phase that starts it and gates it.
    pub phase: Phase,
    /// Directories the running unit creates for itself (render never writes them); `reset`
    /// removes them with the unit.
    pub state: &'static [&'static str],
    /// A change is applied by `systemctl reload` (the routes that stay are never removed
    /// meanwhile), not by a restart.
    pub reloads: bool,
}

/// Where one version of one program of a release (as the bundle manifest names it) lives.
pub fn release_path(release: &str, version: &str, program: &str) -> String {
    format!("{RELEASES_DIR}/{release}/{version}/{program}")
}

/// The release and version of a link's target made by [`release_path`].
pub fn parse_release_path(target: &str) -> Option<(&str, &str)> {
    let rest = target.strip_prefix(RELEASES_DIR)?.strip_prefix('/')?;
    let mut parts = rest.split('/');
    match (parts.next(), parts.next(), parts.next(), parts.next()) {
        (Some(release), Some(version), Some(_), None) => Some((release, version)),
        _ => None,
    }
}
/// Created by the kubelet and the controller-manager for FlexVolume drivers (their default
/// plugin directory), whether any is used or not.
const FLEX_VOLUME_DIR: &str = "/usr/libexec/kubernetes";

/// A program of the bundle installed in [`BIN_DIR`], named by type, with the release it
/// comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Program {
    KubeApiserver,
    KubeControllerManager,
    KubeScheduler,
    Kubelet,
    KubeProxy,
    Kubectl,
    Etcd,
    Etcdctl,
    Etcdutl,
    Containerd,
    ContainerdShimRuncV2,
    Ctr,
    Runc,
    /// caddy with its layer4 app: the node-local API load balancer.
    Caddy,
    /// kube-router: its network policy controller enforces NetworkPolicy.
    KubeRouter,
}

impl Program {
    /// Every program, each release's in the order its bundle lists them.
    pub const ALL: [Program; 15] = [
        Program::KubeApiserver,
        Program::KubeControllerManager,
        Program::KubeScheduler,
        Program::Kubelet,
        Program::KubeProxy,
        Program::Kubectl,
        Program::Etcd,
        Program::Etcdctl,
        Program::Etcdutl,
        Program::Containerd,
        Program::ContainerdShimRuncV2,
        Program::Ctr,
        Program::Runc,
        Program::Caddy,
        Program::KubeRouter,
    ];

    /// Its file name, in the bundle's `bin/` and on the hosts.
    pub const fn name(self) -> &'static str {
        match self {
            Program::KubeApiserver => "kube-apiserver",
            Program::KubeControllerManager => "kube-controller-manager",
            Program::KubeScheduler => "kube-scheduler",
            Program::Kubelet => "kubelet",
            Program::KubeProxy => "kube-proxy",
            Program::Kubectl => "kubectl",
            Program::Etcd => "etcd",
            Program::Etcdctl => "etcdctl",
            Program::Etcdutl => "etcdutl",
            Program::Containerd => "containerd",
            Program::ContainerdShimRuncV2 => "containerd-shim-runc-v2",
            Program::Ctr => "ctr",
            Program::Runc => "runc",
            Program::Caddy => "caddy",
            Program::KubeRouter => "kube-router",
        }
    }

    pub const fn release(self) -> Release {
        use Program as P;
        match self {
            P::KubeApiserver
            | P::KubeControllerManager
            | P::KubeScheduler
            | P::Kubelet
            | P::KubeProxy
            | P::Kubectl => Release::Kubernetes,
            P::Etcd | P::Etcdctl | P::Etcdutl => Release::Etcd,
            P::Containerd | P::ContainerdShimRuncV2 | P::Ctr => Release::Containerd,
            P::Runc => Release::Runc,
            P::Caddy => Release::Caddy,
            P::KubeRouter => Release::KubeRouter,
        }
    }

    pub fn from_name(name: &str) -> Option<Program> {
        Program::ALL.into_iter().find(|p| p.name() == name)
    }
}

impl fmt::Display for Program {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The bundle programs each role's hosts get in [`BIN_DIR`]: the units' own, and the tools
/// an operator (and provisioner) use on the host.
pub const ETCD_PROGRAMS: &[Program] = &[Program::Etcd, Program::Etcdctl, Program::Etcdutl];
pub const CONTROL_PLANE_PROGRAMS: &[Program] = &[
    Program::KubeApiserver,
    Program::KubeControllerManager,
    Program::KubeScheduler,
];
pub const WORKER_PROGRAMS: &[Program] = &[
    Program::Containerd,
    Program::ContainerdShimRuncV2,
    Program::Ctr,
    Program::Runc,
    Program::Kubelet,
    Program::KubeProxy,
];
/// What the node-local API load balancer's hosts get in [`BIN_DIR`].
pub const API_LB_PROGRAMS: &[Program] = &[Program::Caddy];
/// What workers get in [`BIN_DIR`] when kube-router enforces NetworkPolicy.
pub const POLICY_PROGRAMS: &[Program] = &[Program::KubeRouter];
/// kube-router's health endpoint (its default), on every interface: it binds no other address.
pub const KUBE_ROUTER_HEALTH_PORT: u16 = 20244;

/// How pods on different hosts reach each other: each plugin a row, its files rendered by
/// `render::network`, its gate the [`Phase::PodRoutes`] phase's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkPlugin {
    /// A Linux bridge per worker for its pods, and host routes to every other worker's pod
    /// range (every host on one L2 segment).
    BridgeRoutes,
    /// The same bridge, and routes to the other workers' pod ranges through a VXLAN device
    /// with a static entry for every other host (any IP network between the hosts).
    BridgeVxlan,
}

/// The overlay's UDP port (IANA's VXLAN port) and network identifier.
pub const VXLAN_PORT: u16 = 4789;
pub const VXLAN_VNI: u32 = 1;

impl NetworkPlugin {
    /// The one the inventory asks for.
    pub fn of(c: &crate::inventory::Cluster) -> NetworkPlugin {
        match c.network.mode {
            crate::inventory::NetworkMode::Routes => NetworkPlugin::BridgeRoutes,
            crate::inventory::NetworkMode::Vxlan => NetworkPlugin::BridgeVxlan,
        }
    }

    /// The CNI plugins its workers get in [`CNI_BIN_DIR`]; each runs once per pod,
    /// restarting nothing.
    pub const fn cni_plugins(self) -> &'static [&'static str] {
        match self {
            NetworkPlugin::BridgeRoutes | NetworkPlugin::BridgeVxlan => {
                &["bridge", "host-local", "loopback", "portmap"]
            }
        }
    }
}

impl Unit {
    /// Every unit, in start order.
    pub const ALL: [Unit; 11] = [
        Unit::Etcd,
        Unit::KubeApiserver,
        Unit::KubeControllerManager,
        Unit::KubeScheduler,
        Unit::KubeApiLb,
        Unit::Containerd,
        Unit::Kubelet,
        Unit::KubeProxy,
        Unit::PodRoutes,
        Unit::KubeRouter,
        Unit::EtcdSnapshot,
    ];

    pub const fn props(self) -> UnitProps {
        use Phase as P;
        use Program as B;
        let (name, binaries, ports, phase, state): (_, &[Program], &[u16], _, &[&str]) = match self
        {
            Unit::Etcd => (
                "etcd",
                &[B::Etcd],
                &[ETCD_CLIENT_PORT, ETCD_PEER_PORT, ETCD_METRICS_PORT],
                P::Etcd,
                &[],
            ),
            Unit::KubeApiserver => (
                "kube-apiserver",
                &[B::KubeApiserver],
                &[6443],
                P::ApiServer,
                &[],
            ),
            Unit::KubeControllerManager => (
                "kube-controller-manager",
                &[B::KubeControllerManager],
                &[10257],
                P::Controllers,
                &[FLEX_VOLUME_DIR],
            ),
            Unit::KubeScheduler => (
                "kube-scheduler",
                &[B::KubeScheduler],
                &[10259],
                P::Controllers,
                &[],
            ),
            Unit::KubeApiLb => (
                "kube-api-lb",
                API_LB_PROGRAMS,
                &[crate::inventory::NODE_LOCAL_API_PORT],
                P::ApiLoadBalancer,
                &[],
            ),
            // The shim and runc run every container: a new one takes effect with containerd.
            // Its CRI plugin calls the CNI plugins, whose address allocations live in
            // /var/lib/cni; /opt/containerd and /run/nri are its opt and NRI plugins'.
            Unit::Containerd => (
                "containerd",
                &[B::Containerd, B::ContainerdShimRuncV2, B::Runc],
                &[],
                P::Containerd,
                &[
                    IMAGE_STORE,
                    "/run/containerd",
                    "/var/lib/cni",
                    "/opt/containerd",
                    "/run/nri",
                ],
            ),
            Unit::Kubelet => (
                "kubelet",
                &[B::Kubelet],
                &[10248, 10250],
                P::Workers,
                &["/var/log/pods", "/var/log/containers", FLEX_VOLUME_DIR],
            ),
            Unit::KubeProxy => (
                "kube-proxy",
                &[B::KubeProxy],
                &[10249, 10256],
                P::Workers,
                &[],
            ),
            Unit::PodRoutes => ("pod-routes", &[], &[], P::PodRoutes, &[]),
            // Its rules and ipsets outlive it; `reset` removes them by their KUBE- names.
            Unit::KubeRouter => (
                "kube-router",
                POLICY_PROGRAMS,
                &[KUBE_ROUTER_HEALTH_PORT],
                P::NetworkPolicy,
                &[],
            ),
            Unit::EtcdSnapshot => ("etcd-snapshot", &[], &[], P::Schedules, &[]),
        };
        UnitProps {
            name,
            kind: match self {
                Unit::EtcdSnapshot => Kind::Timer,
                _ => Kind::Service,
            },
            binaries,
            ports,
            phase,
            state,
            reloads: matches!(self, Unit::PodRoutes),
        }
    }

    pub const fn name(self) -> &'static str {
        self.props().name
    }

    /// The unit's file name: `etcd.service`, `etcd-snapshot.timer`.
    pub fn file_name(self) -> String {
        let suffix = match self.props().kind {
            Kind::Service => "service",
            Kind::Timer => "timer",
        };
        format!("{}.{suffix}", self.name())
    }

    /// Where its unit file is installed.
    pub fn unit_file(self) -> String {
        format!("{UNIT_DIR}/{}", self.file_name())
    }

    pub fn from_name(name: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.name() == name)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl serde::Serialize for Unit {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

/// An upstream release whose programs a bundle carries, as the bundle manifest names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Release {
    Kubernetes,
    Etcd,
    Containerd,
    Runc,
    CniPlugins,
    /// caddy with its layer4 app: the node-local API load balancer.
    Caddy,
    KubeRouter,
}

impl Release {
    pub const ALL: [Release; 7] = [
        Release::Kubernetes,
        Release::Etcd,
        Release::Containerd,
        Release::Runc,
        Release::CniPlugins,
        Release::Caddy,
        Release::KubeRouter,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Release::Kubernetes => "kubernetes",
            Release::Etcd => "etcd",
            Release::Containerd => "containerd",
            Release::Runc => "runc",
            Release::CniPlugins => "cni-plugins",
            Release::Caddy => "caddy",
            Release::KubeRouter => "kube-router",
        }
    }

    /// Its programs a bundle keeps in `bin/`, in the bundle's order (CNI plugins go in `cni/`,
    /// see [`NetworkPlugin::cni_plugins`]).
    pub fn programs(self) -> impl Iterator<Item = Program> {
        Program::ALL
            .into_iter()
            .filter(move |p| p.release() == self)
    }

    /// The release a program in a bundle's `bin/` comes from.
    pub fn of_program(name: &str) -> Option<Release> {
        Program::from_name(name).map(Program::release)
    }
}

/// A step of the rollout: its units start (or restart) together or one host at a time, then
/// its gate decides whether the run goes on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    Etcd,
    ApiServer,
    Controllers,
    /// The cluster role bindings the hard way needs.
    Rbac,
    /// The workers' node-local API load balancers, before any kubelet uses them.
    ApiLoadBalancer,
    Containerd,
    Workers,
    PodRoutes,
    /// The workers' network policy engines, before any workload runs.
    NetworkPolicy,
    Addons,
    /// Timers of maintenance jobs, once the cluster runs.
    Schedules,
}

impl Phase {
    pub const fn name(self) -> &'static str {
        match self {
            Phase::Etcd => "etcd",
            Phase::ApiServer => "kube-apiserver",
            Phase::Controllers => "controllers",
            Phase::Rbac => "rbac",
            Phase::ApiLoadBalancer => "API load balancers",
            Phase::Containerd => "containerd",
            Phase::Workers => "workers",
            Phase::PodRoutes => "pod network routes",
            Phase::NetworkPolicy => "network policy",
            Phase::Addons => "addons",
            Phase::Schedules => "scheduled jobs",
        }
    }

    /// Runs whenever anything changed, even with no unit action of its own: these phases act on
    /// the API, not on a unit.
    pub const fn always_after_change(self) -> bool {
        matches!(self, Phase::Rbac | Phase::Addons)
    }

    /// The units this phase starts, in start order.
    pub fn units(self) -> impl Iterator<Item = Unit> {
        Unit::ALL
            .into_iter()
            .filter(move |u| u.props().phase == self)
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What `apply` deploys into the cluster once the nodes are Ready, each rendered from its
/// template and gated on working.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Addon {
    /// Cluster DNS.
    CoreDns,
}

/// How an addon's gate decides it works, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddonCheck {
    /// The Deployment `name` in kube-system has rolled out (its pods are shown, by `pods`
    /// selector, when it has not).
    DeploymentAvailable {
        name: &'static str,
        pods: &'static str,
    },
    /// The cluster DNS Service answers a lookup of the `kubernetes` Service from a worker.
    ClusterDnsAnswers,
}

/// One row of the addon table.
pub struct AddonProps {
    /// Its name: its manifest's file name on the control-plane hosts, its switch under
    /// `[addons]`, the name of its image in the bundle, and `NAME_image` under `[versions]`.
    pub name: &'static str,
    /// What people call it, in messages.
    pub title: &'static str,
    /// Its inventory switch.
    pub enabled: fn(&crate::inventory::Cluster) -> bool,
    /// The template of its manifest (`templates/NAME.tera`), rendered with the cluster's values
    /// that addons use (see `render::addons`).
    pub template: &'static str,
    /// A configuration rendered first with the same values and given to the manifest as
    /// `config` (its lines) and `config_sha256` (a change of it rolls the pods).
    pub config: Option<&'static str>,
    /// The image it runs (the bundle's, see `bundle::cluster`).
    pub image: fn(&crate::inventory::Cluster) -> &str,
    /// Its image setting, and whether the inventory pinned it.
    pub image_setting: fn(&mut crate::inventory::Versions) -> (&mut String, bool),
    pub checks: &'static [AddonCheck],
}

impl Addon {
    pub const ALL: [Addon; 1] = [Addon::CoreDns];

    pub const fn props(self) -> AddonProps {
        match self {
            Addon::CoreDns => AddonProps {
                name: "coredns",
                title: "CoreDNS",
                enabled: |c| c.addons.coredns,
                template: "coredns.yaml",
                config: Some("coredns-corefile"),
                image: |c| &c.versions.coredns_image,
                image_setting: |v| (&mut v.coredns_image, v.coredns_image_pinned),
                checks: &[
                    AddonCheck::DeploymentAvailable {
                        name: "coredns",
                        pods: "k8s-app=kube-dns",
                    },
                    AddonCheck::ClusterDnsAnswers,
                ],
            },
        }
    }

    pub const fn name(self) -> &'static str {
        self.props().name
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_every_unit_has_a_template() {
        for u in Unit::ALL {
            assert_eq!(Unit::from_name(u.name()), Some(u));
            assert!(
                std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                    .join("systemd-units")
                    .join(format!("{}.tera", u.file_name()))
                    .exists(),
                "{u} has no unit template"
            );
        }
        assert_eq!(Unit::from_name("etcd.service"), None);
    }

    #[test]
    fn a_release_path_names_its_release_and_version() {
        let p = release_path("kubernetes", "1.37.2", "kubelet");
        assert_eq!(p, "/usr/local/lib/provisioner/kubernetes/1.37.2/kubelet");
        assert_eq!(parse_release_path(&p), Some(("kubernetes", "1.37.2")));
        assert_eq!(parse_release_path("/usr/local/bin/kubelet"), None);
        assert_eq!(
            parse_release_path("/usr/local/lib/provisioner/kubelet"),
            None
        );
    }

    #[test]
    fn every_installed_program_comes_from_a_release() {
        for p in [
            ETCD_PROGRAMS,
            CONTROL_PLANE_PROGRAMS,
            WORKER_PROGRAMS,
            API_LB_PROGRAMS,
            POLICY_PROGRAMS,
        ]
        .concat()
        {
            assert!(Release::of_program(p.name()) == Some(p.release()), "{p}");
        }
        assert_eq!(Release::of_program("ctr"), Some(Release::Containerd));
        assert_eq!(Release::of_program("bridge"), None);
    }

    #[test]
    fn every_unit_program_is_installed_on_its_role() {
        let installed: Vec<Program> = [
            ETCD_PROGRAMS,
            CONTROL_PLANE_PROGRAMS,
            WORKER_PROGRAMS,
            API_LB_PROGRAMS,
            POLICY_PROGRAMS,
        ]
        .concat();
        for u in Unit::ALL {
            for p in u.props().binaries {
                assert!(
                    installed.contains(p),
                    "{u} runs {p}, which no role installs"
                );
            }
        }
    }

    #[test]
    fn units_start_in_the_order_of_their_phases() {
        let phases: Vec<Phase> = Unit::ALL.iter().map(|u| u.props().phase).collect();
        assert!(phases.windows(2).all(|w| w[0] <= w[1]), "{phases:?}");
        assert_eq!(
            Phase::Controllers.units().collect::<Vec<_>>(),
            [Unit::KubeControllerManager, Unit::KubeScheduler]
        );
        assert_eq!(Phase::Rbac.units().count(), 0);
    }
}
