#!/usr/bin/env bash
# Installs etcd (3.4, Debian's etcd-server package) when it is missing and
# prints the path of the etcd binary on the last line of stdout. Progress goes
# to stderr. Idempotent: costs nothing when etcd is already installed.
#
# Used by the Kubernetes provider's integration tests (internal/testenv/kube.go),
# which start etcd on a free 127.0.0.1 port under a temporary data directory.
set -euo pipefail

if ! command -v etcd >/dev/null 2>&1; then
	if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
		echo "etcd.sh: etcd is missing; install Debian's etcd-server package (apt-get install etcd-server)" >&2
		exit 1
	fi
	echo "etcd.sh: installing etcd-server (Debian package)…" >&2
	# Serialise with other scripts installing packages at the same time.
	exec 9>/var/lock/keyward-etcd-install.lock
	flock 9
	if ! command -v etcd >/dev/null 2>&1; then
		export DEBIAN_FRONTEND=noninteractive
		if ! apt-get install -y -qq --no-install-recommends etcd-server >&2; then
			apt-get update -qq >&2
			apt-get install -y -qq --no-install-recommends etcd-server >&2
		fi
		# The package enables an etcd service on installation; the tests run
		# their own etcd, so stop one that the package may have started.
		if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
			systemctl disable --now etcd >/dev/null 2>&1 || true
		fi
	fi
fi
command -v etcd
