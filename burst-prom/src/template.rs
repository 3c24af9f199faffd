//! PromQL templates with named variables: `{{ service }}`, `{{ window }}`, ...
//!
//! Double braces never occur in PromQL (label matchers use single braces), so a template
//! is any PromQL text with `{{ name }}` placeholders.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use crate::Error;

/// The seed's query, measured where the demand originates (`reporter="source"`).
///
/// With `reporter="destination"` (the original), requests that reach the burst cluster
/// are reported by that cluster's sidecars and disappear from the primary's Prometheus,
/// so the measured demand would drop as soon as traffic moved.
pub const DEFAULT_QUERY: &str = concat!(
    r#"sum(rate(istio_requests_total{reporter="{{reporter}}","#,
    r#"destination_service="{{service}}.{{namespace}}.svc.cluster.local","#,
    r#"source_workload="{{source_workload}}"}[{{window}}]))"#,
    r#" by (source_workload,source_app,destination_service)"#,
);

/// The variables of [`DEFAULT_QUERY`] and their defaults (the seed's values).
pub fn default_variables() -> BTreeMap<String, String> {
    [
        ("reporter", "source"),
        ("service", "worker-service"),
        ("namespace", "default"),
        ("source_workload", "frontend-deployment"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// A parsed PromQL template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueryTemplate {
    parts: Vec<Part>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Text(String),
    Var(String),
}

impl QueryTemplate {
    /// Parses `text`; fails on an unclosed `{{` or a placeholder that is not a name.
    pub fn parse(text: &str) -> Result<QueryTemplate, Error> {
        let mut parts = Vec::new();
        let mut rest = text;
        while let Some(open) = rest.find("{{") {
            if open > 0 {
                parts.push(Part::Text(rest[..open].to_owned()));
            }
            let after = &rest[open + 2..];
            let close = after.find("}}").ok_or_else(|| {
                Error::Template(format!(
                    "`{{{{` at byte {} is never closed with `}}}}`",
                    text.len() - rest.len() + open
                ))
            })?;
            let name = after[..close].trim();
            if !is_name(name) {
                return Err(Error::Template(format!(
                    "`{{{{{}}}}}` is not a variable: names are letters, digits and `_`",
                    &after[..close]
                )));
            }
            parts.push(Part::Var(name.to_owned()));
            rest = &after[close + 2..];
        }
        if !rest.is_empty() {
            parts.push(Part::Text(rest.to_owned()));
        }
        if parts.is_empty() {
            return Err(Error::Template("the query is empty".into()));
        }
        Ok(QueryTemplate { parts })
    }

    /// The variable names used.
    pub fn variables(&self) -> BTreeSet<&str> {
        self.parts
            .iter()
            .filter_map(|p| match p {
                Part::Var(v) => Some(v.as_str()),
                Part::Text(_) => None,
            })
            .collect()
    }

    /// Whether the template uses `name`.
    pub fn uses(&self, name: &str) -> bool {
        self.variables().contains(name)
    }

    /// Fills every placeholder from `vars`; a missing variable is an error naming it.
    pub fn render(&self, vars: &BTreeMap<String, String>) -> Result<String, Error> {
        let mut out = String::new();
        for part in &self.parts {
            match part {
                Part::Text(t) => out.push_str(t),
                Part::Var(name) => match vars.get(name) {
                    Some(v) => out.push_str(v),
                    None => {
                        let known: Vec<&str> = vars.keys().map(String::as_str).collect();
                        return Err(Error::Template(format!(
                            "variable `{name}` has no value; set it under `variables` (known: {})",
                            known.join(", ")
                        )));
                    }
                },
            }
        }
        Ok(out)
    }
}

/// A duration as a PromQL range: `15s`, `1500ms`.
pub fn promql_duration(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else {
        format!("{}ms", d.as_millis())
    }
}

fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_query_renders_to_the_seed_query_at_the_source() {
        let t = QueryTemplate::parse(DEFAULT_QUERY).unwrap();
        let mut vars = default_variables();
        vars.insert("window".into(), "15s".into());
        assert_eq!(
            t.render(&vars).unwrap(),
            r#"sum(rate(istio_requests_total{reporter="source",destination_service="worker-service.default.svc.cluster.local",source_workload="frontend-deployment"}[15s])) by (source_workload,source_app,destination_service)"#
        );
        assert!(t.uses("window"));
    }

    #[test]
    fn placeholders_with_spaces_and_promql_braces_coexist() {
        let t = QueryTemplate::parse(r#"up{job="{{ job }}"} > {{x}}"#).unwrap();
        let vars = [("job", "a"), ("x", "1")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        assert_eq!(t.render(&vars).unwrap(), r#"up{job="a"} > 1"#);
        assert_eq!(t.variables().into_iter().collect::<Vec<_>>(), ["job", "x"]);
    }

    #[test]
    fn bad_templates_are_explained() {
        let e = QueryTemplate::parse("rate(x[{{window])").unwrap_err();
        assert!(e.to_string().contains("never closed"), "{e}");
        let e = QueryTemplate::parse("x{{a-b}}").unwrap_err();
        assert!(e.to_string().contains("not a variable"), "{e}");
        let e = QueryTemplate::parse("").unwrap_err();
        assert!(e.to_string().contains("empty"), "{e}");
        let t = QueryTemplate::parse("x{{missing}}").unwrap();
        let e = t.render(&default_variables()).unwrap_err();
        assert!(e.to_string().contains("`missing`"), "{e}");
        assert!(e.to_string().contains("namespace"), "{e}");
    }

    #[test]
    fn durations_render_as_promql_ranges() {
        assert_eq!(promql_duration(Duration::from_secs(15)), "15s");
        assert_eq!(promql_duration(Duration::from_secs(90)), "90s");
        assert_eq!(promql_duration(Duration::from_millis(1500)), "1500ms");
    }
}
