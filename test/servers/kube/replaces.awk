# Prints one `go mod edit` flag per k8s.io staging module that a
# k8s.io/kubernetes go.mod requires at v0.0.0, replacing it with the
# published version given as -v to=vX.Y.Z:
#   -replace=k8s.io/api=k8s.io/api@v0.36.3
# Used by test/servers/kube.sh; handles both the block form
# (require ( … )) and single-line `require path version` lines.
/^require[[:space:]]*\($/ { inreq = 1; next }
inreq && /^\)/ { inreq = 0; next }
{
	line = $0
	sub(/\/\/.*/, "", line)
	n = split(line, f, /[[:space:]]+/)
	mod = ""; ver = ""
	if (inreq) {
		for (i = 1; i <= n; i++) if (f[i] != "") { if (mod == "") mod = f[i]; else if (ver == "") ver = f[i] }
	} else if (f[1] == "require" && n >= 3) {
		mod = f[2]; ver = f[3]
	}
	if (mod ~ /^k8s\.io\// && ver == "v0.0.0") printf "-replace=%s=%s@%s\n", mod, mod, to
}
