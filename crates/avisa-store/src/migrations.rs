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
];

fn migrator(pick: impl Fn(&Entry) -> &'static str) -> Migrator {
    Migrator::with_migrations(
        MIGRATIONS
            .iter()
            .map(|m| {
                Migration::new(
                    m.0,
                    Cow::Borrowed(m.1),
                    MigrationType::Simple,
                    AssertSqlSafe(pick(m)).into_sql_str(),
                    false,
                )
            })
            .collect(),
    )
}

pub fn sqlite() -> Migrator {
    migrator(|m: &Entry| m.2)
}

pub fn postgres() -> Migrator {
    migrator(|m: &Entry| m.3)
}
