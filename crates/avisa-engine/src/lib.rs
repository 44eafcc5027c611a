//! Avisa's sending engine, apart from HTTP: what takes an accepted alert
//! from memory to the gateways and keeps it from being lost.
//!
//! - [`writer`]: the group-commit writer; a press's alert is committed with
//!   others in one transaction and its messages handed over in memory
//!   ([`handoff`]) to the next round.
//! - [`dispatch`]: rounds of claimed messages sent through the gateways in
//!   order under their rates, failover, messages in doubt, instances on one
//!   database and their takeover.
//! - [`receipts`]: silence after sending ("sin confirmación", one resend).
//! - [`retention`]: the `[retention]` section and its job.
//! - [`events`]: which alerts changed, for live views, across instances.
//! - [`supervisor`]: background tasks restarted after a crash, heartbeats
//!   for `/readyz`, periodic jobs.
//! - [`config`]: the `[dispatch]` section.
//!
//! The HTTP server (`avisa-server`) builds these from its configuration and
//! calls them; nothing here knows a route or an HTTP status.

pub mod config;
pub mod dispatch;
pub mod events;
pub mod handoff;
pub mod receipts;
pub mod retention;
pub mod supervisor;
pub mod writer;

pub use config::DispatchConfig;
