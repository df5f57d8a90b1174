//! Stand-ins for the Kubernetes server binaries, used only by the tests and the sandbox.
