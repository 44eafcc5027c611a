//! The migrations of each backend, compiled into the binary.

use std::borrow::Cow;

use sqlx::migrate::{Migration, MigrationType, Migrator};
use sqlx::{AssertSqlSafe, SqlSafeStr};

/// (version, description, SQLite text, PostgreSQL text). Append only.
///
/// A new migration whose SQL means the same on both backends is written once,
/// in `migrations/common/`, and named in both slots; only what cannot be
/// (types, defaults that differ) goes into a file per backend.
type Entry = (i64, &'static str, &'static str, &'static str);

const MIGRATIONS: &[Entry] = &[
    (
        1,
        "foundation",
        include_str!("../migrations/sqlite/0001_foundation.sql"),
        include_str!("../migrations/postgres/0001_foundation.sql"),
    ),
    (
        2,
        "alerts and outbox",
        include_str!("../migrations/sqlite/0002_alerts_outbox.sql"),
        include_str!("../migrations/postgres/0002_alerts_outbox.sql"),
    ),
    (
        3,
        "console",
        include_str!("../migrations/sqlite/0003_console.sql"),
        include_str!("../migrations/postgres/0003_console.sql"),
    ),
    (
        4,
        "contacts version",
        include_str!("../migrations/sqlite/0004_contacts_version.sql"),
        include_str!("../migrations/postgres/0004_contacts_version.sql"),
    ),
    (
        5,
        "change notices",
        include_str!("../migrations/sqlite/0005_change_notices.sql"),
        include_str!("../migrations/postgres/0005_change_notices.sql"),
    ),
    (
        6,
        "duress",
        include_str!("../migrations/common/0006_duress.sql"),
        include_str!("../migrations/common/0006_duress.sql"),
    ),
    (
        7,
        "sms budgets",
        include_str!("../migrations/common/0007_sms_budgets.sql"),
        include_str!("../migrations/common/0007_sms_budgets.sql"),
    ),
    (
        8,
        "login throttle",
        include_str!("../migrations/common/0008_login_throttle.sql"),
        include_str!("../migrations/common/0008_login_throttle.sql"),
    ),
    (
        9,
        "check-in timers",
        include_str!("../migrations/sqlite/0009_checkins.sql"),
        include_str!("../migrations/postgres/0009_checkins.sql"),
    ),
    (
        10,
        "alerts recent index",
        include_str!("../migrations/common/0010_alerts_recent_index.sql"),
        include_str!("../migrations/common/0010_alerts_recent_index.sql"),
    ),
    (
        11,
        "alert sources, caller, live location",
        include_str!("../migrations/sqlite/0011_alert_sources.sql"),
        include_str!("../migrations/postgres/0011_alert_sources.sql"),
    ),
    (
        12,
        "escalated again",
        include_str!("../migrations/common/0012_escalated_again.sql"),
        include_str!("../migrations/common/0012_escalated_again.sql"),
    ),
    (
        13,
        "opt-outs",
        include_str!("../migrations/sqlite/0013_opt_outs.sql"),
        include_str!("../migrations/postgres/0013_opt_outs.sql"),
    ),
    (
        14,
        "case numbers",
        include_str!("../migrations/common/0014_case_numbers.sql"),
        include_str!("../migrations/common/0014_case_numbers.sql"),
    ),
    (
        15,
        "receipts",
        include_str!("../migrations/common/0015_receipts.sql"),
        include_str!("../migrations/common/0015_receipts.sql"),
    ),
    (
        16,
        "in doubt",
        include_str!("../migrations/common/0016_in_doubt.sql"),
        include_str!("../migrations/common/0016_in_doubt.sql"),
    ),
    (
        17,
        "person keys",
        include_str!("../migrations/sqlite/0017_person_keys.sql"),
        include_str!("../migrations/postgres/0017_person_keys.sql"),
    ),
    (
        18,
        "outcome sealed",
        include_str!("../migrations/sqlite/0018_outcome_sealed.sql"),
        include_str!("../migrations/postgres/0018_outcome_sealed.sql"),
    ),
    (
        19,
        "instances",
        include_str!("../migrations/common/0019_instances.sql"),
        include_str!("../migrations/common/0019_instances.sql"),
    ),
    (
        20,
        "duress view",
        include_str!("../migrations/sqlite/0020_duress_view.sql"),
        include_str!("../migrations/postgres/0020_duress_view.sql"),
    ),
    (
        21,
        "kept receipts",
        include_str!("../migrations/sqlite/0021_kept_receipts.sql"),
        include_str!("../migrations/postgres/0021_kept_receipts.sql"),
    ),
    (
        22,
        "ciam coverage",
        include_str!("../migrations/sqlite/0022_ciam_coverage.sql"),
        include_str!("../migrations/postgres/0022_ciam_coverage.sql"),
    ),
    (
        23,
        "locator",
        include_str!("../migrations/sqlite/0023_locator.sql"),
        include_str!("../migrations/postgres/0023_locator.sql"),
    ),
    (
        24,
        "found copies",
        include_str!("../migrations/common/0024_found_copies.sql"),
        include_str!("../migrations/common/0024_found_copies.sql"),
    ),
    (
        25,
        "message channel",
        include_str!("../migrations/common/0025_message_channel.sql"),
        include_str!("../migrations/common/0025_message_channel.sql"),
    ),
];

/// SQLite migrations that hold their own transaction (a table rebuilt with
/// foreign keys off, which cannot be switched inside one).
const SQLITE_OWN_TRANSACTION: &[i64] = &[11, 22];

fn migrator(pick: impl Fn(&Entry) -> &'static str, own_tx: &[i64]) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|m| {
                Migration::new(
                    m.0,
                    Cow::Borrowed(m.1),
                    MigrationType::Simple,
                    AssertSqlSafe(pick(m)).into_sql_str(),
                    own_tx.contains(&m.0),
                )
            })
            .collect(),
    )
}

