//! rollback's decisions on the error ratio, apart from the host calls, so
//! they are tested natively.

/// The runbook's thresholds, as fractions of requests failing.
#[derive(Clone, Copy, Debug)]
pub struct Thresholds {
    /// Above this the deploy is rolled back (5 %).
    pub act_above: f64,
    /// Above this a human decides (20 %): a failure that large is seldom
    /// the deploy alone, and a rollback would hide what is wrong.
    pub escalate_above: f64,
}

#[derive(Debug, PartialEq)]
pub enum First {
    /// Below the threshold now: nothing to roll back.
    Leave(String),
    Revert(String),
    Escalate(String),
}

/// Before acting: the ratio must be measured and between the thresholds.
pub fn first_look(ratio: Result<f64, String>, limits: Thresholds) -> First {
    match ratio {
        Err(why) => First::Escalate(format!(
            "cannot confirm the error ratio ({why}); not rolling back blind"
        )),
        Ok(r) if r > limits.escalate_above => First::Escalate(format!(
            "{} of requests fail, above {}: a human decides",
            percent(r),
            percent(limits.escalate_above)
        )),
        Ok(r) if r > limits.act_above => First::Revert(format!(
            "{} of requests fail, above {}",
            percent(r),
            percent(limits.act_above)
        )),
        Ok(r) => First::Leave(format!(
            "{} of requests fail, not above {}: nothing to roll back",
            percent(r),
            percent(limits.act_above)
        )),
    }
}

#[derive(Debug, PartialEq)]
pub enum After {
    /// One look for the watch: below the threshold or not.
    Look(bool),
    Escalate(String),
}

/// After the revert: above the escalation threshold pages at once;
/// otherwise each look counts toward the watch.
pub fn later_look(ratio: &Result<f64, String>, limits: Thresholds) -> After {
    match ratio {
        Ok(r) if *r > limits.escalate_above => After::Escalate(format!(
            "{} of requests still fail after the rollback, above {}",
            percent(*r),
            percent(limits.escalate_above)
        )),
        Ok(r) => After::Look(*r <= limits.act_above),
        Err(_) => After::Look(false),
    }
}

pub fn percent(fraction: f64) -> String {
    format!("{:.1} %", fraction * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const RUNBOOK: Thresholds = Thresholds {
        act_above: 0.05,
        escalate_above: 0.20,
    };

    #[test]
    fn rolls_back_only_between_the_thresholds() {
        assert!(matches!(first_look(Ok(0.01), RUNBOOK), First::Leave(_)));
        assert!(matches!(first_look(Ok(0.05), RUNBOOK), First::Leave(_)));
        assert_eq!(
            first_look(Ok(0.12), RUNBOOK),
            First::Revert("12.0 % of requests fail, above 5.0 %".into())
        );
        assert!(
            matches!(first_look(Ok(0.25), RUNBOOK), First::Escalate(why) if why.contains("25.0 %"))
        );
        assert!(matches!(
            first_look(Err("no result".into()), RUNBOOK),
            First::Escalate(why) if why.contains("not rolling back blind")
        ));
    }

    #[test]
    fn after_the_rollback_each_look_counts_and_worse_pages() {
        assert_eq!(later_look(&Ok(0.01), RUNBOOK), After::Look(true));
        assert_eq!(later_look(&Ok(0.08), RUNBOOK), After::Look(false));
        assert_eq!(later_look(&Err("down".into()), RUNBOOK), After::Look(false));
        assert!(matches!(later_look(&Ok(0.3), RUNBOOK), After::Escalate(_)));
    }
}
