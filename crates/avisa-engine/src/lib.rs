//! Avisa's engine, apart from HTTP: what raises an alert, takes it from
//! memory to the gateways and keeps it from being lost, and the jobs that
//! move alerts on their own.
//!
//! - [`alerting`]: raising an alert (routing, every text, sealing), the
//!   domain's [`alerting::RaiseError`].
//! - [`writer`]: the group-commit writer; a press's alert is committed with
//!   others in one transaction and its messages handed over in memory
//!   ([`handoff`]) to the next round.
//! - [`dispatch`]: rounds of claimed messages sent through the gateways in
//!   order under their rates, failover, messages in doubt, instances on one
//!   database and their takeover.
//! - [`receipts`]: silence after sending ("sin confirmación", one resend).
//! - [`retention`]: the `[retention]` section and its job; the purge of
//!   what only guards against abuse.
//! - [`escalation`]: alerts nobody acknowledged in time, to CIAM.
//! - [`checkins`]: the check-in timers' reminders and missed deadlines.
//! - [`events`]: which alerts changed, for live views, across instances.
//! - [`supervisor`]: background tasks restarted after a crash, heartbeats
//!   for `/readyz`, periodic jobs.
//! - [`config`]: the `[dispatch]` section.
//!
//! The HTTP server (`avisa-server`) builds these from its configuration and
//! calls them; nothing here knows a route or an HTTP status.

pub mod alerting;
pub mod checkins;
pub mod config;
pub mod dispatch;
pub mod escalation;
pub mod events;
pub mod handoff;
pub mod receipts;
pub mod retention;
pub mod supervisor;
pub mod writer;

pub use config::DispatchConfig;
