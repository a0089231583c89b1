package backend

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"
)

// fakeLocator answers with addrs or err, whatever the test sets last; a
// service in services gets its own addresses instead.
type fakeLocator struct {
	mu       sync.Mutex
	addrs    []string
	err      error
	services map[string][]string
}

func (f *fakeLocator) set(addrs []string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.addrs, f.err = addrs, err
}

func (f *fakeLocator) Passing(ctx context.Context, service string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if addrs, ok := f.services[service]; ok {
		return addrs, nil
	}
	return f.addrs, f.err
}

// listener accepts connections on loopback (and closes them) and reports
// its address.
func listener(t *testing.T) string {
	t.Helper()
	return fakeServer(t, func(c net.Conn) { c.Close() })
}

func TestServiceDialerFollowsConsul(t *testing.T) {
	old, moved, dsnAddr := listener(t), listener(t), listener(t)
	loc := &fakeLocator{}
	d := &serviceDialer{service: "postgres-primary", loc: loc, log: slog.New(slog.DiscardHandler)}
	dial := func() string {
		t.Helper()
		c, err := d.Dial(context.Background(), "tcp", dsnAddr)
		if err != nil {
			t.Fatalf("dial: %v", err)
		}
		defer c.Close()
		return c.RemoteAddr().String()
	}

	loc.set(nil, errors.New("agent down"))
	if got := dial(); got != dsnAddr {
		t.Errorf("nothing located yet: dialed %s, want the DSN's %s", got, dsnAddr)
	}
	loc.set([]string{old}, nil)
	if got := dial(); got != old {
		t.Errorf("dialed %s, want the passing instance %s", got, old)
	}
	loc.set(nil, nil) // briefly no passing instance: keep the last one
	if got := dial(); got != old {
		t.Errorf("no passing instance: dialed %s, want the last known %s", got, old)
	}
	loc.set([]string{moved}, nil) // a planned stop placed it elsewhere
	if got := dial(); got != moved {
		t.Errorf("after the move: dialed %s, want %s", got, moved)
	}
	loc.set(nil, errors.New("agent down"))
	if got := dial(); got != moved {
		t.Errorf("consul down: dialed %s, want the last known %s", got, moved)
	}
}

func TestServiceDialerReportsWhereItFailed(t *testing.T) {
	gone := closedAddr(t)
	d := &serviceDialer{service: "haproxy", loc: &fakeLocator{addrs: []string{gone}}, log: slog.New(slog.DiscardHandler)}
	_, err := d.Dial(context.Background(), "tcp", "127.0.0.1:1")
	if err == nil || !connectionError(err) {
		t.Fatalf("err = %v, want a connection error", err)
	}
	if want := "dial haproxy at " + gone; !strings.Contains(err.Error(), want) {
		t.Errorf("err = %v, want it to say %q", err, want)
	}
}

func TestServiceDialerGoesAroundADeadServiceToTheFallback(t *testing.T) {
	alive, follower := listener(t), listener(t)
	gone := closedAddr(t)
	loc := &fakeLocator{services: map[string][]string{"haproxy": {alive}, "postgres-follower": {follower}}}
	d := &serviceDialer{service: "haproxy", fallback: "postgres-follower", loc: loc, log: slog.New(slog.DiscardHandler)}
	dial := func() (string, error) {
		c, err := d.Dial(context.Background(), "tcp", "127.0.0.1:1")
		if err != nil {
			return "", err
		}
		defer c.Close()
		return c.RemoteAddr().String(), nil
	}

	if got, err := dial(); err != nil || got != alive {
		t.Errorf("haproxy up: dialed %s (%v), want haproxy at %s", got, err, alive)
	}
	loc.services["haproxy"] = []string{gone} // killed, still listed
	if got, err := dial(); err != nil || got != follower {
		t.Errorf("haproxy refusing: dialed %s (%v), want the follower at %s", got, err, follower)
	}
	loc.services["postgres-follower"] = nil
	_, err := dial()
	if err == nil || !connectionError(err) {
		t.Fatalf("nothing to fall back to: err = %v, want a connection error", err)
	}
	for _, want := range []string{"dial haproxy at " + gone, "fall back to postgres-follower: no passing instance"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("err = %v, want it to say %q", err, want)
		}
	}
}

