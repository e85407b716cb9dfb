//! The checks, over one bootstrap.

mod catalogs;

use catalogs::{check_catalogs, check_upstream_stage};

use std::sync::Mutex;

use serde_json::Value as Json;

use crate::bootstrap::{Bootstrap, Cluster, Place, TollgateFilter};
use crate::jsonpos::Positions;
use crate::yaml::Node;
use crate::{Check, Finding, Report, Severity};

/// Envoy's default `max_requests` circuit breaker of a cluster.
const ENVOY_DEFAULT_MAX_REQUESTS: i64 = 1024;
/// Envoy's default `per_connection_buffer_limit_bytes` of a listener.
const ENVOY_DEFAULT_BUFFER_LIMIT: i64 = 1024 * 1024;
/// tollgate's default `limits.max_request_bytes`.
const TOLLGATE_DEFAULT_MAX_REQUEST_BYTES: i64 = 16 * 1024 * 1024;
/// Envoy's default `max_retries` circuit breaker of a cluster.
const ENVOY_DEFAULT_MAX_RETRIES: i64 = 3;
/// The retry priority that moves each retry to the next member of an aggregate cluster.
const PREVIOUS_PRIORITIES: &str = "envoy.retry_priorities.previous_priorities";

/// Collects findings for one file.
struct Out<'f> {
    file: &'f str,
    findings: Vec<Finding>,
}

impl Out<'_> {
    fn push(
        &mut self,
        severity: Severity,
        check: Check,
        line: usize,
        field: impl Into<String>,
        message: impl Into<String>,
    ) {
        self.findings.push(Finding {
            severity,
            check,
            file: self.file.to_string(),
            line,
            field: field.into(),
            message: message.into(),
        });
    }

    fn error(
        &mut self,
        check: Check,
        line: usize,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.push(Severity::Error, check, line, field, msg);
    }

    fn warn(
        &mut self,
        check: Check,
        line: usize,
        field: impl Into<String>,
        msg: impl Into<String>,
    ) {
        self.push(Severity::Warning, check, line, field, msg);
    }
}

/// A tollgate filter's plugin configuration, parsed, with the lines of its fields.
struct Plugin<'a> {
    filter: &'a TollgateFilter<'a>,
    json: Json,
    /// The configuration as the filter compiles it (`None`: refused, reported already).
    parsed: Option<tollgate::config::FilterConfig>,
    positions: Positions,
    first_line: usize,
}

impl Plugin<'_> {
    /// The file line of the JSON field at `path`.
    fn line(&self, path: &str) -> usize {
        self.first_line + self.positions.line_of(path) - 1
    }

    /// `<filter label> › <path>`.
    fn field(&self, path: &str) -> String {
        format!("{} › {path}", self.filter.label)
    }

    fn failover(&self) -> &Json {
        &self.json["failover"]
    }

    fn is_upstream(&self) -> bool {
        matches!(self.filter.place, Place::Upstream(_))
    }
}

/// Runs every check on the bootstrap `root` of `file`.
pub fn check_bootstrap(file: &str, root: &Node) -> Report {
    let mut out = Out {
        file,
        findings: Vec::new(),
    };
    if root.get("static_resources").is_null() {
        out.error(
            Check::Parse,
            root.line.max(1),
            "static_resources",
            "not an Envoy bootstrap: no static_resources (listeners and clusters)",
        );
    }
    let b = Bootstrap::read(root);
    let mut plugins = Vec::new();
    for filter in &b.filters {
        check_wasm_options(filter, &mut out);
        if let Some(plugin) = parse_plugin(filter, &mut out) {
            plugins.push(plugin);
        }
    }
    for plugin in &plugins {
        check_stage(plugin, &mut out);
        check_cluster_names(&b, plugin, &mut out);
        if let Place::Listener(manager) = plugin.filter.place {
            check_buffer_limit(&b, manager, plugin, &mut out);
            if !plugin.failover().is_null() {
                check_cluster_header_route(&b, manager, plugin, &mut out);
                check_walked_routes(&b, plugin, &plugins, &mut out);
            }
        }
    }
    check_catalogs(&plugins, &mut out);
    if !b.filters.is_empty() {
        check_stats_tags(root, &mut out);
    }
    out.findings.sort_by_key(|f| f.line);
    Report {
        findings: out.findings,
        filters: b.filters.len(),
    }
}

