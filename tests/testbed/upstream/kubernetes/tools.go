//go:build tools

// The conformance suite's programs, built straight from upstream's packages by build.sh (--only
// conformance): listed here so that go.mod and go.sum pin everything they link.
package tools

import (
	_ "github.com/onsi/ginkgo/v2/ginkgo"
	_ "k8s.io/kubernetes/test/e2e"
	_ "k8s.io/kubernetes/test/images/agnhost"
)
