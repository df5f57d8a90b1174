//! The pod network's files, for the plugin the inventory asks for (see
//! [`NetworkPlugin`]): a second plugin is a row there, its arms here, its templates and its gate.

use anyhow::Result;

use super::context::{self, HostCtx, KubeRouterUnit, Route};
use super::{kubeconfig, HostBuilder, PUBLIC, SECRET};
use crate::component::{NetworkPlugin, Unit, KUBE_ROUTER_HEALTH_PORT, POLICY_PROGRAMS};
use crate::inventory::{Cluster, Host, PolicyEngine};
use crate::layout::{CNI_BIN_DIR, KUBE_ROUTER_KUBECONFIG};
use crate::pki::{Cert, Pki, KUBE_ROUTER_USER};

/// Files an earlier release of provisioner wrote, each with the file that replaces it. A host
/// that gets the replacement has the old one removed: its readers would otherwise still find
/// it (containerd loads the first CNI configuration by name, and `10-bridge.conf` sorts before
/// `10-bridge.conflist`).
pub const RETIRED: &[(&str, &str)] = &[(CNI_BRIDGE_CONF_V1, CNI_BRIDGE_CONF)];
/// The pod network's CNI configuration: the bridge, then portmap for `hostPort`.
const CNI_BRIDGE_CONF: &str = "/etc/cni/net.d/10-bridge.conflist";
/// The bridge alone, before hostPort worked.
const CNI_BRIDGE_CONF_V1: &str = "/etc/cni/net.d/10-bridge.conf";

/// A worker's part: the CNI plugins and their configuration (`node` carries its pod range).
pub(super) fn worker(b: &mut HostBuilder<'_>, plugin: NetworkPlugin, node: &HostCtx) -> Result<()> {
    // CNI plugins and the files below them are read on demand, for each new pod.
    b.binaries(CNI_BIN_DIR, plugin.cni_plugins().iter().copied());
    match plugin {
        NetworkPlugin::BridgeRoutes => {
            b.template(CNI_BRIDGE_CONF, PUBLIC, "cni-bridge.conflist", node, &[])?;
            b.template(
                "/etc/cni/net.d/99-loopback.conf",
                PUBLIC,
                "cni-loopback.conf",
                node,
                &[],
            )
        }
    }
}

/// A worker's NetworkPolicy engine, when the inventory asks for one: its program, its
/// kubeconfig (reaching the API as the worker's kubelet does, at `api`) and its unit.
pub(super) fn policy(
    b: &mut HostBuilder<'_>,
    c: &Cluster,
    pki: &Pki,
    node: &HostCtx,
    api: &str,
) -> Result<()> {
    match c.network.policy {
        PolicyEngine::None => Ok(()),
        PolicyEngine::KubeRouter => {
            b.programs(POLICY_PROGRAMS);
            let conf = kubeconfig(
                b.t,
                c,
                pki,
                KUBE_ROUTER_USER,
                pki.leaf(Cert::KubeRouter, None),
                api,
            )?;
            b.file(KUBE_ROUTER_KUBECONFIG, SECRET, conf, &[Unit::KubeRouter]);
            b.unit(
                Unit::KubeRouter,
                &KubeRouterUnit {
                    host: node,
                    health_port: KUBE_ROUTER_HEALTH_PORT,
                },
            )
        }
    }
}

/// Every host's part: how it reaches the pods of the other workers.
pub(super) fn every_host(b: &mut HostBuilder<'_>, c: &Cluster, h: &Host) -> Result<()> {
    match NetworkPlugin::of(c) {
        NetworkPlugin::BridgeRoutes => pod_routes(b, c, h),
    }
}

/// Routes to every other worker's pod range, on every host that has any, and on workers the
/// masquerading of their pods' traffic that leaves the pod network.
fn pod_routes(b: &mut HostBuilder<'_>, c: &Cluster, h: &Host) -> Result<()> {
    use Unit::*;
    let routes: Vec<Route> = c
        .worker_hosts()
        .filter(|w| w.name != h.name)
        .map(|w| Route {
            cidr: w
                .pod_cidr
                .expect("validation assigns every worker a pod range")
                .to_string(),
            via: w.internal_ip.to_string(),
        })
        .collect();
    if !routes.is_empty() || h.roles.worker {
        let ctx = context::PodRoutes {
            routes,
            pod_cidr: c.network.pod_cidr.to_string(),
            masquerade: h.roles.worker,
            egress_chain: crate::layout::POD_EGRESS_CHAIN,
        };
        b.template(
            crate::layout::POD_ROUTES_SCRIPT,
            PUBLIC,
            "pod-routes.sh",
            &ctx,
            &[PodRoutes],
        )?;
        b.unit(PodRoutes, &ctx)?;
    }
    Ok(())
}
