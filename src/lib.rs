//! triaged: Alertmanager webhooks and other sources in, ISO/IEC 20000-1 incident
//! records out. See ARCHITECTURE.md for the map of these modules.

pub mod alerts;
pub mod app;
pub mod audit;
pub mod changes;
pub mod client;
pub mod config;
pub mod correlation;
pub mod export;
pub mod heartbeats;
pub mod http;
mod ids;
pub mod incidents;
pub mod outbox;
pub mod problems;
pub mod reports;
pub mod rules;
pub mod silences;
pub mod sinks;
pub mod sla;
pub mod sources;
pub mod store;
pub mod systemd;
pub mod telemetry;