func TestOnlyAConnectionAroundTheServiceExpires(t *testing.T) {
	alive, follower := listener(t), listener(t)
	loc := &fakeLocator{services: map[string][]string{"haproxy": {alive}, "postgres-follower": {follower}}}
	const life = time.Minute
	d := &serviceDialer{service: "haproxy", fallback: "postgres-follower", loc: loc, log: slog.New(slog.DiscardHandler), aroundLifetime: life}
	dial := func() net.Conn {
		t.Helper()
		c, err := d.Dial(context.Background(), "tcp", "127.0.0.1:1")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}

	start := time.Now()
	through := dial()
	loc.services["haproxy"] = []string{closedAddr(t)}
	around := dial()
	if got := around.RemoteAddr().String(); got != follower {
		t.Fatalf("dialed %s, want the follower at %s", got, follower)
	}
	if wentAround(through) || !wentAround(around) {
		t.Errorf("went around: through haproxy %v, straight to the follower %v; want false, true", wentAround(through), wentAround(around))
	}
	for _, at := range []time.Duration{0, life - time.Second, 10 * life} {
		if expired(through, start.Add(at)) {
			t.Errorf("through haproxy: expired after %v, want it to live the pool's lifetime", at)
		}
	}
	if expired(around, start.Add(life-time.Second)) {
		t.Errorf("around haproxy: expired before its lifetime %v", life)
	}
	// The lifetime plus up to half again of jitter.
	if !expired(around, time.Now().Add(life*3/2)) {
		t.Errorf("around haproxy: not expired after %v", life*3/2)
	}
}

// acceptSession answers a Postgres client's startup without a password,
// then reads until the client goes: enough for a pool to hold a connection.
func acceptSession(c net.Conn) {
	defer c.Close()
	be := pgproto3.NewBackend(c, c)
	if _, err := be.ReceiveStartupMessage(); err != nil {
		return
	}
	be.Send(&pgproto3.AuthenticationOk{})
	be.Send(&pgproto3.BackendKeyData{ProcessID: 1, SecretKey: []byte{0, 0, 0, 1}})
	be.Send(&pgproto3.ReadyForQuery{TxStatus: 'I'})
	if err := be.Flush(); err != nil {
		return
	}
	_, _ = io.Copy(io.Discard, c)
}

// A read pool keeps a connection through the service for its lifetime,
// and closes one that went around the service once its time is up, so the
// next one tries the service again (keepConn, the pools' AfterRelease).
func TestPoolRecyclesOnlyAConnectionAroundTheServiceWhenDue(t *testing.T) {
	service, follower := fakeServer(t, acceptSession), fakeServer(t, acceptSession)
	for _, tt := range []struct {
		name     string
		service  string        // where the service is listed
		around   time.Duration // aroundLifetime
		newConns int64         // connections opened for two acquires
	}{
		{"through the service", service, time.Nanosecond, 1},
		{"around the service, in its time", closedAddr(t), time.Hour, 1},
		{"around the service, its time up", closedAddr(t), time.Nanosecond, 2},
	} {
		t.Run(tt.name, func(t *testing.T) {
			loc := &fakeLocator{services: map[string][]string{"haproxy": {tt.service}, "postgres-follower": {follower}}}
			d := &serviceDialer{service: "haproxy", fallback: "postgres-follower", loc: loc, log: slog.New(slog.DiscardHandler), aroundLifetime: tt.around}
			pool, err := newPool(context.Background(), dsnFor(tt.service), poolOptions{maxConns: 1, lifetime: time.Hour, dial: d.Dial})
			if err != nil {
				t.Fatal(err)
			}
			defer pool.Close()
			for range 2 {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				c, err := pool.Acquire(ctx)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
				c.Release()
			}
			if got := pool.Stat().NewConnsCount(); got != tt.newConns {
				t.Errorf("opened %d connections for two acquires, want %d", got, tt.newConns)
			}
		})
	}
}

// A backend reads through the HAProxy on its own node when there is one,
// and through any other one when there is not.
func TestPickNearPrefersTheOwnHost(t *testing.T) {
	addrs := []string{"10.211.0.11:5433", "10.211.0.12:5433", "10.211.0.13:5433"}
	for range 50 {
		if got := pickNear(addrs, "10.211.0.12"); got != "10.211.0.12:5433" {
			t.Fatalf("pickNear = %s, want the instance on 10.211.0.12", got)
		}
	}
	seen := map[string]bool{}
	for range 200 {
		seen[pickNear(addrs, "10.211.0.99")] = true
	}
	if len(seen) != len(addrs) {
		t.Errorf("with none on the own host, picked %v, want every instance over 200 picks", seen)
	}
	if got := pickNear(addrs[:1], ""); got != addrs[0] {
		t.Errorf("no host given: %s, want %s", got, addrs[0])
	}
}
