package pgcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeConn answers InRecovery with rec or err; hang makes it wait for ctx,
// after marking asked (when set).
type fakeConn struct {
	rec    bool
	err    error
	hang   bool
	asked  chan struct{}
	closed atomic.Bool
}

func (f *fakeConn) InRecovery(ctx context.Context) (bool, error) {
	if f.hang {
		if f.asked != nil {
			close(f.asked)
		}
		<-ctx.Done()
		return false, ctx.Err()
	}
	return f.rec, f.err
}

func (f *fakeConn) Close(context.Context) error { f.closed.Store(true); return nil }

// dialer hands out conns in order and counts the dials.
type dialer struct {
	conns []*fakeConn
	err   error
	dials int
}

func (d *dialer) dial(ctx context.Context) (Conn, error) {
	d.dials++
	if d.err != nil {
		return nil, d.err
	}
	c := d.conns[0]
	d.conns = d.conns[1:]
	return c, nil
}

func TestCheckKeepsAHealthyConnection(t *testing.T) {
	d := &dialer{conns: []*fakeConn{{rec: true}}}
	c := NewChecker(Follower, d.dial)
	for i := range 3 {
		res, err := c.Check(context.Background())
		if err != nil {
			t.Fatalf("check %d: %v", i, err)
		}
		if res.Dialled != (i == 0) || res.InRecovery == nil || !*res.InRecovery {
			t.Errorf("check %d: %+v", i, res)
		}
	}
	if d.dials != 1 {
		t.Errorf("dials = %d, want 1", d.dials)
	}
}

func TestCheckWrongRoleFailsButKeepsTheConnection(t *testing.T) {
	for _, c := range []struct {
		role Role
		rec  bool
	}{{Follower, false}, {Primary, true}} {
		conn := &fakeConn{rec: c.rec}
		d := &dialer{conns: []*fakeConn{conn}}
		ch := NewChecker(c.role, d.dial)
		_, err := ch.Check(context.Background())
		if !errors.Is(err, ErrWrongRole) {
			t.Fatalf("%s in recovery=%t: err = %v, want ErrWrongRole", c.role, c.rec, err)
		}
		if _, err := ch.Check(context.Background()); !errors.Is(err, ErrWrongRole) || d.dials != 1 || conn.closed.Load() {
			t.Errorf("%s: second check err %v, dials %d, closed %t; want the same connection asked again", c.role, err, d.dials, conn.closed.Load())
		}
	}
}

func TestCheckRedialsAfterAFailedQuery(t *testing.T) {
	broken := &fakeConn{err: errors.New("unexpected EOF")}
	d := &dialer{conns: []*fakeConn{broken, {rec: false}}}
	c := NewChecker(Primary, d.dial)
	if _, err := c.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "unexpected EOF") {
		t.Fatalf("err = %v, want the query's error", err)
	}
	if !broken.closed.Load() {
		t.Error("the failed connection was not closed")
	}
	res, err := c.Check(context.Background())
	if err != nil || !res.Dialled || d.dials != 2 {
		t.Errorf("after a failure: %+v, %v, dials %d; want a new connection that passes", res, err, d.dials)
	}
}

// A server that restarted since the last check: the kept connection fails,
// and the same check dials again rather than reporting a failure.
func TestCheckStaleConnectionRedialsInTheSameCheck(t *testing.T) {
	kept := &fakeConn{rec: true}
	d := &dialer{conns: []*fakeConn{kept, {rec: true}}}
	c := NewChecker(Follower, d.dial)
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	kept.err = errors.New("unexpected EOF") // the server restarted
	res, err := c.Check(context.Background())
	if err != nil || !res.Dialled || d.dials != 2 || !kept.closed.Load() {
		t.Errorf("%+v, %v, dials %d, stale closed %t; want a pass on a new connection", res, err, d.dials, kept.closed.Load())
	}
	// A server that is down: the redial fails too, and the check with it.
	first := &fakeConn{rec: true}
	down := &dialer{conns: []*fakeConn{first}}
	c = NewChecker(Follower, down.dial)
	if _, err := c.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	first.err, down.err = errors.New("unexpected EOF"), errors.New("connection refused")
	if _, err := c.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "connection refused") {
		t.Errorf("server down: err = %v, want the redial's error", err)
	}
}

func TestCheckDialFailure(t *testing.T) {
	d := &dialer{err: errors.New("connection refused")}
	_, err := NewChecker(Follower, d.dial).Check(context.Background())
	if err == nil || !strings.HasPrefix(err.Error(), "connect: ") {
		t.Errorf("err = %v, want a connect error", err)
	}
}

// A hung server: the check ends at its deadline, and a check that waits
// behind it ends at its own, never later.
func TestCheckHungServerEndsAtTheDeadline(t *testing.T) {
	hung := &fakeConn{hang: true, asked: make(chan struct{})}
	d := &dialer{conns: []*fakeConn{hung}}
	c := NewChecker(Follower, d.dial)
	first := make(chan error, 1)
	ctx1, cancel1 := context.WithCancel(context.Background())
	defer cancel1()
	go func() { _, err := c.Check(ctx1); first <- err }()

	// Wait until the first check holds the connection, asking the server.
	select {
	case <-hung.asked:
	case <-time.After(5 * time.Second):
		t.Fatal("the first check never asked the server")
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := c.Check(ctx2); !errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "previous check") {
		t.Errorf("second check: %v, want it to give up waiting at its deadline", err)
	}
	cancel1()
	if err := <-first; !errors.Is(err, context.Canceled) {
		t.Errorf("first check: %v, want context.Canceled", err)
	}
}

