//! etcd's member list as `etcdctl member list -w json --hex` prints it (`shell::etcd_members`).

use anyhow::{Context, Result};
use serde::Deserialize;

#[derive(Deserialize)]
pub struct MemberList {
    pub members: Vec<Member>,
}

#[derive(Deserialize)]
pub struct Member {
    /// In hex, as `member promote` and `member remove` take it.
    #[serde(rename = "ID")]
    pub id: String,
    /// Empty until the member has started.
    #[serde(default)]
    pub name: String,
    #[serde(rename = "peerURLs", default)]
    pub peer_urls: Vec<String>,
    #[serde(rename = "isLearner", default)]
    pub is_learner: bool,
}

pub fn parse(json: &[u8]) -> Result<Vec<Member>> {
    let list: MemberList = serde_json::from_slice(json).context("reading `etcdctl member list`")?;
    Ok(list.members)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_learner_not_started_yet_has_no_name() {
        // As etcdctl 3.7 printed it right after `member add --learner`.
        let out = br#"{"header":{"cluster_id":"c8730d66636ff140","member_id":"9e737febb6b99eee","raft_term":2},"members":[{"ID":"7e1cb902d5c86c6c","peerURLs":["http://127.0.0.1:23380"],"isLearner":true},{"ID":"9e737febb6b99eee","name":"a","peerURLs":["http://127.0.0.1:22380"],"clientURLs":["http://127.0.0.1:22379"]}]}"#;
        let m = super::parse(out).unwrap();
        assert_eq!(m.len(), 2);
        assert!(m[0].is_learner && m[0].name.is_empty());
        assert_eq!(m[0].id, "7e1cb902d5c86c6c");
        assert!(!m[1].is_learner);
        assert_eq!(m[1].name, "a");
        assert_eq!(m[1].peer_urls, ["http://127.0.0.1:22380"]);
    }
}
