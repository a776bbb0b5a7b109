// Package mlog is a klog-backed stand-in for monis.app/mlog (which the
// module proxy does not serve), with only what the Secrets Store CSI
// Driver uses: test infrastructure for building the driver.
package mlog

import (
	"context"
	"fmt"
	"os"

	"k8s.io/klog/v2"
)

type LogFormat string

const (
	FormatText LogFormat = "text"
	FormatJSON LogFormat = "json"
)

func Setup() func() { return klog.Flush }

func ValidateAndSetKlogLevelAndFormatGlobally(_ context.Context, _ klog.Level, _ LogFormat) error {
	return nil
}

func Error(msg string, err error, kv ...any) { klog.ErrorS(err, msg, kv...) }

func Fatal(err error, kv ...any) {
	klog.ErrorS(err, "fatal", kv...)
	klog.Flush()
	fmt.Fprintln(os.Stderr, err)
	os.Exit(1)
}
