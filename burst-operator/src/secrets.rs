//! Reading what a policy references from its namespace: Secret values (source
//! credentials) and the kubeconfigs of extra clusters.

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::Error;
use crate::adapters::ResolvedAuth;
use crate::api::{BurstPolicySpec, SecretKeyRef};

/// Reads `key` of Secret `namespace/name`.
pub async fn secret_value(
    client: &kube::Client,
    namespace: &str,
    r: &SecretKeyRef,
) -> Result<String, Error> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let err = |message: String| Error::Secret {
        namespace: namespace.to_owned(),
        name: r.name.clone(),
        message,
    };
    let secret = match api.get(&r.name).await {
        Ok(s) => s,
        Err(kube::Error::Api(s)) if s.code == 404 => {
            return Err(err("not found; create it in the policy's namespace".into()));
        }
        Err(kube::Error::Api(s)) if s.code == 403 => {
            // The server's message names the identity, the verb, the resource and the
            // namespace that were refused.
            return Err(err(format!(
                "reading it is forbidden ({}); install the chart with rbac.readSecrets=true",
                s.message
            )));
        }
        Err(e) => return Err(err(format!("cannot be read: {e}"))),
    };
    let bytes = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&r.key))
        .map(|b| b.0.clone())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(&r.key))
                .map(|s| s.clone().into_bytes())
        })
        .ok_or_else(|| {
            let keys: Vec<String> = secret
                .data
                .as_ref()
                .map(|d| d.keys().cloned().collect())
                .unwrap_or_default();
            err(format!(
                "has no key `{}` (keys: {})",
                r.key,
                if keys.is_empty() {
                    "none".to_owned()
                } else {
                    keys.join(", ")
                }
            ))
        })?;
    String::from_utf8(bytes).map_err(|_| err(format!("key `{}` is not UTF-8 text", r.key)))
}

pub(crate) async fn resolve_auth(
    client: &kube::Client,
    namespace: &str,
    spec: &BurstPolicySpec,
) -> Result<ResolvedAuth, Error> {
    let mut auth = ResolvedAuth::default();
    let Some(a) = spec.source.auth() else {
        return Ok(auth);
    };
    if let Some(r) = &a.bearer_token_secret_ref {
        auth.bearer_token = Some(secret_value(client, namespace, r).await?);
    }
    if let Some(b) = &a.basic_auth_secret_ref {
        let key = |k: &Option<String>, d: &str| SecretKeyRef {
            name: b.name.clone(),
            key: k.clone().unwrap_or_else(|| d.to_owned()),
        };
        let user = secret_value(client, namespace, &key(&b.username_key, "username")).await?;
        let pass = secret_value(client, namespace, &key(&b.password_key, "password")).await?;
        auth.basic = Some((user, pass));
    }
    Ok(auth)
}

/// Checks a kubeconfig and builds a client from it.
///
/// Exec and auth-provider plugins are refused: they would make burstd run a command named
/// by whoever can write the Secret.
pub async fn client_from_kubeconfig(cluster: &str, yaml: &str) -> Result<kube::Client, Error> {
    let err = |message: String| Error::Kubeconfig {
        cluster: cluster.to_owned(),
        message,
    };
    let kc = Kubeconfig::from_yaml(yaml).map_err(|e| err(format!("not a kubeconfig: {e}")))?;
    for user in &kc.auth_infos {
        if let Some(a) = &user.auth_info
            && (a.exec.is_some() || a.auth_provider.is_some())
        {
            return Err(err(format!(
                "user `{}` uses an exec or auth-provider plugin, which burstd refuses to run; use a service-account token or a client certificate",
                user.name
            )));
        }
    }
    let config = kube::Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| err(e.to_string()))?;
    kube::Client::try_from(config).map_err(|e| err(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn exec_plugins_are_refused() {
        let yaml = r#"
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://example.invalid"}}]
users: [{name: u, user: {exec: {apiVersion: client.authentication.k8s.io/v1, command: /bin/sh, args: ["-c", "id"]}}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"#;
        let Err(e) = client_from_kubeconfig("west", yaml).await else {
            panic!("accepted an exec plugin")
        };
        assert!(e.to_string().contains("refuses"), "{e}");
        let Err(e) = client_from_kubeconfig("west", "{{nope").await else {
            panic!("accepted garbage")
        };
        assert_eq!(e.kind(), "kubeconfig");
    }

    #[tokio::test]
    async fn token_kubeconfig_builds_a_client() {
        let yaml = r#"
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "http://127.0.0.1:1"}}]
users: [{name: u, user: {token: abc}}]
contexts: [{name: x, context: {cluster: c, user: u, namespace: default}}]
current-context: x
"#;
        assert!(client_from_kubeconfig("west", yaml).await.is_ok());
    }
}
