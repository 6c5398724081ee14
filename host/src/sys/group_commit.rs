//! Group commit: writers that arrive while a commit is under way wait for
//! it to finish, and the first of them then commits them all at once. N
//! concurrent writers share one durable commit (one fsync) instead of
//! queueing for N, and no writer waits for a timer: a lone writer commits
//! at once.

use std::sync::mpsc::{Sender, channel};
use std::sync::{Mutex, MutexGuard};

/// Jobs `J` waiting for the next commit, each answered with an `A`.
pub struct GroupCommit<J, A> {
    waiting: Mutex<Vec<(J, Sender<A>)>>,
    /// Held by the writer committing a group.
    committing: Mutex<()>,
}

impl<J, A> Default for GroupCommit<J, A> {
    fn default() -> Self {
        GroupCommit {
            waiting: Mutex::new(Vec::new()),
            committing: Mutex::new(()),
        }
    }
}

impl<J, A> GroupCommit<J, A> {
    /// `job`'s answer from the commit of the group it joined, or `None` if
    /// that commit panicked. `commit` gets the group's jobs in arrival order
    /// and answers each, in that order; every caller must pass the same
    /// commit, since whichever caller leads runs its own. Blocks: call it on
    /// a thread that may wait.
    pub fn submit(&self, job: J, commit: impl FnOnce(Vec<J>) -> Vec<A>) -> Option<A> {
        let (answer, answered) = channel();
        lock(&self.waiting).push((job, answer));
        let _leading = lock(&self.committing);
        // The writer that held the lock may have committed this job already.
        if let Ok(answer) = answered.try_recv() {
            return Some(answer);
        }
        let (jobs, answers): (Vec<J>, Vec<Sender<A>>) = std::mem::take(&mut *lock(&self.waiting))
            .into_iter()
            .unzip();
        if jobs.is_empty() {
            // This job's group was taken by a commit that panicked.
            return None;
        }
        for (to, answer) in answers.into_iter().zip(commit(jobs)) {
            // A writer gone (its request dropped) needs no answer.
            let _ = to.send(answer);
        }
        answered.try_recv().ok()
    }
}

/// A lock whose holder panicked guards nothing half-done: the waiting list
/// is only pushed to and taken whole.
fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};
    use std::time::Duration;

    #[test]
    fn a_lone_writer_commits_at_once() {
        let group = GroupCommit::default();
        let answer = group.submit(7, |jobs| jobs.iter().map(|j| j * 2).collect());
        assert_eq!(answer, Some(14));
    }

    /// Writers arriving during a slow commit are committed together by the
    /// next one, and each gets its own answer.
    #[test]
    fn writers_arriving_during_a_commit_share_the_next_one() {
        let group = Arc::new(GroupCommit::default());
        let commits = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let started = Arc::new(Barrier::new(2));
        let first = {
            let (group, commits, started) = (group.clone(), commits.clone(), started.clone());
            std::thread::spawn(move || {
                group.submit(0, |jobs| {
                    started.wait();
                    // Long enough for every other writer to queue behind it.
                    std::thread::sleep(Duration::from_millis(300));
                    commits.lock().unwrap().push(jobs.clone());
                    jobs.into_iter().map(|j| j + 100).collect()
                })
            })
        };
        started.wait();
        let others: Vec<_> = (1..=8)
            .map(|n| {
                let (group, commits) = (group.clone(), commits.clone());
                std::thread::spawn(move || {
                    let answer = group.submit(n, |jobs| {
                        commits.lock().unwrap().push(jobs.clone());
                        jobs.into_iter().map(|j| j + 100).collect()
                    });
                    (n, answer)
                })
            })
            .collect();
        assert_eq!(first.join().unwrap(), Some(100));
        for other in others {
            let (n, answer) = other.join().unwrap();
            assert_eq!(answer, Some(n + 100), "writer {n} got another's answer");
        }
        let commits = commits.lock().unwrap();
        assert_eq!(
            commits.len(),
            2,
            "one commit for the first, one for the rest: {commits:?}"
        );
        let mut second = commits[1].clone();
        second.sort();
        assert_eq!(second, (1..=8).collect::<Vec<_>>());
    }

    /// A commit that panics fails the writers in its group, not the next ones.
    #[test]
    fn a_panicking_commit_answers_none_and_the_next_group_commits() {
        let group = Arc::new(GroupCommit::<u32, u32>::default());
        let panicked = {
            let group = group.clone();
            std::thread::spawn(move || group.submit(1, |_| panic!("commit failed")))
        };
        assert!(panicked.join().is_err());
        assert_eq!(group.submit(2, |jobs| jobs), Some(2));
    }
}
