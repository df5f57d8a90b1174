//! The test network. It exists only inside namespaces the sandbox makes:
//!
//! ```text
//!  root netns (host)             hub netns                     machine netns
//!  {p}-host 10.88.0.1/24 ─veth─ host ┐
//!                                     br0 10.88.0.254/24
//!                        {p}-m1 ─────┘└──── veth ──────── eth0 10.88.0.11/24, default via .254
//!                                     br1 10.88.1.254/24   (only with routed machines)
//!                        {p}-m4 ─────┘└──── veth ──────── eth0 10.88.1.14/24, default via .254
//! ```
//!
//! The host gets one address on the subnet so the test process reaches every machine's ports
//! directly. Nothing routes further: the host's end of the veth does not forward, and the
//! machines' default route ends at the hub, so a packet for any address outside the sandbox
//! dies inside it. The machines still need a default route because kube-apiserver picks its
//! advertise address from it and Service IPs are only rewritten by kube-proxy after the kernel
//! has found a route for them.
//!
//! Routed machines sit on a second /24 (the one after the first) behind the hub, which then
//! routes between its two subnets, and only between them (it has no other route): hosts that
//! do not share an L2 segment, as a pod network overlay must handle them.
//!
//! With IPv6, each subnet also has a /64 named after it (10.88.1.0/24: fd00:10:88:1::/64), the
//! machine at .11 gets ::11 and the hub ::254; the host itself stays IPv4 only.

use std::fs;
use std::net::{Ipv4Addr, Ipv6Addr};

use anyhow::{bail, Context, Result};

use super::sys::{run, tool};

/// The names of the interfaces and namespaces, derived from the sandbox prefix. Interface names
/// must fit the kernel's 15 bytes, hence the short forms.
pub(super) fn hub_netns(prefix: &str) -> String {
    format!("{prefix}-hub")
}
pub(super) fn host_veth(prefix: &str) -> String {
    format!("{prefix}-host")
}
pub(super) fn machine_netns(prefix: &str, machine: &str) -> String {
    format!("{prefix}-{machine}")
}
pub(super) fn hub_veth(prefix: &str, index: usize) -> String {
    format!("{prefix}-m{index}")
}

/// Addresses of one sandbox: a /24 with the host at .1 and the hub's dead-end gateway at .254.
#[derive(Debug, Clone, Copy)]
pub(super) struct Subnet {
    pub network: Ipv4Addr,
}

impl Subnet {
    pub fn host(self, last_octet: u8) -> Ipv4Addr {
        let [a, b, c, _] = self.network.octets();
        Ipv4Addr::new(a, b, c, last_octet)
    }
    pub fn host_address(self) -> Ipv4Addr {
        self.host(1)
    }
    pub fn gateway(self) -> Ipv4Addr {
        self.host(254)
    }
    pub fn cidr(self) -> String {
        format!("{}/24", self.network)
    }
    /// Its IPv6 sibling's address with the last group `last` (decimal digits read as hex, so
    /// that the address reads like the IPv4 one): 10.88.1.0/24, 11 -> fd00:10:88:1::11.
    pub fn host6(self, last: u8) -> Ipv6Addr {
        let [a, b, c, _] = self.network.octets();
        let group = |n: u8| u16::from_str_radix(&n.to_string(), 16).expect("decimal digits");
        Ipv6Addr::new(0xfd00, group(a), group(b), group(c), 0, 0, 0, group(last))
    }
    /// The /24 that holds `address`.
    pub fn of(address: Ipv4Addr) -> Subnet {
        Subnet {
            network: Ipv4Addr::from(u32::from(address) & 0xffff_ff00),
        }
    }
    /// A machine's IPv6 address: on its /24's sibling, with the same last number.
    pub fn ipv6_of(address: Ipv4Addr) -> Ipv6Addr {
        Subnet::of(address).host6(address.octets()[3])
    }
    /// The /24 after this one: where routed machines live.
    pub fn next(self) -> Subnet {
        let [a, b, c, _] = self.network.octets();
        Subnet {
            network: Ipv4Addr::new(a, b, c.wrapping_add(1), 0),
        }
    }
    /// "10.88.0." — what a conflicting address or route on the host would start with.
    fn dotted_prefix(self) -> String {
        let [a, b, c, _] = self.network.octets();
        format!("{a}.{b}.{c}.")
    }
}

