//go:build race

package audit

// raceEnabled: the race detector slows the single-goroutine comparisons
// of random texts some twenty times, and finds nothing in them; they
// run fewer texts under it.
const raceEnabled = true
