//! The deployment files against the binary they deploy: every environment variable that
//! `deploy/` sets is one `wap-relay serve` reads, `relay.example.toml` names every setting with
//! its default (and nothing else), every YAML and JSON file under `deploy/` parses, the roles
//! and listeners of the compose file and the Kubernetes manifests make sense, and every metric
//! the dashboard and the alert rules query is one the code records.
//!
//! The settings come from the binary itself (`wap-relay serve --help` lists each one's
//! `[env: NAME]`), so a setting added, renamed or removed shows up here without editing the test.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;

use relay_server::settings::{Roles, SettingsArgs};
use serde::Deserialize;
use serde_yaml_ng::Value;

/// Read by the log filter (`EnvFilter`), not by clap, so `--help` does not list it.
const ALSO_READ: &[&str] = &["RUST_LOG"];

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// Every file under `dir`, recursively, in a stable order.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap_or_else(|e| panic!("listing {}: {e}", d.display())) {
            let path = entry.unwrap().path();
            if path.is_dir() { stack.push(path) } else { out.push(path) }
        }
    }
    out.sort();
    out
}

fn has_extension(path: &Path, extensions: &[&str]) -> bool {
    path.extension().and_then(|e| e.to_str()).is_some_and(|e| extensions.contains(&e))
}

/// The environment variables of the server's settings, from `wap-relay serve --help`.
fn known_env() -> BTreeSet<String> {
    let output = Command::new(env!("CARGO_BIN_EXE_wap-relay"))
        .args(["serve", "--help"])
        .env_clear()
        .output()
        .expect("running wap-relay serve --help");
    assert!(output.status.success(), "wap-relay serve --help failed: {output:?}");
    let help = String::from_utf8(output.stdout).expect("help is UTF-8");
    // clap may wrap a long line between `[env:` and the name: read past any whitespace.
    let mut names = BTreeSet::new();
    for (at, _) in help.match_indices("[env:") {
        let name: String = help[at + "[env:".len()..]
            .trim_start()
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        assert!(!name.is_empty(), "an `[env:` without a name in the help:\n{help}");
        names.insert(name);
    }
    for expected in ["DATABASE_URL", "REDIS_URL", "RELAY_ROLES", "RELAY_LISTEN"] {
        assert!(names.contains(expected), "`serve --help` no longer lists {expected}:\n{help}");
    }
    names
}

/// The names in `text` that look like the relay's variables: `RELAY_*`, `DATABASE_URL`,
/// `REDIS_URL`, `RUST_LOG` (each a whole word of upper-case letters, digits and `_`).
fn variables_in(text: &str) -> Vec<String> {
    text.split(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.starts_with("RELAY_") || ["DATABASE_URL", "REDIS_URL", "RUST_LOG"].contains(w))
        .map(str::to_owned)
        .collect()
}

/// Every string in a YAML tree, keys included (comments are gone once parsed).
fn strings_of(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::String(s) => out.push(s.clone()),
        Value::Sequence(items) => items.iter().for_each(|v| strings_of(v, out)),
        Value::Mapping(map) => {
            for (k, v) in map {
                strings_of(k, out);
                strings_of(v, out);
            }
        }
        Value::Tagged(tagged) => strings_of(&tagged.value, out),
        _ => {}
    }
}

/// The documents of a YAML file, with merge keys (`<<: *anchor`) applied.
fn yaml_documents(path: &Path) -> Vec<Value> {
    let text = read(path);
    serde_yaml_ng::Deserializer::from_str(&text)
        .map(|doc| {
            let mut value = Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value.apply_merge().unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            value
        })
        .filter(|v| !v.is_null())
        .collect()
}

fn deploy_yaml_files() -> Vec<PathBuf> {
    let files: Vec<PathBuf> = files_under(&repo().join("deploy"))
        .into_iter()
        .filter(|p| has_extension(p, &["yaml", "yml"]))
        .collect();
    assert!(files.iter().any(|p| p.ends_with("compose.yaml")), "deploy/compose.yaml is missing");
    assert!(
        files.iter().any(|p| p.starts_with(repo().join("deploy/kubernetes"))),
        "deploy/kubernetes/ has no manifest"
    );
    files
}

