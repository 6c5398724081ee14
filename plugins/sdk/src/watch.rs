//! Confirming recovery across rounds: "health answers 200 three times in a
//! row", "RSS below 3.4 GB and stable for 2 m". A plugin acts, then asks to
//! look again (`recheck-after-secs`); each later round looks once and hands
//! the result to a [`Watch`], which keeps the count in the plan's memo and
//! says whether recovery is confirmed, still being watched, or past the
//! deadline (then the run escalates).
//!
//! ```
//! use remedy_sdk::{Incident, Plan, watch::Watch};
//!
//! fn confirm(incident: &Incident, healthy: bool) -> Plan {
//!     let watch = Watch { name: "health", in_a_row: 3, every_secs: 10, looks: 30 };
//!     watch.round(incident, healthy, if healthy { "200" } else { "503" })
//! }
//! ```

use crate::{Check, Error, Incident, Plan, PluginInfo, parse_count, parse_duration};

/// What to confirm, how often to look, and for how long.
#[derive(Clone, Copy, Debug)]
pub struct Watch<'a> {
    /// Names the check each look adds.
    pub name: &'a str,
    /// Consecutive good looks that confirm recovery.
    pub in_a_row: u32,
    /// Seconds between looks.
    pub every_secs: u32,
    /// Looks in all before giving up: `every_secs × looks` is the deadline.
    pub looks: u32,
}

/// The looks so far, as kept in the memo between rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Streak {
    pub looks: u32,
    pub in_a_row: u32,
}

/// Where a watch stands after a look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seen {
    /// Enough good looks in a row.
    Confirmed,
    /// Not yet: look again after `every_secs`.
    Watching,
    /// The deadline passed without enough good looks in a row.
    GaveUp,
}

const MEMO_PREFIX: &str = "watch";

impl Streak {
    /// The streak a memo written by [`Streak::to_memo`] holds; none yet
    /// (the first look) for anything else.
    pub fn from_memo(memo: Option<&str>) -> Streak {
        let parsed = memo
            .and_then(|m| m.strip_prefix(MEMO_PREFIX)?.strip_prefix(':'))
            .and_then(|rest| rest.split_once(':'))
            .and_then(|(looks, in_a_row)| Some((looks.parse().ok()?, in_a_row.parse().ok()?)));
        match parsed {
            Some((looks, in_a_row)) => Streak { looks, in_a_row },
            None => Streak::default(),
        }
    }

    pub fn to_memo(self) -> String {
        format!("{MEMO_PREFIX}:{}:{}", self.looks, self.in_a_row)
    }
}

impl PluginInfo {
    /// Declare the params [`Watch::from_params`] reads: `confirm_every`,
    /// `confirm_in_a_row` (3) and `confirm_within`, with these defaults.
    pub fn confirm_params(self, every: &str, within: &str) -> Self {
        self.param(
            "confirm_every",
            "After acting, look again this often.",
            Some(every),
        )
        .param(
            "confirm_in_a_row",
            "Good looks in a row that confirm recovery.",
            Some("3"),
        )
        .param(
            "confirm_within",
            "Not confirmed within this long after acting: page.",
            Some(within),
        )
    }
}

impl<'a> Watch<'a> {
    /// The watch the operator configured through the params
    /// [`PluginInfo::confirm_params`] declares.
    pub fn from_params(incident: &Incident, name: &'a str) -> Result<Watch<'a>, Error> {
        let every = incident.param_with("confirm_every", parse_duration)?.max(1);
        let within = incident.param_with("confirm_within", parse_duration)?;
        Ok(Watch {
            name,
            in_a_row: incident.param_with("confirm_in_a_row", parse_count)?,
            every_secs: u32::try_from(every).unwrap_or(u32::MAX),
            looks: u32::try_from((within / every).max(1)).unwrap_or(u32::MAX),
        })
    }
}

impl Watch<'_> {
    /// Count one look that `holds` or not.
    pub fn look(&self, before: Streak, holds: bool) -> (Streak, Seen) {
        let after = Streak {
            looks: before.looks + 1,
            in_a_row: if holds { before.in_a_row + 1 } else { 0 },
        };
        let seen = if after.in_a_row >= self.in_a_row.max(1) {
            Seen::Confirmed
        } else if after.looks >= self.looks {
            Seen::GaveUp
        } else {
            Seen::Watching
        };
        (after, seen)
    }

