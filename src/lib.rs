//! mamori: a generative-AI usage gateway. See ARCHITECTURE.md for the map.
pub mod audit;
pub mod cli;
pub mod commands;
pub mod config;
pub mod digest;
pub mod disclose;
pub mod gateway;
pub mod http;
pub mod memory;
pub mod mock;
pub mod policy;
pub mod proxy;
pub mod redact;
pub mod refusal;
pub mod scan;
pub mod store;
pub mod telemetry;
