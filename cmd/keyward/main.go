// Command keyward fetches secrets from Vault, AWS Secrets Manager, GCP
// Secret Manager, Kubernetes or local files and hands them to a workload as
// environment variables or files with strict permissions.
//
// main is a thin shell over run; see root.go for the commands.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], env{getenv: os.Getenv, environ: os.Environ}, os.Stdin, os.Stdout, os.Stderr))
}