pub fn sqlite() -> Migrator {
    migrator(|m: &Entry| m.2, SQLITE_OWN_TRANSACTION)
}

pub fn postgres() -> Migrator {
    migrator(|m: &Entry| m.3, &[])
}

#[cfg(test)]
mod tests {
    use sqlx::Row;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    /// Migration 11 rebuilds `alerts` on SQLite: a database made before it
    /// keeps every alert, case column and child row, and its foreign keys
    /// still cascade afterwards.
    #[tokio::test]
    async fn the_alerts_rebuild_keeps_every_row() {
        let dir = tempfile::tempdir().expect("dir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("old.db"))
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("open");
        let before = sqlx::migrate::Migrator::with_migrations(
            super::sqlite()
                .iter()
                .filter(|m| m.version <= 10)
                .cloned()
                .collect(),
        );
        before.run(&pool).await.expect("migrations 1-10");
        for sql in [
            "INSERT INTO people (id, phone_index, phone_enc, created_at, updated_at) \
             VALUES (x'01', x'aa', x'bb', 1, 1)",
            "INSERT INTO alerts (id, person_id, idempotency_key, source, practice, state, \
             coverage, created_at, updated_at, case_state, acknowledged_at, duress_at) \
             VALUES (x'02', x'01', 'k', 'sms', FALSE, 'active', 'nearest', 5, 5, 'acknowledged', 7, 9)",
            "INSERT INTO alert_locations (id, alert_id, location_enc, created_at) VALUES (x'03', x'02', x'cc', 5)",
            "INSERT INTO outbox (id, alert_id, kind, purpose, to_enc, body_enc, language, rank, status, \
             next_attempt_at, expires_at, created_at, updated_at) \
             VALUES (x'04', x'02', 'contact', 'alert', x'dd', x'ee', 'es', 0, 'sent', 5, 99, 5, 5)",
        ] {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
        super::sqlite().run(&pool).await.expect("migration 11");
        let row = sqlx::query(
            "SELECT source, case_state, acknowledged_at, duress_at, caller_enc FROM alerts",
        )
        .fetch_one(&pool)
        .await
        .expect("the alert");
        assert_eq!(row.get::<String, _>(0), "sms");
        assert_eq!(row.get::<String, _>(1), "acknowledged");
        assert_eq!(row.get::<i64, _>(2), 7);
        assert_eq!(row.get::<i64, _>(3), 9);
        assert_eq!(row.get::<Option<Vec<u8>>, _>(4), None);
        let count = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .expect(sql)
            }
        };
        assert_eq!(count("SELECT COUNT(*) FROM outbox").await, 1);
        assert_eq!(count("SELECT COUNT(*) FROM alert_locations").await, 1);
        assert_eq!(
            count("SELECT COUNT(*) FROM pragma_foreign_key_check").await,
            0
        );
        sqlx::query("INSERT INTO alerts (id, person_id, idempotency_key, source, practice, state, coverage, created_at, updated_at) VALUES (x'05', x'01', 'c', 'call', FALSE, 'active', 'none', 6, 6)")
            .execute(&pool)
            .await
            .expect("a call's alert is allowed now");
        sqlx::query("INSERT INTO outbox (id, alert_id, kind, purpose, to_enc, body_enc, language, rank, status, next_attempt_at, expires_at, created_at, updated_at) VALUES (x'06', x'05', 'contact', 'update', x'dd', x'ee', 'es', 100, 'queued', 6, 99, 6, 6)")
            .execute(&pool)
            .await
            .expect("a location update is allowed now");
        assert_eq!(
            count("SELECT COUNT(*) FROM contacts WHERE location_updates").await,
            0
        );
        assert_eq!(
            count("SELECT COUNT(*) FROM alert_locations WHERE implausible").await,
            0
        );
        // The children still point at the rebuilt table: deleting the
        // person cascades to all of it.
        sqlx::query("DELETE FROM people")
            .execute(&pool)
            .await
            .expect("delete");
        assert_eq!(count("SELECT COUNT(*) FROM alerts").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM outbox").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM alert_locations").await, 0);
    }

    /// Migration 22 rebuilds `alerts` again (coverage 'ciam'): every
    /// column of a case written before it is kept, its children still
    /// cascade, and the new coverage is accepted.
    #[tokio::test]
    async fn the_ciam_rebuild_keeps_every_row() {
        let dir = tempfile::tempdir().expect("dir");
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("old.db"))
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .expect("open");
        let before = sqlx::migrate::Migrator::with_migrations(
            super::sqlite()
                .iter()
                .filter(|m| m.version <= 21)
                .cloned()
                .collect(),
        );
        before.run(&pool).await.expect("migrations 1-21");
        for sql in [
            "INSERT INTO people (id, phone_index, phone_enc, created_at, updated_at) \
             VALUES (x'01', x'aa', x'bb', 1, 1)",
            "INSERT INTO alerts (id, person_id, idempotency_key, source, practice, state, \
             coverage, created_at, updated_at, case_state, case_number, outcome_enc, \
             escalated_again_at, caller_enc) VALUES (x'02', x'01', 'k', 'call', FALSE, \
             'active', 'outside', 5, 5, 'resolved', 'LAX-2026-0001', x'ff', 8, x'cc')",
            "INSERT INTO outbox (id, alert_id, kind, purpose, to_enc, body_enc, language, rank, status, \
             next_attempt_at, expires_at, created_at, updated_at) \
             VALUES (x'04', x'02', 'contact', 'alert', x'dd', x'ee', 'es', 0, 'sent', 5, 99, 5, 5)",
        ] {
            sqlx::query(sql).execute(&pool).await.expect(sql);
        }
        super::sqlite().run(&pool).await.expect("migration 22");
        let row = sqlx::query(
            "SELECT case_number, outcome_enc, escalated_again_at, caller_enc, coverage FROM alerts",
        )
        .fetch_one(&pool)
        .await
        .expect("the alert");
        assert_eq!(row.get::<String, _>(0), "LAX-2026-0001");
        assert_eq!(row.get::<Vec<u8>, _>(1), vec![0xff]);
        assert_eq!(row.get::<i64, _>(2), 8);
        assert_eq!(row.get::<Vec<u8>, _>(3), vec![0xcc]);
        assert_eq!(row.get::<String, _>(4), "outside");
        sqlx::query("INSERT INTO alerts (id, person_id, idempotency_key, source, practice, state, coverage, created_at, updated_at) VALUES (x'05', x'01', 'c', 'app', FALSE, 'active', 'ciam', 6, 6)")
            .execute(&pool)
            .await
            .expect("coverage 'ciam' is allowed now");
        let count = |sql: &'static str| {
            let pool = pool.clone();
            async move {
                sqlx::query_scalar::<_, i64>(sql)
                    .fetch_one(&pool)
                    .await
                    .expect(sql)
            }
        };
        assert_eq!(
            count("SELECT COUNT(*) FROM pragma_foreign_key_check").await,
            0
        );
        sqlx::query("DELETE FROM people")
            .execute(&pool)
            .await
            .expect("delete");
        assert_eq!(count("SELECT COUNT(*) FROM alerts").await, 0);
        assert_eq!(count("SELECT COUNT(*) FROM outbox").await, 0);
    }
}
