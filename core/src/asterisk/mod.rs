//! Asterisk: a simulator of its manager interface (AMI) and REST interface (ARI) for tests and
//! demos (the connector itself is the plugin in `plugins/asterisk`).

pub mod ami_sim;
pub mod ari_sim;
pub mod config;

pub use ami_sim::{AmiSimulator, Member};
pub use ari_sim::AriSimulator;
