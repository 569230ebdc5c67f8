//! Email over SMTP (lettre): one mail per event, to the sink's recipients (or the one
//! a policy named: `mail:lead@example.com`). The first mail of an incident has a
//! Message-ID made from the delivery (`<triaged.INC-3.12.mail@example.com>`), kept
//! on the incident; every later mail carries it in `In-Reply-To` and `References`,
//! so a mail client threads the incident's mails (RFC 5322 §3.6.4). A mail repeated
//! after a crash has the same Message-ID as the first copy.
//!
//! TLS: `starttls` (the default: STARTTLS required, port 587), `tls` (implicit TLS,
//! port 465) or `none` (port 25, for a relay on the same host); `ca_file` adds a CA
//! for a relay with a private certificate. SMTP 4xx answers and connection errors
//! are retried, 5xx rejected (RFC 5321 §4.2.1).

use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::{Message, Secret};
use crate::outbox::Outcome;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsMode {
    StartTls,
    Tls,
    None,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    pub host: String,
    pub port: u16,
    pub tls: TlsMode,
    /// PEM of an extra CA to trust.
    pub ca_pem: Option<Vec<u8>>,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub from: String,
    pub to: Vec<String>,
}

pub struct Email {
    name: String,
    settings: Settings,
    transport: AsyncSmtpTransport<Tokio1Executor>,
    /// The domain of Message-IDs: the sender's.
    domain: String,
}

/// The domain part of an address (`a@b.example` → `b.example`).
fn domain_of(addr: &str) -> String {
    addr.rsplit_once('@')
        .map(|(_, d)| d.trim_end_matches('>').to_string())
        .unwrap_or_else(|| "triaged.invalid".into())
}

/// A Message-ID's local part keeps to atext (RFC 5322 §3.2.3).
fn local_part(s: &str) -> String {
    s.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-_.+".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect()
}

impl Email {
    pub fn new(
        name: &str,
        settings: &Settings,
        timeout: std::time::Duration,
    ) -> Result<Email, String> {
        let params = || -> Result<TlsParameters, String> {
            let mut b = TlsParameters::builder(settings.host.clone());
            if let Some(pem) = &settings.ca_pem {
                b = b.add_root_certificate(
                    Certificate::from_pem(pem).map_err(|e| format!("ca_file: {e}"))?,
                );
            }
            b.build_rustls().map_err(|e| format!("TLS: {e}"))
        };
        let tls = match settings.tls {
            TlsMode::StartTls => Tls::Required(params()?),
            TlsMode::Tls => Tls::Wrapper(params()?),
            TlsMode::None => Tls::None,
        };
        let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(settings.host.clone())
            .port(settings.port)
            .tls(tls)
            .timeout(Some(timeout));
        if let (Some(user), Some(pass)) = (&settings.username, &settings.password) {
            b = b.credentials(Credentials::new(user.clone(), pass.expose().to_string()));
        }
        Ok(Email {
            name: name.to_string(),
            domain: domain_of(&settings.from),
            settings: settings.clone(),
            transport: b.build(),
        })
    }

    /// The Message-ID of a delivery's mail.
    pub fn message_id(&self, m: &Message<'_>) -> String {
        format!(
            "<triaged.{}.{}.{}@{}>",
            local_part(&m.event.record),
            m.delivery.seq,
            local_part(&self.name),
            self.domain
        )
    }

    pub async fn deliver(&self, m: &Message<'_>) -> Outcome {
        let id = self.message_id(m);
        let reject = |error: String| Outcome::Rejected {
            status: None,
            error,
            body: None,
        };
        let from = match self.settings.from.parse() {
            Ok(f) => f,
            Err(e) => return reject(format!("from {:?}: {e}", self.settings.from)),
        };
        let mut b = lettre::Message::builder()
            .from(from)
            .subject(m.title.clone())
            .message_id(Some(id.clone()))
            .header(ContentType::TEXT_PLAIN)
            .header(lettre::message::header::UserAgent::from(format!(
                "triaged/{}",
                env!("CARGO_PKG_VERSION")
            )));
        let to: Vec<&str> = match m.delivery.to.as_deref() {
            Some(one) => vec![one],
            None => self.settings.to.iter().map(String::as_str).collect(),
        };
        for addr in to {
            match addr.parse() {
                Ok(a) => b = b.to(a),
                Err(e) => return reject(format!("recipient {addr:?}: {e}")),
            }
        }
        if let Some(r) = m.reference {
            b = b.in_reply_to(r.id.clone()).references(r.id.clone());
        }
        let mail = match b.body(m.text.clone()) {
            Ok(mail) => mail,
            Err(e) => return reject(format!("cannot build the mail: {e}")),
        };
        match self.transport.send(mail).await {
            Ok(_) => Outcome::Delivered {
                reference: m.reference.is_none().then_some(id),
            },
            Err(e) => {
                let status = e.status().and_then(|c| c.to_string().parse::<u16>().ok());
                // lettre's message names no secret; it may quote the server.
                let error = format!("smtp: {e}");
                if e.is_permanent() {
                    Outcome::Rejected {
                        status,
                        error,
                        body: None,
                    }
                } else {
                    Outcome::Retry {
                        status,
                        error,
                        body: None,
                        after: None,
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_ids_are_valid_and_come_from_the_sender_domain() {
        assert_eq!(domain_of("triaged <ops@example.com>"), "example.com");
        assert_eq!(domain_of("nobody"), "triaged.invalid");
        assert_eq!(local_part("INC-3"), "INC-3");
        assert_eq!(local_part("mail sink/1"), "mail_sink_1");
    }
}
