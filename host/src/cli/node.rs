//! `remedy node`: this node's name, how alerts name nodes, and which node
//! an alert is about.

use super::{Cli, parse_pair};
use crate::node::NodeIdentity;
use anyhow::Result;
use clap::Args;

#[derive(Debug, Args)]
#[command(after_help = "\
A route whose plugin is granted anything on this node (files, processes,
namespaces, modules, Docker) runs only for alerts about this node; an alert
about another node is recorded as escalated and never acted on here.

Examples:
  remedy node                                   this node and how alerts name nodes
  remedy node --label instance=node-7:9100      which node that alert is about")]
pub struct NodeArgs {
    /// Alert label; repeat for more. Shows which node such an alert is about
    #[arg(long = "label", value_name = "KEY=VALUE", value_parser = parse_pair)]
    labels: Vec<(String, String)>,
}

pub fn node(cli: &Cli, args: &NodeArgs) -> Result<u8> {
    let config = cli.load_config()?;
    print!("{}", describe(&config.node));
    if !args.labels.is_empty() {
        println!("{}", verdict(&config.node, &args.labels));
    }
    Ok(super::exit::SUCCESS)
}

fn describe(node: &NodeIdentity) -> String {
    let rule = match &node.pattern {
        Some(pattern) => format!("the first group of {:?} in it", pattern.as_str()),
        None => "its host, without a :port".to_string(),
    };
    let aliases: Vec<String> = node
        .aliases
        .iter()
        .map(|(alias, name)| format!("{alias} = {name}"))
        .collect();
    format!(
        "node     {}\nalerts   name their node in label `{}`: {rule}\naliases  {}\n",
        node.name,
        node.label,
        if aliases.is_empty() {
            "none".to_string()
        } else {
            aliases.join(", ")
        }
    )
}

fn verdict(node: &NodeIdentity, labels: &[(String, String)]) -> String {
    match node.about(labels) {
        None => format!(
            "this alert names no node (no `{}` label the rule reads): routes that run on the \
             alert's node record it as escalated",
            node.label
        ),
        Some(about) if node.is_here(&about) => {
            format!("this alert is about {about}: this node, where it may run")
        }
        Some(about) => format!(
            "this alert is about {about}, not this node ({}): routes that run on the alert's \
             node record it as escalated here and never act on it",
            node.name
        ),
    }
}