#[test]
fn every_variable_the_deploy_files_set_is_one_the_binary_reads() {
    let known = known_env();
    let mut unknown = Vec::new();
    let mut seen = BTreeSet::new();
    for path in deploy_yaml_files() {
        for doc in yaml_documents(&path) {
            let mut strings = Vec::new();
            strings_of(&doc, &mut strings);
            for name in strings.iter().flat_map(|s| variables_in(s)) {
                if !known.contains(&name) && !ALSO_READ.contains(&name.as_str()) {
                    unknown.push(format!("{}: {name}", path.display()));
                }
                seen.insert(name);
            }
        }
    }
    // The Dockerfile's ENV lines (comment lines left out).
    let dockerfile = repo().join("deploy/Dockerfile");
    for line in read(&dockerfile).lines().filter(|l| !l.trim_start().starts_with('#')) {
        for name in variables_in(line) {
            if !known.contains(&name) && !ALSO_READ.contains(&name.as_str()) {
                unknown.push(format!("{}: {name}", dockerfile.display()));
            }
        }
    }
    assert!(
        unknown.is_empty(),
        "variables the binary does not read (known: {known:?}):\n{}",
        unknown.join("\n")
    );
    for expected in ["DATABASE_URL", "REDIS_URL", "RELAY_JWT_SECRET", "RELAY_MASTER_KEY", "RELAY_ROLES"] {
        assert!(seen.contains(expected), "no deploy file sets {expected}");
    }
}

/// One `# key = value` line of the example, uncommented, and whether it shows a default (a
/// setting without one says "Unset:" in its comment, and its line shows an example value).
struct ExampleLine {
    key: String,
    line: String,
    has_default: bool,
}

/// The `# key = value` lines of the example (prose comments have no ` = `).
fn example_lines(text: &str) -> Vec<ExampleLine> {
    let mut out = Vec::new();
    let mut comment = String::new();
    for line in text.lines() {
        let Some(rest) = line.strip_prefix("# ") else {
            comment.clear();
            continue;
        };
        let key = rest.split_once(" = ").map(|(k, _)| k).filter(|k| {
            !k.is_empty() && k.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        });
        match key {
            Some(key) => {
                let has_default = !comment.contains("Unset:");
                out.push(ExampleLine { key: key.to_owned(), line: format!("{rest}\n"), has_default });
                comment.clear();
            }
            None => comment.push_str(rest),
        }
    }
    out
}

/// The settings a file with `text` resolves to.
fn resolved(text: &str, name: &str) -> String {
    let dir = std::env::temp_dir().join(format!("relay-deploy-files-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let args = SettingsArgs { config: Some(path.clone()), ..SettingsArgs::default() };
    let settings = args.resolve().unwrap_or_else(|e| panic!("{}: {e:#}", path.display()));
    format!("{settings:?}")
}

#[test]
fn the_example_configuration_names_every_setting_with_its_default() {
    let text = read(&repo().join("relay.example.toml"));
    assert!(
        text.lines().all(|l| l.trim().is_empty() || l.starts_with('#')),
        "relay.example.toml must be all comments: a copy changes nothing until a line is uncommented"
    );
    let lines = example_lines(&text);
    let all: String = lines.iter().map(|l| l.line.as_str()).collect();
    // Every key is a field the binary accepts (deny_unknown_fields), each value of its type.
    let parsed: SettingsArgs =
        toml::from_str(&all).unwrap_or_else(|e| panic!("relay.example.toml, uncommented: {e}\n{all}"));
    assert!(parsed.config.is_none());

    // Every setting is there: one key per variable of `serve --help`, the variable's name less
    // `RELAY_` in lower case, except the file's own path and the admin CLI's.
    let keys: BTreeSet<String> = lines.iter().map(|l| l.key.clone()).collect();
    assert_eq!(keys.len(), lines.len(), "a key appears twice in relay.example.toml");
    let expected: BTreeSet<String> = known_env()
        .into_iter()
        .filter(|name| name != "RELAY_CONFIG" && !name.starts_with("WAP_RELAY_"))
        .map(|name| name.strip_prefix("RELAY_").unwrap_or(&name).to_ascii_lowercase())
        .collect();
    assert_eq!(keys, expected, "relay.example.toml keys (left) against the binary's settings (right)");

    // Each value shown as a default is the default: those lines resolve like an empty file.
    let defaults: String = lines.iter().filter(|l| l.has_default).map(|l| l.line.as_str()).collect();
    assert!(defaults.lines().count() >= 15, "most settings have a default:\n{defaults}");
    assert_eq!(resolved(&defaults, "example.toml"), resolved("", "empty.toml"));
}

/// The environment of a compose service or a Kubernetes container, as (name, value) pairs.
fn env_pairs(env: &Value) -> Vec<(String, String)> {
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => serde_yaml_ng::to_string(other).unwrap().trim().to_owned(),
    };
    match env {
        Value::Mapping(map) => map.iter().map(|(k, v)| (text(k), text(v))).collect(),
        Value::Sequence(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => {
                    s.split_once('=').map_or((s.clone(), String::new()), |(k, v)| (k.into(), v.into()))
                }
                other => (text(&other["name"]), text(&other["value"])),
            })
            .collect(),
        _ => Vec::new(),
    }
}

