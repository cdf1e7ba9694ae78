//! One normalisation of every string a backend stores (`text::for_store`), applied where
//! records enter a backend, so SQLite and PostgreSQL take the same bytes and give back the
//! same text: a NUL in a label, a summary or an event never makes one backend refuse what the
//! other keeps (a refused alert batch would be retried by Alertmanager for ever).

use serde_json::Value;

use crate::records::{
    Admit, AlertRecord, ApprovalRecord, Artifact, Decision, Disposition, Firing, Gate, NewMessage,
    QueuedRun, RunOutcome,
};

/// Normalises its strings in place (see the module).
pub(crate) trait Clean {
    fn clean(&mut self);

    fn cleaned(mut self) -> Self
    where
        Self: Sized,
    {
        self.clean();
        self
    }
}

impl Clean for String {
    fn clean(&mut self) {
        if let std::borrow::Cow::Owned(clean) = crate::text::for_store(self) {
            *self = clean;
        }
    }
}

/// Only a name this host does not know is free text.
impl Clean for Disposition {
    fn clean(&mut self) {
        if let Disposition::Other(name) = self {
            name.clean();
        }
    }
}

impl<T: Clean> Clean for Option<T> {
    fn clean(&mut self) {
        if let Some(inner) = self {
            inner.clean();
        }
    }
}

impl<T: Clean> Clean for Vec<T> {
    fn clean(&mut self) {
        self.iter_mut().for_each(Clean::clean);
    }
}

impl Clean for Value {
    fn clean(&mut self) {
        match self {
            Value::String(s) => s.clean(),
            Value::Array(items) => items.iter_mut().for_each(Clean::clean),
            Value::Object(map) => {
                if map.keys().any(|k| k.contains('\0')) {
                    let entries = std::mem::take(map);
                    *map = entries.into_iter().map(|(k, v)| (k.cleaned(), v)).collect();
                }
                map.values_mut().for_each(Clean::clean);
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }
}

/// A JSON document kept as text (a timeline event): its strings, not its escapes.
pub(crate) fn clean_json_text(json: &mut String) {
    // serde_json writes NUL as this escape; anything else needs no parse.
    if json.contains("\\u0000")
        && let Ok(mut value) = serde_json::from_str::<Value>(json)
    {
        value.clean();
        *json = value.to_string();
    }
}

macro_rules! clean_fields {
    ($($ty:ty { $($field:ident),* $(,)? })*) => {
        $(impl Clean for $ty {
            fn clean(&mut self) {
                $(self.$field.clean();)*
            }
        })*
    };
}

clean_fields! {
    QueuedRun { id, playbook, origin, trigger, params, alert, dedup_key, started_at, severity, node }
    AlertRecord {
        received_at, source, alertname, status, fingerprint, starts_at, labels, disposition,
        playbook, run_id, detail,
    }
    Artifact { name, content_type, sha256, text }
    ApprovalRecord {
        id, run_id, playbook, group, title, body, actions, state, asked_at, expires_at,
        answered_by, answered_via, answered_at, reason, messages,
    }
    NewMessage { run_id, channel, kind, payload, dedup_key, event_action, created_at }
}

impl Clean for RunOutcome {
    fn clean(&mut self) {
        let RunOutcome {
            run_id,
            status,
            summary,
            actions,
            reason,
            ended_at,
            timings,
            grants,
            events,
            artifacts,
        } = self;
        run_id.clean();
        status.clean();
        summary.clean();
        actions.clean();
        reason.clean();
        ended_at.clean();
        timings.clean();
        grants.clean();
        events.iter_mut().for_each(clean_json_text);
        artifacts.clean();
    }
}

impl Clean for Admit {
    fn clean(&mut self) {
        self.run.clean();
        if let Some((key, _)) = &mut self.cooldown {
            key.clean();
        }
        self.alert.clean();
        self.gate.clean();
    }
}

impl Clean for Firing {
    fn clean(&mut self) {
        self.schedule.clean();
        self.run.clean();
        self.gate.clean();
    }
}

impl Clean for Gate {
    fn clean(&mut self) {
        match self {
            Gate::Run => {}
            Gate::Held(reason) | Gate::Suppressed(reason) => reason.clean(),
        }
    }
}

impl Clean for Decision {
    fn clean(&mut self) {
        self.by.clean();
        self.via.clean();
        self.reason.clean();
        self.at.clean();
    }
}

/// A key or message passed as `&str`.
pub(crate) fn text(value: &str) -> std::borrow::Cow<'_, str> {
    crate::text::for_store(value)
}

impl Clean for crate::backend::Freeze {
    fn clean(&mut self) {
        self.by.clean();
        self.reason.clean();
        self.since.clean();
    }
}

impl Clean for crate::backend::BudgetTake {
    fn clean(&mut self) {
        self.budget.clean();
        self.key.clean();
    }
}