/// `allow_on_headers_stop_iteration` and the failure policy of the Wasm filter.
fn check_wasm_options(filter: &TollgateFilter, out: &mut Out) {
    let config = filter.config;
    let stop = config.get("allow_on_headers_stop_iteration");
    if stop.as_bool() != Some(true) {
        out.error(
            Check::StopIteration,
            stop.line_or(config.line),
            format!("{} › allow_on_headers_stop_iteration", filter.label),
            "must be true: tollgate holds request headers until the body is complete, and \
             without this option Envoy never hands it the body (requests hang)",
        );
    }
    let policy = config.get("failure_policy");
    let fail_open = config.get("fail_open");
    let field = format!("{} › failure_policy", filter.label);
    if fail_open.as_bool() == Some(true) {
        out.error(
            Check::FailurePolicy,
            fail_open.line,
            format!("{} › fail_open", filter.label),
            "fail_open lets requests through without tollgate after a crash (no \
             authentication, budgets or masking): use failure_policy: FAIL_RELOAD",
        );
    }
    match policy.as_str() {
        Some("FAIL_RELOAD") => {}
        Some("FAIL_OPEN") => out.error(
            Check::FailurePolicy,
            policy.line,
            field,
            "FAIL_OPEN lets requests through without tollgate after a crash (no \
             authentication, budgets or masking): use FAIL_RELOAD",
        ),
        Some(other) => out.warn(
            Check::FailurePolicy,
            policy.line,
            field,
            format!(
                "{other} turns one crash into 503s for every later request of that worker until \
                 Envoy restarts: use FAIL_RELOAD (a new VM after about a second)"
            ),
        ),
        None if fail_open.as_bool() != Some(true) => out.warn(
            Check::FailurePolicy,
            config.line,
            field,
            "not set (Envoy's default fails closed for good after a crash): set FAIL_RELOAD \
             (a new VM after about a second)",
        ),
        None => {}
    }
}

/// Serializes the process environment while a plugin configuration is parsed with its VM's
/// variables (the filter reads them with `std::env::var`, as WASI gives them in Envoy).
static ENV_LOCK: Mutex<()> = Mutex::new(());

/// The environment variables Envoy gives the filter's VM: `key_values` as written, and
/// `host_env_keys` from this process's environment or a stand-in (keys are rarely present where
/// configs are checked; Envoy itself refuses to start when one is missing).
fn vm_environment(filter: &TollgateFilter) -> Vec<(String, String)> {
    let vars = filter.config.at(&["vm_config", "environment_variables"]);
    let mut env: Vec<(String, String)> = vars
        .get("key_values")
        .entries()
        .iter()
        .map(|(k, v)| {
            (
                k.clone(),
                v.as_str().map(str::to_string).unwrap_or_default(),
            )
        })
        .collect();
    for key in vars.get("host_env_keys").items() {
        if let Some(name) = key.as_str() {
            let value = std::env::var(name)
                .ok()
                .filter(|v| !v.is_empty())
                .unwrap_or_else(|| format!("tollgate-check-stand-in-for-{name}"));
            env.push((name.to_string(), value));
        }
    }
    env
}

/// Names of the environment variables the plugin configuration reads.
fn env_names_read(json: &Json) -> Vec<String> {
    let mut names = Vec::new();
    if let Some(providers) = json["failover"]["providers"].as_array() {
        for p in providers {
            if let Some(n) = p["api_key"]["env"].as_str() {
                names.push(n.to_string());
            }
        }
    }
    if let Some(list) = json["masking"]["known_secret_env"].as_array() {
        names.extend(list.iter().filter_map(|n| n.as_str().map(str::to_string)));
    }
    names
}

