//! One source of truth for walked failover: the listener stage publishes its provider catalog
//! (providers, resolved keys, model mappings, and the settings an attempt's rewrite follows) to
//! the VM, and the upstream stage of the same VM looks it up at each attempt.
//!
//! Envoy runs every plugin whose `vm_config` is the same (VM id, code, configuration,
//! environment) in one wasm VM per worker, so a per-VM registry — a thread-local of the wasm
//! module, which has one thread — is seen by both stages. Envoy configures plugins in no
//! guaranteed order: the upstream stage resolves the catalog lazily, per attempt, and a miss is
//! a [`CatalogError`] the attempt answers with a JSON error.
//!
//! The registry holds weak references: a catalog lives as long as the listener stage's
//! configuration that published it (and the attempts using it). A newer configuration of the
//! same name replaces the entry (an xDS update publishes before the old one is dropped).
//!
//! This module decides which catalog an upstream stage uses; it knows nothing of proxy-wasm.

use std::cell::RefCell;
use std::fmt;
use std::rc::{Rc, Weak};
use std::sync::Arc;

use super::FailoverSettings;

/// The response header marking the upstream stage's own error reply (no catalog), so the
/// listener stage passes it to the client as it is instead of failing over; removed there.
pub const STAGE_ERROR_HEADER: &str = "x-tollgate-stage-error";

/// Longest catalog name accepted.
pub const MAX_NAME_LEN: usize = 64;

/// What the upstream stage takes from the listener stage of its VM.
#[derive(Debug)]
pub struct Catalog {
    /// The listener stage's `failover` section: providers, routes, model mappings, circuits.
    pub failover: Arc<FailoverSettings>,
    /// Resolved provider API keys, by provider index (`None`: the provider takes no key).
    pub provider_keys: Vec<Option<String>>,
    /// The header carrying the correlation id (`correlation.request_id_header`).
    pub request_id_header: String,
    /// The listener stage's usage settings (whether a stream's usage is asked for).
    pub usage: crate::config::UsageConfig,
}

impl Catalog {
    /// The catalog a listener stage with a failover section publishes; `None` for an upstream
    /// stage or a configuration without failover.
    pub fn of(config: &crate::config::FilterConfig) -> Option<Self> {
        if config.stage != crate::config::Stage::Downstream {
            return None;
        }
        Some(Self {
            failover: Arc::clone(config.failover.as_ref()?),
            provider_keys: config.provider_keys.clone(),
            request_id_header: config.correlation.request_id_header.clone(),
            usage: config.usage.clone(),
        })
    }
}

/// Why an upstream stage has no catalog.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CatalogError {
    /// No listener stage of this VM published a catalog.
    NonePublished,
    /// The `failover_name` the upstream stage asks for is not published.
    NotFound {
        /// The name asked for.
        wanted: String,
        /// The names published (`""` for an unnamed catalog).
        known: Vec<String>,
    },
    /// Several catalogs are published and the upstream stage names none.
    Ambiguous {
        /// The names published (`""` for an unnamed catalog).
        known: Vec<String>,
    },
}

impl CatalogError {
    /// A short machine-readable code for the error reply and the logs.
    pub fn code(&self) -> &'static str {
        match self {
            Self::NonePublished => "failover_catalog_missing",
            Self::NotFound { .. } => "failover_catalog_not_found",
            Self::Ambiguous { .. } => "failover_catalog_ambiguous",
        }
    }
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| {
            if n.is_empty() {
                "(unnamed)".to_string()
            } else {
                format!("{n:?}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ")
}

impl fmt::Display for CatalogError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NonePublished => write!(
                f,
                "no listener stage with a failover section runs in this upstream stage's VM \
                 (both stages need the same vm_config)"
            ),
            Self::NotFound { wanted, known } => write!(
                f,
                "no listener stage of this VM publishes the failover catalog {wanted:?} \
                 (published: {})",
                list(known)
            ),
            Self::Ambiguous { known } => write!(
                f,
                "several listener stages of this VM publish a failover catalog ({}): name one \
                 with failover_name",
                list(known)
            ),
        }
    }
}

/// The catalogs published in one VM, by name (`""`: unnamed).
#[derive(Debug, Default)]
pub struct Catalogs {
    entries: Vec<(String, Weak<Catalog>)>,
}

impl Catalogs {
    /// Publishes `catalog` under its name, replacing an earlier catalog of that name.
    pub fn publish(&mut self, catalog: &Rc<Catalog>) {
        let name = catalog.failover.name.clone().unwrap_or_default();
        self.entries
            .retain(|(n, c)| *n != name && c.strong_count() > 0);
        self.entries.push((name, Rc::downgrade(catalog)));
    }

    /// The catalog named `wanted`; without a name, the only one published. Allocates only for
    /// an error.
    pub fn resolve(&self, wanted: Option<&str>) -> Result<Rc<Catalog>, CatalogError> {
        let mut live = self.entries.iter().filter_map(|(_, c)| c.upgrade());
        match wanted {
            Some(w) => self
                .entries
                .iter()
                .find(|(n, _)| n == w)
                .and_then(|(_, c)| c.upgrade())
                .ok_or_else(|| CatalogError::NotFound {
                    wanted: w.to_string(),
                    known: self.known(),
                }),
            None => match (live.next(), live.next()) {
                (None, _) => Err(CatalogError::NonePublished),
                (Some(only), None) => Ok(only),
                (Some(_), Some(_)) => Err(CatalogError::Ambiguous {
                    known: self.known(),
                }),
            },
        }
    }

