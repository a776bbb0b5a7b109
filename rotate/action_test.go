package rotate

import (
	"context"
	"strings"
	"testing"
	"time"
)

func TestChildCommandRunner(t *testing.T) {
	t.Parallel()
	run := ChildCommandRunner(nil, nil, nil, nil)
	cases := []struct {
		name    string
		argv    []string
		timeout time.Duration
		want    string // "" for success
	}{
		{"ok", []string{"true"}, 0, ""},
		{"exit code", []string{"sh", "-c", "exit 3"}, 0, "exited with code 3"},
		{"not found", []string{"no-such-command-kw"}, 0, "no-such-command-kw"},
		{"timeout", []string{"sleep", "30"}, 100 * time.Millisecond, "timed out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			start := time.Now()
			err := run(context.Background(), c.argv, c.timeout)
			if c.want == "" && err != nil || c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
			if time.Since(start) > 10*time.Second {
				t.Fatal("took too long")
			}
		})
	}
}
