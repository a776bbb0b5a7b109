// Package rotate owns time in keyward: it decides when each secret is
// looked at again, notices rotations, re-renders the files they affect and
// runs the on_change actions. It is the one package (with the child
// supervisor it drives) that starts goroutines; every function that starts
// them returns only after they have all exited.
//
// An Engine is built from the resolved configuration (secret references,
// files, the names that reach the child's environment, on_change actions).
// Init fetches every secret at once and renders every file, all or nothing.
// Run then keeps them fresh until its context ends:
//
//   - a provider with a native watch (providers.Watcher: fsnotify for files,
//     the Kubernetes watch) reports changes as they happen; watch events are
//     debounced (Options.Debounce, at most Options.MaxDelay) so a burst of
//     writes costs one fetch per secret and one render;
//   - a secret with a lease (a Vault dynamic secret) is renewed at about 2/3
//     of its TTL, with jitter, through providers.LeaseRenewer, and fetched
//     anew when renewal is refused (providers.ErrLeaseNotRenewable) or the
//     lease is not renewable;
//   - every other secret is polled at Options.Interval ± jitter (default
//     30 s when the provider has a cheap version probe, 5 min when not),
//     with providers.VersionProber where available so that a full read
//     happens only when the version moved. A watched secret is polled only
//     as a slow safety net (max(10 × Interval, 10 min)) while its watch
//     runs, and at Interval while the watch is down.
//
// A change is the value of a configured secret name differing from the
// last one (whatever the version says). Changes found together are applied
// together: only the files that use a changed name are rendered again, and
// the on_change actions of the files that were actually rewritten (and of
// the environment, when a name the child gets through its environment
// changed) run once: at most one restart, each signal once, each command
// once.
//
// Failures keep the last good values in memory and on disk; the failing
// secret is retried with capped exponential backoff and full jitter
// (honouring Retry-After), logged at most once per Options.LogEvery while
// the failure persists, and recovers by itself. Ready reports not ready
// before the first render and once a lease has expired without being
// replaced.
package rotate