/// Runs `f` with exactly the VM's variables set among `names`, then restores the environment.
fn with_vm_env<T>(names: &[String], vm: &[(String, String)], f: impl FnOnce() -> T) -> T {
    let _guard = ENV_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    let saved: Vec<(String, Option<String>)> = names
        .iter()
        .map(|n| (n.clone(), std::env::var(n).ok()))
        .collect();
    for name in names {
        match vm.iter().find(|(k, _)| k == name) {
            Some((_, v)) => std::env::set_var(name, v),
            None => std::env::remove_var(name),
        }
    }
    let result = f();
    for (name, value) in saved {
        match value {
            Some(v) => std::env::set_var(&name, v),
            None => std::env::remove_var(&name),
        }
    }
    result
}

/// Reads the filter's JSON and validates it with the filter's own code.
fn parse_plugin<'a>(filter: &'a TollgateFilter<'a>, out: &mut Out) -> Option<Plugin<'a>> {
    let (text, first_line) = filter.plugin_json();
    let field = format!("{} › configuration", filter.label);
    let json: Json = if text.trim().is_empty() {
        Json::Object(Default::default())
    } else {
        match serde_json::from_str(&text) {
            Ok(json) => json,
            Err(e) => {
                out.error(
                    Check::PluginConfig,
                    first_line + e.line().max(1) - 1,
                    field,
                    format!("not valid JSON: {e}"),
                );
                return None;
            }
        }
    };
    let mut plugin = Plugin {
        filter,
        positions: Positions::scan(&text),
        json,
        parsed: None,
        first_line,
    };
    let names = env_names_read(&plugin.json);
    let vm = vm_environment(filter);
    let parsed = with_vm_env(&names, &vm, || {
        tollgate::config::FilterConfig::parse(text.as_bytes())
    });
    match parsed {
        Ok(config) => plugin.parsed = Some(config),
        Err(e) => out.error(
            Check::PluginConfig,
            plugin.line(&e.path),
            plugin.field(&e.path),
            e.reason,
        ),
    }
    Some(plugin)
}

/// `stage` says where the filter sits.
fn check_stage(plugin: &Plugin, out: &mut Out) {
    let upstream = plugin.json["stage"].as_str() == Some("upstream");
    match (&plugin.filter.place, upstream) {
        (Place::Listener(_), true) => out.error(
            Check::Stage,
            plugin.line("stage"),
            plugin.field("stage"),
            "\"upstream\" belongs in an aggregate cluster's upstream filter chain, not a listener's",
        ),
        (Place::Upstream(_), false) => out.error(
            Check::Stage,
            plugin.line("stage"),
            plugin.field("stage"),
            "a filter in a cluster's upstream filter chain must say \"stage\": \"upstream\"",
        ),
        _ => {}
    }
}

/// Every cluster the configuration names exists in the bootstrap.
fn check_cluster_names(b: &Bootstrap, plugin: &Plugin, out: &mut Out) {
    let mut named: Vec<(String, &str)> = Vec::new();
    let j = &plugin.json;
    for (i, p) in j["failover"]["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(c) = p["cluster"].as_str() {
            named.push((format!("failover.providers[{i}].cluster"), c));
        }
    }
    for (i, r) in j["failover"]["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(c) = r["cluster"].as_str() {
            named.push((format!("failover.routes[{i}].cluster"), c));
        }
    }
    for (i, p) in j["jwt"]["providers"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(c) = p["remote_jwks"]["cluster"].as_str() {
            named.push((format!("jwt.providers[{i}].remote_jwks.cluster"), c));
        }
    }
    if let Some(c) = j["budgets"]["global"]["cluster"].as_str() {
        named.push(("budgets.global.cluster".into(), c));
    }
    let known: Vec<&str> = b.clusters.iter().map(|c| c.name.as_str()).collect();
    for (path, cluster) in named {
        if b.cluster(cluster).is_some() {
            continue;
        }
        let message = format!(
            "cluster {cluster:?} is not defined in the bootstrap (clusters: {}); requests for it \
             would get a 503 \"cluster not found\" at run time",
            known.join(", ")
        );
        if b.has_dynamic_clusters() {
            out.warn(
                Check::ClusterExists,
                plugin.line(&path),
                plugin.field(&path),
                format!("{message} unless CDS delivers it"),
            );
        } else {
            out.error(
                Check::ClusterExists,
                plugin.line(&path),
                plugin.field(&path),
                message,
            );
        }
    }
}

