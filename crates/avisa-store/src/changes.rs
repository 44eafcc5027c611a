//! Alert change notices between instances sharing PostgreSQL: each
//! instance sends the ids of alerts it changed on one channel
//! (`pg_notify`), and every other instance hears them and tells its own
//! live streams. Ids only, never personal data. SQLite is one process: its
//! in-process bus is enough, and these do nothing there.

use uuid::Uuid;

use crate::db::Either;
use crate::{Store, StoreError};

/// The channel every instance listens on.
pub const CHANNEL: &str = "avisa_changes";

/// The most ids one notice carries (a payload stays far below PostgreSQL's
/// 8,000 bytes).
const IDS_PER_NOTICE: usize = 150;

/// Notices from every instance, as they come.
pub struct ChangeListener(sqlx::postgres::PgListener);

impl ChangeListener {
    /// The next notice: (the sending instance, the alert ids). A lost
    /// connection is taken up again by the listener itself.
    pub async fn next(&mut self) -> Result<(Uuid, Vec<Uuid>), StoreError> {
        loop {
            let n = self.0.recv().await?;
            let Some((from, ids)) = n.payload().split_once(':') else {
                continue;
            };
            let Ok(from) = Uuid::parse_str(from) else {
                continue;
            };
            let ids = ids
                .split(',')
                .filter_map(|s| Uuid::parse_str(s).ok())
                .collect();
            return Ok((from, ids));
        }
    }
}

impl Store {
    /// Whether changes must travel between instances (PostgreSQL).
    pub fn shares_changes(&self) -> bool {
        matches!(self.db.dialect(), crate::db::Dialect::Postgres)
    }

    /// Tells the other instances these alerts changed (from `instance`).
    pub async fn notify_changes(&self, instance: Uuid, ids: &[Uuid]) -> Result<(), StoreError> {
        let Either::Postgres(pool) = self.db.writer() else {
            return Ok(());
        };
        for chunk in ids.chunks(IDS_PER_NOTICE) {
            let list: Vec<String> = chunk.iter().map(|id| id.simple().to_string()).collect();
            let payload = format!("{}:{}", instance.simple(), list.join(","));
            sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(payload)
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Listens to every instance's notices (None on SQLite).
    pub async fn listen_changes(&self) -> Result<Option<ChangeListener>, StoreError> {
        let Either::Postgres(pool) = self.db.writer() else {
            return Ok(None);
        };
        let mut listener = sqlx::postgres::PgListener::connect_with(pool).await?;
        listener.listen(CHANNEL).await?;
        Ok(Some(ChangeListener(listener)))
    }
}