// The real dialer against a server that accepts and never answers (a
// frozen Postgres): the check fails at its deadline instead of hanging.
func TestPGXDialerGivesUpOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			defer conn.Close()
		}
	}()
	dial, err := PGXDialer("postgres://app:pw@" + ln.Addr().String() + "/hastack?sslmode=disable")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	done := make(chan error, 1)
	go func() { _, err := NewChecker(Follower, dial).Check(ctx); done <- err }()
	select {
	case err := <-done:
		if err == nil || !strings.HasPrefix(err.Error(), "connect: ") {
			t.Errorf("err = %v, want a connect error", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the check did not end at its deadline")
	}
}

func TestHandler(t *testing.T) {
	healthy := &dialer{conns: []*fakeConn{{rec: true}}}
	wrong := &dialer{conns: []*fakeConn{{rec: false}}}
	down := &dialer{err: errors.New("connection refused")}
	for _, c := range []struct {
		name, method, path string
		d                  *dialer
		code               int
		want               string
	}{
		{"passing", "GET", "/health", healthy, 200, `"ok":true`},
		{"wrong role", "GET", "/health", wrong, 503, "pg_is_in_recovery() = false, want true for a follower"},
		{"down", "GET", "/health", down, 503, "connect: connection refused"},
		{"other path", "GET", "/", healthy, 404, "GET /health"},
		{"other method", "POST", "/health", healthy, 405, "method not allowed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var logs bytes.Buffer
			h := &Handler{Checker: NewChecker(Follower, c.d.dial), Timeout: time.Second, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, httptest.NewRequest(c.method, c.path, nil))
			if rec.Code != c.code || !strings.Contains(rec.Body.String(), c.want) {
				t.Errorf("%s %s: %d %s; want %d containing %q", c.method, c.path, rec.Code, rec.Body, c.code, c.want)
			}
			if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
				t.Errorf("Content-Type = %q", ct)
			}
			if !json.Valid(rec.Body.Bytes()) {
				t.Errorf("body is not JSON: %s", rec.Body)
			}
		})
	}
}

func TestHandlerLogsOnlyChanges(t *testing.T) {
	flaky := &fakeConn{rec: true}
	d := &dialer{conns: []*fakeConn{flaky}}
	var logs bytes.Buffer
	h := &Handler{Checker: NewChecker(Follower, d.dial), Timeout: time.Second, Log: slog.New(slog.NewJSONHandler(&logs, nil))}
	get := func() {
		h.ServeHTTP(httptest.NewRecorder(), httptest.NewRequest("GET", "/health", nil))
	}
	get()
	get()
	flaky.rec = false // promoted: no longer a follower
	get()
	get()
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "check passing") || !strings.Contains(lines[1], "check failing") {
		t.Errorf("logs:\n%s\nwant one 'passing' then one 'failing' line", logs.String())
	}
}

func TestParseConfig(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cfg, err := ParseConfig(nil, env(map[string]string{"ROLE": "follower", "NOMAD_ADDR_check": "127.0.0.1:23456"}), io.Discard)
	if err != nil || cfg.Role != Follower || cfg.Listen != "127.0.0.1:23456" || cfg.Timeout != 800*time.Millisecond {
		t.Errorf("from Nomad's env: %+v, %v", cfg, err)
	}
	for _, c := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, nil, `role "" is not primary or follower`},
		{[]string{"-role", "leader"}, nil, `role "leader" is not primary or follower`},
		{[]string{"-role", "primary", "-timeout", "0s"}, nil, "-timeout must be positive"},
		{[]string{"-role", "primary"}, map[string]string{"CHECK_TIMEOUT": "soon"}, "CHECK_TIMEOUT"},
		{[]string{"-role", "primary", "extra"}, nil, "unexpected arguments"},
	} {
		_, err := ParseConfig(c.args, env(c.env), io.Discard)
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%v %v: err = %v, want %q", c.args, c.env, err, c.want)
		}
	}
}

func TestRunServesUntilCancelled(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	// Nothing listens on port 1: the check answers 503 with the reason.
	go func() {
		done <- Run(ctx, []string{"-listen", addr, "-role", "follower", "-dsn", "postgres://app:pw@127.0.0.1:1/hastack?sslmode=disable"}, func(string) string { return "" }, io.Discard)
	}()
	var resp *http.Response
	for deadline := time.Now().Add(5 * time.Second); ; {
		if resp, err = http.Get("http://" + addr + "/health"); err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 503 || !strings.Contains(string(body), "connect: ") {
		t.Errorf("%d %s; want 503 with the connect error", resp.StatusCode, body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("Run: %v", err)
	}
}