/// The routes of a connection manager's inline route configuration that take their cluster from
/// tollgate's header, with their virtual host.
fn cluster_header_routes(manager: &Node) -> Vec<(&Node, &Node)> {
    let mut found = Vec::new();
    for vhost in manager.at(&["route_config", "virtual_hosts"]).items() {
        for route in vhost.get("routes").items() {
            if route.at(&["route", "cluster_header"]).as_str()
                == Some(tollgate::routing::CLUSTER_HEADER)
            {
                found.push((vhost, route));
            }
        }
    }
    found
}

/// A route sends tollgate's routed requests to the cluster it names.
fn check_cluster_header_route(b: &Bootstrap, manager: usize, plugin: &Plugin, out: &mut Out) {
    let Some(m) = b.managers.get(manager) else {
        return;
    };
    if m.config.get("route_config").is_null() {
        if !m.config.get("rds").is_null() {
            out.warn(
                Check::ClusterHeaderRoute,
                m.config.get("rds").line,
                format!("{} › rds", m.label),
                format!(
                    "routes come from RDS: make sure one routes with cluster_header: {}",
                    tollgate::routing::CLUSTER_HEADER
                ),
            );
        }
        return;
    }
    if cluster_header_routes(m.config).is_empty() {
        out.error(
            Check::ClusterHeaderRoute,
            m.config.get("route_config").line,
            format!("{} › route_config", m.label),
            format!(
                "no route takes its cluster from tollgate's header (route: {{ cluster_header: {} }}), \
                 so requests tollgate routes (failover in {}) reach no provider",
                tollgate::routing::CLUSTER_HEADER,
                plugin.filter.label
            ),
        );
    }
}

/// Walked routes (`failover.routes[].cluster`): the aggregate cluster, its members and their
/// metadata, the upstream stage, the retry policy and the retry circuit breaker.
fn check_walked_routes(b: &Bootstrap, plugin: &Plugin, all: &[Plugin], out: &mut Out) {
    let Some(routes) = plugin.failover()["routes"].as_array() else {
        return;
    };
    let mut longest_walk: Option<(usize, usize)> = None; // (providers, route index)
    for (j, route) in routes.iter().enumerate() {
        let Some(aggregate) = route["cluster"].as_str() else {
            continue;
        };
        let path = format!("failover.routes[{j}]");
        let providers: Vec<&str> = route["providers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Json::as_str)
            .collect();
        if longest_walk.is_none_or(|(n, _)| providers.len() > n) {
            longest_walk = Some((providers.len(), j));
        }
        let Some(cluster) = b.cluster(aggregate) else {
            continue; // reported by check_cluster_names
        };
        let Some(members) = cluster.aggregate_members() else {
            out.error(
                Check::AggregateOrder,
                cluster.node.line,
                format!("cluster {aggregate} › cluster_type"),
                format!(
                    "{} › {path}.cluster names it, so it must be an aggregate cluster \
                     (cluster_type: {}) of the route's providers",
                    plugin.filter.label,
                    crate::bootstrap::AGGREGATE
                ),
            );
            continue;
        };
        check_members(b, plugin, aggregate, members, &providers, &path, out);
        check_upstream_stage(cluster, plugin, all, out);
        check_retry_breaker(b, cluster, out);
    }
    if let Some((n, j)) = longest_walk {
        check_retry_policy(b, plugin, n, j, out);
    }
}

/// The providers the endpoints of `cluster` name in `filter_metadata.tollgate.provider`.
fn endpoint_providers<'a>(cluster: &Cluster<'a>) -> Vec<(&'a Node, Option<&'a str>)> {
    cluster
        .lb_endpoints()
        .map(|e| {
            (
                e,
                e.at(&["metadata", "filter_metadata", "tollgate", "provider"])
                    .as_str(),
            )
        })
        .collect()
}

