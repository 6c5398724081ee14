//! Keeping history bounded while remedy serves (`[store.retention]`): at
//! start and then every ten minutes (or half the shortest retention, when
//! that is sooner), remove what retention no longer keeps,
//! a batch at a time, with the retention the config holds at that moment.

use super::Shared;
use crate::store::{Pruned, Retention};
use ed25519_dalek::SigningKey;
use std::sync::Arc;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(600);

/// Prune until stopped; an audit prune is signed with `key`, when remedy
/// holds one.
pub(super) async fn prune_periodically(shared: Arc<Shared>, key: Option<SigningKey>) {
    let key = key.map(Arc::new);
    loop {
        let retention = shared.live().config.store.retention;
        if !retention.is_forever() {
            let (shared, key) = (shared.clone(), key.clone());
            let _ =
                tokio::task::spawn_blocking(move || prune_all(&shared, &retention, key.as_deref()))
                    .await;
        }
        tokio::time::sleep(period(&retention)).await;
    }
}

/// Half the shortest retention, at most [`EVERY`]: what is kept then
/// overstays its retention by half of it at most.
fn period(retention: &Retention) -> Duration {
    [retention.alerts, retention.runs, retention.audit]
        .into_iter()
        .flatten()
        .map(|kept| kept / 2)
        .fold(EVERY, Duration::min)
}

/// Batches until nothing is left to remove, or the store fails.
fn prune_all(shared: &Shared, retention: &Retention, key: Option<&SigningKey>) {
    let mut total = Pruned::default();
    loop {
        let now = crate::store::now_ms();
        match shared.ingest.prune(retention, now, key) {
            Ok(pruned) => {
                total += pruned;
                if !pruned.more() {
                    break;
                }
            }
            Err(e) => {
                tracing::error!("cannot prune history: {e}");
                break;
            }
        }
    }
    if !total.is_nothing() {
        tracing::info!(
            runs = total.runs,
            alerts = total.alerts,
            deliveries = total.deliveries,
            audit_records = total.audit,
            "pruned history past its retention"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_short_retention_is_pruned_twice_per_retention_and_a_long_one_every_ten_minutes() {
        let minutes = |m: u64| Some(Duration::from_secs(60 * m));
        let short = Retention {
            alerts: minutes(60),
            runs: minutes(1),
            audit: None,
        };
        assert_eq!(period(&short), Duration::from_secs(30));
        let long = Retention {
            alerts: minutes(24 * 60),
            ..Retention::default()
        };
        assert_eq!(period(&long), EVERY);
        assert_eq!(period(&Retention::default()), EVERY);
    }
}
