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
	"os/exec"
	"path/filepath"
	"testing"
	"time"

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

// prepare builds keyward and testapp and their images into dir/images
// (with test/e2e/mkimages, a program of its own: the race detector makes
// image building here take minutes).
func prepare(dir string) error {
	// Built or installed here, where the network is reachable.
	for _, script := range []string{"helm.sh", "vault.sh", "csi-driver.sh"} {
		if _, err := testenv.Binary(script); err != nil {
			return err
		}
	}
	bin := func(name string) string { return filepath.Join(dir, "bin", name) }
	for pkg, out := range map[string]string{"./cmd/keyward": "keyward", "./test/e2e/testapp": "testapp", "./test/e2e/mkimages": "mkimages"} {
		if err := kubenode.BuildStatic(pkg, bin(out)); err != nil {
			return err
		}
	}
	cmd := exec.Command(bin("mkimages"), "-out", filepath.Join(dir, "images"),
		"-keyward", bin("keyward"), "-keyward-ref", KeywardImage,
		"-testapp", bin("testapp"), "-app-ref", AppImage, "-app-user1000-ref", AppUser1000Image)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("mkimages: %v: %s", err, out)
	}
	return nil
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
