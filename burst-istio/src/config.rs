//! One way to build a router for a route, for every caller.

use burst_core::TrafficRouter;

use crate::{
    Error, HttpRouteRouter, HttpRouteTarget, RouteCaches, RouterOptions, VirtualServiceRouter,
    VsTarget,
};

/// Which route's weights change, one of two kinds.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteConfig {
    /// Two subsets of an Istio VirtualService.
    VirtualService(VsTarget),
    /// Two backendRefs of a Gateway API HTTPRoute.
    HttpRoute(HttpRouteTarget),
}

impl RouteConfig {
    /// Checks the options and builds the router over object `namespace/name`.
    pub fn build(
        self,
        client: kube::Client,
        namespace: &str,
        name: &str,
        options: RouterOptions,
    ) -> Result<Box<dyn TrafficRouter>, Error> {
        Ok(match self {
            RouteConfig::VirtualService(t) => Box::new(VirtualServiceRouter::new(
                client, namespace, name, t, options,
            )?),
            RouteConfig::HttpRoute(t) => {
                Box::new(HttpRouteRouter::new(client, namespace, name, t, options)?)
            }
        })
    }

    /// As [`build`](Self::build), reading the object from `caches` (see
    /// [`KubeRouter::with_cache`](crate::KubeRouter::with_cache)); `caches` must be over
    /// `client`'s cluster. Needs a tokio runtime.
    pub fn build_cached(
        self,
        client: kube::Client,
        caches: &RouteCaches,
        namespace: &str,
        name: &str,
        options: RouterOptions,
    ) -> Result<Box<dyn TrafficRouter>, Error> {
        Ok(match self {
            RouteConfig::VirtualService(t) => Box::new(
                VirtualServiceRouter::new(client, namespace, name, t, options)?.with_cache(caches),
            ),
            RouteConfig::HttpRoute(t) => Box::new(
                HttpRouteRouter::new(client, namespace, name, t, options)?.with_cache(caches),
            ),
        })
    }

    /// `VirtualService` or `HTTPRoute`.
    pub fn kind(&self) -> &'static str {
        match self {
            RouteConfig::VirtualService(_) => "VirtualService",
            RouteConfig::HttpRoute(_) => "HTTPRoute",
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::BackendSelector;

    fn client() -> kube::Client {
        let config = kube::Config::new("http://127.0.0.1:1".parse().unwrap());
        kube::Client::try_from(config).unwrap()
    }

    #[tokio::test]
    async fn builds_either_kind_and_checks_options() {
        let vs = RouteConfig::VirtualService(VsTarget::default());
        assert_eq!(vs.kind(), "VirtualService");
        let r = vs
            .build(client(), "default", "worker", RouterOptions::default())
            .unwrap();
        assert!(
            r.describe().starts_with("VirtualService default/worker"),
            "{}",
            r.describe()
        );
        let hr = RouteConfig::HttpRoute(HttpRouteTarget::new(
            BackendSelector::new("a"),
            BackendSelector::new("b"),
        ));
        assert_eq!(hr.kind(), "HTTPRoute");
        let r = hr
            .clone()
            .build(client(), "shop", "web", RouterOptions::default())
            .unwrap();
        assert!(
            r.describe().starts_with("HTTPRoute shop/web"),
            "{}",
            r.describe()
        );
        let Err(e) = hr.build(client(), "shop", "a/b", RouterOptions::default()) else {
            panic!("accepted a name with a slash")
        };
        assert_eq!(e.kind(), "invalid_option");
    }
}
