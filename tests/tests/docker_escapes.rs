//! Docker grants hold whatever string a playbook passes. One real `host serve` (shared by the
//! tests of this binary) grants the hostile playbook `bar-<pid>-*` only; a victim container
//! outside the grant sits next to the granted one, both real busybox containers on the real
//! engine. Crafted references, network arguments and list filters must come back `invalid` or
//! `denied`, and the victim must be untouched: same StartedAt, still running, its logs never
//! returned.

use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use runbook_tests::Sandbox;
use runbook_tests::docker::{IMAGE, docker};
use runbook_tests::server::Server;
use serde_json::{Value, json};

const TOKEN: &str = "rbe-docker-token";

/// A container or network removed when dropped (also when a test panics).
struct Thing {
    kind: &'static str,
    name: String,
}

impl Thing {
    /// `sleep 600` after printing one line only this container's logs hold.
    fn container(name: String) -> Self {
        let _ = std::process::Command::new("docker")
            .args(["rm", "-f", &name])
            .output();
        let script = format!("echo log-line-of-{name}; exec sleep 600");
        docker(&[
            "run",
            "-d",
            "--name",
            &name,
            "--label",
            "runbook-test=1",
            IMAGE,
            "sh",
            "-c",
            &script,
        ]);
        Self {
            kind: "container",
            name,
        }
    }

    fn network(name: String) -> Self {
        let _ = std::process::Command::new("docker")
            .args(["network", "rm", &name])
            .output();
        docker(&["network", "create", "--label", "runbook-test=1", &name]);
        Self {
            kind: "network",
            name,
        }
    }

    fn inspect(&self, format: &str) -> String {
        docker(&[self.kind, "inspect", "-f", format, &self.name])
    }

    fn id(&self) -> String {
        self.inspect("{{.Id}}")
    }

    /// State and StartedAt: any stop, restart or pause changes one of them.
    fn life(&self) -> String {
        self.inspect("{{.State.Status}} {{.State.StartedAt}}")
    }

    fn networks(&self) -> String {
        self.inspect("{{range $k, $v := .NetworkSettings.Networks}}{{$k}} {{end}}")
    }
}

impl Drop for Thing {
    fn drop(&mut self) {
        let args: &[&str] = match self.kind {
            "container" => &["rm", "-f"],
            _ => &["network", "rm"],
        };
        let _ = std::process::Command::new("docker")
            .args(args)
            .arg(&self.name)
            .output();
    }
}

struct Fixture {
    server: Server,
    _sandbox: Sandbox,
    // Containers before networks: a network is removed only once nothing is attached.
    victim: Thing,
    granted: Thing,
    /// Granted to network-disconnect; both containers are attached.
    front: Thing,
    /// Not granted; the granted container is attached.
    back: Thing,
}

/// One server for every test of this binary, torn down when the last test using it ends.
fn fixture() -> Arc<Fixture> {
    static SHARED: Mutex<Weak<Fixture>> = Mutex::new(Weak::new());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(fixture) = shared.upgrade() {
        return fixture;
    }
    let fixture = Arc::new(Fixture::start());
    *shared = Arc::downgrade(&fixture);
    fixture
}

