//! Rendering the Istio objects that split one service between two clusters.
//!
//! [`render`] produces the seed's pair on `networking.istio.io/v1`: a DestinationRule that
//! turns a pod label into the subsets `primary` and `burst`, and a VirtualService whose single
//! http route sends the split's shares to them.
//!
//! The seed labelled worker pods `cluster-type: primary-cluster|burst-cluster` by hand. In a
//! multi-cluster mesh Istio itself labels every endpoint with the cluster it runs in,
//! `topology.istio.io/cluster`, so no pod label is needed:
//!
//! ```
//! use burst_core::Split;
//! use burst_istio::render::{RenderOptions, render_yaml};
//!
//! let opts = RenderOptions {
//!     subset_label: "topology.istio.io/cluster".into(),
//!     primary_label_value: "cluster-onprem".into(),
//!     burst_label_value: "cluster-cloud".into(),
//!     ..RenderOptions::default()
//! };
//! let yaml = render_yaml(&opts, Split::try_new(80, 20)?)?;
//! assert!(yaml.contains("topology.istio.io/cluster: cluster-cloud"));
//! assert!(yaml.contains("weight: 20"));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use burst_core::Split;
use serde_json::{Value, json};

use crate::Error;

/// Load balancer algorithms Istio's `trafficPolicy.loadBalancer.simple` accepts.
pub const LOAD_BALANCERS: [&str; 6] = [
    "UNSPECIFIED",
    "RANDOM",
    "PASSTHROUGH",
    "ROUND_ROBIN",
    "LEAST_REQUEST",
    "LEAST_CONN",
];

/// What to render. The defaults reproduce the seed's objects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenderOptions {
    /// Namespace of the objects and the service (default `default`).
    pub namespace: String,
    /// The Kubernetes Service to split (default `worker-service`).
    pub service: String,
    /// Service port (default 80).
    pub port: u16,
    /// Pod label that tells the clusters apart (default `cluster-type`).
    pub subset_label: String,
    /// Label value of the primary cluster's pods (default `primary-cluster`).
    pub primary_label_value: String,
    /// Label value of the burst cluster's pods (default `burst-cluster`).
    pub burst_label_value: String,
    /// Subset name of the primary side (default `primary`).
    pub primary_subset: String,
    /// Subset name of the burst side (default `burst`).
    pub burst_subset: String,
    /// `spec.gateways` of the VirtualService (default `[mesh]`).
    pub gateways: Vec<String>,
    /// `loadBalancer.simple` of the DestinationRule (default `RANDOM`).
    pub load_balancer: String,
}

impl Default for RenderOptions {
    fn default() -> Self {
        RenderOptions {
            namespace: "default".to_owned(),
            service: "worker-service".to_owned(),
            port: 80,
            subset_label: "cluster-type".to_owned(),
            primary_label_value: "primary-cluster".to_owned(),
            burst_label_value: "burst-cluster".to_owned(),
            primary_subset: "primary".to_owned(),
            burst_subset: "burst".to_owned(),
            gateways: vec!["mesh".to_owned()],
            load_balancer: "RANDOM".to_owned(),
        }
    }
}

impl RenderOptions {
    /// Checks every name against the Kubernetes and Istio rules.
    pub fn validate(&self) -> Result<(), Error> {
        dns_label("namespace", &self.namespace)?;
        dns_label("service", &self.service)?;
        if self.port == 0 {
            return Err(invalid("port", "0", "must be from 1 to 65535"));
        }
        label_key(&self.subset_label)?;
        label_value("primary label value", &self.primary_label_value)?;
        label_value("burst label value", &self.burst_label_value)?;
        if self.primary_label_value == self.burst_label_value {
            return Err(invalid(
                "burst label value",
                &self.burst_label_value,
                "must differ from the primary label value, or both subsets select the same pods",
            ));
        }
        dns_label("primary subset", &self.primary_subset)?;
        dns_label("burst subset", &self.burst_subset)?;
        if self.primary_subset == self.burst_subset {
            return Err(invalid(
                "burst subset",
                &self.burst_subset,
                "must differ from the primary subset",
            ));
        }
        for g in &self.gateways {
            if g.is_empty() {
                return Err(invalid("gateway", g, "must not be empty"));
            }
        }
        if !LOAD_BALANCERS.contains(&self.load_balancer.as_str()) {
            return Err(invalid(
                "load balancer",
                &self.load_balancer,
                &format!("must be one of {}", LOAD_BALANCERS.join(", ")),
            ));
        }
        Ok(())
    }

    /// `worker` for `worker-service`: the stem of the object names.
    fn stem(&self) -> &str {
        self.service
            .strip_suffix("-service")
            .filter(|s| !s.is_empty())
            .unwrap_or(&self.service)
    }

    /// `<service>.<namespace>.svc.cluster.local`.
    pub fn host(&self) -> String {
        format!("{}.{}.svc.cluster.local", self.service, self.namespace)
    }

    /// Name of the rendered VirtualService (`worker-virtual-service` for the defaults).
    pub fn virtual_service_name(&self) -> String {
        format!("{}-virtual-service", self.stem())
    }

    /// Name of the rendered DestinationRule (`worker-destination-rule` for the defaults).
    pub fn destination_rule_name(&self) -> String {
        format!("{}-destination-rule", self.stem())
    }
}

