//! The console's live stream of alert changes in scope.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::response::IntoResponse;
use axum::response::sse::{Event, KeepAlive, Sse};
use tokio_stream::wrappers::ReceiverStream;
use uuid::Uuid;

use super::StaffSession;
use crate::error::ApiResult;
use crate::state::AppState;

/// Changes to alerts in scope, as they happen (SSE `changed` events with the
/// alert id; the console re-reads its queue). A server stopping ends it
/// with a `reconnect` event (`retry: 1000`); the session ending (logout,
/// disabled account, password reset, expiry) with an `ended` event within
/// a second, on which the console clears what it shows.
#[utoipa::path(get, path = "/api/v1/console/events", tag = "console", responses((status = 200, content_type = "text/event-stream"),
    (status = 429, description = "too_many_streams: this session holds streams_per_session open", body = crate::api::ErrorBody)))]
pub async fn events(
    State(state): State<AppState>,
    who: StaffSession,
) -> ApiResult<impl IntoResponse> {
    let slot = state
        .streams
        .open(who.token_hash(), state.config.limits.streams_per_session)?;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, Infallible>>(64);
    let mut changes = state.events.subscribe();
    let scope = who.scope();
    let mut draining = state.draining.subscribe();
    let token_hash = who.token_hash().to_vec();
    tokio::spawn(async move {
        // Held until the stream ends.
        let _slot = slot;
        // A logout, a disabled account or a password reset ends the stream
        // within a second: alerts are not shown to whoever lost the right.
        let mut check = tokio::time::interval(Duration::from_secs(1));
        let max_ms = crate::config::millis(state.config.console.session_max);
        loop {
            tokio::select! {
                _ = check.tick() => {
                    let now = avisa_core::now_millis();
                    if !state.store.session_stands(&token_hash, now, now - max_ms).await.unwrap_or(true) {
                        // The open tab clears its screen now, not at its
                        // next request.
                        let _ = tx.try_send(Ok(Event::default().event("ended").data("session")));
                        return;
                    }
                }
                changed = changes.recv() => {
                    let (id, visible) = match changed {
                        Ok(change) => {
                            let visible = change.scope(&state.store).await.is_some_and(|s| {
                                !s.practice && (scope.is_none() || s.consulate_id == scope)
                            });
                            (change.alert_id, visible)
                        }
                        // Missed some: tell the console to re-read.
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(_)) => (Uuid::nil(), true),
                        Err(_) => return,
                    };
                    if visible && tx.send(Ok(Event::default().event("changed").data(id.to_string()))).await.is_err() {
                        return;
                    }
                }
                _ = tx.closed() => return,
                _ = draining.changed() => {
                    let _ = tx.try_send(Ok(crate::streams::reconnect()));
                    return;
                }
            }
        }
    });
    Ok(Sse::new(ReceiverStream::new(rx))
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}
