// Package faults is keyward's fault suite: it runs the real keyward binary
// as an agent against the real stores (Vault, AWS Secrets Manager on moto,
// the Kubernetes API server, an OAuth2 server) through toxiproxy, and
// against hostile local conditions (kill -9 during rotations, a full disk,
// a read-only mount, a directory swapped for a symlink), and checks that
// the running app never loses a good value: the last good files stay on
// disk byte for byte and keep being served, the child is neither restarted
// nor signalled for nothing, /readyz tells the truth, errors are counted,
// and the agent recovers without a restart. An agent told to stop while its
// store hangs exits within its documented bounds, its files intact.
//
// The tests carry the build tag "integration" and run under `make test`;
// KEYWARD_FAULTS_LONG=1 (`make bench`) runs the longer variants. Each test
// logs its figures (faults survived, values lost, leftovers), and when
// KEYWARD_FAULTS_SUMMARY names a file, a summary line per test is written
// there for `make` to print.
package faults
