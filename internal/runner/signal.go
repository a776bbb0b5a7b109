package runner

import (
	"context"
	"os/signal"
	"syscall"
)

// StopOnSignal returns a copy of ctx that is cancelled when keyward is told
// to stop: SIGTERM (a supervisor, the kubelet) or SIGINT (Ctrl-C). Until
// stop is called those signals are caught rather than ending the process;
// after it, a further one has its default effect (keyward ends at once).
// Every command that stops on a signal uses it.
func StopOnSignal(ctx context.Context) (_ context.Context, stop context.CancelFunc) {
	return signal.NotifyContext(ctx, syscall.SIGTERM, syscall.SIGINT)
}
