//! A renderer for the small subset of Helm's template language the burstd chart uses, so
//! the chart can be rendered and checked where Helm is not installed.
//!
//! Supported: `{{ .Values.a.b }}`, `{{ .Release.Name }}`, `{{ .Release.Namespace }}`,
//! `{{ .Chart.Name }}`, `{{ .Chart.AppVersion }}`, the pipes `quote`, `nindent N` and
//! `indent N`, the function `toYaml X`, `{{ if X }}` / `{{ else }}` / `{{ end }}` with Go's
//! truthiness, and `{{-` / `-}}` whitespace trimming. Anything else, and any missing value,
//! is an error, so a template never renders differently here than in Helm without the test
//! noticing.

use std::path::Path;

use serde_json::Value;

/// What the templates see.
pub struct Context {
    pub values: Value,
    pub release_name: String,
    pub release_namespace: String,
    pub chart: Value,
}

enum Piece {
    Text(String),
    Action(String),
}

fn split(template: &str) -> Result<Vec<Piece>, String> {
    let mut pieces = Vec::new();
    let mut rest = template;
    let mut trim_next = false;
    while let Some(open) = rest.find("{{") {
        let mut text = rest[..open].to_owned();
        if trim_next {
            text = text.trim_start().to_owned();
        }
        let after = &rest[open + 2..];
        let close = after.find("}}").ok_or_else(|| {
            format!(
                "unclosed {{{{ at `{}`",
                &rest[open..].lines().next().unwrap_or("")
            )
        })?;
        let mut action = &after[..close];
        if let Some(a) = action.strip_prefix('-') {
            text = text.trim_end().to_owned();
            action = a;
        }
        trim_next = false;
        if let Some(a) = action.strip_suffix('-') {
            trim_next = true;
            action = a;
        }
        pieces.push(Piece::Text(text));
        pieces.push(Piece::Action(action.trim().to_owned()));
        rest = &after[close + 2..];
    }
    let text = if trim_next { rest.trim_start() } else { rest };
    pieces.push(Piece::Text(text.to_owned()));
    Ok(pieces)
}

fn lookup(ctx: &Context, path: &str) -> Result<Value, String> {
    let (root, rest) = if let Some(r) = path.strip_prefix(".Values") {
        (&ctx.values, r)
    } else if let Some(r) = path.strip_prefix(".Chart") {
        (&ctx.chart, r)
    } else if path == ".Release.Name" {
        return Ok(Value::String(ctx.release_name.clone()));
    } else if path == ".Release.Namespace" {
        return Ok(Value::String(ctx.release_namespace.clone()));
    } else {
        return Err(format!("unsupported reference `{path}`"));
    };
    let mut v = root;
    for part in rest.split('.').filter(|p| !p.is_empty()) {
        v = v
            .get(part)
            .ok_or_else(|| format!("`{path}`: no value `{part}` (missing in values.yaml?)"))?;
    }
    Ok(v.clone())
}

fn to_yaml(v: &Value) -> Result<String, String> {
    match v {
        Value::Object(m) if m.is_empty() => Ok("{}".to_owned()),
        Value::Array(a) if a.is_empty() => Ok("[]".to_owned()),
        _ => serde_saphyr::to_string(v)
            .map(|s| s.trim_end().to_owned())
            .map_err(|e| e.to_string()),
    }
}

fn scalar(v: &Value) -> Result<String, String> {
    match v {
        Value::String(s) => Ok(s.clone()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Number(n) => Ok(n.to_string()),
        other => Err(format!(
            "a map or list is printed as is only through toYaml: {other}"
        )),
    }
}

fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(m) => !m.is_empty(),
    }
}

