package backend

import (
	"context"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"
)

type countingResetter struct{ n atomic.Int32 }

func (c *countingResetter) Reset() { c.n.Add(1) }

// The write pool is reset when another member passes as the leader, not
// when the same one leaves and comes back, nor while none passes.
func TestLeaderWatchResetsOnANewLeaderOnly(t *testing.T) {
	w := &scriptedWatcher{answers: []watchAnswer{
		{[]string{"pg-1"}, 10},         // at start
		{nil, 11},                      // pg-1 fails its check
		{[]string{"pg-1"}, 12},         // and passes again: restarted in place
		{nil, 13},                      // its machine is gone
		{[]string{"pg-0"}, 14},         // the synchronous standby took over: reset
		{[]string{"pg-0"}, 15},         // nothing new
		{[]string{"pg-2", "pg-0"}, 16}, // a stale pg-2 beside pg-0: pg-0 is still there
		{[]string{"pg-0"}, 17},
	}}
	pool := &countingResetter{}
	stop := startLeaderWatch(context.Background(), w, "postgres-primary", pool, slog.New(slog.DiscardHandler))
	deadline := time.Now().Add(5 * time.Second)
	for {
		w.mu.Lock()
		spent := len(w.answers) == 0
		w.mu.Unlock()
		if spent || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Millisecond)
	}
	stop()
	if got := pool.n.Load(); got != 1 {
		t.Errorf("pool reset %d times, want once (pg-1 to pg-0)", got)
	}
}
