package cluster

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
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

func TestHTTPOK(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/ok" {
			http.Error(w, "no", http.StatusServiceUnavailable)
		}
	}))
	defer srv.Close()
	if err := HTTPOK(srv.URL + "/ok")(t.Context()); err != nil {
		t.Errorf("200: %v", err)
	}
	if err := HTTPOK(srv.URL + "/down")(t.Context()); err == nil || !strings.Contains(err.Error(), "503") {
		t.Errorf("503: %v, want an error naming the status", err)
	}
}
