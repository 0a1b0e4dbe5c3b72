//! Asterisk: a manager-interface simulator for tests and demos (the connector itself is the
//! plugin in `plugins/asterisk`).

pub mod ami_sim;
pub mod config;

pub use ami_sim::{AmiSimulator, Member};