fn indent(s: &str, n: usize) -> String {
    let pad = " ".repeat(n);
    s.lines()
        .map(|l| format!("{pad}{l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The value of an expression (first pipeline stage).
fn term(ctx: &Context, t: &str) -> Result<Value, String> {
    let t = t.trim();
    if let Some(arg) = t.strip_prefix("toYaml ") {
        return Ok(Value::String(to_yaml(&lookup(ctx, arg.trim())?)?));
    }
    lookup(ctx, t)
}

fn pipeline(ctx: &Context, expr: &str) -> Result<String, String> {
    let mut stages = expr.split('|');
    let first = stages.next().unwrap_or("");
    let v = term(ctx, first)?;
    let mut out = scalar(&v)?;
    for stage in stages {
        let words: Vec<&str> = stage.split_whitespace().collect();
        out = match words.as_slice() {
            ["quote"] => serde_json::to_string(&out).map_err(|e| e.to_string())?,
            ["nindent", n] => format!(
                "\n{}",
                indent(&out, n.parse().map_err(|_| format!("bad nindent `{n}`"))?)
            ),
            ["indent", n] => indent(&out, n.parse().map_err(|_| format!("bad indent `{n}`"))?),
            other => return Err(format!("unsupported pipe `{}`", other.join(" "))),
        };
    }
    Ok(out)
}

/// Renders one template.
pub fn render(ctx: &Context, template: &str) -> Result<String, String> {
    let mut out = String::new();
    // One entry per open `if`: (this branch is taken, any outer branch is off).
    let mut stack: Vec<(bool, bool)> = Vec::new();
    let active = |stack: &[(bool, bool)]| stack.iter().all(|(on, _)| *on);
    for piece in split(template)? {
        match piece {
            Piece::Text(t) => {
                if active(&stack) {
                    out.push_str(&t);
                }
            }
            Piece::Action(a) => {
                if let Some(cond) = a.strip_prefix("if ") {
                    let on = active(&stack) && truthy(&term(ctx, cond)?);
                    stack.push((on, !active(&stack)));
                } else if a == "else" {
                    let (on, outer_off) = stack.pop().ok_or("`else` without `if`")?;
                    stack.push((!on && !outer_off, outer_off));
                } else if a == "end" {
                    stack.pop().ok_or("`end` without `if`")?;
                } else if active(&stack) {
                    out.push_str(&pipeline(ctx, &a)?);
                }
            }
        }
    }
    if !stack.is_empty() {
        return Err("`if` without `end`".into());
    }
    Ok(out)
}

/// Sets `a.b.c=value` (the value parsed as YAML) in `values`, like `helm --set`.
pub fn set(values: &mut Value, key: &str, value: &str) {
    let v: Value = serde_saphyr::from_str(value).expect("value parses as YAML");
    let mut cur = values;
    let parts: Vec<&str> = key.split('.').collect();
    for p in &parts[..parts.len() - 1] {
        cur = &mut cur[*p];
    }
    cur[parts[parts.len() - 1]] = v;
}

/// Renders every template of the chart in `dir` with its values.yaml plus `overrides`,
/// like `helm template NAME DIR --namespace NS --set k=v`.
pub fn render_chart(
    dir: &Path,
    release: &str,
    namespace: &str,
    overrides: &[(&str, &str)],
) -> Result<String, String> {
    let read = |p: &Path| std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()));
    let mut values: Value = serde_saphyr::from_str(&read(&dir.join("values.yaml"))?)
        .map_err(|e| format!("values.yaml: {e}"))?;
    for (k, v) in overrides {
        set(&mut values, k, v);
    }
    let chart_yaml: Value = serde_saphyr::from_str(&read(&dir.join("Chart.yaml"))?)
        .map_err(|e| format!("Chart.yaml: {e}"))?;
    let chart = serde_json::json!({
        "Name": chart_yaml["name"],
        "AppVersion": chart_yaml["appVersion"],
        "Version": chart_yaml["version"],
    });
    let ctx = Context {
        values,
        release_name: release.to_owned(),
        release_namespace: namespace.to_owned(),
        chart,
    };
    let mut files: Vec<_> = std::fs::read_dir(dir.join("templates"))
        .map_err(|e| e.to_string())?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    let name = ctx.chart["Name"].as_str().unwrap_or("chart").to_owned();
    let mut out = String::new();
    for f in files {
        let text = read(&f)?;
        let rendered = render(&ctx, &text).map_err(|e| format!("{}: {e}", f.display()))?;
        // Drop comment-only and empty documents, as Helm does.
        let meaningful = rendered
            .lines()
            .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'));
        if meaningful {
            let file = f.file_name().and_then(|n| n.to_str()).unwrap_or("");
            out.push_str(&format!("---\n# Source: {name}/templates/{file}\n"));
            out.push_str(rendered.trim_matches('\n'));
            out.push('\n');
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx(values: Value) -> Context {
        Context {
            values,
            release_name: "r".into(),
            release_namespace: "ns".into(),
            chart: json!({"Name": "c", "AppVersion": "1.0"}),
        }
    }

    #[test]
    fn subset_renders_like_helm() {
        let c = ctx(json!({"a": {"b": "x"}, "on": true, "off": false, "m": {"k": 1}, "e": {}}));
        assert_eq!(render(&c, "n: {{ .Values.a.b }}").unwrap(), "n: x");
        assert_eq!(
            render(&c, "n: {{ .Values.on | quote }}").unwrap(),
            "n: \"true\""
        );
        assert_eq!(
            render(
                &c,
                "a:\n{{- if .Values.off }}\n  x: 1\n{{- else }}\n  y: 2\n{{- end }}\n"
            )
            .unwrap(),
            "a:\n  y: 2\n"
        );
        assert_eq!(
            render(&c, "m: {{- toYaml .Values.m | nindent 2 }}").unwrap(),
            "m:\n  k: 1"
        );
        assert_eq!(
            render(&c, "m: {{- toYaml .Values.e | nindent 2 }}").unwrap(),
            "m:\n  {}"
        );
        assert!(render(&c, "{{ .Values.nope }}").is_err());
        assert!(render(&c, "{{ include \"x\" . }}").is_err());
        assert!(render(&c, "{{ if .Values.on }}").is_err());
    }
}
