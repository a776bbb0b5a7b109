package child

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
)

// Conventional exit codes, as POSIX shells report them, for a command that
// could not be run.
const (
	// CodeNotExecutable is the exit code for a command that was found but
	// cannot be executed (permission denied, a directory, a bad format).
	CodeNotExecutable = 126
	// CodeNotFound is the exit code for a command that does not exist.
	CodeNotFound = 127
)

// ExitError is a failure to run a command that carries the exit code keyward
// should exit with: CodeNotFound (127), CodeNotExecutable (126), or 1 when
// the system refused (out of memory, processes or files). Its message is one
// line, for example `exec "foo": executable file not found in $PATH`; it
// names the command, never its arguments or environment.
type ExitError struct {
	Code int
	Err  error
}

// Error returns the message of the underlying error.
func (e *ExitError) Error() string { return e.Err.Error() }

// Unwrap returns the underlying error, so errors.Is(err, exec.ErrNotFound)
// and errors.Is(err, fs.ErrPermission) work.
func (e *ExitError) Unwrap() error { return e.Err }

// ExitCode returns the exit code that err carries: the Code of an *ExitError
// anywhere in its chain, or the status of an *exec.ExitError (128+N when the
// process was killed by signal N). ok is false for nil and for errors that
// carry no exit code.
func ExitCode(err error) (code int, ok bool) {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code, true
	}
	var xe *exec.ExitError
	if errors.As(err, &xe) {
		if ws, isWS := xe.Sys().(syscall.WaitStatus); isWS && ws.Signaled() {
			return 128 + int(ws.Signal()), true
		}
		return xe.ExitCode(), true
	}
	return 0, false
}

// Exec replaces the keyward process with argv, with exactly the environment
// env (nil means keyward's own, os.Environ()). argv[0] is resolved like a
// shell does: a name containing a slash is used as it is, any other name is
// searched in the PATH found in env (keyward's own PATH when env has none).
//
// Exec returns only when the command cannot be started, with an *ExitError:
// CodeNotFound when the command does not exist, CodeNotExecutable when it
// exists but cannot be executed (see ExitError); or with a plain error when
// argv is empty. Nothing keyward holds survives the exec except what env
// passes on, its open files without close-on-exec, its rlimits and its
// ignored signals. Exec must not be called while keyward is PID 1 and
// should reap zombies; use Run then.
func Exec(argv []string, env []string) error {
	if len(argv) == 0 {
		return errors.New("exec: no command")
	}
	if env == nil {
		env = os.Environ()
	}
	path, err := lookPath(argv[0], env)
	if err != nil {
		return err
	}
	return execError(argv[0], syscall.Exec(path, argv, env))
}

// lookPath resolves file as execvp(3) would, with the PATH of env. It returns
// an *ExitError when nothing runnable is found.
func lookPath(file string, env []string) (string, error) {
	if file == "" {
		return "", &ExitError{Code: CodeNotFound, Err: fmt.Errorf("exec %q: %w", file, exec.ErrNotFound)}
	}
	if strings.Contains(file, "/") {
		if err := checkExecutable(file); err != nil {
			return "", execError(file, err)
		}
		return file, nil
	}
	var denied error
	for _, dir := range filepath.SplitList(pathOf(env)) {
		if dir == "" {
			dir = "." // POSIX: an empty PATH entry is the working directory
		}
		p := filepath.Join(dir, file)
		err := checkExecutable(p)
		switch {
		case err == nil && !filepath.IsAbs(p):
			// As os/exec does since Go 1.19: never run a program picked up
			// from the working directory through a relative PATH entry.
			return "", &ExitError{Code: CodeNotExecutable, Err: fmt.Errorf("exec %q: %w", file, exec.ErrDot)}
		case err == nil:
			return p, nil
		case errors.Is(err, fs.ErrPermission) && denied == nil:
			denied = err // as execvp: remember, keep searching, report if nothing else runs
		}
	}
	if denied != nil {
		return "", execError(file, denied)
	}
	return "", &ExitError{Code: CodeNotFound, Err: fmt.Errorf("exec %q: %w", file, exec.ErrNotFound)}
}

// pathOf returns the last PATH in env (the one getenv would see after
// deduplication), or keyward's own PATH when env has none.
func pathOf(env []string) string {
	for i := len(env) - 1; i >= 0; i-- {
		if v, ok := strings.CutPrefix(env[i], "PATH="); ok {
			return v
		}
	}
	return os.Getenv("PATH")
}

// checkExecutable reports whether path names a regular file with an execute
// bit. Directories and files without one report fs.ErrPermission (errno
// EACCES), as execve(2) would.
func checkExecutable(path string) error {
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return syscall.EACCES
	}
	return nil
}

// execError maps a failure to start name to an *ExitError: ENOENT and
// ENOTDIR are "not found" (127), a lack of memory, processes or files is a
// runtime failure (1), everything else "cannot execute" (126).
func execError(name string, err error) error {
	if err == nil {
		return nil
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		err = pe.Err // the path is name or derived from it; say it once
	}
	code := CodeNotExecutable
	switch {
	case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ENOTDIR):
		code = CodeNotFound
	case errors.Is(err, syscall.EAGAIN), errors.Is(err, syscall.ENOMEM),
		errors.Is(err, syscall.EMFILE), errors.Is(err, syscall.ENFILE):
		code = 1
	}
	return &ExitError{Code: code, Err: fmt.Errorf("exec %q: %w", name, err)}
}
