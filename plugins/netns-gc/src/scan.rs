//! What one look at the host found, and how it is carried to the next round
//! in the plan's memo.

use std::collections::BTreeMap;

/// Slots the orchestrator names its namespaces after: `ns-1` to `ns-32766`.
pub const MAX_SLOT: u32 = 32766;

/// The slot of an orchestrator namespace name; `None` for any other name.
pub fn slot(name: &str) -> Option<u32> {
    let digits = name.strip_prefix("ns-")?;
    if digits.starts_with('0') || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok().filter(|n| (1..=MAX_SLOT).contains(n))
}

/// One scan: which slots were unused (with their namespace inode) and which
/// firecracker processes had no running orchestrator above them.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scan {
    /// Someone held the orchestrator's lock.
    pub online: bool,
    /// Slot to namespace inode, for slots with nobody inside.
    pub unused: BTreeMap<u32, u64>,
    /// Slots with a process inside.
    pub in_use: usize,
    /// Orphaned firecracker processes: pid to start time.
    pub orphans: BTreeMap<u32, u64>,
}

impl Scan {
    /// A compact text form: one `online`/`offline` line, then `ns SLOT INODE`
    /// and `fc PID START` lines. Small enough for every slot at once.
    pub fn to_memo(&self) -> String {
        let mut memo = String::from(if self.online { "online\n" } else { "offline\n" });
        for (slot, inode) in &self.unused {
            memo.push_str(&format!("ns {slot} {inode}\n"));
        }
        for (pid, start) in &self.orphans {
            memo.push_str(&format!("fc {pid} {start}\n"));
        }
        memo
    }

    /// The scan a memo describes, or `None` for anything this plugin did not write.
    pub fn from_memo(memo: &str) -> Option<Scan> {
        let mut lines = memo.lines();
        let online = match lines.next()? {
            "online" => true,
            "offline" => false,
            _ => return None,
        };
        let mut scan = Scan {
            online,
            ..Scan::default()
        };
        for line in lines {
            let mut fields = line.split(' ');
            let (kind, key, value) = (fields.next()?, fields.next()?, fields.next()?);
            let (key, value) = (key.parse().ok()?, value.parse().ok()?);
            match kind {
                "ns" => scan.unused.insert(key, value),
                "fc" => scan.orphans.insert(key, value),
                _ => return None,
            };
        }
        Some(scan)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_orchestrator_slots_are_slots() {
        assert_eq!(slot("ns-1"), Some(1));
        assert_eq!(slot("ns-32766"), Some(32766));
        for foreign in [
            "ns-0", "ns-32767", "ns-01", "ns-", "ns--1", "ns-1a", "ns-+1", "cni-1234", "ns1",
            "xns-1",
        ] {
            assert_eq!(slot(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn memo_round_trips_and_refuses_strangers() {
        let scan = Scan {
            online: false,
            unused: [(3, 4026532001), (17, 4026532002)].into(),
            in_use: 0,
            orphans: [(4242, 99)].into(),
        };
        assert_eq!(Scan::from_memo(&scan.to_memo()), Some(scan));
        assert_eq!(Scan::from_memo(""), None);
        assert_eq!(Scan::from_memo("offline\nns 3\n"), None);
        assert_eq!(Scan::from_memo("offline\nxx 3 4\n"), None);
        assert_eq!(Scan::from_memo("maybe\n"), None);
    }
}