/// The aggregate cluster's members, in order, serve the route's providers: every endpoint of
/// member `i` names provider `i` in `filter_metadata.tollgate.provider` (the upstream stage reads
/// the provider Envoy picked from there). The members may be the providers' own clusters or
/// clusters of their own (on Istio, where a ServiceEntry's endpoints cannot carry metadata).
fn check_members(
    b: &Bootstrap,
    plugin: &Plugin,
    aggregate: &str,
    members: &Node,
    providers: &[&str],
    path: &str,
    out: &mut Out,
) {
    let names: Vec<&str> = members.items().iter().filter_map(Node::as_str).collect();
    let field = format!("cluster {aggregate} › cluster_type.typed_config.clusters");
    if names.len() != providers.len() {
        out.error(
            Check::AggregateOrder,
            members.line,
            field,
            format!(
                "must have one member per provider of {} › {path} ({}), in route order; found [{}]",
                plugin.filter.label,
                providers.join(", "),
                names.join(", ")
            ),
        );
        return;
    }
    for (i, (member, provider)) in names.iter().zip(providers).enumerate() {
        let Some(cluster) = b.cluster(member) else {
            out.error(
                Check::ClusterExists,
                members.line,
                field.clone(),
                format!("member {member:?} is not defined in the bootstrap"),
            );
            continue;
        };
        let endpoints = endpoint_providers(cluster);
        if endpoints.is_empty() {
            out.warn(
                Check::EndpointMetadata,
                cluster.node.line,
                format!("cluster {member} › load_assignment"),
                format!(
                    "no inline endpoints to check: each must carry metadata.filter_metadata.tollgate.provider: {provider}"
                ),
            );
            continue;
        }
        let named: Vec<&str> = endpoints.iter().filter_map(|(_, p)| *p).collect();
        let serves_other = named
            .first()
            .filter(|n| named.iter().all(|m| m == *n) && *n != provider && providers.contains(n));
        if let Some(other) = serves_other {
            out.error(
                Check::AggregateOrder,
                members.line,
                field.clone(),
                format!(
                    "member {i} ({member}) serves provider {other:?}, but provider {i} of {path} is \
                     {provider:?}: list the members in route order ({})",
                    providers.join(", ")
                ),
            );
            continue;
        }
        for (endpoint, name) in endpoints {
            if name != Some(*provider) {
                let found = name.map_or("nothing".to_string(), |s| format!("{s:?}"));
                out.error(
                    Check::EndpointMetadata,
                    endpoint
                        .at(&["metadata", "filter_metadata", "tollgate", "provider"])
                        .line_or(endpoint.line),
                    format!(
                        "cluster {member} › endpoint metadata.filter_metadata.tollgate.provider"
                    ),
                    format!(
                        "must be {provider:?}: the upstream stage reads the provider Envoy picked \
                         from it (found {found})"
                    ),
                );
            }
        }
    }
}

