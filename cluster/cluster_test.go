package cluster

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
)

// A wait that times out reports why the condition did not hold, not the
// deadline that cut its last call short.
func TestPollReportsTheLastReasonNotTheDeadline(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	calls := 0
	err := Poll(ctx, "services", func(ctx context.Context) error {
		calls++
		if calls == 1 {
			return errors.New("passing: haproxy 0/1")
		}
		// The wait ends while this call is in flight: it fails with it.
		cancel()
		return fmt.Errorf("consul health of backend: %w", ctx.Err())
	})
	if err == nil || !strings.Contains(err.Error(), "haproxy 0/1") || strings.Contains(err.Error(), "canceled") {
		t.Fatalf("after %d calls: %v; want the wait's end to name haproxy 0/1, not the cancelled call", calls, err)
	}
	if err := Poll(t.Context(), "done", func(context.Context) error { return nil }); err != nil {
		t.Fatalf("a condition that holds: %v", err)
	}
}