fn value_of<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

#[test]
fn compose_runs_ingress_with_admin_and_dispatchers_on_a_reachable_listener() {
    let compose = yaml_documents(&repo().join("deploy/compose.yaml")).remove(0);
    let services = &compose["services"];
    for (service, roles) in [("ingress", "ingress,admin"), ("dispatcher", "dispatcher")] {
        let env = env_pairs(&services[service]["environment"]);
        assert_eq!(value_of(&env, "RELAY_ROLES"), Some(roles), "compose service {service}");
        Roles::parse(roles).unwrap();
        let listen = value_of(&env, "RELAY_LISTEN").unwrap_or_else(|| panic!("{service}: no RELAY_LISTEN"));
        assert!(listen.starts_with("0.0.0.0:"), "{service} listens on {listen}: unreachable from outside");
        for secret in ["RELAY_JWT_SECRET", "RELAY_MASTER_KEY"] {
            let v = value_of(&env, secret).unwrap_or_else(|| panic!("{service}: no {secret}"));
            assert!(
                v.starts_with(&format!("${{{secret}:?")),
                "{service}: {secret} must be required from the environment"
            );
        }
        for dependency in ["postgres", "redis"] {
            assert_eq!(
                services[service]["depends_on"][dependency]["condition"].as_str(),
                Some("service_healthy"),
                "{service} must wait for {dependency}"
            );
        }
        let check = serde_yaml_ng::to_string(&services[service]["healthcheck"]["test"]).unwrap();
        assert!(check.contains("/readyz"), "{service}: the health check should ask /readyz");
    }
    for dependency in ["postgres", "redis"] {
        assert!(
            services[dependency]["healthcheck"]["test"].is_sequence(),
            "{dependency} has no health check"
        );
    }
}

#[test]
fn kubernetes_deployments_run_one_role_each_with_probes_and_resources() {
    let mut docs = Vec::new();
    for path in files_under(&repo().join("deploy/kubernetes")) {
        if has_extension(&path, &["yaml", "yml"]) {
            docs.extend(yaml_documents(&path));
        }
    }
    let kind = |d: &Value| d["kind"].as_str().unwrap_or_default().to_owned();
    let config: Vec<(String, String)> =
        docs.iter().filter(|d| kind(d) == "ConfigMap").flat_map(|d| env_pairs(&d["data"])).collect();
    let listen = value_of(&config, "RELAY_LISTEN").expect("the ConfigMap sets RELAY_LISTEN");
    assert!(listen.starts_with("0.0.0.0:"), "pods listen on {listen}: probes could not reach them");

    let mut roles_seen = Vec::new();
    for deployment in docs.iter().filter(|d| kind(d) == "Deployment") {
        let name = deployment["metadata"]["name"].as_str().unwrap_or_default();
        let container = &deployment["spec"]["template"]["spec"]["containers"][0];
        let env = env_pairs(&container["env"]);
        let roles = value_of(&env, "RELAY_ROLES").unwrap_or_else(|| panic!("{name}: no RELAY_ROLES"));
        let parsed = Roles::parse(roles).unwrap_or_else(|e| panic!("{name}: {e}"));
        roles_seen.push(parsed);
        assert_eq!(container["readinessProbe"]["httpGet"]["path"].as_str(), Some("/readyz"), "{name}");
        assert_eq!(container["livenessProbe"]["httpGet"]["path"].as_str(), Some("/healthz"), "{name}");
        for resource in ["cpu", "memory"] {
            assert!(!container["resources"]["requests"][resource].is_null(), "{name}: no {resource} request");
            assert!(!container["resources"]["limits"][resource].is_null(), "{name}: no {resource} limit");
        }
        let sources: Vec<&str> = container["envFrom"]
            .as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|e| e["configMapRef"]["name"].as_str().or(e["secretRef"]["name"].as_str()))
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(sources.len(), 2, "{name}: the ConfigMap and the Secret, by envFrom");
    }
    let http = Roles { ingress: true, admin: true, dispatcher: false };
    let dispatch = Roles { ingress: false, admin: false, dispatcher: true };
    assert!(
        roles_seen.contains(&http) && roles_seen.contains(&dispatch),
        "roles of the Deployments: {roles_seen:?}"
    );
    for wanted in ["Namespace", "Service", "PodDisruptionBudget", "HorizontalPodAutoscaler", "Secret"] {
        assert!(docs.iter().any(|d| kind(d) == wanted), "no {wanted} under deploy/kubernetes");
    }
}