    /// This round's plan for a look that `holds` or not (`saw` says what
    /// it saw): a check, then nothing more once confirmed, a recheck with
    /// the streak in the memo while watching, or an escalation past the
    /// deadline.
    pub fn round(&self, incident: &Incident, holds: bool, saw: &str) -> Plan {
        let (streak, seen) = self.look(Streak::from_memo(incident.memo.as_deref()), holds);
        let progress = format!(
            "{saw} (look {} of at most {}, {} good in a row of {})",
            streak.looks, self.looks, streak.in_a_row, self.in_a_row
        );
        let check = if holds {
            Check::pass(self.name, progress)
        } else {
            Check::fail(self.name, progress)
        };
        match seen {
            Seen::Confirmed => Plan::new(format!("{} confirmed", self.name)).check(check),
            Seen::Watching => Plan::new(format!("watching {}", self.name))
                .check(check)
                .recheck_after(self.every_secs)
                .memo(streak.to_memo()),
            Seen::GaveUp => Plan::new(format!("{} not confirmed", self.name))
                .check(check)
                .escalate(format!(
                    "{} did not hold {} times in a row within {} looks {} s apart",
                    self.name, self.in_a_row, self.looks, self.every_secs
                )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEALTH: Watch<'static> = Watch {
        name: "health",
        in_a_row: 3,
        every_secs: 10,
        looks: 5,
    };

    #[test]
    fn three_good_looks_in_a_row_confirm_and_a_bad_one_starts_again() {
        let mut streak = Streak::default();
        let mut seen = Vec::new();
        for holds in [true, true, false, true, true, true] {
            let (next, verdict) = HEALTH.look(streak, holds);
            streak = next;
            seen.push(verdict);
        }
        assert_eq!(&seen[..4], [Seen::Watching; 4]);
        assert_eq!(seen[4], Seen::GaveUp, "five looks and no three in a row");
        let (_, confirmed) = HEALTH.look(
            Streak {
                looks: 1,
                in_a_row: 2,
            },
            true,
        );
        assert_eq!(confirmed, Seen::Confirmed);
    }

    #[test]
    fn the_operator_sets_how_often_and_how_long() {
        let incident = Incident::for_test(
            &[],
            &[
                ("confirm_every", "10s"),
                ("confirm_in_a_row", "3"),
                ("confirm_within", "5m"),
            ],
        );
        let watch = Watch::from_params(&incident, "health").unwrap();
        assert_eq!((watch.every_secs, watch.in_a_row, watch.looks), (10, 3, 30));
        let mut zero = incident.clone();
        zero.params.retain(|(name, _)| name != "confirm_in_a_row");
        zero.params.push(("confirm_in_a_row".into(), "0".into()));
        assert!(Watch::from_params(&zero, "health").is_err());
    }

    #[test]
    fn the_streak_travels_in_the_memo_and_the_plan_says_what_comes_next() {
        let first = HEALTH.round(&Incident::for_test(&[], &[]), true, "200");
        assert_eq!(first.recheck_after_secs, Some(10));
        assert_eq!(first.memo.as_deref(), Some("watch:1:1"));
        assert_eq!(
            Streak::from_memo(first.memo.as_deref()),
            Streak {
                looks: 1,
                in_a_row: 1
            }
        );
        assert_eq!(
            Streak::from_memo(Some("someone else's memo")),
            Streak::default()
        );

        let mut incident = Incident::for_test(&[], &[]);
        incident.memo = Some("watch:2:2".into());
        let done = HEALTH.round(&incident, true, "200");
        assert!(done.escalate.is_none() && done.recheck_after_secs.is_none());
        assert!(
            done.checks[0].detail.contains("3 good in a row of 3"),
            "{:?}",
            done.checks
        );
        incident.memo = Some("watch:4:0".into());
        let late = HEALTH.round(&incident, false, "503");
        assert!(late.escalate.unwrap().contains("did not hold 3 times"));
    }
}
