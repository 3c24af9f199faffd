//go:build tools

// Package tools pins the commands this module builds, so that `go mod tidy` keeps their
// modules in go.mod and go.sum. scripts/control-plane.sh builds them with `go build`.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
