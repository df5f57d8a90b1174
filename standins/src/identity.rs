//! Client identities: a client certificate's CN is the user, its O entries the groups, as the
//! real x509 authenticator maps them.

use rustls::pki_types::CertificateDer;
use serde::Serialize;

/// An authenticated user.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Identity {
    pub user: String,
    pub groups: Vec<String>,
}

pub const MASTERS: &str = "system:masters";
pub const CLUSTER_ADMINS: &str = "kubeadm:cluster-admins";
pub const NODES: &str = "system:nodes";
pub const AUTHENTICATED: &str = "system:authenticated";
pub const CONTROLLER_MANAGER: &str = "system:kube-controller-manager";
pub const SCHEDULER: &str = "system:kube-scheduler";
pub const KUBE_PROXY: &str = "system:kube-proxy";
pub const NODE_PREFIX: &str = "system:node:";

impl Identity {
    /// The identity of a verified client certificate; every authenticated user is also in
    /// system:authenticated.
    pub fn from_cert(cert: &CertificateDer<'_>) -> anyhow::Result<Identity> {
        let (user, mut groups) = crate::files::subject(cert)?;
        if !groups.iter().any(|g| g == AUTHENTICATED) {
            groups.push(AUTHENTICATED.to_string());
        }
        Ok(Identity { user, groups })
    }

    pub fn in_group(&self, g: &str) -> bool {
        self.groups.iter().any(|x| x == g)
    }

    /// The node name, for a kubelet identity (`system:node:<name>` in group system:nodes).
    pub fn node_name(&self) -> Option<&str> {
        let name = self.user.strip_prefix(NODE_PREFIX)?;
        (self.in_group(NODES) && !name.is_empty()).then_some(name)
    }

    /// Whether this is one of the identities the provisioner issues certificates for. Anything
    /// else reaching the API server means a wrong certificate went somewhere.
    pub fn expected_form(&self) -> Result<(), String> {
        if self.in_group(MASTERS) || self.in_group(CLUSTER_ADMINS) {
            return Ok(());
        }
        if self.user.starts_with(NODE_PREFIX) || self.in_group(NODES) {
            return match self.node_name() {
                Some(_) => Ok(()),
                None => Err(format!(
                    "a node identity needs CN system:node:<name> and O {NODES}"
                )),
            };
        }
        if [CONTROLLER_MANAGER, SCHEDULER, KUBE_PROXY].contains(&self.user.as_str()) {
            return Ok(());
        }
        Err("not one of the identities the provisioner issues (system:masters, \
             kubeadm:cluster-admins, system:node:<name>/system:nodes, system:kube-controller-manager, \
             system:kube-scheduler, system:kube-proxy)"
            .to_string())
    }
}

impl std::fmt::Display for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let groups: Vec<&str> = self
            .groups
            .iter()
            .map(String::as_str)
            .filter(|g| *g != AUTHENTICATED)
            .collect();
        write!(f, "user {:?} groups {:?}", self.user, groups)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(user: &str, groups: &[&str]) -> Identity {
        Identity {
            user: user.into(),
            groups: groups.iter().map(|g| g.to_string()).collect(),
        }
    }

    #[test]
    fn known_forms() {
        assert!(id("kubernetes-super-admin", &[MASTERS])
            .expected_form()
            .is_ok());
        assert!(id("kubernetes-admin", &[CLUSTER_ADMINS])
            .expected_form()
            .is_ok());
        assert!(id("system:node:n1", &[NODES]).expected_form().is_ok());
        assert_eq!(id("system:node:n1", &[NODES]).node_name(), Some("n1"));
        assert!(id("system:node:n1", &[]).expected_form().is_err());
        assert!(id("n1", &[NODES]).expected_form().is_err());
        assert!(id(SCHEDULER, &[]).expected_form().is_ok());
        assert!(id("kube-apiserver-kubelet-client", &[])
            .expected_form()
            .is_err());
        assert!(id("front-proxy-client", &[]).expected_form().is_err());
    }
}
