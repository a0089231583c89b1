package backend

import (
	"context"
	"errors"
	"net"
	"sync"
	"testing"
	"time"
)

// A pool with a dialer hands the DSN's host to it unresolved: the job
// renders a placeholder host (the service's Consul DNS name) while no
// instance passes, and the dialer, which asks Consul, decides where to go.
// Before, pgx resolved the placeholder itself, failed, and the dialer was
// never asked: a backend started while HAProxy was down never read again.
func TestPoolDialerGetsTheUnresolvedHost(t *testing.T) {
	var (
		mu    sync.Mutex
		addrs []string
	)
	refused := errors.New("test dialer: not connecting")
	dial := func(_ context.Context, _, addr string) (net.Conn, error) {
		mu.Lock()
		addrs = append(addrs, addr)
		mu.Unlock()
		return nil, refused
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	p, err := newPool(ctx, "postgres://app:pw@haproxy.service.consul.invalid/hastack?sslmode=disable", poolOptions{maxConns: 1, lifetime: time.Minute, dial: dial})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	if err := p.Ping(ctx); err == nil {
		t.Fatal("ping through a dialer that refuses: no error")
	}
	mu.Lock()
	defer mu.Unlock()
	if len(addrs) == 0 || addrs[0] != "haproxy.service.consul.invalid:5432" {
		t.Fatalf("dialer asked for %q, want the DSN's host unresolved, haproxy.service.consul.invalid:5432", addrs)
	}
}