    /// The names of the catalogs alive, in publishing order.
    fn known(&self) -> Vec<String> {
        self.entries
            .iter()
            .filter(|(_, c)| c.strong_count() > 0)
            .map(|(n, _)| n.clone())
            .collect()
    }
}

thread_local! {
    /// This VM's catalogs (a wasm VM has one thread; natively, each test thread is a VM).
    static VM_CATALOGS: RefCell<Catalogs> = RefCell::new(Catalogs::default());
}

/// Publishes a listener stage's catalog to this VM.
pub fn publish(catalog: &Rc<Catalog>) {
    VM_CATALOGS.with(|c| {
        if let Ok(mut catalogs) = c.try_borrow_mut() {
            catalogs.publish(catalog);
        }
    });
}

/// The catalog an upstream stage of this VM uses (see [`Catalogs::resolve`]).
pub fn resolve(wanted: Option<&str>) -> Result<Rc<Catalog>, CatalogError> {
    VM_CATALOGS.with(|c| match c.try_borrow() {
        Ok(catalogs) => catalogs.resolve(wanted),
        Err(_) => Err(CatalogError::NonePublished),
    })
}

/// A catalog name: 1 to [`MAX_NAME_LEN`] ASCII letters, digits, `-`, `_` or `.`.
pub fn validate_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "must be 1 to {MAX_NAME_LEN} ASCII letters, digits, '-', '_' or '.', got {name:?}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog(name: Option<&str>, provider: &str) -> Rc<Catalog> {
        let doc =
            format!(r#"{{"providers":[{{"name":"{provider}","kind":"openai","cluster":"c"}}]}}"#);
        let mut raw: super::super::RawFailoverSettings = serde_json::from_str(&doc).unwrap();
        raw.name = name.map(str::to_string);
        Rc::new(Catalog {
            failover: Arc::new(super::super::compile(raw, "failover").unwrap()),
            provider_keys: vec![None],
            request_id_header: "x-request-id".into(),
            usage: crate::config::FilterConfig::default().usage,
        })
    }

    fn provider(c: &Catalog) -> &str {
        &c.failover.providers[0].name
    }

    #[test]
    fn an_unnamed_upstream_stage_takes_the_only_catalog() {
        let mut reg = Catalogs::default();
        assert_eq!(reg.resolve(None).unwrap_err(), CatalogError::NonePublished);
        let a = catalog(None, "a");
        reg.publish(&a);
        assert_eq!(provider(&reg.resolve(None).unwrap()), "a");
        // A named upstream stage finds an unnamed catalog under no name but ""…
        let e = reg.resolve(Some("egress")).unwrap_err();
        assert_eq!(e.code(), "failover_catalog_not_found");
        assert!(e.to_string().contains("\"egress\""), "{e}");
        assert!(e.to_string().contains("(unnamed)"), "{e}");
    }

    #[test]
    fn several_catalogs_need_a_name() {
        let mut reg = Catalogs::default();
        let a = catalog(Some("ingress"), "a");
        let b = catalog(Some("egress"), "b");
        reg.publish(&a);
        reg.publish(&b);
        let e = reg.resolve(None).unwrap_err();
        assert_eq!(
            e,
            CatalogError::Ambiguous {
                known: vec!["ingress".into(), "egress".into()]
            }
        );
        assert!(e.to_string().contains("failover_name"), "{e}");
        assert_eq!(provider(&reg.resolve(Some("egress")).unwrap()), "b");
        assert_eq!(provider(&reg.resolve(Some("ingress")).unwrap()), "a");
    }

    #[test]
    fn a_newer_configuration_of_the_same_name_replaces_the_older() {
        let mut reg = Catalogs::default();
        let old = catalog(Some("egress"), "old");
        reg.publish(&old);
        let new = catalog(Some("egress"), "new");
        reg.publish(&new);
        assert_eq!(provider(&reg.resolve(None).unwrap()), "new");
        drop(old); // the old configuration goes away: nothing changes
        assert_eq!(provider(&reg.resolve(Some("egress")).unwrap()), "new");
    }

    #[test]
    fn a_dropped_configuration_publishes_nothing() {
        let mut reg = Catalogs::default();
        let a = catalog(None, "a");
        reg.publish(&a);
        let held = reg.resolve(None).unwrap();
        drop(a);
        // An attempt that already holds it keeps it…
        assert_eq!(provider(&held), "a");
        drop(held);
        // …but no later attempt finds it.
        assert_eq!(reg.resolve(None).unwrap_err(), CatalogError::NonePublished);
        let b = catalog(Some("b"), "b");
        reg.publish(&b);
        assert_eq!(reg.entries.len(), 1, "dead entries are swept on publish");
    }

    #[test]
    fn the_vm_registry_is_shared_by_every_configuration_of_the_thread() {
        let a = catalog(Some("vm-shared"), "a");
        publish(&a);
        assert_eq!(provider(&resolve(Some("vm-shared")).unwrap()), "a");
        let e = std::thread::spawn(|| resolve(Some("vm-shared")).map(|_| ()))
            .join()
            .unwrap();
        assert!(e.is_err(), "another thread is another VM");
    }

    #[test]
    fn names_are_short_and_plain() {
        assert!(validate_name("egress-1.v2_a").is_ok());
        for bad in ["", "a b", "ä", &"x".repeat(MAX_NAME_LEN + 1)] {
            assert!(validate_name(bad).is_err(), "{bad:?}");
        }
    }
}
