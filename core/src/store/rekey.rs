//! `monti secrets rotate-key`: every secret sealed at rest — SIP endpoint passwords, sign-in
//! providers' client secrets, sessions' ID tokens, plugin secrets, alert rules' signing secrets — opened with the current key
//! and sealed again with a new one, in one transaction. If any cannot be opened, nothing changes.

use super::{Store, StoreError, StoreResult};
use crate::on_db;
use crate::secrets::SecretBox;

/// One sealed column: a query giving (key, second key, sealed value), the context the value was
/// sealed with, and the update that stores the new one (bound: new value, key, second key).
struct SealedColumn {
    what: &'static str,
    select: &'static str,
    update: &'static str,
    context: fn(&str, &str) -> String,
}

const COLUMNS: [SealedColumn; 5] = [
    SealedColumn {
        what: "SIP endpoint passwords",
        select: "SELECT id, tenant_id, password_enc FROM endpoints WHERE password_enc IS NOT NULL",
        update: "UPDATE endpoints SET password_enc = $1 WHERE id = $2 AND tenant_id = $3",
        context: |id, tenant| super::entities::endpoints::sealing_context(tenant, id),
    },
    SealedColumn {
        what: "sign-in provider client secrets",
        select: "SELECT id, id, client_secret_enc FROM oidc_providers WHERE client_secret_enc IS NOT NULL",
        update: "UPDATE oidc_providers SET client_secret_enc = $1 WHERE id = $2 AND id = $3",
        context: |id, _| super::oidc_providers::secret_context(id),
    },
    SealedColumn {
        what: "session ID tokens",
        select: "SELECT id, user_id, id_token_enc FROM sessions WHERE id_token_enc IS NOT NULL",
        update: "UPDATE sessions SET id_token_enc = $1 WHERE id = $2 AND user_id = $3",
        context: |_, user| super::sessions::id_token_context(user),
    },
    SealedColumn {
        what: "plugin secrets",
        select: "SELECT installation_id, name, sealed FROM plugin_secrets",
        update: "UPDATE plugin_secrets SET sealed = $1 WHERE installation_id = $2 AND name = $3",
        context: |installation, name| super::plugins::secret_context(installation, name),
    },
    SealedColumn {
        what: "alert rules' webhook signing secrets",
        select: "SELECT id, tenant_id, signing_secret_enc FROM alert_rules",
        update: "UPDATE alert_rules SET signing_secret_enc = $1 WHERE id = $2 AND tenant_id = $3",
        context: |id, tenant| super::alert_rules::signing_context(tenant, id),
    },
];

/// What was re-sealed, per kind of secret.
pub type Resealed = Vec<(&'static str, usize)>;

/// Re-seals everything under `new`. Fails without changing anything when a value does not open
/// with the store's current key.
pub async fn reseal_all(store: &Store, new: &SecretBox) -> StoreResult<Resealed> {
    let old = &store.secrets;
    on_db!(&store.db, |pool, DB| {
        let mut tx = pool.begin().await?;
        let mut counts = Vec::new();
        let mut unreadable = Vec::new();
        for column in &COLUMNS {
            let rows: Vec<(String, String, String)> = sqlx::query_as::<DB, (String, String, String)>(column.select)
                .fetch_all(&mut *tx)
                .await?;
            let mut resealed = 0;
            for (first, second, sealed) in rows {
                let context = (column.context)(&first, &second);
                let Ok(plain) = old.open(&sealed, &context) else {
                    unreadable.push(format!("{} ({first})", column.what));
                    continue;
                };
                sqlx::query::<DB>(column.update)
                    .bind(new.seal(&plain, &context))
                    .bind(&first)
                    .bind(&second)
                    .execute(&mut *tx)
                    .await?;
                resealed += 1;
            }
            counts.push((column.what, resealed));
        }
        if !unreadable.is_empty() {
            tx.rollback().await?;
            return Err(StoreError::Internal(format!(
                "nothing was changed: {} secret(s) do not open with the current key: {}",
                unreadable.len(),
                unreadable.join(", ")
            )));
        }
        tx.commit().await?;
        Ok(counts)
    })
}
