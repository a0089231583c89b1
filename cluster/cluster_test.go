package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A wait that times out reports why the condition did not hold, not the
// deadline that cut its last call short.
func TestPollReportsTheLastReasonNotTheDeadline(t *testing.T) {
	ctx, cancel := context.WithTimeout(t.Context(), 3*PollInterval/2)
	defer cancel()
	calls := 0
	err := Poll(ctx, "services", func(ctx context.Context) error {
		calls++
		// The call in flight when the deadline passes fails with it.
		<-time.After(PollInterval)
		if ctx.Err() != nil {
			return fmt.Errorf("consul health of backend: %w", ctx.Err())
		}
		return errors.New("passing: haproxy 0/1")
	})
	if err == nil || !strings.Contains(err.Error(), "haproxy 0/1") || strings.Contains(err.Error(), "deadline") {
		t.Fatalf("after %d calls: %v; want the timeout to name haproxy 0/1, not the deadline", calls, err)
	}
	if err := Poll(t.Context(), "done", func(context.Context) error { return nil }); err != nil {
		t.Fatalf("a condition that holds: %v", err)
	}
}
