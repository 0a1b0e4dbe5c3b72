//! Asterisk: the tenant's telephony written as Asterisk configuration ([`config`]). The
//! connector itself is the plugin in `plugins/asterisk`; the simulated PBX the demo and the
//! tests run against is in the `monti-sim` crate, re-exported here.

pub mod config;

pub use monti_sim::{AmiSimulator, AriSimulator, Member, SimulatedPbx, ami_sim, ari_sim};
