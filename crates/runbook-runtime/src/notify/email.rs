//! The `email` kind: SMTP through lettre. A 5xx reply from the server is permanent (bad
//! recipient, refused sender); connection errors and 4xx replies are retried.

use anyhow::{Context, Result};
use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

use super::Attempt;
use super::{ChannelConfig, Notification, SmtpTls, render};

pub struct Mailer {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
}

impl Mailer {
    pub fn new(config: &ChannelConfig) -> Result<Mailer> {
        let ChannelConfig::Email {
            smtp_host,
            smtp_port,
            tls,
            username,
            password,
            from,
            to,
            delivery,
        } = config
        else {
            unreachable!("Mailer::new is given an email channel")
        };
        let mut builder = match tls {
            SmtpTls::None => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(smtp_host)
                .port(smtp_port.unwrap_or(25)),
            SmtpTls::Starttls => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(smtp_host)?
                .port(smtp_port.unwrap_or(587)),
            SmtpTls::Tls => AsyncSmtpTransport::<Tokio1Executor>::relay(smtp_host)?
                .port(smtp_port.unwrap_or(465)),
        };
        builder = builder.timeout(Some(delivery.timeout()));
        match (username, password) {
            (Some(user), Some(password)) => {
                builder = builder.credentials(Credentials::new(user.clone(), password.load()?));
            }
            (None, None) => {}
            _ => anyhow::bail!("email: give both `username` and `password`, or neither"),
        }
        anyhow::ensure!(!to.is_empty(), "email: `to` lists no recipient");
        Ok(Mailer {
            transport: builder.build(),
            from: from
                .parse()
                .with_context(|| format!("email: `from` {from:?} is not an address"))?,
            to: to
                .iter()
                .map(|a| {
                    a.parse()
                        .with_context(|| format!("email: `to` {a:?} is not an address"))
                })
                .collect::<Result<_>>()?,
        })
    }

    pub async fn send(&self, n: &Notification) -> Attempt {
        let (subject, body) = render::email(n);
        let mut message = Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN);
        for to in &self.to {
            message = message.to(to.clone());
        }
        let message = match message.body(body) {
            Ok(message) => message,
            Err(e) => return Attempt::Failed(format!("building the e-mail: {e}")),
        };
        match self.transport.send(message).await {
            Ok(_) => Attempt::Delivered,
            Err(e) if e.is_permanent() => Attempt::Failed(format!("SMTP: {e}")),
            Err(e) => Attempt::Retry {
                error: format!("SMTP: {e}"),
                after: None,
            },
        }
    }
}
