//! How a round's outcomes are recorded: every change a gateway's verdict
//! makes to the outbox, each allowed only from the states it names, in the
//! transaction that claims the next round.

use avisa_core::UnixMillis;
use uuid::Uuid;

use super::{OUTBOX_CHUNK, OutboxUpdate};
use crate::StoreError;
use crate::db::{Tx, db_run};

/// Records send outcomes in a transaction; returns the alerts whose rows
/// changed.
pub(super) async fn apply_in(
    tx: &mut Tx,
    updates: &[OutboxUpdate],
) -> Result<Vec<Uuid>, StoreError> {
    let mut touched: Vec<Uuid> = Vec::new();
    // Messages the gateway took are the bulk: one statement for all of them
    // (a round trip each would dominate the dispatcher), joined to a VALUES
    // list (4 parameters a row): a CASE per column would cost rows x rows
    // comparisons.
    let sent: Vec<(Uuid, &str, &str, UnixMillis, bool, bool)> = updates
        .iter()
        .filter_map(|u| match u {
            OutboxUpdate::Sent {
                id,
                gateway,
                provider_id,
                at,
                possible_duplicate,
                found,
            } => Some((
                *id,
                gateway.as_str(),
                provider_id.as_str(),
                *at,
                *possible_duplicate,
                *found,
            )),
            _ => None,
        })
        .collect();
    for chunk in sent.chunks(OUTBOX_CHUNK) {
        let latest = chunk.iter().map(|s| s.3).max().unwrap_or_default();
        let alerts: Vec<Option<Uuid>> = db_run!(&mut *tx, |t| {
            let mut b = sqlx::QueryBuilder::new(
                "UPDATE outbox SET status = CASE WHEN outbox.status = 'sending' THEN 'sent' \
                 ELSE outbox.status END, gateway = v.column2, provider_id = v.column3, \
                 found_in_doubt = v.column5, lease_until = NULL, reason = NULL, sent_at = ",
            );
            b.push_bind(latest);
            b.push(", updated_at = ").push_bind(latest);
            b.push(", resent_at = CASE WHEN v.column4 THEN COALESCE(outbox.resent_at, ")
                .push_bind(latest)
                .push(") ELSE outbox.resent_at END");
            b.push(" FROM (");
            b.push_values(
                chunk,
                |mut v, (id, gateway, provider, _, duplicate, found)| {
                    v.push_bind(*id)
                        .push_bind(*gateway)
                        .push_bind(*provider)
                        .push_bind(*duplicate)
                        .push_bind(*found);
                },
            );
            b.push(") AS v WHERE outbox.id = v.column1 RETURNING outbox.alert_id");
            b.build_query_scalar()
                .persistent(false)
                .fetch_all(&mut **t)
                .await?
        });
        touched.extend(alerts.into_iter().flatten());
    }
    if !sent.is_empty() {
        touched.extend(crate::receipts::apply_kept_receipts(tx).await?);
    }
    for u in updates {
        let alert: Option<Option<Uuid>> = match u {
            OutboxUpdate::Sent { .. } => None,
            OutboxUpdate::Retry {
                id,
                next_attempt_at,
                gateway_index,
                permanent_failures,
                reason,
                at,
                in_doubt,
            } => db_run!(&mut *tx, |t| {
                sqlx::query_scalar(
                    "UPDATE outbox SET status = 'queued', next_attempt_at = $1, gateway_index = $2, \
                     permanent_failures = $3, reason = $4, lease_until = NULL, updated_at = $5, \
                     in_doubt_at = COALESCE(in_doubt_at, $7) \
                     WHERE id = $6 AND status = 'sending' RETURNING alert_id",
                )
                .bind(next_attempt_at)
                .bind(gateway_index)
                .bind(permanent_failures)
                .bind(reason)
                .bind(at)
                .bind(id)
                .bind(in_doubt)
                .fetch_optional(&mut **t)
                .await?
            }),
            OutboxUpdate::Failed { id, reason, at } => db_run!(&mut *tx, |t| {
                sqlx::query_scalar(
                    "UPDATE outbox SET status = 'failed', reason = $1, lease_until = NULL, \
                     updated_at = $2 WHERE id = $3 AND status = 'sending' RETURNING alert_id",
                )
                .bind(reason)
                .bind(at)
                .bind(id)
                .fetch_optional(&mut **t)
                .await?
            }),
            OutboxUpdate::Expired { id, at } => db_run!(&mut *tx, |t| {
                sqlx::query_scalar(
                    "UPDATE outbox SET status = 'expired', reason = 'not sent within its validity', \
                     lease_until = NULL, updated_at = $1 \
                     WHERE id = $2 AND status IN ('queued', 'sending') RETURNING alert_id",
                )
                .bind(at)
                .bind(id)
                .fetch_optional(&mut **t)
                .await?
            }),
            OutboxUpdate::Withdrawn { id, reason, at } => db_run!(&mut *tx, |t| {
                sqlx::query_scalar(
                    "UPDATE outbox SET status = 'withdrawn', reason = $1, lease_until = NULL, \
                     updated_at = $2 WHERE id = $3 AND status IN ('queued', 'sending') \
                     RETURNING alert_id",
                )
                .bind(reason)
                .bind(at)
                .bind(id)
                .fetch_optional(&mut **t)
                .await?
            }),
            OutboxUpdate::Release {
                id,
                next_attempt_at,
                at,
            } => db_run!(&mut *tx, |t| {
                sqlx::query_scalar(
                    "UPDATE outbox SET status = 'queued', next_attempt_at = $1, lease_until = NULL, \
                     attempts = attempts - 1, updated_at = $2 \
                     WHERE id = $3 AND status = 'sending' RETURNING alert_id",
                )
                .bind(next_attempt_at)
                .bind(at)
                .bind(id)
                .fetch_optional(&mut **t)
                .await?
            }),
        };
        touched.extend(alert.flatten());
    }
    touched.sort();
    touched.dedup();
    Ok(touched)
}
