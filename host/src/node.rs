//! Which node this remedy is, and which node an alert is about.
//!
//! A route's runs execute either on the node the alert is about (plugins
//! that touch this host's files, processes, namespaces, modules or Docker)
//! or on any node (cluster-wide actions such as a Nomad job revert). A run
//! for one node never executes on another: that would be a wrong-node
//! remediation, the worst thing this tool could do.

use regex::Regex;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Where a route's runs execute (`runs_on`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum RunsOn {
    /// Only on the node the alert is about.
    #[default]
    AlertNode,
    /// On whichever node receives the alert.
    AnyNode,
}

impl RunsOn {
    /// Where runs of a plugin go unless a route says: on the alert's node
    /// when it is granted anything on this node (`on_this_node`, see
    /// `Grants::on_this_node`), else on any node.
    pub fn for_plugin(on_this_node: &[&str]) -> Self {
        if on_this_node.is_empty() {
            RunsOn::AnyNode
        } else {
            RunsOn::AlertNode
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            RunsOn::AlertNode => "alert-node",
            RunsOn::AnyNode => "any-node",
        }
    }
}

/// This node's name, and how an alert names the node it is about (`[node]`).
#[derive(Clone, Debug)]
pub struct NodeIdentity {
    /// This node (`[node] name`, by default the host name).
    pub name: String,
    /// The alert label that names the node an alert is about.
    pub label: String,
    /// Takes the node out of the label's value (its first capture group);
    /// without one, the value is the node with any `:port` removed.
    pub pattern: Option<Regex>,
    /// Other names alerts give nodes (an address, a long name), each
    /// mapped to the node's name.
    pub aliases: BTreeMap<String, String>,
}

pub const DEFAULT_LABEL: &str = "instance";

/// Where a run is placed from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum From {
    /// `remedy run` on this node: an alert that names no node is about this one.
    ByHand,
    /// A webhook on a store only this process uses: it executes every run.
    Webhook,
    /// A webhook on a store the fleet shares: each node's agent takes that
    /// node's runs.
    Fleet,
}

/// Where a run goes: the node it is for, and why it must not execute here.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Placement {
    /// The node the run is for; `None` for a run any node may execute.
    pub node: Option<String>,
    /// Set when this node must not execute it.
    pub refusal: Option<String>,
}

impl NodeIdentity {
    /// This host under its own name, with the default label.
    pub fn this_host() -> Self {
        NodeIdentity {
            name: host_name(),
            label: DEFAULT_LABEL.to_string(),
            pattern: None,
            aliases: BTreeMap::new(),
        }
    }

    /// The node an alert with `labels` is about, if it names one.
    pub fn about(&self, labels: &[(String, String)]) -> Option<String> {
        let (_, value) = labels.iter().find(|(key, _)| *key == self.label)?;
        let node = match &self.pattern {
            Some(pattern) => pattern.captures(value)?.get(1)?.as_str(),
            None => without_port(value),
        };
        if node.is_empty() {
            return None;
        }
        Some(
            self.aliases
                .get(node)
                .map_or(node, String::as_str)
                .to_string(),
        )
    }

    pub fn is_here(&self, node: &str) -> bool {
        node.eq_ignore_ascii_case(&self.name)
    }

    /// Where a run of a `runs_on` route for an alert with `labels` goes,
    /// when it is placed `from` here.
    pub fn place(&self, runs_on: RunsOn, labels: &[(String, String)], from: From) -> Placement {
        if runs_on == RunsOn::AnyNode {
            return Placement::default();
        }
        let node = match self.about(labels) {
            Some(node) => node,
            None if from == From::ByHand => self.name.clone(),
            None => {
                return Placement {
                    node: None,
                    refusal: Some(format!(
                        "the alert has no `{}` label naming the node it is about, and its route \
                         runs on the alert's node; set [node] label, or runs_on = \"any-node\" \
                         for a plugin that may run anywhere",
                        self.label
                    )),
                };
            }
        };
        Placement {
            refusal: match from {
                // The fleet's queue takes it to the agent on that node.
                From::Fleet => None,
                From::ByHand | From::Webhook => self.elsewhere(&node),
            },
            node: Some(node),
        }
    }

    /// The placement of a run recorded for `node` (`None`: any node),
    /// checked against this node now: the node's config may have changed
    /// since the run was queued, or the store moved to another host.
    pub fn recheck(&self, node: Option<String>) -> Placement {
        Placement {
            refusal: node.as_deref().and_then(|node| self.elsewhere(node)),
            node,
        }
    }

