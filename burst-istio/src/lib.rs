//! Traffic routers for burst: Istio VirtualService and Gateway API HTTPRoute weights.
