//! Why an alert was not raised, apart from how HTTP says it.

/// Why an alert was not raised. The phone API answers each with its HTTP
/// status (the `From` in `avisa-server`'s `error.rs`); the SMS keyword, the voice
/// line and the check-in timers decide what the person is told from this,
/// never from an HTTP status.
#[derive(Debug, thiserror::Error)]
pub enum RaiseError {
    /// No name, home state or cancel PIN yet.
    #[error("set your name, home state and cancel PIN before raising an alert")]
    ProfileIncomplete,
    /// A practice over the person's alert limit (a real press never is).
    #[error("too many alerts; try again in {retry_after_secs} s")]
    RateLimited { retry_after_secs: u64 },
    /// The person is gone (deleted while a timer of theirs was due).
    #[error("no such person")]
    NoPerson,
    /// The database is away: the same press, with its key, later.
    #[error("the database is unavailable: {0}")]
    Unavailable(String),
    #[error(transparent)]
    Store(avisa_store::StoreError),
    #[error("{0}")]
    Internal(anyhow::Error),
}

impl From<avisa_store::StoreError> for RaiseError {
    fn from(e: avisa_store::StoreError) -> Self {
        if e.is_unavailable() {
            RaiseError::Unavailable(e.to_string())
        } else {
            RaiseError::Store(e)
        }
    }
}