/// The aggregate cluster's retry circuit breaker admits a retry for every request a provider
/// cluster admits at once (its `max_requests`, 1,024 by default): a scheduled retry holds a slot
/// until the retried attempt answers, at most one per request in flight, so Envoy never refuses a
/// failover (`upstream_rq_retry_overflow`) at the load the members are sized for
/// (docs/failover-walked.md).
fn check_retry_breaker(b: &Bootstrap, cluster: &Cluster, out: &mut Out) {
    let members = cluster.aggregate_members().map(Node::items).unwrap_or(&[]);
    let capacity: i64 = members
        .iter()
        .filter_map(Node::as_str)
        .map(|m| {
            b.cluster(m)
                .and_then(|c| default_threshold(c.node))
                .and_then(|t| t.get("max_requests").as_int())
                .unwrap_or(ENVOY_DEFAULT_MAX_REQUESTS)
        })
        .max()
        .unwrap_or(ENVOY_DEFAULT_MAX_REQUESTS);
    let threshold = default_threshold(cluster.node);
    let field = format!(
        "cluster {} › circuit_breakers.thresholds[DEFAULT].max_retries",
        cluster.name
    );
    if let Some(budget) = threshold
        .map(|t| t.get("retry_budget"))
        .filter(|n| !n.is_null())
    {
        out.warn(
            Check::RetryBreaker,
            budget.line,
            field,
            "a retry_budget replaces max_retries; make sure it admits every failover at peak load",
        );
        return;
    }
    let retries = threshold.map(|t| t.get("max_retries"));
    let value = retries
        .and_then(Node::as_int)
        .unwrap_or(ENVOY_DEFAULT_MAX_RETRIES);
    if value < capacity {
        out.error(
            Check::RetryBreaker,
            retries
                .filter(|n| !n.is_null())
                .map_or(cluster.node.line, |n| n.line),
            field,
            format!(
                "is {value}{}: under load Envoy refuses failovers past it (upstream_rq_retry_overflow) \
                 and the client gets \"every provider failed\" while a fallback is healthy. Set it to \
                 at least {capacity}, the largest max_requests of the member clusters (the requests in \
                 flight they admit; docs/failover-walked.md)",
                if retries.is_some_and(|n| !n.is_null()) {
                    ""
                } else {
                    " (Envoy's default)"
                }
            ),
        );
    }
}

/// The `DEFAULT`-priority circuit breaker thresholds of a cluster.
fn default_threshold(cluster: &Node) -> Option<&Node> {
    cluster
        .at(&["circuit_breakers", "thresholds"])
        .items()
        .iter()
        .find(|t| matches!(t.get("priority").as_str(), None | Some("DEFAULT")))
}

/// The cluster_header route retries often enough, and on the next member each time, to reach
/// the last provider of the longest walked route.
fn check_retry_policy(
    b: &Bootstrap,
    plugin: &Plugin,
    providers: usize,
    route: usize,
    out: &mut Out,
) {
    let Place::Listener(manager) = plugin.filter.place else {
        return;
    };
    let Some(m) = b.managers.get(manager) else {
        return;
    };
    for (vhost, r) in cluster_header_routes(m.config) {
        let own = r.at(&["route", "retry_policy"]);
        let policy = if own.is_null() {
            vhost.get("retry_policy")
        } else {
            own
        };
        let field = format!("{} › route (cluster_header) › retry_policy", m.label);
        if policy.is_null() {
            out.error(
                Check::RetryPolicy,
                r.line,
                field,
                format!(
                    "{} › failover.routes[{route}] is walked by Envoy's retries, but the route has \
                     no retry_policy: only the first provider is ever tried",
                    plugin.filter.label
                ),
            );
            continue;
        }
        let priority = policy.get("retry_priority");
        let frequency = if priority.get("name").as_str() == Some(PREVIOUS_PRIORITIES) {
            priority
                .at(&["typed_config", "update_frequency"])
                .as_int()
                .unwrap_or(1)
                .max(1)
        } else {
            out.error(
                Check::RetryPolicy,
                priority.line_or(policy.line),
                format!("{field}.retry_priority"),
                format!(
                    "must be {PREVIOUS_PRIORITIES}: without it a retry may go to the provider that \
                     just failed instead of the next one"
                ),
            );
            1
        };
        let needed = (providers.saturating_sub(1) as i64) * frequency;
        let retries = policy.get("num_retries");
        let have = retries.as_int().unwrap_or(1);
        if have < needed {
            out.error(
                Check::RetryPolicy,
                retries.line_or(policy.line),
                format!("{field}.num_retries"),
                format!(
                    "is {have}: walking the {providers} providers of {} › failover.routes[{route}] with \
                     update_frequency {frequency} needs at least {needed} retries, or the last ones are \
                     never tried",
                    plugin.filter.label
                ),
            );
        }
        let on = policy.get("retry_on").as_str().unwrap_or("");
        for condition in ["5xx", "reset", "connect-failure"] {
            if !on.split(',').any(|c| c.trim() == condition) {
                out.warn(
                    Check::RetryPolicy,
                    policy.get("retry_on").line_or(policy.line),
                    format!("{field}.retry_on"),
                    format!("does not include {condition}: such failures will not fail over"),
                );
            }
        }
    }
}

