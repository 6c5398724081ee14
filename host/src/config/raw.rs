//! Reading the file into its raw sections. The whole file is read at once,
//! so that a mistake comes with its line. When that fails, it is read again
//! section by section and entry by entry, so that every mistake in it is
//! reported, not only the first.

use super::{ConfigError, RawConfig};
use serde::de::DeserializeOwned;
use toml::Value;

/// The raw config, and the mistakes that kept parts of it from being read.
/// Only a file that is not TOML at all is an error.
pub(super) fn read(text: &str, origin: &str) -> Result<(RawConfig, Vec<String>), ConfigError> {
    let first = match toml::from_str::<RawConfig>(text) {
        Ok(raw) => return Ok((raw, Vec::new())),
        Err(first) => first,
    };
    let table: toml::Table = text
        .parse()
        .map_err(|e: toml::de::Error| ConfigError::Parse {
            path: origin.to_string(),
            message: e.to_string().trim_end().to_string(),
        })?;
    let mut problems = Vec::new();
    let raw = by_section(table, &mut problems);
    // The parser knows the line of the first mistake: say it there.
    if let Some(span) = first.span() {
        let line = text[..span.start].matches('\n').count() + 1;
        match problems.iter_mut().find(|p| p.ends_with(first.message())) {
            Some(problem) => problem.push_str(&format!(" (line {line})")),
            None => problems.insert(0, format!("line {line}: {}", first.message())),
        }
    }
    Ok((raw, problems))
}

fn by_section(table: toml::Table, problems: &mut Vec<String>) -> RawConfig {
    let mut raw = RawConfig::default();
    for (key, value) in table {
        match key.as_str() {
            "state_dir" => raw.state_dir = section(&key, value, problems),
            "approval_ttl" => raw.approval_ttl = section(&key, value, problems),
            "node" => raw.node = section("[node]", value, problems),
            "server" => raw.server = section("[server]", value, problems),
            "store" => raw.store = section("[store]", value, problems),
            "audit" => raw.audit = section("[audit]", value, problems),
            "alertmanager" => raw.alertmanager = section("[alertmanager]", value, problems),
            "prometheus" => raw.prometheus = section("[prometheus]", value, problems),
            "nomad" => raw.nomad = section("[nomad]", value, problems),
            "docker" => raw.docker = section("[docker]", value, problems),
            "kubernetes" => raw.kubernetes = section("[kubernetes]", value, problems),
            "netns" => raw.netns = section("[netns]", value, problems),
            "kmod" => raw.kmod = section("[kmod]", value, problems),
            "notify" => raw.notify = entries("[[notify]]", value, problems).read,
            "route" => {
                let routes = entries("[[route]]", value, problems);
                raw.routes = routes.read;
                raw.route_places = routes.places;
            }
            "plugin" => {
                let plugins = entries("[[plugin]]", value, problems);
                raw.plugins = plugins.read;
                raw.plugin_places = plugins.places;
                raw.unreadable_plugins = plugins.unreadable;
            }
            other => problems.push(format!(
                "unknown key `{other}`; the config has state_dir, approval_ttl, [node], [server], [store], \
                 [audit], [alertmanager], [prometheus], [nomad], [docker], [kubernetes], [netns], [kmod], \
                 [[notify]], [[plugin]] and [[route]]"
            )),
        }
    }
    raw
}

fn section<T: DeserializeOwned + Default>(at: &str, value: Value, problems: &mut Vec<String>) -> T {
    T::deserialize(value).unwrap_or_else(|e| {
        problems.push(format!("{at}: {}", e.message()));
        T::default()
    })
}

/// The entries of an array of tables that could be read.
struct Entries<T> {
    read: Vec<T>,
    /// Where each read one sits among all of them.
    places: Vec<usize>,
    /// The names of those that could not be read, so that what refers to
    /// them is not reported as well.
    unreadable: Vec<String>,
}

fn entries<T: DeserializeOwned>(at: &str, value: Value, problems: &mut Vec<String>) -> Entries<T> {
    let mut entries = Entries {
        read: Vec::new(),
        places: Vec::new(),
        unreadable: Vec::new(),
    };
    let Value::Array(items) = value else {
        problems.push(format!("{at}: must be an array of tables, written {at}"));
        return entries;
    };
    for (index, item) in items.into_iter().enumerate() {
        let name = item.get("name").and_then(Value::as_str).map(String::from);
        match T::deserialize(item) {
            Ok(entry) => {
                entries.read.push(entry);
                entries.places.push(index);
            }
            Err(e) => {
                let named = name
                    .as_deref()
                    .map(|n| format!(" `{n}`"))
                    .unwrap_or_default();
                problems.push(format!("{at} #{}{named}: {}", index + 1, e.message()));
                entries.unreadable.extend(name);
            }
        }
    }
    entries
}
