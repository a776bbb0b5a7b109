//go:build linux

// Command mkimages writes the images of keyward's end-to-end tests as
// docker-save archives for the test node's containerd: keyward's own
// image, made by the release's builder (internal/ociimage), so the image
// the tests run is the image users get, and testapp's images, one with no
// USER and one whose USER is 1000. It runs as a program of its own,
// outside the race-instrumented test binary, where compressing a 40 MB
// layer takes minutes.
//
//	mkimages -out DIR -keyward BIN -keyward-ref REF -testapp BIN -app-ref REF -app-user1000-ref REF
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keyward/keyward/internal/ociimage"
	"github.com/keyward/keyward/internal/testenv/kubenode"
)

func main() {
	out := flag.String("out", "", "directory of the archives")
	kwBin := flag.String("keyward", "", "static keyward binary for this machine's platform")
	kwRef := flag.String("keyward-ref", "", "name of keyward's image")
	appBin := flag.String("testapp", "", "static testapp binary for this machine's platform")
	appRef := flag.String("app-ref", "", "name of testapp's image without USER")
	app1000Ref := flag.String("app-user1000-ref", "", "name of testapp's image with USER 1000")
	flag.Parse()
	if err := run(*out, *kwBin, *kwRef, *appBin, *appRef, *app1000Ref); err != nil {
		fmt.Fprintf(os.Stderr, "mkimages: %v\n", err)
		os.Exit(1)
	}
}

func run(out, kwBin, kwRef, appBin, appRef, app1000Ref string) error {
	kw, err := os.ReadFile(kwBin)
	if err != nil {
		return err
	}
	app, err := os.ReadFile(appBin)
	if err != nil {
		return err
	}
	// The release's image, for this machine's platform only.
	idx, err := ociimage.Index(map[string][]byte{"linux/" + runtime.GOARCH: kw}, ociimage.Options{Created: time.Unix(0, 0)})
	if err != nil {
		return err
	}
	if err := ociimage.WriteImageArchive(filepath.Join(out, "keyward.tar"), idx, kwRef, time.Unix(0, 0)); err != nil {
		return err
	}
	files := []kubenode.File{{Path: "/testapp", Mode: 0o755, Data: app}, {Path: "/tmp", Mode: 0o1777, Dir: true}}
	if err := kubenode.WriteImage(filepath.Join(out, "app.tar"), appRef, files, v1.Config{Entrypoint: []string{"/testapp"}}); err != nil {
		return err
	}
	return kubenode.WriteImage(filepath.Join(out, "app-user1000.tar"), app1000Ref, files, v1.Config{Entrypoint: []string{"/testapp"}, User: "1000"})
}
