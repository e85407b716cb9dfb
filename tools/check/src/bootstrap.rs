//! What the checker reads from an Envoy bootstrap: the clusters, the HTTP connection managers
//! with their routes, and every tollgate Wasm filter — in a listener's HTTP filter chain or in a
//! cluster's upstream filter chain.

use crate::yaml::Node;

/// `@type` of the Wasm HTTP filter.
pub const WASM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm";
/// `@type` of the HTTP connection manager.
const HCM_TYPE: &str = "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager";
/// Key of the upstream HTTP protocol options, where a cluster's upstream filters live.
pub const HTTP_PROTOCOL_OPTIONS: &str = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
/// Name of Envoy's aggregate cluster type.
pub const AGGREGATE: &str = "envoy.clusters.aggregate";

/// Where a tollgate filter sits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// In the HTTP filter chain of a listener's connection manager (index into
    /// [`Bootstrap::managers`]).
    Listener(usize),
    /// In the upstream filter chain of a cluster.
    Upstream(String),
}

/// One tollgate Wasm filter.
#[derive(Debug)]
pub struct TollgateFilter<'a> {
    /// The filter entry (`name`, `typed_config`).
    pub entry: &'a Node,
    /// `typed_config.config`: the Wasm `PluginConfig`.
    pub config: &'a Node,
    /// Where it is.
    pub place: Place,
    /// A readable name for messages: `listener llm › filter tollgate`.
    pub label: String,
}

impl TollgateFilter<'_> {
    /// `vm_config.vm_id` (empty when unset).
    pub fn vm_id(&self) -> &str {
        self.config
            .at(&["vm_config", "vm_id"])
            .as_str()
            .unwrap_or("")
    }

    /// The plugin configuration: its JSON text and the line where it starts.
    pub fn plugin_json(&self) -> (String, usize) {
        let configuration = self.config.get("configuration");
        let value = configuration.get("value");
        match value.as_str() {
            Some(text) => (text.to_string(), value.line),
            None => (String::new(), configuration.line_or(self.config.line)),
        }
    }
}

/// An HTTP connection manager and its place.
#[derive(Debug)]
pub struct Manager<'a> {
    /// The connection manager's `typed_config`.
    pub config: &'a Node,
    /// The listener it belongs to.
    pub listener: &'a Node,
    /// `listener <name>`.
    pub label: String,
}

/// A cluster of the bootstrap.
#[derive(Debug)]
pub struct Cluster<'a> {
    /// Its name.
    pub name: String,
    /// The cluster entry.
    pub node: &'a Node,
}

impl<'a> Cluster<'a> {
    /// The member clusters, when this is an aggregate cluster.
    pub fn aggregate_members(&self) -> Option<&'a Node> {
        let ty = self.node.get("cluster_type");
        (ty.get("name").as_str() == Some(AGGREGATE)).then(|| ty.at(&["typed_config", "clusters"]))
    }

    /// Every `lb_endpoints[]` entry of the inline load assignment.
    pub fn lb_endpoints(&self) -> impl Iterator<Item = &'a Node> {
        self.node
            .at(&["load_assignment", "endpoints"])
            .items()
            .iter()
            .flat_map(|locality| locality.get("lb_endpoints").items())
    }

    /// The cluster's upstream HTTP filters.
    pub fn upstream_filters(&self) -> &'a [Node] {
        self.node
            .at(&[
                "typed_extension_protocol_options",
                HTTP_PROTOCOL_OPTIONS,
                "http_filters",
            ])
            .items()
    }
}

/// The parts of a bootstrap the checks look at.
#[derive(Debug)]
pub struct Bootstrap<'a> {
    /// The document.
    pub root: &'a Node,
    /// Every static cluster.
    pub clusters: Vec<Cluster<'a>>,
    /// Every HTTP connection manager of a static listener.
    pub managers: Vec<Manager<'a>>,
    /// Every tollgate filter.
    pub filters: Vec<TollgateFilter<'a>>,
}

impl<'a> Bootstrap<'a> {
    /// Reads the parts of `root`.
    pub fn read(root: &'a Node) -> Self {
        let resources = root.get("static_resources");
        let clusters: Vec<Cluster<'a>> = resources
            .get("clusters")
            .items()
            .iter()
            .map(|c| Cluster {
                name: c.get("name").as_str().unwrap_or("").to_string(),
                node: c,
            })
            .collect();
        let mut managers = Vec::new();
        let mut filters = Vec::new();
        for listener in resources.get("listeners").items() {
            let lname = listener.get("name").as_str().unwrap_or("?");
            for chain in listener.get("filter_chains").items() {
                for network in chain.get("filters").items() {
                    let tc = network.get("typed_config");
                    let is_hcm = tc.get("@type").as_str() == Some(HCM_TYPE)
                        || network.get("name").as_str()
                            == Some("envoy.filters.network.http_connection_manager");
                    if !is_hcm {
                        continue;
                    }
                    let index = managers.len();
                    managers.push(Manager {
                        config: tc,
                        listener,
                        label: format!("listener {lname}"),
                    });
                    for f in tc.get("http_filters").items() {
                        if let Some(config) = tollgate_config(f) {
                            filters.push(TollgateFilter {
                                entry: f,
                                config,
                                place: Place::Listener(index),
                                label: format!(
                                    "listener {lname} › filter {}",
                                    f.get("name").as_str().unwrap_or("?")
                                ),
                            });
                        }
                    }
                }
            }
        }
        for cluster in &clusters {
            for f in cluster.upstream_filters() {
                if let Some(config) = tollgate_config(f) {
                    filters.push(TollgateFilter {
                        entry: f,
                        config,
                        place: Place::Upstream(cluster.name.clone()),
                        label: format!(
                            "cluster {} › upstream filter {}",
                            cluster.name,
                            f.get("name").as_str().unwrap_or("?")
                        ),
                    });
                }
            }
        }
        Bootstrap {
            root,
            clusters,
            managers,
            filters,
        }
    }

    /// The cluster named `name`.
    pub fn cluster(&self, name: &str) -> Option<&Cluster<'a>> {
        self.clusters.iter().find(|c| c.name == name)
    }

    /// Whether clusters may also arrive over xDS (then an unknown name may exist at run time).
    pub fn has_dynamic_clusters(&self) -> bool {
        !self.root.at(&["dynamic_resources", "cds_config"]).is_null()
    }
}

/// The `PluginConfig` of a Wasm filter that runs tollgate: its module file or URL names
/// `tollgate`, or its plugin name or root id starts with `tollgate`.
fn tollgate_config(filter: &Node) -> Option<&Node> {
    let tc = filter.get("typed_config");
    if tc.get("@type").as_str() != Some(WASM_TYPE) {
        return None;
    }
    let config = tc.get("config");
    let code = config.at(&["vm_config", "code"]);
    let module = code
        .at(&["local", "filename"])
        .as_str()
        .or_else(|| code.at(&["remote", "http_uri", "uri"]).as_str())
        .unwrap_or("");
    let named = |key: &str| {
        config
            .get(key)
            .as_str()
            .is_some_and(|n| n.starts_with("tollgate"))
    };
    (module.contains("tollgate") || named("name") || named("root_id")).then_some(config)
}
