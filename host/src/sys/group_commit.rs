//! Group commit: writers that arrive while a commit is under way wait for
//! it to finish, and the next commit then takes them all at once. N
//! concurrent writers share one durable commit (one fsync) instead of
//! queueing for N, and no writer waits for a timer: a lone writer commits
//! at once.
//!
//! One blocking thread commits group after group for as long as writers
//! keep arriving, and each writer awaits its own answer. Under load a
//! request costs a push to the waiting list and one wake-up when its answer
//! is sent, not a blocking thread of its own, and the writers of a group
//! wake together rather than one after another.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::oneshot;

/// Jobs `J` waiting for the next commit, each answered with an `A`.
pub struct GroupCommit<J, A> {
    state: Arc<Mutex<State<J, A>>>,
}

struct State<J, A> {
    waiting: Vec<(J, oneshot::Sender<A>)>,
    /// A committer is running: it takes whatever is waiting when its
    /// current commit ends.
    committing: bool,
}

impl<J, A> Default for GroupCommit<J, A> {
    fn default() -> Self {
        GroupCommit {
            state: Arc::new(Mutex::new(State {
                waiting: Vec::new(),
                committing: false,
            })),
        }
    }
}

impl<J: Send + 'static, A: Send + 'static> GroupCommit<J, A> {
    /// `job`'s answer from the commit of the group it joined, or `None` if
    /// that commit panicked. `commit` gets a group's jobs in arrival order
    /// and answers each, in that order; every caller must pass the same
    /// commit, since the committer keeps using the one it started with.
    pub async fn submit<C>(&self, job: J, commit: C) -> Option<A>
    where
        C: FnMut(Vec<J>) -> Vec<A> + Send + 'static,
    {
        let (answer, answered) = oneshot::channel();
        let start = {
            let mut state = lock(&self.state);
            state.waiting.push((job, answer));
            !std::mem::replace(&mut state.committing, true)
        };
        if start {
            let mut committer = Committer {
                state: self.state.clone(),
                commit,
                stopped: false,
            };
            // Not awaited: the writer's answer comes through its channel.
            drop(tokio::task::spawn_blocking(move || committer.run()));
        }
        answered.await.ok()
    }
}

/// Commits groups until nothing is waiting.
struct Committer<J, A, C> {
    state: Arc<Mutex<State<J, A>>>,
    commit: C,
    stopped: bool,
}

impl<J, A, C: FnMut(Vec<J>) -> Vec<A>> Committer<J, A, C> {
    fn run(&mut self) {
        while let Some(group) = self.next_group() {
            let (jobs, to): (Vec<J>, Vec<oneshot::Sender<A>>) = group.into_iter().unzip();
            // A panic drops the group's senders, so each of its writers
            // gets `None`, and the committer goes on with the next group.
            if let Ok(answers) = catch_unwind(AssertUnwindSafe(|| (self.commit)(jobs))) {
                for (to, answer) in to.into_iter().zip(answers) {
                    // A writer gone (its request dropped) needs no answer.
                    let _ = to.send(answer);
                }
            }
        }
    }

    /// Everything waiting, or `None` once nothing is: the committer then
    /// stops, in the same critical section, so the next writer starts one.
    fn next_group(&mut self) -> Option<Vec<(J, oneshot::Sender<A>)>> {
        let mut state = lock(&self.state);
        if state.waiting.is_empty() {
            state.committing = false;
            self.stopped = true;
            return None;
        }
        Some(std::mem::take(&mut state.waiting))
    }
}

