//! The pod network's files, for the plugin the inventory asks for (see
//! [`NetworkPlugin`]): a second plugin is a row there, its arms here, its templates and its gate.

use std::net::{IpAddr, Ipv4Addr};

use anyhow::Result;

use super::context::{
    self, CniBridge, HostCtx, KubeRouterUnit, Overlay, OverlayFamily, Peer, Route, VxlanNames,
};
use super::{kubeconfig, HostBuilder, PUBLIC, SECRET};
use crate::component::{
    NetworkPlugin, Unit, KUBE_ROUTER_HEALTH_PORT, POLICY_PROGRAMS, VXLAN_PORT, VXLAN_VNI,
};
use crate::inventory::{Cluster, Host, PolicyEngine};
use crate::layout::{
    CNI_BIN_DIR, KUBE_ROUTER_KUBECONFIG, POD_EGRESS_CHAIN, POD_OVERLAY_CHAIN, POD_OVERLAY_DEVICE,
    POD_OVERLAY_TABLE, POD_ROUTES_SCRIPT,
};
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

/// A worker's part: the CNI plugins and their configuration.
pub(super) fn worker(b: &mut HostBuilder<'_>, c: &Cluster, h: &Host) -> Result<()> {
    let plugin = NetworkPlugin::of(c);
    // CNI plugins and the files below them are read on demand, for each new pod.
    b.binaries(CNI_BIN_DIR, plugin.cni_plugins().iter().copied());
    match plugin {
        NetworkPlugin::BridgeRoutes | NetworkPlugin::BridgeVxlan => {
            let v4 = h
                .pod_cidr
                .expect("validation assigns every worker a pod range");
            let mut ranges = vec![v4.to_string()];
            ranges.extend(c.pod_cidr_v6(h).map(|v6| v6.to_string()));
            let conf = CniBridge {
                defaults: ["0.0.0.0/0", "::/0"][..ranges.len()].to_vec(),
                ranges,
                mtu: c.network.pod_mtu(),
            };
            b.template(CNI_BRIDGE_CONF, PUBLIC, "cni-bridge.conflist", &conf, &[])?;
            b.template(
                "/etc/cni/net.d/99-loopback.conf",
                PUBLIC,
                "cni-loopback.conf",
                &conf,
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
    let overlay = match NetworkPlugin::of(c) {
        NetworkPlugin::BridgeRoutes => false,
        NetworkPlugin::BridgeVxlan => true,
    };
    pod_routes(b, c, h, overlay)
}

/// Routes to every other worker's pod ranges, on every host that has any, through the overlay
/// when there is one; and on workers the masquerading of their pods' traffic that leaves the
/// pod network.
fn pod_routes(b: &mut HostBuilder<'_>, c: &Cluster, h: &Host, overlay: bool) -> Result<()> {
    let workers = || c.worker_hosts().filter(|w| w.name != h.name);
    let routes: Vec<Route> = workers()
        .filter_map(|w| {
            Some(Route {
                cidr: w.pod_cidr?.to_string(),
                via: c.pod_gateway(w)?.to_string(),
            })
        })
        .collect();
    let routes6: Vec<Route> = workers()
        .filter_map(|w| {
            Some(Route {
                cidr: c.pod_cidr_v6(w)?.to_string(),
                via: c.pod_gateway_v6(w)?.to_string(),
            })
        })
        .collect();
    if routes.is_empty() && !h.roles.worker {
        return Ok(());
    }
    let overlay = overlay.then(|| overlay_of(c, h));
    let ctx = context::PodRoutes {
        routes,
        pod_cidr: c.network.pod_cidr.to_string(),
        routes6,
        pod_cidr6: c.network.ipv6.map(|v6| v6.pod_cidr.to_string()),
        internal_ip: h.internal_ip.to_string(),
        mtu: c.network.mtu,
        masquerade: h.roles.worker,
        egress_chain: POD_EGRESS_CHAIN,
        vxlan: VxlanNames {
            device: POD_OVERLAY_DEVICE,
            port: VXLAN_PORT,
            chain: POD_OVERLAY_CHAIN,
            table: POD_OVERLAY_TABLE,
        },
        overlay,
    };
    b.template(
        POD_ROUTES_SCRIPT,
        PUBLIC,
        "pod-routes.sh",
        &ctx,
        &[Unit::PodRoutes],
    )?;
    b.unit(Unit::PodRoutes, &ctx)
}

/// Host `h`'s VXLAN device and its entries for every other host, per address family.
fn overlay_of(c: &Cluster, h: &Host) -> Overlay {
    let others = || c.hosts.iter().filter(|p| p.name != h.name);
    let family = |option,
                  address: Option<String>,
                  gateway: &dyn Fn(&Host) -> Option<IpAddr>,
                  own: &dyn Fn(&Host) -> Option<IpAddr>,
                  range: Option<String>| {
        OverlayFamily {
            option,
            address,
            pod_range: range,
            neighbours: others()
                .filter_map(|p| {
                    Some((
                        gateway(p).or(own(p))?.to_string(),
                        overlay_mac(p.internal_ip),
                    ))
                })
                .collect(),
            podless: others()
                .filter(|p| h.roles.worker && !p.roles.worker)
                .filter_map(|p| Some(own(p)?.to_string()))
                .collect(),
        }
    };
    let mut families = vec![family(
        "-4",
        h.pod_cidr.map(|r| format!("{}/32", r.network())),
        &|p| c.pod_gateway(p).filter(|_| p.roles.worker).map(IpAddr::V4),
        &|p| Some(IpAddr::V4(p.internal_ip)),
        h.pod_cidr.map(|r| r.to_string()),
    )];
    if c.network.ipv6.is_some() {
        families.push(family(
            "-6",
            c.pod_cidr_v6(h).map(|r| format!("{}/128", r.network())),
            &|p| {
                c.pod_gateway_v6(p)
                    .filter(|_| p.roles.worker)
                    .map(IpAddr::V6)
            },
            &|p| p.internal_ipv6.map(IpAddr::V6),
            c.pod_cidr_v6(h).map(|r| r.to_string()),
        ));
    }
    Overlay {
        vni: VXLAN_VNI,
        // What the pods get: their packets are what the device wraps.
        mtu: c.network.pod_mtu(),
        mac: overlay_mac(h.internal_ip),
        link_local: c
            .network
            .ipv6
            .map(|_| crate::layout::pod_overlay_link_local(h.internal_ip).to_string()),
        peers: others()
            .map(|p| Peer {
                mac: overlay_mac(p.internal_ip),
                ip: p.internal_ip.to_string(),
            })
            .collect(),
        families,
    }
}

/// [`crate::layout::pod_overlay_mac`] as `ip` takes it.
fn overlay_mac(ip: Ipv4Addr) -> String {
    crate::layout::pod_overlay_mac(ip)
        .map(|b| format!("{b:02x}"))
        .join(":")
}
