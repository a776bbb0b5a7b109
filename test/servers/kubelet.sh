#!/usr/bin/env bash
# Builds the kubelet v1.36.3 (with kube-apiserver, see kube.sh) into the test
# cache when it is not there yet and prints its path on the last line of
# stdout. Used by internal/testenv/node.go.
set -euo pipefail
exec bash "$(dirname "${BASH_SOURCE[0]}")/kube.sh" kubelet
