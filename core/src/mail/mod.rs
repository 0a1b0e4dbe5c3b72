//! Outgoing email over SMTP (lettre): password reset links and invitations sent at once, and
//! the outbox (`outbox`) for what is queued, retried and kept (scheduled reports).

pub mod outbox;

use lettre::message::{Attachment, Mailbox, MultiPart, SinglePart, header::ContentType};
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use crate::config::{SmtpConfig, SmtpSecurity};
use crate::i18n::Locale;

#[derive(Debug, thiserror::Error)]
pub enum MailError {
    #[error("the email cannot be built: {0}")]
    Build(String),
    #[error("the mail server refused or could not be reached: {0}")]
    Send(String),
}

/// Sends mail through the configured server.
pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("from", &self.from.to_string())
            .finish_non_exhaustive()
    }
}

impl Mailer {
    /// `None` when no SMTP host is configured.
    pub fn from_config(config: &SmtpConfig) -> Result<Option<Mailer>, MailError> {
        let Some(host) = config.host.as_deref() else {
            return Ok(None);
        };
        let builder = match config.security {
            SmtpSecurity::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host),
            SmtpSecurity::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(host),
            SmtpSecurity::None => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)),
        }
        .map_err(|e| MailError::Build(e.to_string()))?;
        let mut builder = builder.port(config.port).timeout(Some(config.timeout));
        if let (Some(user), Some(password)) = (&config.username, &config.password) {
            builder = builder.credentials(Credentials::new(user.clone(), password.expose().to_owned()));
        }
        let from = config
            .from
            .parse::<Mailbox>()
            .map_err(|e| MailError::Build(format!("smtp.from: {e}")))?;
        Ok(Some(Mailer {
            transport: builder.build(),
            from,
        }))
    }

    pub async fn send(&self, to: &str, subject: &str, body: String) -> Result<(), MailError> {
        self.send_with(to, subject, body, None).await
    }

    /// A plain-text message, with a file attached when there is one.
    pub async fn send_with(
        &self,
        to: &str,
        subject: &str,
        body: String,
        attachment: Option<&crate::store::mail_outbox::Attachment>,
    ) -> Result<(), MailError> {
        let to: Mailbox = to.parse().map_err(|e| MailError::Build(format!("recipient: {e}")))?;
        let builder = Message::builder().from(self.from.clone()).to(to).subject(subject);
        let message = match attachment {
            None => builder.header(ContentType::TEXT_PLAIN).body(body),
            Some(file) => {
                let content_type = ContentType::parse(&file.content_type)
                    .map_err(|e| MailError::Build(format!("attachment type: {e}")))?;
                builder.multipart(
                    MultiPart::mixed()
                        .singlepart(SinglePart::plain(body))
                        .singlepart(Attachment::new(file.name.clone()).body(file.bytes.clone(), content_type)),
                )
            }
        }
        .map_err(|e| MailError::Build(e.to_string()))?;
        self.transport
            .send(message)
            .await
            .map(|_| ())
            .map_err(|e| MailError::Send(e.to_string()))
    }

    /// The password reset email, in the person's language.
    pub async fn send_reset(
        &self,
        to: &str,
        name: &str,
        link: &str,
        hours: u64,
        locale: Locale,
    ) -> Result<(), MailError> {
        let body = locale
            .text("mail.reset_body")
            .replace("{name}", name)
            .replace("{link}", link)
            .replace("{hours}", &locale.count("units.hours", hours));
        self.send(to, &locale.text("mail.reset_subject"), body).await
    }

    /// The invitation to join a tenant, in the person's language. It reads the same whether
    /// or not the address already has an account.
    pub async fn send_invitation(
        &self,
        to: &str,
        tenant: &str,
        role: &str,
        link: &str,
        days: u64,
        locale: Locale,
    ) -> Result<(), MailError> {
        let body = locale
            .text("mail.invitation_body")
            .replace("{tenant}", tenant)
            .replace("{role}", role)
            .replace("{link}", link)
            .replace("{days}", &locale.count("units.days", days))
            .replace("{days_dative}", &locale.count("units.days_dative", days));
        let subject = locale.text("mail.invitation_subject").replace("{tenant}", tenant);
        self.send(to, &subject, body).await
    }
}