/// Metric names recorded by the code: the first string literal after `counter!(`, `gauge!(` or
/// `histogram!(` in the sources of the workspace's crates.
fn recorded_metrics() -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for path in files_under(&repo().join("crates")) {
        if !has_extension(&path, &["rs"]) || path.components().any(|c| c.as_os_str() == "target") {
            continue;
        }
        let text = read(&path);
        for macro_name in ["counter!(", "gauge!(", "histogram!("] {
            for (at, _) in text.match_indices(macro_name) {
                let rest = text[at + macro_name.len()..].trim_start();
                if let Some(literal) = rest.strip_prefix('"').and_then(|r| r.split('"').next()) {
                    names.insert(literal.to_owned());
                }
            }
        }
    }
    assert!(names.contains("relay_ingest_requests_total"), "the metric scan found nothing: {names:?}");
    names
}

/// `relay_…` words in a PromQL expression, with the suffixes of a histogram's series dropped.
fn metrics_in(expr: &str) -> Vec<String> {
    expr.split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .filter(|w| w.starts_with("relay_"))
        .map(|w| ["_bucket", "_sum", "_count"].iter().find_map(|s| w.strip_suffix(s)).unwrap_or(w).to_owned())
        .collect()
}

fn balanced(expr: &str) -> bool {
    let mut stack = Vec::new();
    for c in expr.chars() {
        let opener = match c {
            '(' | '[' | '{' => {
                stack.push(c);
                continue;
            }
            ')' => '(',
            ']' => '[',
            '}' => '{',
            _ => continue,
        };
        if stack.pop() != Some(opener) {
            return false;
        }
    }
    stack.is_empty()
}

/// Every `expr` string in a JSON tree (Grafana targets).
fn json_exprs(value: &serde_json::Value, out: &mut Vec<String>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr", serde_json::Value::String(s)) => out.push(s.clone()),
                    _ => json_exprs(v, out),
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|v| json_exprs(v, out)),
        _ => {}
    }
}

#[test]
fn every_yaml_and_json_file_under_deploy_parses() {
    for path in files_under(&repo().join("deploy")) {
        if has_extension(&path, &["yaml", "yml"]) {
            assert!(!yaml_documents(&path).is_empty(), "{} has no document", path.display());
        } else if has_extension(&path, &["json"]) {
            serde_json::from_str::<serde_json::Value>(&read(&path))
                .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn the_dashboard_and_the_alerts_query_metrics_the_code_records() {
    let recorded = recorded_metrics();
    let mut exprs = Vec::new();
    let dashboard: serde_json::Value =
        serde_json::from_str(&read(&repo().join("deploy/grafana/wap-relay.json"))).unwrap();
    json_exprs(&dashboard, &mut exprs);
    let dashboard_count = exprs.len();
    assert!(dashboard_count > 10, "the dashboard has {dashboard_count} queries");

    let rules = yaml_documents(&repo().join("deploy/prometheus/alerts.yaml")).remove(0);
    let mut alerts = 0;
    for group in rules["groups"].as_sequence().expect("alerts.yaml has groups") {
        for rule in group["rules"].as_sequence().expect("each group has rules") {
            let name = rule["alert"].as_str().expect("every rule is an alert");
            let expr = rule["expr"].as_str().unwrap_or_else(|| panic!("{name}: no expr"));
            assert!(rule["labels"]["severity"].is_string(), "{name}: no severity");
            assert!(rule["annotations"]["summary"].is_string(), "{name}: no summary");
            exprs.push(expr.to_owned());
            alerts += 1;
        }
    }
    assert!(alerts >= 6, "only {alerts} alerts");

    let mut unknown = BTreeSet::new();
    for expr in &exprs {
        assert!(balanced(expr), "unbalanced brackets in `{expr}`");
        for metric in metrics_in(expr) {
            if !recorded.contains(&metric) {
                unknown.insert(metric);
            }
        }
    }
    assert!(unknown.is_empty(), "queried but never recorded: {unknown:?} (recorded: {recorded:?})");
    // The families of CONTRACT §9 each appear somewhere.
    for family in [
        "relay_ingest_requests_total",
        "relay_ingest_rejections_total",
        "relay_events_stored_total",
        "relay_ingest_duplicates_total",
        "relay_ingest_batch_size",
        "relay_delivery_attempts_total",
        "relay_delivery_attempt_duration_seconds",
        "relay_delivery_latency_seconds",
        "relay_deliveries_pending",
        "relay_oldest_pending_seconds",
        "relay_rate_limit_deferrals_total",
        "relay_db_pool_connections",
        "relay_redis_up",
    ] {
        assert!(exprs.iter().any(|e| metrics_in(e).iter().any(|m| m == family)), "nothing queries {family}");
    }
}
