//! Alerts as every layer sees them: the evaluator raises them, the store records them, the
//! board, notifications and plugins show them. Here so that none of those depends on another.

/// How bad it is.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Warning => "warning",
            Severity::Critical => "critical",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        match text {
            "info" => Some(Severity::Info),
            "warning" => Some(Severity::Warning),
            "critical" => Some(Severity::Critical),
            _ => None,
        }
    }
}

/// An alert as it changes state.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct AlertChange {
    pub rule_id: String,
    pub rule_version: i64,
    pub rule_name: String,
    pub severity: Severity,
    /// `tenant`, `queue:<id>` or `agent:<id>`.
    pub subject: String,
    pub subject_name: String,
    pub message: String,
    /// When the condition started to hold.
    pub since_ms: i64,
    pub fired_ms: i64,
    /// Set when it resolved.
    pub resolved_ms: Option<i64>,
}
