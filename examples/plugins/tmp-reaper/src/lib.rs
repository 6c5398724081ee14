//! tmp-reaper: propose removing every file below `dirs` not modified for
//! `max_age`. Written only against `remedy-sdk`, as a third party would.

use remedy_sdk::{
    Action, Check, Error, Incident, Plan, Plugin, PluginInfo, fs, parse_duration, proc,
};
use std::collections::HashSet;

struct TmpReaper;

impl Plugin for TmpReaper {
    fn describe() -> PluginInfo {
        PluginInfo::new(
            "tmp-reaper",
            env!("CARGO_PKG_VERSION"),
            "Removes files nobody modified for max_age.",
        )
        .param("dirs", "Comma-separated directories to reap.", Some("/tmp"))
        .param(
            "max_age",
            "Leave files modified more recently than this.",
            Some("10d"),
        )
        .action_kind("remove-path")
    }

    fn plan(incident: Incident) -> Result<Plan, Error> {
        let max_age = incident.param_with("max_age", parse_duration)?;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let mut plan = Plan::new("");
        let mut stale = Vec::new();
        for dir in incident.param_list("dirs") {
            let files = match fs::walk_files(&dir) {
                Ok(files) => files,
                Err(Error::NotFound(_)) => {
                    plan = plan.check(Check::skipped(&dir, "not present"));
                    continue;
                }
                Err(error) => return Err(error),
            };
            let device = fs::usage(&dir)?.device;
            let held: HashSet<u64> = proc::files_in_use(device)?
                .files
                .iter()
                .map(|f| f.inode)
                .collect();
            let old: Vec<_> = files
                .into_iter()
                .filter(|f| {
                    now - f.identity.mtime_secs() >= max_age as i64
                        && !held.contains(&f.identity.inode)
                })
                .collect();
            plan = plan.check(Check::pass(
                &dir,
                format!("{} files older than {max_age}s", old.len()),
            ));
            stale.extend(old);
        }
        plan.summary = if stale.is_empty() {
            "nothing old enough to reap".into()
        } else {
            format!("reap {} files", stale.len())
        };
        Ok(stale.iter().fold(plan, |plan, file| {
            plan.act(Action::remove_file(
                file,
                "untouched for longer than max_age",
            ))
        }))
    }
}

remedy_sdk::export_plugin!(TmpReaper);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_its_params_and_actions() {
        let info = TmpReaper::describe();
        assert_eq!(info.action_kinds, ["remove-path"]);
        assert!(info.params.iter().any(|p| p.name == "max_age"));
    }

    #[test]
    fn a_bad_max_age_is_refused_before_looking_at_anything() {
        let incident = Incident::for_test(&[], &[("max_age", "forever")]);
        assert!(matches!(TmpReaper::plan(incident), Err(Error::Invalid(_))));
    }
}
