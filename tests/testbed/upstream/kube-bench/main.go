// kube-bench, the CIS Kubernetes Benchmark runner, built from its Go module for the test bed.
// Upstream's main only calls cmd.Execute; this one does the same from a module of ours, so the
// version is pinned by go.mod here and the build never asks the module registry for a version
// list. The benchmark definitions (cfg/) come from the same module version: see
// tests/e2e/cis.rs.
package main

import "github.com/aquasecurity/kube-bench/cmd"

func main() {
	cmd.Execute()
}
