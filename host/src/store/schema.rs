//! The state store's tables, as versioned migrations in `host/migrations/`
//! (one folder per backend), applied by refinery when the store opens.
//! refinery keeps what it applied, with checksums, in
//! `refinery_schema_history`, runs each migration once, and refuses a store
//! whose applied migrations were changed since or come from a newer remedy.

/// Why the schema could not be brought up to date.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    #[error("migrating the schema: {0}")]
    Refinery(#[from] refinery::Error),
    #[error("adding the columns of a store from before migrations: {0}")]
    Adopt(#[from] rusqlite::Error),
    #[error("waiting for another remedy to finish migrating: {0}")]
    Lock(#[from] ::postgres::Error),
}

mod sqlite {
    refinery::embed_migrations!("migrations/sqlite");
}

mod postgres {
    refinery::embed_migrations!("migrations/postgres");
}

/// Bring a SQLite store up to this remedy's schema.
pub(super) fn migrate_sqlite(conn: &mut rusqlite::Connection) -> Result<(), MigrateError> {
    adopt_pre_migration_store(conn)?;
    sqlite::migrations::runner().set_grouped(true).run(conn)?;
    Ok(())
}

/// Bring a PostgreSQL store up to this remedy's schema. A fleet's
/// processes often start together (a deploy, a reboot); they take turns
/// under a session lock, so one applies the pending migrations (in one
/// transaction) and the others find nothing left to do.
pub(super) fn migrate_postgres(client: &mut ::postgres::Client) -> Result<(), MigrateError> {
    client.batch_execute(&format!("SELECT pg_advisory_lock({MIGRATION_LOCK})"))?;
    let migrated = postgres::migrations::runner().set_grouped(true).run(client);
    client.batch_execute(&format!("SELECT pg_advisory_unlock({MIGRATION_LOCK})"))?;
    migrated?;
    Ok(())
}

/// The advisory lock key migrations are applied under: "remedy" in ASCII.
const MIGRATION_LOCK: i64 = 0x72_65_6d_65_64_79;

/// Columns `runs` gained before remedy used migrations. A store from then
/// has the tables (so V1's `CREATE TABLE IF NOT EXISTS` passes over them)
/// but may lack these columns; they are added once, before V1 is recorded.
const PRE_MIGRATION_RUN_COLUMNS: [(&str, &str); 12] = [
    ("route", "TEXT"),
    ("fingerprint", "TEXT"),
    ("group_key", "TEXT"),
    ("target", "TEXT"),
    ("approval", "INTEGER NOT NULL DEFAULT 0"),
    ("owner", "TEXT"),
    ("started_ms", "INTEGER"),
    ("approval_plan", "TEXT"),
    ("approval_hash", "TEXT"),
    ("approved_by", "TEXT"),
    ("approved_ms", "INTEGER"),
    ("node", "TEXT"),
];

fn adopt_pre_migration_store(conn: &rusqlite::Connection) -> rusqlite::Result<()> {
    let existing = conn
        .prepare("SELECT name FROM pragma_table_info('runs')")?
        .query_map([], |r| r.get::<_, String>(0))?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if existing.is_empty() {
        return Ok(()); // a new store: V1 creates everything
    }
    for (name, kind) in PRE_MIGRATION_RUN_COLUMNS {
        if !existing.iter().any(|e| e == name) {
            conn.execute_batch(&format!("ALTER TABLE runs ADD COLUMN {name} {kind};"))?;
        }
    }
    Ok(())
}

#[cfg(test)]
pub(super) mod tests {
    use super::super::Store;

    /// `db` migrated by `runner` as remedy left it before migration `version`.
    fn migrate_before(runner: refinery::Runner, db: &mut impl refinery::Migrate, version: i32) {
        let before = refinery::Target::Version(version - 1);
        runner.set_target(before).run(db).unwrap();
    }

    /// A new SQLite store at `dir` as remedy left it before migration `version`.
    pub(in crate::store) fn sqlite_before(
        dir: &std::path::Path,
        version: i32,
    ) -> rusqlite::Connection {
        let mut conn = rusqlite::Connection::open(dir.join("state.db")).unwrap();
        migrate_before(super::sqlite::migrations::runner(), &mut conn, version);
        conn
    }

    /// A queued run `id` for fingerprint `f` on route `r`, as SQL.
    pub(in crate::store) fn queued_run(id: &str) -> String {
        format!(
            "INSERT INTO runs (id, plugin, plugin_version, plugin_sha256, trigger, dry_run, alert,
                               params, status, created_ms, route, fingerprint)
             VALUES ('{id}', 'p', '0', '00', 'webhook', TRUE, '{{}}', '[]', 'queued', 1, 'r', 'f');"
        )
    }

    /// The `runs` table as remedy's first release made it.
    const FIRST_RELEASE: &str = "
        CREATE TABLE runs (
            id TEXT PRIMARY KEY, plugin TEXT NOT NULL, plugin_version TEXT NOT NULL,
            plugin_sha256 TEXT NOT NULL, trigger TEXT NOT NULL, dry_run INTEGER NOT NULL,
            alert TEXT NOT NULL, params TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
            created_ms INTEGER NOT NULL, finished_ms INTEGER
        );
        INSERT INTO runs VALUES ('old-run', 'p', '0', '00', 'cli', 0, '{}', '[]',
                                 'succeeded', 'ok', 1, 2);";

    /// How many migrations this remedy carries for a backend.
    fn embedded(runner: refinery::Runner) -> i64 {
        runner.get_migrations().len() as i64
    }

    /// How many migrations the store's history records.
    fn migrations_applied(store: &Store) -> i64 {
        store
            .with(|c| {
                c.query_row("SELECT count(*) FROM refinery_schema_history", &[], |r| {
                    r.get(0)
                })
            })
            .unwrap()
    }

    #[test]
    fn a_store_from_before_migrations_is_adopted_and_keeps_its_runs() {
        let dir = tempfile::tempdir().unwrap();
        rusqlite::Connection::open(dir.path().join("state.db"))
            .unwrap()
            .execute_batch(FIRST_RELEASE)
            .unwrap();
        let store = Store::open(dir.path()).unwrap();
        let old = store.resolve_run("old-run").unwrap();
        assert_eq!(old, "old-run");
        let columns: Vec<String> = store
            .with(|c| {
                c.query_map("SELECT name FROM pragma_table_info('runs')", &[], |r| {
                    r.get(0)
                })
            })
            .unwrap();
        assert!(columns.iter().any(|c| c == "node"), "{columns:?}");
        assert_eq!(
            migrations_applied(&store),
            embedded(super::sqlite::migrations::runner())
        );
        drop(store);
        Store::open(dir.path()).expect("opens again, with nothing left to apply");
    }

    /// A queued run and its dedup key, as a store kept them before the
    /// keys led with the fingerprint (V5).
    fn queued_before_v5() -> String {
        let run = queued_run("queued-run");
        format!(
            "{run}
             UPDATE queue_depth SET queued = 1 WHERE id = 1;
             INSERT INTO deliveries (route, fingerprint, starts_at, outcome, run_id, received_ms)
             VALUES ('r', 'f', '2026-11-21T10:00:00Z', 'queued', 'queued-run', 1);"
        )
    }

    /// The key still makes the re-sent alert a duplicate, and still leads
    /// its resolution to the queued run.
    fn the_queued_run_is_still_found_by_its_key(store: &Store) {
        use crate::contract::AlertStatus;
        use crate::store::queue::{
            Admission,
            tests::{alert, cancelled_by_resolving, firing},
        };
        let resent = alert("f", AlertStatus::Firing);
        let again = store
            .admit(&[firing(&resent, "again", std::time::Duration::ZERO)], 10)
            .unwrap();
        assert_eq!(again[0][0], Admission::Duplicate { route: "r".into() });
        assert_eq!(cancelled_by_resolving(store, "f"), ["queued-run"]);
    }

    /// A store on each backend left before migration `version` with `sql`
    /// run on it, then opened by this remedy, which migrates it: `check`ed.
    fn upgraded_on_both_backends(version: i32, sql: &str, check: impl Fn(&Store)) {
        let dir = tempfile::tempdir().unwrap();
        let conn = sqlite_before(dir.path(), version);
        conn.execute_batch(sql).unwrap();
        drop(conn);
        check(&Store::open(dir.path()).unwrap());

        let url = super::super::throwaway_postgres::fresh_database();
        let mut client = ::postgres::Client::connect(&url, ::postgres::NoTls).unwrap();
        migrate_before(super::postgres::migrations::runner(), &mut client, version);
        client.batch_execute(sql).unwrap();
        drop(client);
        check(&Store::connect(&super::super::Postgres::at(&url)).unwrap());
    }

    #[test]
    fn the_dedup_keys_of_an_older_store_carry_over_on_both_backends() {
        upgraded_on_both_backends(
            5,
            &queued_before_v5(),
            the_queued_run_is_still_found_by_its_key,
        );
    }

    /// A queued run, counted, and an audit head at record 7, as a store
    /// kept them in two tables before V7.
    fn counted_before_v7() -> String {
        let run = queued_run("queued-run");
        format!(
            "{run}
             UPDATE queue_depth SET queued = 1 WHERE id = 1;
             INSERT INTO audit_head (id, seq, hash) VALUES (1, 7, 'h7')
             ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, hash = excluded.hash;"
        )
    }

    fn the_depth_and_the_head_are_kept(store: &Store) {
        assert_eq!(store.queue_depth().unwrap(), 1);
        assert_eq!(store.audit_head_seq().unwrap(), 7);
        store
            .in_tx(|c| c.execute("DELETE FROM runs WHERE id = 'queued-run'", &[]))
            .unwrap();
        assert_eq!(
            store.queue_depth().unwrap(),
            0,
            "the trigger counts in the new row"
        );
    }

    #[test]
    fn the_queue_depth_and_the_audit_head_carry_over_into_one_row_on_both_backends() {
        upgraded_on_both_backends(7, &counted_before_v7(), the_depth_and_the_head_are_kept);
    }

    /// A queued run and a parked one already due, as a store kept them in
    /// one index of every status before V8: a poll still takes both, the
    /// due one first.
    #[test]
    fn a_queued_and_a_due_run_are_still_polled_after_v8_on_both_backends() {
        let parked = queued_run("parked-run").replace("'queued', 1,", "'waiting', 0,");
        let before = format!(
            "{parked} {queued}
             UPDATE runs SET due_ms = 1 WHERE id = 'parked-run';",
            queued = queued_run("queued-run")
        );
        upgraded_on_both_backends(8, &before, |store| {
            let polled: Vec<String> = store
                .queued(10, None)
                .unwrap()
                .into_iter()
                .map(|run| run.id)
                .collect();
            assert_eq!(polled, ["parked-run", "queued-run"]);
        });
    }

    /// An action done before V9 is still among its plugin's recent ones.
    #[test]
    fn done_actions_are_still_recent_after_v9_on_both_backends() {
        let action = super::super::to_json(&super::super::tests::removal());
        let before = format!(
            "{run}
             INSERT INTO actions (run_id, round, seq, kind, action, status, intent_ms)
             VALUES ('queued-run', 0, 0, 'remove-path', '{action}', 'done', 1),
                    ('queued-run', 0, 1, 'remove-path', '{action}', 'planned', 1);",
            run = queued_run("queued-run")
        );
        upgraded_on_both_backends(9, &before, |store| {
            let since_ever = std::time::Duration::from_millis(super::super::now_ms() as u64);
            let recent: Vec<String> = store
                .recent_actions("p", since_ever, 10)
                .unwrap()
                .into_iter()
                .map(|done| done.run_id)
                .collect();
            assert_eq!(recent, ["queued-run"]);
        });
    }

    #[test]
    fn a_fleet_starting_at_once_migrates_a_new_database_once() {
        let url = super::super::throwaway_postgres::fresh_database();
        let postgres = super::super::Postgres::at(&url);
        std::thread::scope(|s| {
            let starts: Vec<_> = (0..8)
                .map(|_| s.spawn(|| Store::connect(&postgres)))
                .collect();
            for start in starts {
                start.join().unwrap().expect("every process starts");
            }
        });
        let store = Store::connect(&postgres).unwrap();
        assert_eq!(
            migrations_applied(&store),
            embedded(super::postgres::migrations::runner())
        );
    }

    #[test]
    fn a_store_a_newer_remedy_migrated_is_refused() {
        super::super::each_backend(|open| {
            let store = open();
            store
                .with(|c| {
                    c.batch(
                        "INSERT INTO refinery_schema_history (version, name, applied_on, checksum)
                         VALUES (99, 'from_the_future', '2030-01-01T00:00:00Z', '1')",
                    )
                })
                .unwrap();
            let again = match &store.backend {
                super::super::Backend::Sqlite(..) => {
                    Store::open(std::path::Path::new(&store.location).parent().unwrap())
                }
                super::super::Backend::Postgres(_) => {
                    Store::connect(&super::super::Postgres::at(&store.location))
                }
            };
            let error = again.err().expect("a newer schema is refused").to_string();
            assert!(error.contains("99"), "{error}");
        });
    }
}
