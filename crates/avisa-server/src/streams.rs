//! How many live streams each phone and each console session holds open: a
//! stream is a task and a connection for as long as the client keeps it, so
//! one client must not open them without end. A [`Slot`] counts one stream
//! and gives its place back when the stream ends.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// A holder has as many live streams open as it may.
#[derive(Debug, thiserror::Error)]
#[error("at most {max} live streams at once; close one first")]
pub struct TooManyStreams {
    pub max: usize,
}

/// The open streams per holder (a device id, a session's token hash).
#[derive(Default, Clone)]
pub struct Streams(Arc<Mutex<HashMap<Vec<u8>, usize>>>);

/// One open stream; dropping it gives the place back.
pub struct Slot {
    streams: Streams,
    holder: Vec<u8>,
}

impl Streams {
    /// A place for one more stream of `holder`, or [`TooManyStreams`] (429
    /// `too_many_streams`) when it holds `max` already.
    pub fn open(&self, holder: &[u8], max: usize) -> Result<Slot, TooManyStreams> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(holder.to_vec()).or_default();
        if *count >= max {
            metrics::counter!("avisa_streams_refused_total").increment(1);
            return Err(TooManyStreams { max });
        }
        *count += 1;
        Ok(Slot {
            streams: self.clone(),
            holder: holder.to_vec(),
        })
    }

    #[cfg(test)]
    fn count(&self, holder: &[u8]) -> usize {
        let open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        open.get(holder).copied().unwrap_or(0)
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.streams.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.holder) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.holder);
            }
        }
    }
}

/// The last event of a stream ended by a graceful stop: the client
/// reconnects within a second (`retry`), to another instance behind the
/// load balancer or to this one restarted.
pub fn reconnect() -> axum::response::sse::Event {
    axum::response::sse::Event::default()
        .event("reconnect")
        .retry(std::time::Duration::from_secs(1))
        .data("restarting")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_holder_gets_its_places_and_each_ended_stream_gives_one_back() {
        let streams = Streams::default();
        let a: Vec<Slot> = (0..3)
            .map(|_| streams.open(b"phone", 3).expect("a place"))
            .collect();
        assert!(streams.open(b"phone", 3).is_err(), "the fourth is refused");
        assert!(
            streams.open(b"other", 3).is_ok(),
            "others are not held back"
        );
        drop(a);
        assert_eq!(streams.count(b"phone"), 0, "every place came back");
        assert!(streams.open(b"phone", 3).is_ok());
    }
}
