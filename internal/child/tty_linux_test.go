package child

import (
	"bufio"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTerminalInterrupt runs Run in a helper whose controlling terminal is a
// pseudo-terminal, presses Ctrl-C on it, and checks that the child gets
// SIGINT exactly once (from the terminal, not again from keyward), while a
// signal sent to keyward alone is still forwarded.
func TestTerminalInterrupt(t *testing.T) {
	t.Parallel()
	master, slave, err := openPTY()
	if err != nil {
		t.Skipf("no pseudo-terminal: %v", err)
	}
	defer master.Close()
	defer slave.Close()
	outR, outW, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer outR.Close()

	cmd := helperCommand("tty", "/bin/sh", "-c", trapScript("INT", "USR1"))
	cmd.Stdin, cmd.Stdout, cmd.Stderr = slave, outW, outW
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Start(); err != nil {
		outW.Close()
		t.Fatal(err)
	}
	outW.Close()
	defer cmd.Wait()
	defer cmd.Process.Kill()

	out := bufio.NewReader(outR)
	expect := func(want string) {
		t.Helper()
		if err := outR.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		got, err := out.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the helper's output: %v (read %q)", err, got)
		}
		if got = strings.TrimSuffix(got, "\n"); got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	}
	expect("ready")
	if _, err := master.Write([]byte{0x03}); err != nil { // Ctrl-C
		t.Fatal(err)
	}
	expect("INT")
	// Had keyward forwarded its own SIGINT too, the child would print INT
	// a second time before USR1: keyward forwards in order of arrival, and
	// the shell runs pending traps in signal-number order.
	if err := cmd.Process.Signal(syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	expect("USR1")
	if _, err := master.Write([]byte{0x04}); err != nil { // Ctrl-D: cat sees EOF
		t.Fatal(err)
	}
	expect("bye")
	expect("code=0 err=<nil>")
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v", err)
	}
}

// openPTY opens a new pseudo-terminal pair.
func openPTY() (master, slave *os.File, err error) {
	m, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, nil, err
	}
	fd := int(m.Fd())
	if err := unix.IoctlSetPointerInt(fd, unix.TIOCSPTLCK, 0); err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("unlockpt: %w", err)
	}
	n, err := unix.IoctlGetUint32(fd, unix.TIOCGPTN)
	if err != nil {
		m.Close()
		return nil, nil, fmt.Errorf("ptsname: %w", err)
	}
	s, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		m.Close()
		return nil, nil, err
	}
	return m, s, nil
}