impl Fixture {
    fn start() -> Self {
        let pid = std::process::id();
        let victim = Thing::container(format!("rbe-victim-{pid}"));
        let granted = Thing::container(format!("bar-{pid}-ok"));
        let front = Thing::network(format!("rbe-front-{pid}"));
        let back = Thing::network(format!("rbe-back-{pid}"));
        for (network, container) in [(&front, &granted), (&front, &victim), (&back, &granted)] {
            docker(&["network", "connect", &network.name, &container.name]);
        }
        let sandbox = Sandbox::new();
        sandbox.add_plugin("hostile");
        sandbox.write(
            "host.toml",
            format!(
                r#"plugin-dirs = ["plugins"]
[webhooks.run]
auth = {{ kind = "bearer", token = {{ env = "RBE_TOKEN" }} }}

[plugins.hostile]
max-concurrent = 8
deadline-secs = 30

[plugins.hostile.grants]
docker = [
  {{ containers = ["bar-{pid}-*"], verbs = ["read", "stop", "restart", "start", "pause"] }},
  {{ containers = ["bar-{pid}-*"], verbs = ["network-disconnect"], networks = ["{front}"] }},
]
"#,
                front = front.name,
            ),
        );
        let server = Server::start(&sandbox, &[("RBE_TOKEN", TOKEN)]);
        Fixture {
            server,
            _sandbox: sandbox,
            victim,
            granted,
            front,
            back,
        }
    }

    fn submit(&self, params: &Value, dry_run: bool) -> String {
        let path = format!("/hooks/run/hostile?dry_run={dry_run}");
        self.server
            .submit_run(&path, TOKEN, params.to_string().as_bytes())
    }

    /// Starts every run at once, then waits for each to end; runs come back in order.
    fn runs(&self, params: &[Value]) -> Vec<Value> {
        let ids: Vec<String> = params.iter().map(|p| self.submit(p, false)).collect();
        ids.iter()
            .map(|id| self.server.wait_for_run(id, Duration::from_secs(60)))
            .collect()
    }

    fn run(&self, params: Value) -> Value {
        self.runs(&[params]).remove(0)
    }

    /// The victim as the engine reports it: nothing a test did may change this.
    fn victim_untouched(&self, before: &str, runs: &[Value]) {
        assert_eq!(
            self.victim.life(),
            before,
            "the victim was stopped/restarted"
        );
        let secret = format!("log-line-of-{}", self.victim.name);
        for run in runs {
            assert!(
                !run.to_string().contains(&secret),
                "the victim's logs reached a run: {run:#}"
            );
        }
    }
}

/// The docker call of a run: its one timeline entry.
fn docker_call(run: &Value) -> &Value {
    let calls: Vec<&Value> = run["timeline"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["event"] == "call" && e["interface"] == "docker")
        .collect();
    assert_eq!(calls.len(), 1, "{run:#}");
    calls[0]
}

/// The run failed because its docker call came back `kind`.
fn assert_refused(run: &Value, kind: &str, what: &str) {
    assert_eq!(run["status"], "failed", "{what}: {run:#}");
    assert_eq!(docker_call(run)["result"], kind, "{what}: {run:#}");
    let reason = run["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("returned {kind}: ")),
        "{what}: {reason}"
    );
}

#[test]
fn crafted_container_references_are_invalid_and_never_reach_another_container() {
    let fx = fixture();
    let before = fx.victim.life();
    let victim = &fx.victim.name;
    let bar = format!("bar-{}-x", std::process::id());
    let targets = [
        format!("{bar}/../{victim}"),
        format!("{bar}%2f..%2f{victim}"),
        format!("{bar}/%2e%2e/{victim}"),
        format!("../{victim}"),
        format!("{bar}/../../containers/{victim}"),
        format!("{victim}?x=1"),
        format!("{bar}#/../{victim}"),
        format!("{bar} /../{victim}"),
        format!("{bar}\n/../{victim}"),
        format!("{bar}\u{1b}[2J"),
        "big:a".to_string(),
    ];
    let ops = ["stop", "restart", "pause", "inspect", "logs"];
    let params: Vec<Value> = ops
        .iter()
        .flat_map(|op| {
            targets
                .iter()
                .map(move |t| json!({ "case": format!("docker-op-{op}"), "target": t }))
        })
        .collect();
    let runs = fx.runs(&params);
    for (run, params) in runs.iter().zip(&params) {
        assert_refused(run, "invalid", &params.to_string());
        assert!(
            run["reason"]
                .as_str()
                .unwrap()
                .contains("is not a Docker container name or id"),
            "{run:#}"
        );
    }
    // The 1 MiB reference is echoed cut, with its length, in the reason and the audit log.
    let big = runs.last().unwrap();
    assert!(
        big.to_string().len() < 16 << 10,
        "{} bytes",
        big.to_string().len()
    );
    assert!(big["reason"].as_str().unwrap().contains("(1048576 bytes)"));
    fx.victim_untouched(&before, &runs);
}