/// Refuses a subnet the host already uses: our host-side address would shadow or be shadowed by
/// the existing route, and test traffic could leave through a real interface.
pub(super) fn check_subnet_free(subnet: Subnet, prefix: &str) -> Result<()> {
    let ours = host_veth(prefix);
    let addrs = run(tool("ip").args(["-4", "-o", "addr", "show"]))?;
    let routes = run(tool("ip").args(["-4", "route", "show"]))?;
    let needle = subnet.dotted_prefix();
    let clash = addrs
        .lines()
        .chain(routes.lines())
        .find(|l| !l.contains(&ours) && l.split_whitespace().any(|word| word.starts_with(&needle)));
    if let Some(line) = clash {
        bail!(
            "the host already uses the sandbox subnet {}: `{}`; pick another subnet",
            subnet.cidr(),
            line.trim()
        );
    }
    Ok(())
}

/// Whether the kernel sends traffic for `address` into the sandbox, through our host veth. Every
/// probe checks this first: with a stale state file (after a reboot, say) the machines'
/// addresses would otherwise be routed out of the host's real interface.
pub(super) fn routes_into_sandbox(prefix: &str, address: Ipv4Addr) -> bool {
    let dev = host_veth(prefix);
    run(tool("ip").args(["-4", "route", "get", &address.to_string()]))
        .is_ok_and(|route| route.split_whitespace().any(|w| w == dev))
}

/// Whether a namespace with this name exists.
pub(super) fn netns_exists(name: &str) -> bool {
    std::path::Path::new("/run/netns").join(name).exists()
}

/// The hub's bridge for the first subnet's machines, or for the routed ones.
pub(super) fn hub_bridge(routed: bool) -> &'static str {
    if routed {
        "br1"
    } else {
        "br0"
    }
}

/// Makes the hub namespace with its bridge, and the host's veth into it; with `routed`, a
/// second bridge on that subnet, routed to from the first; with `ipv6`, the bridges' IPv6
/// gateways.
pub(super) fn create_hub(
    prefix: &str,
    subnet: Subnet,
    routed: Option<Subnet>,
    ipv6: bool,
) -> Result<()> {
    let hub = hub_netns(prefix);
    let host_if = host_veth(prefix);
    if netns_exists(&hub) {
        bail!("network namespace {hub} already exists: another sandbox is up, or an old one was not removed (run `provisioner sandbox down`)");
    }
    run(tool("ip").args(["netns", "add", &hub]))?;
    // A namespace starts with forwarding off on most kernels, but one that inherits the host's
    // settings (net.core.devconf_inherit_init_net) might not: the hub routes only between its
    // own subnets, and only when there are two.
    netns_sysctl(&hub, "net/ipv4/ip_forward", "0")?;
    let ip_hub = |args: &[&str]| run(tool("ip").args(["-n", &hub]).args(args));
    ip_hub(&["link", "set", "lo", "up"])?;
    ip_hub(&["link", "add", "br0", "type", "bridge"])?;
    ip_hub(&[
        "addr",
        "add",
        &format!("{}/24", subnet.gateway()),
        "dev",
        "br0",
    ])?;
    ip_hub(&["link", "set", "br0", "up"])?;

    run(tool("ip").args([
        "link", "add", &host_if, "type", "veth", "peer", "name", "host", "netns", &hub,
    ]))?;
    ip_hub(&["link", "set", "host", "master", "br0", "up"])?;
    // The host end must not forward what the machines send it, whatever the host's global
    // setting, and needs no IPv6 (which would add link-local routes and router solicitations).
    host_sysctl(&format!("net/ipv4/conf/{host_if}/forwarding"), "0")?;
    host_sysctl(&format!("net/ipv6/conf/{host_if}/disable_ipv6"), "1")?;
    run(tool("ip").args([
        "addr",
        "add",
        &format!("{}/24", subnet.host_address()),
        "dev",
        &host_if,
    ]))?;
    run(tool("ip").args(["link", "set", &host_if, "up"]))?;
    if ipv6 {
        let gateway = format!("{}/64", subnet.host6(254));
        ip_hub(&[
            "-6",
            "addr",
            "add",
            &gateway,
            "dev",
            hub_bridge(false),
            "nodad",
        ])?;
    }
    if let Some(routed) = routed {
        let br = hub_bridge(true);
        ip_hub(&["link", "add", br, "type", "bridge"])?;
        ip_hub(&[
            "addr",
            "add",
            &format!("{}/24", routed.gateway()),
            "dev",
            br,
        ])?;
        ip_hub(&["link", "set", br, "up"])?;
        netns_sysctl(&hub, "net/ipv4/ip_forward", "1")?;
        if ipv6 {
            let gateway = format!("{}/64", routed.host6(254));
            ip_hub(&["-6", "addr", "add", &gateway, "dev", br, "nodad"])?;
            netns_sysctl(&hub, "net/ipv6/conf/all/forwarding", "1")?;
        }
        run(tool("ip").args([
            "route",
            "add",
            &routed.cidr(),
            "via",
            &subnet.gateway().to_string(),
            "dev",
            &host_if,
        ]))?;
    }
    Ok(())
}

