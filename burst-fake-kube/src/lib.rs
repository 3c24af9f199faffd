//! An in-process fake Kubernetes API server for tests, driven through the real kube::Client.