#[test]
fn an_id_prefix_of_an_ungranted_container_is_denied() {
    let fx = fixture();
    let before = fx.victim.life();
    let prefix = fx.victim.id()[..12].to_string();
    let params: Vec<Value> = ["stop", "restart", "inspect", "logs"]
        .iter()
        .map(|op| json!({ "case": format!("docker-op-{op}"), "target": prefix }))
        .collect();
    let runs = fx.runs(&params);
    for (run, params) in runs.iter().zip(&params) {
        assert_refused(run, "denied", &params.to_string());
    }
    fx.victim_untouched(&before, &runs);
}

#[test]
fn the_granted_container_by_id_resolves_to_its_real_name_and_is_acted_on_by_id() {
    let fx = fixture();
    let before = fx.victim.life();
    let id = fx.granted.id();

    let run = fx.run(json!({ "case": "docker-op-inspect", "target": id }));
    assert_eq!(
        run["summary"],
        format!("inspected {} id {id}", fx.granted.name),
        "{run:#}"
    );
    let logs =
        fx.run(json!({ "case": "docker-op-logs", "target": format!("/{}", fx.granted.name) }));
    assert_eq!(
        logs["summary"],
        format!("logs [log-line-of-{}]", fx.granted.name),
        "{logs:#}"
    );

    // A dry run resolves and checks, then says what it would do to whom.
    let granted_before = fx.granted.life();
    let dry = fx.submit(
        &json!({ "case": "docker-op-restart", "target": &id[..12] }),
        true,
    );
    let dry = fx.server.wait_for_run(&dry, Duration::from_secs(60));
    let call = docker_call(&dry);
    assert_eq!(call["result"], "would", "{dry:#}");
    assert_eq!(call["detail"], format!("would restart {}", fx.granted.name));
    assert_eq!(call["args"]["resolved"]["id"], id.as_str());
    assert_eq!(fx.granted.life(), granted_before, "a dry run restarted");

    // A real restart by id prefix: the audit log names the container it acted on.
    let run = fx.run(json!({ "case": "docker-op-restart", "target": &id[..12] }));
    assert_eq!(run["status"], "no-action", "{run:#}");
    let call = docker_call(&run);
    assert_eq!(call["args"]["container"], &id[..12]);
    assert_eq!(call["args"]["resolved"]["name"], fx.granted.name.as_str());
    assert_ne!(
        fx.granted.life(),
        granted_before,
        "the restart did not happen"
    );
    assert!(fx.granted.life().starts_with("running "));
    fx.victim_untouched(&before, &[run, logs]);
}

