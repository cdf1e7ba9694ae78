//! Replay of a container call: the container the fixture says the call reached (its `target`)
//! must be one the engine could have resolved the playbook's reference to, and is then held to
//! this host's rules by the same check a live call's inspected container passes.

use serde::Deserialize;
use serde_json::Value;

use super::{granted_on, reference};
use crate::calls::seam::{Gate, Refusal, targeted};
use crate::policy::DockerVerb;

/// What `host run --record` writes as a container call's target.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Recorded {
    /// Absent in fixtures recorded before ids were kept.
    #[serde(default)]
    id: Option<String>,
    name: String,
    #[serde(default)]
    labels: Vec<(String, String)>,
    #[serde(default)]
    network: Option<String>,
    #[serde(default)]
    network_id: Option<String>,
}

/// May `reference` (as the playbook passed it) resolve to an object called `name` with id
/// `id`? The engine looks a reference up as a full id, then a name, then an id prefix: a
/// name resolves only to itself; hex can also be the (prefix of the) recorded id.
fn resolves_to(reference: &str, name: &str, id: Option<&str>) -> bool {
    let is_hex = reference.bytes().all(|b| b.is_ascii_hexdigit());
    name == reference || (is_hex && id.is_some_and(|id| id.starts_with(reference)))
}

/// A full engine id as the live path requires one, else the fixture cannot be a recording.
fn full_id(kind: &str, id: &Option<String>) -> Result<(), Refusal> {
    match id {
        Some(id) if reference::engine_id(kind, id).is_err() => Err(Refusal::Inconsistent(format!(
            "the recorded {kind} id {} is not a full id",
            reference::echo(id)
        ))),
        _ => Ok(()),
    }
}

/// The container (and network) the replayed call reached, held to the arguments.
fn reached(
    container: &str,
    network: Option<&str>,
    target: Option<&Value>,
) -> Result<Recorded, Refusal> {
    let Some(target) = target else {
        // Nothing recorded: the reference names the container, which has no labels.
        return Ok(Recorded {
            id: None,
            name: container.to_string(),
            labels: Vec::new(),
            network: network.map(String::from),
            network_id: None,
        });
    };
    let recorded: Recorded = serde_json::from_value(target.clone()).map_err(|e| {
        Refusal::Inconsistent(format!(
            "target must be {{\"id\", \"name\", \"labels\": [[key, value], …], \"network\"}}: {e}"
        ))
    })?;
    reference::container(&recorded.name)
        .map_err(|_| Refusal::Inconsistent("the target's name is not a container name".into()))?;
    full_id("container", &recorded.id)?;
    full_id("network", &recorded.network_id)?;
    if !resolves_to(container, &recorded.name, recorded.id.as_deref()) {
        return Err(Refusal::Inconsistent(format!(
            "the call names container {}, which cannot resolve to the recorded target {}{}",
            reference::echo(container),
            reference::echo(&recorded.name),
            recorded
                .id
                .as_deref()
                .map(|id| format!(" (id {id})"))
                .unwrap_or_default()
        )));
    }
    match (network, &recorded.network) {
        (None, None) => {}
        (Some(asked), Some(name)) if resolves_to(asked, name, recorded.network_id.as_deref()) => {}
        (Some(asked), None) => {
            return Err(Refusal::Inconsistent(format!(
                "the call names network {} but the target records none",
                reference::echo(asked)
            )));
        }
        (asked, Some(name)) => {
            return Err(Refusal::Inconsistent(format!(
                "the call names {}, which cannot resolve to the recorded network {}",
                asked.map_or("no network".into(), |a| format!(
                    "network {}",
                    reference::echo(a)
                )),
                reference::echo(name)
            )));
        }
    }
    Ok(recorded)
}

/// Replay gate of a container verb: the reference is held to Docker's grammar as live, the
/// recorded target to the reference, and this host's rules to the target.
pub(super) fn container_gate<'a, 'v>(
    verb: DockerVerb,
    container: String,
    network: Option<String>,
) -> Gate<'a, super::DockerView<'v>> {
    targeted(move |state: &super::DockerView<'v>, target| {
        let container = reference::container(&container)?;
        let network = network.as_deref().map(reference::network).transpose()?;
        let found = reached(container, network, target)?;
        granted_on(
            &state.rules_for(verb),
            verb,
            (container, &found.name, &found.labels),
            network.zip(found.network.as_deref()),
        )?;
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn inconsistent(r: Result<Recorded, Refusal>) -> bool {
        matches!(r, Err(Refusal::Inconsistent(_)))
    }

    #[test]
    fn a_target_must_be_what_the_reference_resolves_to() {
        let id = "ab12".repeat(16);
        let bar = json!({ "id": id, "name": "bar-1", "labels": [["team", "bar"]] });
        // A name reference reaches only that name.
        assert!(reached("bar-1", None, Some(&bar)).is_ok());
        assert!(inconsistent(reached("prod-db", None, Some(&bar))));
        assert!(inconsistent(reached("bar-2", None, Some(&bar))));
        // Hex is a name or an id prefix: the recorded id must extend it.
        assert!(reached("ab12ab", None, Some(&bar)).is_ok());
        assert!(reached(&id, None, Some(&bar)).is_ok());
        assert!(inconsistent(reached("cd34", None, Some(&bar))));
        let no_id = json!({ "name": "bar-1", "labels": [] });
        assert!(inconsistent(reached("ab12", None, Some(&no_id))));
        // Malformed targets are not recordings.
        for bad in [
            json!({ "name": "bar-1", "id": "ab12" }),
            json!({ "name": "bar/../x" }),
            json!({ "name": "bar-1", "labels": {"team": "bar"} }),
            json!({ "name": "bar-1", "extra": 1 }),
            json!("bar-1"),
        ] {
            assert!(inconsistent(reached("bar-1", None, Some(&bad))), "{bad}");
        }
        // The network too.
        let net = json!({ "name": "bar-1", "network": "front-1" });
        assert!(reached("bar-1", Some("front-1"), Some(&net)).is_ok());
        assert!(inconsistent(reached("bar-1", Some("back-1"), Some(&net))));
        assert!(inconsistent(reached("bar-1", None, Some(&net))));
        assert!(inconsistent(reached("bar-1", Some("front-1"), Some(&bar))));
        // No target: the reference is the name, with no labels.
        let plain = reached("prod-db", None, None).ok().unwrap();
        assert_eq!(plain.name, "prod-db");
        assert!(plain.labels.is_empty());
    }
}
