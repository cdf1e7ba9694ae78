//! The `notify` capability: playbooks name a channel, the operator decides what it is. The
//! call checks the grant and the per-run limit, then hands the message to the outbox
//! (`crate::notify`); the run never waits on Slack.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use crate::bindings::CapError;
use crate::bindings::runbook::host::notify::{self, Message};
use crate::calls::LimitExceeded;
use crate::calls::seam::{Gate, arg, replay_call, untargeted};
use crate::notify::{Notification, Notifier, SubmitError, Submitted};
use crate::timeline::EventKind;

/// The `notify` interface's view of a run: the run's `Calls` and the host's notifier.
pub struct NotifyView<'a> {
    pub(crate) calls: &'a mut crate::calls::Calls,
    pub(crate) notifier: &'a Arc<Notifier>,
}
crate::calls::view_of_calls!(NotifyView);

/// Links the interface to `NotifyView` (`add_to_linker_instance::<_, Notify>`).
pub struct Notify;
impl wasmtime::component::HasData for Notify {
    type Data<'a> = NotifyView<'a>;
}

impl notify::Host for NotifyView<'_> {
    async fn send(
        &mut self,
        channel: String,
        message: Message,
    ) -> wasmtime::Result<Result<(), CapError>> {
        // The message as the playbook sent it (the channel's URL and token are the host's).
        let args = json!({ "channel": arg(&channel), "message": arg(&message) });
        let gate: Gate<Self> = {
            let channel = channel.clone();
            let message = message.clone();
            untargeted(move |state: &Self| {
                state.channel_granted(&channel)?;
                check_size(&message)
            })
        };
        if let Some(answer) = replay_call::<_, ()>(self, "notify", "send", &args, gate)? {
            if answer.is_ok() {
                self.timeline.record(EventKind::Notification {
                    channel,
                    severity: message.severity.as_str().to_string(),
                    title: message.title,
                    state: "replayed".into(),
                    outbox_id: None,
                });
            }
            return Ok(answer);
        }
        let result = self.live_notify(channel, message).await;
        self.tape_call("notify", "send", args, &result);
        result
    }
}

impl NotifyView<'_> {
    fn channel_granted(&self, channel: &str) -> Result<(), CapError> {
        if !self.grants.notify.iter().any(|c| c == channel) {
            return Err(CapError::Denied(format!(
                "channel {:?} is not granted to this playbook (granted: [{}])",
                crate::text::echo(channel),
                self.grants.notify.join(", ")
            )));
        }
        Ok(())
    }

    async fn live_notify(
        &mut self,
        channel: String,
        message: Message,
    ) -> wasmtime::Result<Result<(), CapError>> {
        self.begin_call()?;
        let started = Instant::now();
        let args = json!({
            "channel": channel,
            "title": message.title,
            "severity": message.severity.as_str(),
            "fields": message.fields.len(),
        });
        let severity = message.severity.as_str().to_string();
        let title = message.title.clone();
        let result = self.check_and_submit(&channel, message).await?;
        if self.dry_run && result.is_ok() {
            self.timeline.call(
                "notify",
                "send",
                args,
                "would",
                Some(format!(
                    "would notify {}: {}",
                    crate::text::echo(&channel),
                    crate::text::echo(&title)
                )),
                started.elapsed(),
            );
        } else {
            self.record_call(
                "notify",
                "send",
                args,
                &result,
                |s| format!("outbox #{} {}", s.outbox_id, s.state),
                started.elapsed(),
            );
        }
        let submitted = match result {
            Ok(submitted) => submitted,
            Err(e) => return Ok(Err(e)),
        };
        let dry_run = self.dry_run;
        self.timeline.record(EventKind::Notification {
            channel,
            severity,
            title,
            state: if dry_run {
                "would-send".into()
            } else {
                submitted.state.clone()
            },
            outbox_id: (!dry_run).then_some(submitted.outbox_id),
        });
        if submitted.state == "failed" {
            return Ok(Err(CapError::Failed(format!(
                "the message could not be written (outbox #{})",
                submitted.outbox_id
            ))));
        }
        Ok(Ok(()))
    }
}

/// What one message may carry. Chat APIs cut far below these (Telegram: 4096 characters);
/// the caps keep a playbook from parking megabytes in the outbox and the store.
pub const MAX_TITLE_BYTES: usize = 512;
pub const MAX_BODY_BYTES: usize = 16 << 10;
pub const MAX_FIELDS: usize = 32;
pub const MAX_FIELD_NAME_BYTES: usize = 128;
pub const MAX_FIELD_VALUE_BYTES: usize = 1024;

fn check_size(message: &Message) -> Result<(), CapError> {
    let over = |what: &str, len: usize, max: usize| {
        CapError::Invalid(format!("notification {what} is {len} bytes; at most {max}"))
    };
    if message.title.len() > MAX_TITLE_BYTES {
        return Err(over("title", message.title.len(), MAX_TITLE_BYTES));
    }
    if message.body.len() > MAX_BODY_BYTES {
        return Err(over("body", message.body.len(), MAX_BODY_BYTES));
    }
    if message.fields.len() > MAX_FIELDS {
        return Err(CapError::Invalid(format!(
            "{} notification fields; at most {MAX_FIELDS}",
            message.fields.len()
        )));
    }
    for (name, value) in &message.fields {
        if name.len() > MAX_FIELD_NAME_BYTES {
            return Err(over("field name", name.len(), MAX_FIELD_NAME_BYTES));
        }
        if value.len() > MAX_FIELD_VALUE_BYTES {
            return Err(over("field value", value.len(), MAX_FIELD_VALUE_BYTES));
        }
    }
    Ok(())
}

impl NotifyView<'_> {
    async fn check_and_submit(
        &mut self,
        channel: &str,
        message: Message,
    ) -> wasmtime::Result<Result<Submitted, CapError>> {
        let shown = crate::text::echo(channel);
        if let Err(e) = self.channel_granted(channel) {
            return Ok(Err(e));
        }
        if let Err(e) = check_size(&message) {
            return Ok(Err(e));
        }
        if self.notifier.kind_of(channel).is_none() {
            return Ok(Err(CapError::NotFound(format!(
                "no channel named {shown:?} is configured (configured: {})",
                self.notifier.names().join(", ")
            ))));
        }
        self.counters.notifications += 1;
        if self.counters.notifications > self.limits.max_notifications {
            return Err(LimitExceeded(format!(
                "more than {} notifications in one run",
                self.limits.max_notifications
            ))
            .into());
        }
        if self.dry_run {
            return Ok(Ok(Submitted {
                outbox_id: 0,
                state: "would-send".into(),
            }));
        }
        let notification = Notification::new(
            crate::notify::Message {
                title: message.title,
                body: message.body,
                severity: message.severity.as_str().to_string(),
                fields: message.fields,
            },
            &self.context.playbook,
            &self.context.run_id,
            self.context.alert.clone(),
        )
        .with_priority(self.context.priority);
        Ok(match self.notifier.submit(channel, &notification).await {
            Ok(submitted) => Ok(submitted),
            Err(SubmitError::NoChannel(e)) => Err(CapError::NotFound(e)),
            Err(SubmitError::Store(e)) => Err(CapError::Failed(e)),
        })
    }
}
