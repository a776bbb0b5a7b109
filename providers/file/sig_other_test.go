//go:build !linux

package file_test

import "errors"

// defaultSIGXFSZ is Linux only (see sig_linux_test.go).
func defaultSIGXFSZ() error { return errors.ErrUnsupported }