    /// Why a run for `node` must not execute here, if it must not.
    pub fn elsewhere(&self, node: &str) -> Option<String> {
        (!self.is_here(node)).then(|| {
            format!(
                "the alert is about {node}; this remedy runs on {}, and never acts on another node",
                self.name
            )
        })
    }
}

/// `node-7:9100` is `node-7`, `[::1]:9100` is `::1`; a bare IPv6 address
/// (more than one `:`) has no port to remove.
fn without_port(value: &str) -> &str {
    if let Some(rest) = value.strip_prefix('[') {
        return rest.split_once(']').map_or(value, |(host, _)| host);
    }
    match value.split_once(':') {
        Some((host, port)) if !port.contains(':') => host,
        _ => value,
    }
}

/// The kernel's host name, or `localhost` when it cannot be read.
pub fn host_name() -> String {
    let name = rustix::system::uname();
    let name = name.nodename().to_string_lossy();
    if name.is_empty() {
        "localhost".to_string()
    } else {
        name.into_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::alert::test_labels as labels;

    fn node(name: &str) -> NodeIdentity {
        NodeIdentity {
            name: name.into(),
            ..NodeIdentity::this_host()
        }
    }

    #[test]
    fn the_node_is_the_label_without_its_port() {
        let here = node("node-3");
        for (value, expected) in [
            ("node-7:9100", Some("node-7")),
            ("node-7", Some("node-7")),
            ("10.0.0.7:9100", Some("10.0.0.7")),
            ("[fe80::1]:9100", Some("fe80::1")),
            ("fe80::1", Some("fe80::1")),
            (":9100", None),
            ("", None),
        ] {
            let about = here.about(&labels(&[("instance", value)]));
            assert_eq!(about.as_deref(), expected, "{value:?}");
        }
        assert_eq!(here.about(&labels(&[("job", "node")])), None);
    }

    #[test]
    fn patterns_and_aliases_name_the_node() {
        let here = NodeIdentity {
            label: "nodename".into(),
            pattern: Some(Regex::new(r"^(.+)\.example\.com$").unwrap()),
            aliases: [("db-1".to_string(), "node-3".to_string())].into(),
            ..node("node-3")
        };
        let about = |value| here.about(&labels(&[("nodename", value)]));
        assert_eq!(about("node-7.example.com").as_deref(), Some("node-7"));
        assert_eq!(about("db-1.example.com").as_deref(), Some("node-3"));
        assert_eq!(about("node-7.example.org"), None, "no match names no node");
    }

    #[test]
    fn a_node_local_run_for_another_node_is_refused_here() {
        let here = node("node-3");
        let other = here.place(
            RunsOn::AlertNode,
            &labels(&[("instance", "node-7:9100")]),
            From::Webhook,
        );
        assert_eq!(other.node.as_deref(), Some("node-7"));
        let why = other.refusal.unwrap();
        assert!(
            why.contains("about node-7") && why.contains("runs on node-3"),
            "{why}"
        );

        let mine = here.place(
            RunsOn::AlertNode,
            &labels(&[("instance", "NODE-3:9100")]),
            From::Webhook,
        );
        assert_eq!(mine.refusal, None, "host names are not case-sensitive");

        let unnamed = here.place(
            RunsOn::AlertNode,
            &labels(&[("alertname", "X")]),
            From::Webhook,
        );
        assert!(unnamed.refusal.unwrap().contains("no `instance` label"));
        let unnamed = here.place(RunsOn::AlertNode, &labels(&[]), From::Fleet);
        assert!(
            unnamed.refusal.unwrap().contains("no `instance` label"),
            "a fleet cannot tell whose it is either"
        );

        let queued_for_its_agent = here.place(
            RunsOn::AlertNode,
            &labels(&[("instance", "node-7:9100")]),
            From::Fleet,
        );
        assert_eq!(
            queued_for_its_agent,
            Placement {
                node: Some("node-7".into()),
                refusal: None
            }
        );

        let by_hand = here.place(RunsOn::AlertNode, &[], From::ByHand);
        assert_eq!(
            by_hand,
            Placement {
                node: Some("node-3".into()),
                refusal: None
            }
        );

        let anywhere = here.place(
            RunsOn::AnyNode,
            &labels(&[("instance", "node-7")]),
            From::Webhook,
        );
        assert_eq!(anywhere, Placement::default());
    }
}
