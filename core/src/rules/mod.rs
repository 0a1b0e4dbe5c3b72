//! Alert rules: tenants' conditions in rhai, evaluated every tick against the live floor, and the
//! alerts they raise (pending → firing → resolved).

pub mod engine;
pub mod eval;
pub mod facts;
pub mod native;
pub mod notify;
pub mod service;

pub use engine::{CompiledRule, RuleEngine, RuleError, RuleScope, Subject};

#[cfg(test)]
mod tests {
    /// `sdk/rules.md` is the engine's reference as registered; a change to the fields shows
    /// here. `MONTI_RULES_DOC_WRITE=1` rewrites it.
    #[test]
    fn the_published_reference_is_the_registered_api() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../sdk/rules.md");
        let generated = super::RuleEngine::new().reference();
        if std::env::var_os("MONTI_RULES_DOC_WRITE").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let published = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            published == generated,
            "sdk/rules.md is not the registered API; run MONTI_RULES_DOC_WRITE=1 cargo test -p monti --lib rules::"
        );
    }
}
