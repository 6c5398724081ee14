//! Which routes an alert takes: in order, the first whose matchers all
//! match, and further ones only while each matching route says `continue`.

use crate::config::RouteConfig;
use crate::matcher::Matcher;

/// How one route judged one alert.
#[derive(Debug)]
pub enum Verdict<'c> {
    Matched,
    /// The first matcher that rejected the alert.
    Rejected(&'c Matcher),
    /// An earlier route matched and did not say `continue`.
    NotTried,
}

impl Verdict<'_> {
    /// `MATCH`, `no`, or `-` (not tried).
    pub fn word(&self) -> &'static str {
        match self {
            Verdict::Matched => "MATCH",
            Verdict::Rejected(_) => "no",
            Verdict::NotTried => "-",
        }
    }

    /// Why, for a person: which matcher said no and what the label held.
    pub fn explain(&self, route: &RouteConfig, labels: &[(String, String)]) -> String {
        match self {
            Verdict::Matched if route.matchers.is_empty() => {
                "no matchers: takes every alert".to_string()
            }
            Verdict::Matched => format!(
                "all {} matchers match{}",
                route.matchers.len(),
                if route.continue_matching {
                    "; continue = true"
                } else {
                    ""
                }
            ),
            Verdict::Rejected(matcher) => {
                let actual = labels
                    .iter()
                    .find(|(name, _)| *name == matcher.name)
                    .map_or("(absent)".to_string(), |(_, v)| format!("{v:?}"));
                format!("{matcher} does not match {} = {actual}", matcher.name)
            }
            Verdict::NotTried => "not tried: an earlier route matched".to_string(),
        }
    }
}

/// Every route with its verdict, in config order.
pub fn evaluate<'c>(
    routes: &'c [RouteConfig],
    labels: &[(String, String)],
) -> Vec<(&'c RouteConfig, Verdict<'c>)> {
    let mut stopped = false;
    routes
        .iter()
        .map(|route| {
            if stopped {
                return (route, Verdict::NotTried);
            }
            match route.matchers.iter().find(|m| !m.matches(labels)) {
                Some(rejecting) => (route, Verdict::Rejected(rejecting)),
                None => {
                    stopped = !route.continue_matching;
                    (route, Verdict::Matched)
                }
            }
        })
        .collect()
}

/// The routes an alert with `labels` goes to.
pub fn routes_for<'c>(
    routes: &'c [RouteConfig],
    labels: &[(String, String)],
) -> Vec<&'c RouteConfig> {
    evaluate(routes, labels)
        .into_iter()
        .filter(|(_, verdict)| matches!(verdict, Verdict::Matched))
        .map(|(route, _)| route)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use std::path::Path;

    fn config() -> Config {
        Config::parse(
            r#"
            [[plugin]]
            name = "p"
            source = "builtin:disk-cleanup"
            [[route]]
            name = "audit"
            plugin = "p"
            continue = true
            [[route]]
            name = "disk"
            matchers = ['alertname=~"DiskSpace.*"']
            plugin = "p"
            [[route]]
            name = "critical-disk"
            matchers = ['alertname="DiskSpaceCritical"']
            plugin = "p"
            [[route]]
            name = "catch-all"
            plugin = "p"
            "#,
            "test",
            Path::new("/"),
        )
        .unwrap()
    }

    fn names(routes: Vec<&RouteConfig>) -> Vec<&str> {
        routes.into_iter().map(|r| r.name.as_str()).collect()
    }

    fn alert(name: &str) -> Vec<(String, String)> {
        vec![("alertname".into(), name.into())]
    }

    #[test]
    fn first_match_wins_unless_continue() {
        let config = config();
        assert_eq!(
            names(routes_for(&config.routes, &alert("DiskSpaceCritical"))),
            ["audit", "disk"]
        );
        assert_eq!(
            names(routes_for(&config.routes, &alert("APIDown"))),
            ["audit", "catch-all"]
        );
    }

    #[test]
    fn verdicts_say_why() {
        let config = config();
        let verdicts = evaluate(&config.routes, &alert("APIDown"));
        assert!(matches!(verdicts[0].1, Verdict::Matched));
        let Verdict::Rejected(matcher) = verdicts[1].1 else {
            panic!("disk must reject")
        };
        assert_eq!(matcher.name, "alertname");
        assert!(matches!(verdicts[3].1, Verdict::Matched));

        let verdicts = evaluate(&config.routes, &alert("DiskSpaceLow"));
        assert!(matches!(verdicts[2].1, Verdict::NotTried));
    }
}
