//! Turning an identity provider's claims into a Monti role and tenant. Which claim and which
//! values is configuration, because every provider sends something different: Keycloak sends
//! group paths (`/monti/supervisors`) or `realm_access.roles`, Entra ID and AWS IAM Identity
//! Center opaque group ids, Google nothing at all without a directory lookup.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::domain::Role;

/// Looks up a dotted path (`realm_access.roles`, `resource_access.monti.roles`) in a claims
/// object. A key that itself contains dots (as some providers use for namespaced claims such as
/// `https://example.com/roles`) is tried whole first.
pub fn lookup<'a>(claims: &'a Value, path: &str) -> Option<&'a Value> {
    if let Some(v) = claims.get(path) {
        return Some(v);
    }
    let mut current = claims;
    for part in path.split('.') {
        current = current.get(part)?;
    }
    Some(current)
}

/// The string values at a path: a string, an array of strings, or a space-separated `scope`.
pub fn values_at(claims: &Value, path: &str) -> Vec<String> {
    match lookup(claims, path) {
        Some(Value::String(s)) if path == "scope" || path == "scp" => s.split_whitespace().map(str::to_owned).collect(),
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) => items.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

/// How claim values become roles.
#[derive(Debug, Clone)]
pub struct RoleMapping {
    pub claim: String,
    pub map: BTreeMap<String, Role>,
    pub default_role: Option<Role>,
}

/// The result of mapping: the strongest tenant role, and whether the person is a platform admin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapped {
    pub tenant_role: Option<Role>,
    pub platform_admin: bool,
    /// The claim values that matched, for the audit log.
    pub matched: Vec<String>,
}

impl RoleMapping {
    /// From configuration, where roles are strings (checked when the configuration loads).
    pub fn from_config(claim: &str, map: &BTreeMap<String, String>, default_role: Option<&str>) -> Self {
        Self {
            claim: claim.to_owned(),
            map: map
                .iter()
                .filter_map(|(value, role)| Some((value.clone(), role.parse().ok()?)))
                .collect(),
            default_role: default_role.and_then(|r| r.parse().ok()),
        }
    }

    pub fn apply(&self, claims: &Value) -> Mapped {
        let mut tenant_role: Option<Role> = None;
        let mut platform_admin = false;
        let mut matched = Vec::new();
        for value in values_at(claims, &self.claim) {
            let Some(role) = self.map.get(&value) else { continue };
            matched.push(value);
            if *role == Role::PlatformAdmin {
                platform_admin = true;
            } else if tenant_role.is_none_or(|current| stronger(*role, current)) {
                tenant_role = Some(*role);
            }
        }
        if tenant_role.is_none() && !platform_admin {
            tenant_role = self.default_role.filter(|r| *r != Role::PlatformAdmin);
        }
        Mapped {
            tenant_role,
            platform_admin,
            matched,
        }
    }
}

/// Roles are declared strongest first.
fn stronger(a: Role, b: Role) -> bool {
    rank(a) < rank(b)
}

fn rank(role: Role) -> u8 {
    match role {
        Role::PlatformAdmin => 0,
        Role::TenantAdmin => 1,
        Role::Supervisor => 2,
        Role::Agent => 3,
        Role::Viewer => 4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn mapping(claim: &str, pairs: &[(&str, &str)], default_role: Option<&str>) -> RoleMapping {
        let map = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        RoleMapping::from_config(claim, &map, default_role)
    }

    #[test]
    fn keycloak_group_paths() {
        let m = mapping(
            "groups",
            &[("/monti/supervisors", "supervisor"), ("/monti/admins", "tenant_admin")],
            None,
        );
        let claims = json!({"groups": ["/other", "/monti/supervisors", "/monti/admins"]});
        let mapped = m.apply(&claims);
        assert_eq!(mapped.tenant_role, Some(Role::TenantAdmin), "the strongest role wins");
        assert_eq!(mapped.matched.len(), 2);
        assert!(!mapped.platform_admin);
    }

    #[test]
    fn nested_paths_and_namespaced_claims() {
        let claims = json!({
            "realm_access": {"roles": ["offline_access", "monti-viewer"]},
            "resource_access": {"monti": {"roles": ["agent"]}},
            "https://monti.example/roles": ["supervisor"],
        });
        assert_eq!(
            mapping("realm_access.roles", &[("monti-viewer", "viewer")], None)
                .apply(&claims)
                .tenant_role,
            Some(Role::Viewer)
        );
        assert_eq!(
            mapping("resource_access.monti.roles", &[("agent", "agent")], None)
                .apply(&claims)
                .tenant_role,
            Some(Role::Agent)
        );
        assert_eq!(
            mapping("https://monti.example/roles", &[("supervisor", "supervisor")], None)
                .apply(&claims)
                .tenant_role,
            Some(Role::Supervisor)
        );
    }

    #[test]
    fn opaque_group_ids_as_aws_identity_center_sends() {
        let m = mapping(
            "groups",
            &[("9a67a2d4-7031-70f2-4a6c-7e5c0d6c8d11", "supervisor")],
            None,
        );
        let claims = json!({"groups": ["9a67a2d4-7031-70f2-4a6c-7e5c0d6c8d11"]});
        assert_eq!(m.apply(&claims).tenant_role, Some(Role::Supervisor));
    }

    #[test]
    fn no_match_means_no_role_unless_a_default_is_configured() {
        let claims = json!({"groups": ["/somewhere/else"], "sub": "x"});
        let strict = mapping("groups", &[("/monti/admins", "tenant_admin")], None).apply(&claims);
        assert_eq!(strict.tenant_role, None);
        assert!(!strict.platform_admin);
        let lenient = mapping("groups", &[("/monti/admins", "tenant_admin")], Some("viewer")).apply(&claims);
        assert_eq!(lenient.tenant_role, Some(Role::Viewer));
        // A missing or oddly typed claim is no match, not an error.
        assert_eq!(
            mapping("groups", &[], None).apply(&json!({"groups": 5})).tenant_role,
            None
        );
        assert_eq!(mapping("groups", &[], None).apply(&json!({})).tenant_role, None);
    }

    #[test]
    fn platform_admin_is_separate_from_tenant_roles() {
        let m = mapping("groups", &[("ops", "platform_admin")], Some("platform_admin"));
        let mapped = m.apply(&json!({"groups": ["ops"]}));
        assert!(mapped.platform_admin);
        assert_eq!(mapped.tenant_role, None);
        // platform_admin is never handed out as a default.
        assert!(!m.apply(&json!({"groups": []})).platform_admin);
    }

    #[test]
    fn scope_claims_are_space_separated() {
        let m = mapping("scope", &[("monti:admin", "tenant_admin")], None);
        assert_eq!(
            m.apply(&json!({"scope": "openid monti:admin"})).tenant_role,
            Some(Role::TenantAdmin)
        );
    }
}