impl<J, A, C> Drop for Committer<J, A, C> {
    /// A committer dropped before it stopped (the runtime shutting down
    /// before it ran) answers every waiting writer `None` and lets the next
    /// writer start another, rather than leave them waiting forever.
    fn drop(&mut self) {
        if !self.stopped {
            let mut state = lock(&self.state);
            state.waiting.clear();
            state.committing = false;
        }
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
    use std::time::Duration;

    fn doubled(jobs: Vec<u32>) -> Vec<u32> {
        jobs.into_iter().map(|j| j * 2).collect()
    }

    #[tokio::test]
    async fn a_lone_writer_commits_at_once() {
        let group = GroupCommit::default();
        assert_eq!(group.submit(7, doubled).await, Some(14));
        assert_eq!(group.submit(8, doubled).await, Some(16), "a second, later");
    }

    /// Writers arriving during a slow commit are committed together by the
    /// next one, and each gets its own answer.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writers_arriving_during_a_commit_share_the_next_one() {
        let group = Arc::new(GroupCommit::default());
        let commits = Arc::new(Mutex::new(Vec::<Vec<u32>>::new()));
        let (started, started_rx) = std::sync::mpsc::channel();
        let (release, release_rx) = std::sync::mpsc::channel::<()>();
        let commit = {
            let commits = commits.clone();
            move |jobs: Vec<u32>| {
                let first = commits.lock().unwrap().is_empty();
                commits.lock().unwrap().push(jobs.clone());
                if first {
                    started.send(()).unwrap();
                    release_rx.recv().unwrap();
                }
                jobs.into_iter().map(|j| j + 100).collect()
            }
        };
        let first = tokio::spawn({
            let group = group.clone();
            async move { group.submit(0, commit).await }
        });
        wait_for(started_rx).await;
        let others: Vec<_> = (1..=8)
            .map(|n| {
                let group = group.clone();
                tokio::spawn(async move {
                    (n, group.submit(n, |_| panic!("not the committer's")).await)
                })
            })
            .collect();
        // The first commit ends only once every other writer is queued
        // behind it, however slowly the machine schedules them.
        while lock(&group.state).waiting.len() < 8 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        release.send(()).unwrap();
        assert_eq!(first.await.unwrap(), Some(100));
        for other in others {
            let (n, answer) = other.await.unwrap();
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

    /// A commit that panics fails the writers in its group, not the next
    /// ones: the same committer goes on with them.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_panicking_commit_answers_none_and_the_next_group_commits() {
        let group = Arc::new(GroupCommit::<u32, u32>::default());
        let (started, started_rx) = std::sync::mpsc::channel();
        // Every writer passes this same commit, as `submit` asks: a writer
        // may join whichever committer is running.
        let commit = move |jobs: Vec<u32>| {
            if jobs.contains(&1) {
                started.send(()).unwrap();
                std::thread::sleep(Duration::from_millis(100));
                panic!("commit failed");
            }
            doubled(jobs)
        };
        let failing = tokio::spawn({
            let group = group.clone();
            let commit = commit.clone();
            async move { group.submit(1, commit).await }
        });
        wait_for(started_rx).await;
        let next = group.submit(2, commit.clone()).await;
        assert_eq!(failing.await.unwrap(), None);
        assert_eq!(next, Some(4));
        assert_eq!(group.submit(3, commit).await, Some(6), "and a later one");
    }

    /// Blocks on a test's signal without stalling the runtime's workers.
    async fn wait_for(signal: std::sync::mpsc::Receiver<()>) {
        tokio::task::spawn_blocking(move || signal.recv().unwrap())
            .await
            .unwrap();
    }

    /// A committer that never ran (the runtime shut down first) answers its
    /// waiting writers `None`, and the next writer starts another.
    #[tokio::test]
    async fn a_committer_dropped_before_it_ran_frees_its_writers() {
        let group = GroupCommit::<u32, u32>::default();
        let (answer, answered) = oneshot::channel();
        {
            let mut state = lock(&group.state);
            state.waiting.push((1, answer));
            state.committing = true;
        }
        drop(Committer {
            state: group.state.clone(),
            commit: doubled,
            stopped: false,
        });
        assert!(answered.await.is_err(), "the waiting writer is answered");
        assert_eq!(group.submit(2, doubled).await, Some(4));
    }
}
