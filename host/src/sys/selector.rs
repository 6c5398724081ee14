//! Label selectors in grants (`docker_labels`, `kube_labels`): each entry is
//! `key` (the label is there) or `key=value`, and an object is selected when
//! it carries every one. Docker's label filters and Kubernetes' equality
//! selectors mean the same, so the engine or API server can filter as well.

/// Whether an object whose labels `label` looks up carries every entry of `selector`.
pub fn selects<'a>(selector: &[String], label: impl Fn(&str) -> Option<&'a str>) -> bool {
    selector.iter().all(|wanted| match wanted.split_once('=') {
        Some((key, value)) => label(key) == Some(value),
        None => label(wanted).is_some(),
    })
}

/// The problem with the selector the config key `key` holds, if any.
pub fn problem(key: &str, selector: &[String]) -> Option<String> {
    selector
        .iter()
        .any(|l| l.is_empty() || l.starts_with('='))
        .then(|| format!("grants.{key} entries are `key` or `key=value`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn every_entry_must_hold() {
        let labels = HashMap::from([("app", "api"), ("team", "x")]);
        let get = |k: &str| labels.get(k).copied();
        let selector = |entries: &[&str]| entries.iter().map(|e| e.to_string()).collect::<Vec<_>>();
        assert!(selects(&selector(&["app=api", "team"]), get));
        assert!(!selects(&selector(&["app=api", "tier"]), get));
        assert!(!selects(&selector(&["app=web"]), get));
        assert!(!selects(&selector(&["app=ap"]), get));
        assert!(selects(&[], get));
        assert!(problem("kube_labels", &selector(&["=x"])).is_some());
        assert!(problem("kube_labels", &selector(&["a=b", "c"])).is_none());
    }
}
