#!/usr/bin/env bash
# Sourced by test/servers/containerd.sh and runc.sh; defines one function.
#
# deb_extract PACKAGE UPSTREAM_VERSION DIR: downloads Debian's PACKAGE with
# `apt-get download` (nothing is installed: no files land outside DIR, no
# service starts) and extracts it with `dpkg-deb -x` into DIR/root. The
# upstream version is pinned: a package whose version does not start with
# UPSTREAM_VERSION is refused, so a newer Debian release cannot change what
# the tests run unnoticed; the Debian revision (security fixes) may differ.
deb_extract() {
	local pkg="$1" want="$2" dir="$3" deb got
	mkdir -p "$dir/debs"
	(cd "$dir/debs" && apt-get download -q "$pkg" >&2) || {
		apt-get update -qq >&2 && (cd "$dir/debs" && apt-get download -q "$pkg" >&2)
	} || {
		echo "cannot download Debian's $pkg package (apt-get download $pkg)" >&2
		return 1
	}
	deb="$(ls "$dir/debs/${pkg}_"*.deb | head -n1)"
	got="$(dpkg-deb -f "$deb" Version)"
	case "$got" in
	"$want"* | *:"$want"*) ;;
	*)
		echo "Debian's $pkg is version $got, not the pinned $want" >&2
		return 1
		;;
	esac
	dpkg-deb -x "$deb" "$dir/root"
	echo "$got" >"$dir/debian-version"
}