/// The largest request body the configuration lets through: `limits.max_request_bytes` or a
/// larger per-route guardrail limit.
fn max_request_bytes(json: &Json) -> (i64, String) {
    let mut best = (
        json["limits"]["max_request_bytes"]
            .as_i64()
            .unwrap_or(TOLLGATE_DEFAULT_MAX_REQUEST_BYTES),
        "limits.max_request_bytes".to_string(),
    );
    let guardrails = &json["guardrails"];
    if let Some(n) = guardrails["defaults"]["max_request_bytes"].as_i64() {
        if n > best.0 {
            best = (n, "guardrails.defaults.max_request_bytes".into());
        }
    }
    for (i, r) in guardrails["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
    {
        if let Some(n) = r["max_request_bytes"].as_i64() {
            if n > best.0 {
                best = (n, format!("guardrails.routes[{i}].max_request_bytes"));
            }
        }
    }
    best
}

/// tollgate holds an LLM request's body until it is complete; Envoy answers 413 on its own when
/// a filter holds more than the listener's buffer limit, so the limit must hold tollgate's.
fn check_buffer_limit(b: &Bootstrap, manager: usize, plugin: &Plugin, out: &mut Out) {
    let Some(m) = b.managers.get(manager) else {
        return;
    };
    let limit_node = m.listener.get("per_connection_buffer_limit_bytes");
    let limit = limit_node.as_int().unwrap_or(ENVOY_DEFAULT_BUFFER_LIMIT);
    let (max, path) = max_request_bytes(&plugin.json);
    if limit < max {
        out.error(
            Check::BufferLimit,
            limit_node.line_or(m.listener.line),
            format!("{} › per_connection_buffer_limit_bytes", m.label),
            format!(
                "is {limit}{}, below {} › {path} ({max}): tollgate holds a request's body until it \
                 is complete, and Envoy answers 413 itself for bodies above the buffer limit. Raise it \
                 to {max}, or lower {path}",
                if limit_node.is_null() { " (Envoy's default)" } else { "" },
                plugin.filter.label
            ),
        );
    }
}

/// tollgate's labels need the bootstrap's tag extractors.
fn check_stats_tags(root: &Node, out: &mut Out) {
    let tags = root.at(&["stats_config", "stats_tags"]);
    let has_model = tags
        .items()
        .iter()
        .any(|t| t.get("tag_name").as_str() == Some("model"));
    if !has_model {
        out.warn(
            Check::StatsTags,
            tags.line_or(1),
            "stats_config.stats_tags",
            "no tag extractors for tollgate's metrics: /stats/prometheus shows the labels inside \
             the metric names; copy the stats_config of envoy/observability/stats-tags.yaml",
        );
    }
}
