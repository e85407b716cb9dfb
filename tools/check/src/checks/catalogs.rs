//! The walked design's one catalog: the upstream stage runs in the listener stage's VM (the same
//! `vm_config`) and takes its provider catalog there, resolved as the filter resolves it.

use tollgate::failover::catalog::CatalogError;

use super::{Out, Plugin};
use crate::bootstrap::{Cluster, Place, TollgateFilter};
use crate::yaml::Node;
use crate::Check;

/// The `vm_config` fields Envoy builds a VM from: plugins share a VM (and so the upstream stage
/// sees the listener stage's catalog) only when all of them are the same.
const VM_FIELDS: [&str; 5] = [
    "vm_id",
    "runtime",
    "code",
    "configuration",
    "environment_variables",
];

/// The `vm_config` fields in which two filters differ (empty: they run in one VM).
fn vm_differences(a: &TollgateFilter, b: &TollgateFilter) -> Vec<&'static str> {
    let (va, vb) = (a.config.get("vm_config"), b.config.get("vm_config"));
    VM_FIELDS
        .into_iter()
        .filter(|f| !same_value(va.get(f), vb.get(f)))
        .collect()
}

/// Two YAML values are equal, wherever they are written.
fn same_value(a: &Node, b: &Node) -> bool {
    use crate::yaml::Value;
    match (&a.value, &b.value) {
        (Value::List(x), Value::List(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| same_value(p, q))
        }
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(l, w)| k == l && same_value(v, w)))
        }
        (x, y) => x == y,
    }
}

/// The listener stages whose catalog an upstream stage would take, resolved as the filter does
/// ([`tollgate::failover::catalog::Catalogs`]) over the listener stages of its VM.
fn resolve_catalog<'p, 'a>(
    upstream: &Plugin,
    all: &'p [Plugin<'a>],
) -> Result<&'p Plugin<'a>, CatalogError> {
    use tollgate::failover::catalog::{Catalog, Catalogs};
    let mut registry = Catalogs::default();
    let mut published = Vec::new();
    for p in all.iter().filter(|p| !p.is_upstream()) {
        if !vm_differences(p.filter, upstream.filter).is_empty() {
            continue;
        }
        if let Some(catalog) = p.parsed.as_ref().and_then(Catalog::of) {
            let catalog = std::rc::Rc::new(catalog);
            registry.publish(&catalog);
            published.push((catalog, p));
        }
    }
    let wanted = upstream
        .parsed
        .as_ref()
        .and_then(|c| c.failover_name.as_deref());
    let found = registry.resolve(wanted)?;
    published
        .iter()
        .find(|(c, _)| std::rc::Rc::ptr_eq(c, &found))
        .map(|(_, p)| *p)
        .ok_or(CatalogError::NonePublished)
}

