//! Call recordings as files: the pattern that names a call's file, where files are read from,
//! what a file holds, and the byte ranges players ask for. The flows (configuration, links,
//! audit) are `service::recordings`'s.

pub mod audio;
pub mod pattern;
pub mod range;
pub mod source;
