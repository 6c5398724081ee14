//! This process's part in a fleet: it says it is alive (renewing the lease
//! of every run it executes), ends the runs whose process stopped renewing
//! theirs, escalates runs waiting for a node no remedy is heard from, and
//! wakes the dispatcher when another process queues a run.
//!
//! On a SQLite store only the heartbeat runs, so `remedy nodes` shows this
//! process; the rest needs other processes to exist.

use super::Shared;
use super::dispatch::{Ended, notify};
use crate::config::FleetTimes;
use crate::store::{Member, RunStatus, Unattended};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// The fleet's background work, stopped with [`Duties::stop`].
pub(super) struct Duties {
    stop: watch::Sender<bool>,
    beat: tokio::task::JoinHandle<()>,
    listen: Option<std::thread::JoinHandle<()>>,
}

/// How long the listener waits between looks at whether remedy is stopping.
const LISTEN_SLICE: Duration = Duration::from_secs(1);

pub(super) fn start(shared: Arc<Shared>) -> Duties {
    let (stop, stopped) = watch::channel(false);
    let listen = shared.work.queue_listener().map(|mut listener| {
        let shared = shared.clone();
        let stopped = stopped.clone();
        std::thread::spawn(move || {
            let mut failing = false;
            while !*stopped.borrow() {
                match listener.wait(LISTEN_SLICE) {
                    Ok(woken) => {
                        if failing {
                            tracing::info!("listening for queued runs again");
                        }
                        failing = false;
                        if woken {
                            shared.wake.notify_one();
                        }
                    }
                    Err(e) => {
                        if !failing {
                            tracing::warn!("cannot listen for queued runs, polling meanwhile: {e}");
                        }
                        failing = true;
                        std::thread::sleep(LISTEN_SLICE);
                    }
                }
            }
        })
    });
    let beat = tokio::spawn(beat(shared, stopped));
    Duties { stop, beat, listen }
}

impl Duties {
    pub(super) async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.beat.await;
        if let Some(listen) = self.listen {
            let _ = tokio::task::spawn_blocking(move || listen.join()).await;
        }
    }
}

async fn beat(shared: Arc<Shared>, mut stopped: watch::Receiver<bool>) {
    let times = shared.fleet.unwrap_or_default();
    let mut every = tokio::time::interval(times.heartbeat);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stopped.changed() => return,
        }
        let shared = shared.clone();
        let _ = tokio::task::spawn_blocking(move || tend(&shared, times)).await;
    }
}

/// One heartbeat's work.
fn tend(shared: &Shared, times: FleetTimes) {
    let store = &shared.work;
    if let Err(e) = store.heartbeat(&member(shared), times.lease) {
        tracing::warn!("cannot record this process's heartbeat: {e}");
    }
    if shared.fleet.is_none() {
        return;
    }
    match store.expire_leases() {
        Ok(expired) => {
            for id in expired {
                tracing::warn!(run = %id, "its process stopped renewing the lease; marked interrupted");
            }
        }
        Err(e) => tracing::warn!("cannot look for runs whose lease ran out: {e}"),
    }
    match store.escalate_unattended(times.unattended_after, times.lease) {
        Ok(escalated) => escalated.iter().for_each(|run| tell(shared, run)),
        Err(e) => tracing::warn!("cannot look for runs no node took: {e}"),
    }
}

/// This process as the fleet sees it.
fn member(shared: &Shared) -> Member {
    let live = shared.live();
    let mut plugins: Vec<(String, String)> = live
        .plugins
        .values()
        .map(|p| (p.name.clone(), p.sha256.clone()))
        .collect();
    plugins.sort();
    Member {
        node: live.config.node.name.clone(),
        role: shared.role.as_str(),
        version: env!("CARGO_PKG_VERSION").to_string(),
        plugins,
    }
}

fn tell(shared: &Shared, run: &Unattended) {
    tracing::warn!(run = %run.run_id, "{}", run.reason);
    let ended = Ended {
        run_id: &run.run_id,
        plugin: &run.plugin,
        route: &run.route,
        status: RunStatus::Escalated,
    };
    let labels = run.alert.labels.iter().cloned().collect();
    notify(shared, &ended, run.reason.clone(), labels);
}