/// Every upstream stage finds a catalog in its VM, and no two listener stages of one VM
/// publish different catalogs under one name (the filter would take whichever came last).
pub(super) fn check_catalogs(all: &[Plugin], out: &mut Out) {
    if out.findings.iter().any(|f| f.check == Check::PluginConfig) {
        return; // a refused configuration publishes nothing: resolving would only echo it
    }
    for upstream in all.iter().filter(|p| p.is_upstream() && p.parsed.is_some()) {
        let Err(e) = resolve_catalog(upstream, all) else {
            continue;
        };
        let elsewhere = all.iter().find(|p| {
            !p.is_upstream()
                && !p.failover().is_null()
                && !vm_differences(p.filter, upstream.filter).is_empty()
        });
        match (&e, elsewhere) {
            (CatalogError::NonePublished, Some(listener)) => {
                let differing = vm_differences(upstream.filter, listener.filter);
                let first = differing.first().copied().unwrap_or("vm_id");
                let vm_config = upstream.filter.config.get("vm_config");
                out.error(
                    Check::UpstreamStage,
                    vm_config
                        .get(first)
                        .line_or(vm_config.line_or(upstream.filter.config.line)),
                    format!("{} › vm_config.{first}", upstream.filter.label),
                    format!(
                        "differs from the vm_config of {} (in {}): only plugins with the same \
                         vm_config share a VM, and the upstream stage takes its provider catalog \
                         and keys from the listener stage of its VM. Copy the listener stage's \
                         vm_config unchanged",
                        listener.filter.label,
                        differing.join(", ")
                    ),
                );
            }
            _ => {
                let path = if upstream.json["failover_name"].is_null() {
                    "stage"
                } else {
                    "failover_name"
                };
                out.error(
                    Check::UpstreamStage,
                    upstream.line(path),
                    upstream.field(path),
                    format!(
                        "{e}: the upstream stage takes its provider catalog from a listener stage \
                         with a failover section and the same vm_config ({})",
                        VM_FIELDS.join(", ")
                    ),
                );
            }
        }
    }
    let listeners: Vec<&Plugin> = all
        .iter()
        .filter(|p| !p.is_upstream() && !p.failover().is_null())
        .collect();
    for (i, a) in listeners.iter().enumerate() {
        for b in listeners.iter().skip(i + 1) {
            let same_name = a.failover()["name"] == b.failover()["name"];
            if same_name
                && vm_differences(a.filter, b.filter).is_empty()
                && a.failover() != b.failover()
            {
                let name = a.failover()["name"].as_str().unwrap_or("");
                out.error(
                    Check::UpstreamStage,
                    b.line("failover"),
                    b.field("failover.name"),
                    format!(
                        "{} in the same VM publishes a different catalog under the same name \
                         ({}): an upstream stage would take either; give each its own \
                         failover.name",
                        a.filter.label,
                        if name.is_empty() {
                            "unnamed".to_string()
                        } else {
                            format!("{name:?}")
                        }
                    ),
                );
            }
        }
    }
}

/// The aggregate cluster runs tollgate's upstream stage, in the listener stage's VM (the same
/// `vm_config`) and taking this listener stage's catalog, and `upstream_codec` last.
pub(super) fn check_upstream_stage(
    cluster: &Cluster,
    plugin: &Plugin,
    all: &[Plugin],
    out: &mut Out,
) {
    let field = format!(
        "cluster {} › typed_extension_protocol_options.{}.http_filters",
        cluster.name,
        crate::bootstrap::HTTP_PROTOCOL_OPTIONS
    );
    let upstream = all
        .iter()
        .find(|p| p.filter.place == Place::Upstream(cluster.name.clone()));
    let Some(upstream) = upstream else {
        out.error(
            Check::UpstreamStage,
            cluster.node.line,
            field,
            "a walked route's aggregate cluster needs tollgate in its upstream filter chain \
             ({\"stage\": \"upstream\"}, the listener stage's vm_config), then \
             envoy.filters.http.upstream_codec",
        );
        return;
    };
    let filters = cluster.upstream_filters();
    let last = filters.last();
    let codec = last.is_some_and(|f| {
        f.get("name").as_str() == Some("envoy.filters.http.upstream_codec")
            || f.at(&["typed_config", "@type"])
                .as_str()
                .is_some_and(|t| t.ends_with("UpstreamCodec"))
    });
    if !codec {
        out.error(
            Check::UpstreamStage,
            last.map_or(cluster.node.line, |f| f.line),
            field,
            "the last upstream filter must be envoy.filters.http.upstream_codec",
        );
    }
    if upstream.parsed.is_none() || plugin.parsed.is_none() {
        return; // refused configurations are reported already
    }
    if let Ok(other) = resolve_catalog(upstream, all) {
        if !std::ptr::eq(other, plugin) {
            let path = if upstream.json["failover_name"].is_null() {
                "stage"
            } else {
                "failover_name"
            };
            out.error(
                Check::UpstreamStage,
                upstream.line(path),
                upstream.field(path),
                format!(
                    "takes the catalog of {}, but the walked routes of {} go through cluster {}: \
                     set failover_name to that listener stage's failover.name",
                    other.filter.label, plugin.filter.label, cluster.name
                ),
            );
        }
    }
}
