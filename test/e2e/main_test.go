//go:build integration

// Package e2e runs keyward in real pods on a real kubelet (see
// internal/testenv/kubenode): the chart's webhook injects keyward into
// annotated pods, which then run, and each test asserts what the
// application container sees.
package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"

	"github.com/keyward/keyward/internal/ociimage"
	"github.com/keyward/keyward/internal/testenv"
	"github.com/keyward/keyward/internal/testenv/kubenode"
)

// Images the tests run, imported into the node's containerd.
const (
	// KeywardImage is keyward's image under the name the examples and the
	// chart's README use (docker build -t keyward .).
	KeywardImage = "docker.io/library/keyward:latest"
	// AppImage is testapp with no USER: it runs as root unless the pod
	// says otherwise.
	AppImage = "keyward.test/app:1"
	// AppUser1000Image is testapp whose image config says USER 1000.
	AppUser1000Image = "keyward.test/app-user1000:1"
)

var node *kubenode.Node

func TestMain(m *testing.M) {
	os.Exit(kubenode.Run(m, kubenode.Options{Prepare: prepare, Setup: setup}))
}

// prepare builds keyward and testapp and their images into dir/images.
func prepare(dir string) error {
	if _, err := testenv.Binary("helm.sh"); err != nil {
		return err
	}
	bin := filepath.Join(dir, "bin")
	if err := kubenode.BuildStatic("./cmd/keyward", filepath.Join(bin, "keyward")); err != nil {
		return err
	}
	if err := kubenode.BuildStatic("./test/e2e/testapp", filepath.Join(bin, "testapp")); err != nil {
		return err
	}
	kw, err := os.ReadFile(filepath.Join(bin, "keyward"))
	if err != nil {
		return err
	}
	app, err := os.ReadFile(filepath.Join(bin, "testapp"))
	if err != nil {
		return err
	}
	images := filepath.Join(dir, "images")
	// keyward's image is the release's (internal/ociimage), for this
	// machine's platform only.
	idx, err := ociimage.Index(map[string][]byte{"linux/" + runtime.GOARCH: kw}, ociimage.Options{Created: time.Unix(0, 0)})
	if err != nil {
		return err
	}
	if err := ociimage.WriteImageArchive(filepath.Join(images, "keyward.tar"), idx, KeywardImage, time.Unix(0, 0)); err != nil {
		return err
	}
	appFiles := []kubenode.File{{Path: "/testapp", Mode: 0o755, Data: app}, {Path: "/tmp", Mode: 0o1777, Dir: true}}
	if err := kubenode.WriteImage(filepath.Join(images, "app.tar"), AppImage, appFiles, v1.Config{Entrypoint: []string{"/testapp"}}); err != nil {
		return err
	}
	return kubenode.WriteImage(filepath.Join(images, "app-user1000.tar"), AppUser1000Image, appFiles, v1.Config{Entrypoint: []string{"/testapp"}, User: "1000"})
}

func setup(ctx context.Context, n *kubenode.Node) error {
	node = n
	t0 := time.Now()
	for _, img := range []string{"keyward.tar", "app.tar", "app-user1000.tar"} {
		if err := n.ImportImage(ctx, filepath.Join(n.Dir, "images", img)); err != nil {
			return err
		}
	}
	t1 := time.Now()
	if err := installWebhook(ctx); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "e2e: node up in %v, images imported in %v, webhook injecting after %v\n", n.Up.Round(time.Millisecond), t1.Sub(t0).Round(time.Millisecond), time.Since(t1).Round(time.Millisecond))
	return nil
}
