//! A fixture describes one world: what its calls say about the same container (its labels) or
//! the same path (its file type) must agree, wherever it is said (a call's target, an
//! inspect, a listing, a stat). A fixture that contradicts itself is not a recording; it is
//! refused before anything replays, so no call is granted on the more generous of two stories.

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

use serde_json::Value;

use super::FixtureCall;

/// One thing a call says about an object.
struct Claim {
    call: usize,
    what: String,
}

/// Objects by key (`container "x"`, `container id …`, `path "/a"`), with the first claim.
#[derive(Default)]
struct World {
    seen: BTreeMap<String, Claim>,
}

impl World {
    /// Records that call `call` says `key` is `what`; an earlier different claim is an error.
    fn claim(
        &mut self,
        calls: &[FixtureCall],
        call: usize,
        key: String,
        what: String,
    ) -> Result<(), String> {
        match self.seen.get(&key) {
            Some(first) if first.what != what => Err(format!(
                "fixture inconsistent: calls[{call}] ({}) says {key} is {what}, but calls[{}] \
                 ({}) says it is {}",
                name_of(&calls[call]),
                first.call,
                name_of(&calls[first.call]),
                first.what
            )),
            Some(_) => Ok(()),
            None => {
                self.seen.insert(key, Claim { call, what });
                Ok(())
            }
        }
    }

    fn kind_of(&self, path: &str) -> Option<&str> {
        self.seen.get(&path_key(path)).map(|c| c.what.as_str())
    }
}

fn name_of(call: &FixtureCall) -> String {
    format!("{}.{}", call.interface, call.function)
}

fn path_key(path: &str) -> String {
    let normal: PathBuf = Path::new(path)
        .components()
        .filter(|c| *c != Component::CurDir)
        .collect();
    format!("path {:?}", normal.display().to_string())
}

/// A container as the engine described it: its keys and its labels, sorted.
fn container_claims(value: &Value) -> Vec<(String, String)> {
    let Some(labels) = value["labels"].as_array() else {
        return Vec::new();
    };
    let mut pairs: Vec<String> = labels.iter().map(|p| p.to_string()).collect();
    pairs.sort();
    let labels = format!("labelled [{}]", pairs.join(", "));
    let mut claims = Vec::new();
    if let Some(name) = value["name"].as_str() {
        let name = name.strip_prefix('/').unwrap_or(name);
        claims.push((format!("container {name:?}"), labels.clone()));
    }
    if let Some(id) = value["id"].as_str() {
        claims.push((format!("container id {id}"), labels));
    }
    claims
}

/// A file type as an answered entry (`File`, `Dir`, `Symlink`, `Other`) or a target
/// (`file`, `dir`, `symlink`, `device`, `other`) says it; a device is one kind of other.
fn file_type(kind: &str) -> Option<&'static str> {
    Some(match kind {
        "File" | "file" => "a file",
        "Dir" | "dir" => "a directory",
        "Symlink" | "symlink" => "a symlink",
        "Other" | "other" | "device" => "a special file",
        _ => return None,
    })
}

/// The entries an fs-read call answered, each as (path, file type).
fn entries(call: &FixtureCall) -> Vec<(String, &'static str)> {
    let ok = &call.result["ok"];
    let list = match call.function.as_str() {
        "stat" => vec![ok],
        "list-dir" | "find" => ok
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        "find-entries" => ok["entries"]
            .as_array()
            .map(|a| a.iter().collect())
            .unwrap_or_default(),
        _ => Vec::new(),
    };
    list.into_iter()
        .filter_map(|e| {
            Some((
                e["path"].as_str()?.to_string(),
                file_type(e["kind"].as_str()?)?,
            ))
        })
        .collect()
}

/// Calls that follow their path to what it names (everything but stat).
fn follows(call: &FixtureCall) -> bool {
    call.interface == "fs-read" && call.function != "stat"
}