#[test]
fn network_disconnect_needs_a_granted_network_named_by_a_real_network() {
    let fx = fixture();
    let before = fx.victim.life();
    let victim = &fx.victim.name;
    let granted = &fx.granted.name;
    let front = &fx.front.name;
    let disconnect = |container: &str, network: &str| json!({ "case": "docker-disconnect", "target": container, "url": network });
    // Strings aimed at other engine endpoints through the network path segment.
    let crafted = [
        format!("../containers/{victim}/kill?signal=KILL"),
        format!("{front}/../../containers/{victim}/stop"),
        format!("%2e%2e%2fcontainers%2f{victim}%2fstop"),
        format!("{front}?force=true"),
        format!("{front}#x"),
        format!("{front} x"),
        format!("{front}\u{0}"),
        String::new(),
        "big:n".to_string(),
    ];
    let params: Vec<Value> = crafted.iter().map(|n| disconnect(granted, n)).collect();
    let mut runs = fx.runs(&params);
    for (run, params) in runs.iter().zip(&params) {
        assert_refused(run, "invalid", &params.to_string());
        assert!(
            run["reason"]
                .as_str()
                .unwrap()
                .contains("is not a Docker network name or id"),
            "{run:#}"
        );
    }
    // A real network outside the rule, a granted network with an ungranted container.
    let refused = fx.runs(&[
        disconnect(granted, &fx.back.name),
        disconnect(&fx.granted.id()[..12], &fx.back.id()[..12]),
        disconnect(victim, front),
    ]);
    for run in &refused {
        assert_refused(run, "denied", "disconnect outside the rule");
    }
    assert_eq!(
        fx.granted.networks(),
        format!("bridge {} {front}", fx.back.name)
    );
    assert_eq!(fx.victim.networks(), format!("bridge {front}"));

    // A dry run resolves and checks both, then says what it would do.
    let dry = fx.submit(&disconnect(granted, front), true);
    let dry = fx.server.wait_for_run(&dry, Duration::from_secs(60));
    let call = docker_call(&dry);
    assert_eq!(call["result"], "would", "{dry:#}");
    assert_eq!(
        call["detail"],
        format!("would network-disconnect {granted} from network {front}")
    );
    assert_eq!(
        fx.granted.networks(),
        format!("bridge {} {front}", fx.back.name)
    );

    // The granted network, by id prefix: the real disconnect happens, by the resolved ids.
    let run = fx.run(disconnect(granted, &fx.front.id()[..12]));
    assert_eq!(run["status"], "no-action", "{run:#}");
    assert_eq!(fx.granted.networks(), format!("bridge {}", fx.back.name));
    assert_eq!(fx.victim.networks(), format!("bridge {front}"));
    runs.extend(refused);
    runs.push(run);
    fx.victim_untouched(&before, &runs);
}

#[test]
fn oversized_or_malformed_list_filters_are_invalid_and_the_host_keeps_serving() {
    let fx = fixture();
    let list = |name: &str, labels: Option<&str>| {
        let mut params = json!({ "case": "docker-list", "target": name });
        if let Some(labels) = labels {
            params["url"] = json!(labels);
        }
        params
    };
    let runs = fx.runs(&[
        list("big:*", None),
        list("big:{a,b}", None),
        list("", Some("big:k")),
        list("", Some("runbook-test=1\u{1}")),
        list("", Some("=1")),
    ]);
    for run in &runs {
        assert_refused(run, "invalid", "list filter");
    }
    assert_eq!(fx.server.get("/healthz").status, 200);
    // The server still runs playbooks, and a list shows only granted containers.
    let pid = std::process::id();
    for run in fx.runs(&[
        list("*", Some("runbook-test=1")),
        list(&format!("bar-{pid}-*"), None),
    ]) {
        assert_eq!(run["status"], "no-action", "{run:#}");
        assert_eq!(
            run["summary"],
            format!("listed [{}]", fx.granted.name),
            "{run:#}"
        );
    }
}

#[test]
fn a_rule_glob_that_does_not_compile_or_is_too_long_is_a_config_error() {
    for glob in ["bar-[x".to_string(), "b".repeat(300)] {
        let sandbox = Sandbox::new();
        sandbox.write(
            "host.toml",
            format!(
                "[plugins.bot-down.grants]\ndocker = [{{ containers = [\"{glob}\"], verbs = [\"read\"] }}]\n"
            ),
        );
        let run = sandbox.host(&["run", "bot-down", "--dry-run", "-p", "container=x"]);
        assert_ne!(run.code, 0, "{glob}: {}", run.stderr);
        assert!(run.stderr.contains("docker glob"), "{}", run.stderr);
        assert!(
            run.stdout.is_empty(),
            "{glob}: the run started: {}",
            run.stdout
        );
    }
}
