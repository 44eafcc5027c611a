//! The server's integration tests: one binary, a module per area. Each test
//! starts a real server on port 0 with a fresh database.

mod abuse;
mod alerts;
mod app;
mod backup;
mod budgets;
mod checkins;
mod coercion;
mod connections;
mod consent;
mod console;
mod duress;
mod family;
mod gateways;
mod kannel;
mod live;
mod login;
mod numbers;
mod outage;
mod phone;
mod pin;
mod retention;
mod shredding;
mod supervision;
mod support;
mod unlock;
mod voice;