/// Every claim of every call must agree with every other.
pub(super) fn check(calls: &[FixtureCall]) -> Result<(), String> {
    let mut world = World::default();
    for (i, call) in calls.iter().enumerate() {
        let mut claims: Vec<(String, String)> = Vec::new();
        match call.interface.as_str() {
            "docker" => {
                match call.function.as_str() {
                    "inspect" => claims.extend(container_claims(&call.result["ok"]["container"])),
                    "list-containers" => {
                        for c in call.result["ok"].as_array().into_iter().flatten() {
                            claims.extend(container_claims(c));
                        }
                    }
                    _ => {}
                }
                if let Some(target) = &call.target {
                    claims.extend(container_claims(target));
                }
            }
            "fs-read" => {
                for (path, kind) in entries(call) {
                    claims.push((path_key(&path), kind.to_string()));
                }
                let targets: Vec<&Value> = match &call.target {
                    Some(Value::Array(each)) => each.iter().collect(),
                    Some(one) => vec![one],
                    None => Vec::new(),
                };
                for target in targets {
                    if let (Some(path), Some(kind)) = (
                        target["path"].as_str(),
                        target["kind"].as_str().and_then(file_type),
                    ) {
                        claims.push((path_key(path), kind.to_string()));
                    }
                }
            }
            _ => {}
        }
        for (key, what) in claims {
            world.claim(calls, i, key, what)?;
        }
    }
    // A call that follows a path the fixture shows to be a symlink reached something else:
    // without a target saying what, its answer belongs to no object of this world.
    for (i, call) in calls.iter().enumerate() {
        let Some(path) = call.args["path"].as_str() else {
            continue;
        };
        if follows(call) && call.target.is_none() && world.kind_of(path) == Some("a symlink") {
            return Err(format!(
                "fixture inconsistent: calls[{i}] ({}) follows {path:?}, which the fixture \
                 shows is a symlink, but records no target saying what it reached",
                name_of(call)
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn call(interface: &str, function: &str, args: Value, result: Value) -> FixtureCall {
        FixtureCall {
            interface: interface.into(),
            function: function.into(),
            args,
            result,
            target: None,
            group: None,
        }
    }

    fn inspect(name: &str, labels: Value) -> FixtureCall {
        call(
            "docker",
            "inspect",
            json!({"container": name}),
            json!({"ok": {"container": {"name": name, "id": "ab", "labels": labels}}}),
        )
    }

    #[test]
    fn a_container_has_one_set_of_labels() {
        let mut restart = call(
            "docker",
            "restart",
            json!({"container": "prod-db"}),
            json!({"ok": null}),
        );
        restart.target = Some(json!({"name": "prod-db", "labels": [["tier", "bar"]]}));
        let honest = inspect("prod-db", json!([["tier", "db"]]));
        let error = check(&[honest.clone(), restart.clone()]).unwrap_err();
        assert!(
            error.starts_with("fixture inconsistent: calls[1] (docker.restart)"),
            "{error}"
        );
        // Positive control: the same labels in another order agree.
        restart.target = Some(json!({"name": "prod-db", "labels": [["tier", "db"]]}));
        let two = inspect("prod-db", json!([["b", "2"], ["tier", "db"]]));
        assert!(check(&[honest, restart]).is_ok());
        let mut again = two.clone();
        again.result["ok"]["container"]["labels"] = json!([["tier", "db"], ["b", "2"]]);
        assert!(check(&[two, again]).is_ok());
    }

    #[test]
    fn a_path_has_one_file_type_and_a_symlink_is_followed_only_with_a_target() {
        let stat = call(
            "fs-read",
            "stat",
            json!({"path": "/srv/app/current"}),
            json!({"ok": {"path": "/srv/app/current", "kind": "Symlink", "size": 9, "modified": 0, "mode": 511}}),
        );
        let mut read = call(
            "fs-read",
            "read",
            json!({"path": "/srv/app/current"}),
            json!({"ok": [104]}),
        );
        read.target = Some(json!({"path": "/srv/app/current", "kind": "file"}));
        assert!(check(&[stat.clone(), read.clone()]).is_err());
        read.target = None;
        assert!(check(&[stat.clone(), read.clone()]).is_err());
        // Positive control: the symlink's target recorded where it leads.
        read.target = Some(json!({"path": "/srv/app/2026.log", "kind": "file"}));
        assert!(check(&[stat, read]).is_ok());
    }
}
