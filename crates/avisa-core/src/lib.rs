//! Avisa's domain: the types every other crate speaks, and the rules that need
//! no I/O.
//!
//! - [`phone::PhoneNumber`], [`location::Location`], [`lang::Language`]: parsed
//!   once at the edge, trusted everywhere after.
//! - [`sms`]: GSM-7 / UCS-2 encoding and segment counting for message limits.
//! - [`directory`]: the consulate directory and the routing rule.
//! - [`crypto`]: field encryption at rest, blind indexes, secret hashing.

pub mod challenge;
pub mod crypto;
pub mod directory;
pub mod facilities;
pub mod gazetteer;
pub mod invalid;
pub mod kinds;
pub mod lang;
pub mod localtime;
pub mod location;
pub mod locator;
pub mod messages;
pub mod phone;
pub mod sms;
pub mod states;

pub use invalid::Invalid;
pub use kinds::{
    AlertSource, AlertState, AuditAction, CIAM, CallResult, CallWith, CaseEventKind, CaseState,
    Channel, CheckinState, Coverage, MessageKind, OutboxStatus, Outcome, Purpose, Role,
    UnknownValue,
};
pub use lang::Language;
pub use location::Location;
pub use phone::{Country, PhoneNumber};

/// Milliseconds since the Unix epoch: the one time unit the store and the API
/// share, so both backends compare times the same way.
pub type UnixMillis = i64;

/// The current time in [`UnixMillis`].
pub fn now_millis() -> UnixMillis {
    let now = time::OffsetDateTime::now_utc();
    (now.unix_timestamp_nanos() / 1_000_000) as i64
}