/// Makes a machine's namespace, plugged into the hub's bridge for its subnet, with its address
/// and route set from outside so the machine needs no network configuration of its own.
pub(super) fn create_machine(
    prefix: &str,
    machine: &str,
    index: usize,
    address: Ipv4Addr,
    routed: bool,
    ipv6: bool,
) -> Result<()> {
    let subnet = Subnet::of(address);
    let hub = hub_netns(prefix);
    let ns = machine_netns(prefix, machine);
    let veth = hub_veth(prefix, index);
    if netns_exists(&ns) {
        bail!("network namespace {ns} already exists (run `provisioner sandbox down`)");
    }
    run(tool("ip").args(["netns", "add", &ns]))?;
    let ip_ns = |args: &[&str]| run(tool("ip").args(["-n", &ns]).args(args));
    let ip_hub = |args: &[&str]| run(tool("ip").args(["-n", &hub]).args(args));
    ip_hub(&[
        "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &ns,
    ])?;
    ip_hub(&["link", "set", &veth, "master", hub_bridge(routed), "up"])?;
    ip_ns(&["link", "set", "lo", "up"])?;
    ip_ns(&["addr", "add", &format!("{address}/24"), "dev", "eth0"])?;
    ip_ns(&["link", "set", "eth0", "up"])?;
    ip_ns(&[
        "route",
        "add",
        "default",
        "via",
        &subnet.gateway().to_string(),
    ])?;
    if ipv6 {
        let own = format!("{}/64", Subnet::ipv6_of(address));
        ip_ns(&["-6", "addr", "add", &own, "dev", "eth0", "nodad"])?;
        ip_ns(&[
            "-6",
            "route",
            "add",
            "default",
            "via",
            &subnet.host6(254).to_string(),
        ])?;
    }
    Ok(())
}

/// Deletes a namespace by name; a missing one is fine.
pub(super) fn delete_netns(name: &str) -> Result<()> {
    if !netns_exists(name) {
        return Ok(());
    }
    run(tool("ip").args(["netns", "delete", name])).map(drop)
}

/// Deletes the host's veth. Deleting the hub namespace would take it along, but only once the
/// kernel gets round to freeing the namespace; deleting it here makes `down` deterministic.
pub(super) fn delete_host_veth(prefix: &str) -> Result<()> {
    let name = host_veth(prefix);
    if !std::path::Path::new("/sys/class/net").join(&name).exists() {
        return Ok(());
    }
    run(tool("ip").args(["link", "delete", &name])).map(drop)
}

/// Our namespaces still present, including ones a crashed `up` never recorded.
pub(super) fn leftover_netns(prefix: &str) -> Vec<String> {
    let start = format!("{prefix}-");
    fs::read_dir("/run/netns")
        .map(|d| {
            d.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.starts_with(&start))
                .collect()
        })
        .unwrap_or_default()
}

fn host_sysctl(key: &str, value: &str) -> Result<()> {
    let path = format!("/proc/sys/{key}");
    fs::write(&path, value).with_context(|| format!("cannot set {path} to {value}"))
}

/// /proc/sys/net shows the reader's namespace, so the write has to happen from inside it.
fn netns_sysctl(ns: &str, key: &str, value: &str) -> Result<()> {
    run(tool("ip")
        .args([
            "netns",
            "exec",
            ns,
            "sh",
            "-c",
            "echo \"$1\" > \"/proc/sys/$0\"",
        ])
        .args([key, value]))
    .map(drop)
}
