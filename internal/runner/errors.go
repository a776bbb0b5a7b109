package runner

import "fmt"

// The errors a run returns besides plain runtime failures, from which the
// command line takes keyward's exit code (DESIGN §9).

// ConfigError is a problem of the configuration: an invalid provider
// option, a reference that no instance of this build can take, an
// on_change that needs a child there is none of (keyward exits 78).
type ConfigError struct{ Err error }

func (e *ConfigError) Error() string { return e.Err.Error() }
func (e *ConfigError) Unwrap() error { return e.Err }

// UsageError is a problem of the command line (keyward exits 2).
type UsageError struct{ Err error }

func (e *UsageError) Error() string { return e.Err.Error() }
func (e *UsageError) Unwrap() error { return e.Err }

// ExitError ends keyward with Code: the child's exit status when Err is
// nil (there is nothing more to say), or the code of a child that could
// not be started (127 not found, 126 not executable) when Err says why.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("child exited with code %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

func configError(err error) error { return &ConfigError{Err: err} }