/// The DestinationRule and the VirtualService for `split`, in that order (subsets first, so
/// that applying the list in order never routes to an unknown subset).
pub fn render(opts: &RenderOptions, split: Split) -> Result<Vec<Value>, Error> {
    opts.validate()?;
    let host = opts.host();
    let dr = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "DestinationRule",
        "metadata": {"name": opts.destination_rule_name(), "namespace": opts.namespace},
        "spec": {
            "host": host,
            "trafficPolicy": {"loadBalancer": {"simple": opts.load_balancer}},
            "subsets": [
                {"name": opts.primary_subset, "labels": {opts.subset_label.clone(): opts.primary_label_value}},
                {"name": opts.burst_subset, "labels": {opts.subset_label.clone(): opts.burst_label_value}},
            ],
        }
    });
    let dest = |subset: &str, weight: u8| {
        json!({
            "destination": {"host": host, "port": {"number": opts.port}, "subset": subset},
            "weight": weight,
        })
    };
    let vs = json!({
        "apiVersion": "networking.istio.io/v1",
        "kind": "VirtualService",
        "metadata": {"name": opts.virtual_service_name(), "namespace": opts.namespace},
        "spec": {
            "hosts": [opts.service],
            "gateways": opts.gateways,
            "http": [{
                "name": "burst-split",
                "route": [
                    dest(&opts.primary_subset, split.primary().get()),
                    dest(&opts.burst_subset, split.burst().get()),
                ],
            }],
        }
    });
    Ok(vec![dr, vs])
}

/// [`render`] as a multi-document YAML stream.
pub fn render_yaml(opts: &RenderOptions, split: Split) -> Result<String, Error> {
    to_yaml_stream(&render(opts, split)?)
}

/// Serialises objects as a YAML stream (`---` between documents).
pub fn to_yaml_stream(objects: &[Value]) -> Result<String, Error> {
    let mut out = String::new();
    for (i, o) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let doc = serde_saphyr::to_string(o).map_err(|e| Error::Parse {
            what: "serialising YAML".to_owned(),
            message: e.to_string(),
        })?;
        out.push_str(&doc);
        if !out.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

fn invalid(what: &'static str, value: &str, problem: &str) -> Error {
    Error::InvalidOption {
        what,
        value: value.to_owned(),
        problem: problem.to_owned(),
    }
}

/// RFC 1123 label: at most 63 of `a-z0-9-`, starting and ending alphanumeric.
fn dns_label(what: &'static str, v: &str) -> Result<(), Error> {
    let ok = !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !v.starts_with('-')
        && !v.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(invalid(
            what,
            v,
            "must be a DNS label: 1 to 63 lowercase letters, digits or '-', starting and ending with a letter or digit",
        ))
    }
}

/// Label name rules: at most 63 of `A-Za-z0-9-_.`, starting and ending alphanumeric.
fn label_name_ok(v: &str) -> bool {
    !v.is_empty()
        && v.len() <= 63
        && v.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && v.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && v.as_bytes().last().is_some_and(u8::is_ascii_alphanumeric)
}

fn label_key(v: &str) -> Result<(), Error> {
    let (prefix, name) = match v.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, v),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|part| {
                !part.is_empty()
                    && part
                        .bytes()
                        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                    && !part.starts_with('-')
                    && !part.ends_with('-')
            })
    });
    if prefix_ok && label_name_ok(name) {
        Ok(())
    } else {
        Err(invalid(
            "subset label",
            v,
            "must be a label key: an optional DNS-subdomain prefix and '/', then 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit (e.g. cluster-type or topology.istio.io/cluster)",
        ))
    }
}

fn label_value(what: &'static str, v: &str) -> Result<(), Error> {
    if label_name_ok(v) {
        Ok(())
    } else {
        Err(invalid(
            what,
            v,
            "must be a label value: 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VsTarget;

    #[test]
    fn seed_defaults_render_the_seed_names() {
        let objs = render(&RenderOptions::default(), Split::ALL_PRIMARY).unwrap();
        assert_eq!(objs[0]["metadata"]["name"], "worker-destination-rule");
        assert_eq!(objs[1]["metadata"]["name"], "worker-virtual-service");
        assert_eq!(
            objs[0]["spec"]["subsets"][1]["labels"]["cluster-type"],
            "burst-cluster"
        );
        assert_eq!(
            VsTarget::default().read(&objs[1]).unwrap(),
            Split::ALL_PRIMARY
        );
    }

    #[test]
    fn bad_names_are_refused_with_the_rule() {
        let o = RenderOptions {
            namespace: "Prod".into(),
            ..RenderOptions::default()
        };
        let e = render(&o, Split::ALL_PRIMARY).unwrap_err();
        assert!(e.to_string().contains("invalid namespace `Prod`"), "{e}");
        let o = RenderOptions {
            subset_label: "/x".into(),
            ..RenderOptions::default()
        };
        assert_eq!(
            render(&o, Split::ALL_PRIMARY).unwrap_err().kind(),
            "invalid_option"
        );
        let o = RenderOptions {
            burst_label_value: "primary-cluster".into(),
            ..RenderOptions::default()
        };
        assert!(render(&o, Split::ALL_PRIMARY).is_err());
        let o = RenderOptions {
            load_balancer: "FASTEST".into(),
            ..RenderOptions::default()
        };
        assert!(
            render(&o, Split::ALL_PRIMARY)
                .unwrap_err()
                .to_string()
                .contains("ROUND_ROBIN")
        );
    }

    #[test]
    fn topology_label_key_is_accepted() {
        assert!(label_key("topology.istio.io/cluster").is_ok());
        assert!(label_key("cluster-type").is_ok());
        assert!(label_key("a/b/c").is_err());
    }
}
