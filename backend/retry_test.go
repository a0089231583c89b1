package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

func TestConnectionError(t *testing.T) {
	opErr := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"no rows", pgx.ErrNoRows, false},
		{"wrapped no rows", fmt.Errorf("scan: %w", pgx.ErrNoRows), false},
		{"client canceled", context.Canceled, false},
		{"attempt deadline", context.DeadlineExceeded, true},
		{"eof", io.EOF, true},
		{"unexpected eof", fmt.Errorf("read: %w", io.ErrUnexpectedEOF), true},
		{"closed conn", net.ErrClosed, true},
		{"connection refused", opErr, true},
		{"connection reset", syscall.ECONNRESET, true},
		{"broken pipe", syscall.EPIPE, true},
		{"connect error", &pgconn.ConnectError{}, true},
		{"admin shutdown 57P01", &pgconn.PgError{Code: "57P01"}, true},
		{"crash shutdown 57P02", &pgconn.PgError{Code: "57P02"}, true},
		{"cannot connect now 57P03", &pgconn.PgError{Code: "57P03"}, true},
		{"connection failure 08006", &pgconn.PgError{Code: "08006"}, true},
		{"connection exception 08000", fmt.Errorf("q: %w", &pgconn.PgError{Code: "08000"}), true},
		{"query canceled 57014", &pgconn.PgError{Code: "57014"}, false},
		{"serialization 40001", &pgconn.PgError{Code: "40001"}, false},
		{"undefined table 42P01", &pgconn.PgError{Code: "42P01"}, false},
		{"bad password during connect", fmt.Errorf("connect: %w", &pgconn.PgError{Code: "28P01"}), false},
		{"plain error", errors.New("boom"), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := connectionError(tt.err); got != tt.want {
				t.Errorf("connectionError(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestWriteSafeToRetry(t *testing.T) {
	tests := []struct {
		name string
		err  error
		want bool
	}{
		{"connect error", &pgconn.ConnectError{}, true},
		{"eof after sending", io.EOF, false},
		{"deadline after sending", context.DeadlineExceeded, false},
		{"server error", &pgconn.PgError{Code: "57P01"}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writeSafeToRetry(tt.err); got != tt.want {
				t.Errorf("writeSafeToRetry(%v) = %v, want %v", tt.err, got, tt.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	p := DefaultReadPolicy(time.Second)
	want := []time.Duration{10, 20, 40, 80, 100, 100}
	for i, w := range want {
		if got := p.backoff(i + 1); got != w*time.Millisecond {
			t.Errorf("backoff(%d) = %s, want %s", i+1, got, w*time.Millisecond)
		}
	}
}

// fakeRow scans the values of one items row plus the follower identity.
type fakeRow struct {
	err  error
	item Item
	name string
	host string
	port int32
}

func (r fakeRow) Scan(dest ...any) error {
	if r.err != nil {
		return r.err
	}
	*dest[0].(*int64) = r.item.ID
	if len(dest) == 4 { // INSERT ... RETURNING id, created_at, payload, replayed
		*dest[1].(*time.Time) = r.item.CreatedAt
		*dest[2].(*string) = r.item.Payload
		*dest[3].(*bool) = r.item.Replayed
		return nil
	}
	*dest[1].(*string) = r.item.Payload
	*dest[2].(*time.Time) = r.item.CreatedAt
	*dest[3].(*string) = r.name
	*dest[4].(**string) = &r.host
	*dest[5].(**int32) = &r.port
	return nil
}

// fakeDB answers QueryRow and Query with the queued errors first, then
// with row (Query: when its id is asked for; with all set, every id asked
// for gets a row of its own).
type fakeDB struct {
	mu      sync.Mutex
	fails   []error
	row     fakeRow
	all     bool
	calls   int
	batches [][]int64
	pingErr error
	// onQuery, if set, runs at the start of every Query; it may block.
	onQuery func(ids []int64)
}

func (f *fakeDB) Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error) {
	ids := args[0].([]int64)
	f.mu.Lock()
	f.calls++
	f.batches = append(f.batches, ids)
	var err error
	if len(f.fails) > 0 {
		err, f.fails = f.fails[0], f.fails[1:]
	}
	f.mu.Unlock()
	if f.onQuery != nil {
		f.onQuery(ids)
	}
	if err != nil {
		// pgx returns a failure to get a connection at once, and anything
		// after sending the query through the rows.
		if connectErr := (*pgconn.ConnectError)(nil); errors.As(err, &connectErr) {
			return nil, err
		}
		return &fakeRows{err: err}, nil
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	rows := &fakeRows{}
	for _, id := range ids {
		switch {
		case f.all:
			r := f.row
			r.item = Item{ID: id, Payload: fmt.Sprintf("seed-%d", id), CreatedAt: f.row.item.CreatedAt}
			rows.rows = append(rows.rows, r)
		case id == f.row.item.ID:
			rows.rows = append(rows.rows, f.row)
		}
	}
	return rows, nil
}

// fakeRows yields rows, then reports err. It implements the methods the
// store uses; the embedded nil interface stands in for the rest.
type fakeRows struct {
	pgx.Rows
	rows []fakeRow
	next int
	err  error
}

func (r *fakeRows) Close()                 {}
func (r *fakeRows) Conn() *pgx.Conn        { return nil } // not a real connection: never "direct"
func (r *fakeRows) Err() error             { return r.err }
func (r *fakeRows) Scan(dest ...any) error { return r.rows[r.next-1].Scan(dest...) }
func (r *fakeRows) Next() bool {
	if r.err != nil || r.next >= len(r.rows) {
		return false
	}
	r.next++
	return true
}

func (f *fakeDB) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls++
	if len(f.fails) > 0 {
		err := f.fails[0]
		f.fails = f.fails[1:]
		return fakeRow{err: err}
	}
	return f.row
}

func (f *fakeDB) Ping(ctx context.Context) error { return f.pingErr }

// noBackoff keeps the retry tests free of real pauses.
var noBackoff = RetryPolicy{MaxAttempts: 5, AttemptTimeout: time.Second}

func TestGetItemRetriesConnectionErrors(t *testing.T) {
	created := time.Date(2024, 1, 2, 3, 4, 5, 6, time.UTC)
	db := &fakeDB{
		fails: []error{io.ErrUnexpectedEOF, &pgconn.PgError{Code: "57P01"}},
		row:   fakeRow{item: Item{ID: 42, Payload: "p", CreatedAt: created}, name: "follower-1", host: "10.0.0.2", port: 5432},
	}
	retries := 0
	s := newStore(db, db, StoreOptions{ReadPolicy: noBackoff, OnReadRetry: func() { retries++ }})

	res, err := s.GetItem(context.Background(), 42)
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	if db.calls != 3 || res.Attempts != 3 || retries != 2 {
		t.Errorf("calls=%d attempts=%d retries=%d, want 3, 3, 2", db.calls, res.Attempts, retries)
	}
	want := Follower{Name: "follower-1", Addr: "10.0.0.2:5432"}
	if res.Follower != want || res.Item.ID != 42 || !res.Item.CreatedAt.Equal(created) {
		t.Errorf("got %+v, want item 42 from %+v", res, want)
	}
}

func TestGetItemErrors(t *testing.T) {
	refused := &pgconn.ConnectError{}
	tests := []struct {
		name      string
		fails     []error
		wantIs    error
		wantCalls int
	}{
		{"not found is not retried", nil, ErrNotFound, 1},
		{"query error is not retried", []error{&pgconn.PgError{Code: "42P01"}}, nil, 1},
		{"down for every attempt", []error{refused, refused, refused, refused, refused, refused}, ErrUnavailable, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			db := &fakeDB{fails: tt.fails}
			s := newStore(db, db, StoreOptions{ReadPolicy: noBackoff})
			_, err := s.GetItem(context.Background(), 7)
			if err == nil {
				t.Fatal("GetItem succeeded, want an error")
			}
			if tt.wantIs != nil && !errors.Is(err, tt.wantIs) {
				t.Errorf("err = %v, want it to wrap %v", err, tt.wantIs)
			}
			if tt.wantIs == nil && (errors.Is(err, ErrUnavailable) || errors.Is(err, ErrNotFound)) {
				t.Errorf("err = %v, want an unexpected (500) error", err)
			}
			if db.calls != tt.wantCalls {
				t.Errorf("calls = %d, want %d", db.calls, tt.wantCalls)
			}
		})
	}
}

func TestCreateItemRetriesOnlyUnsent(t *testing.T) {
	t.Run("connect error is retried", func(t *testing.T) {
		db := &fakeDB{fails: []error{&pgconn.ConnectError{}}, row: fakeRow{item: Item{ID: 10001, Payload: "x", CreatedAt: time.Now()}}}
		s := newStore(db, db, StoreOptions{WritePolicy: noBackoff})
		item, err := s.CreateItem(context.Background(), "x", "")
		if err != nil || item.ID != 10001 || db.calls != 2 {
			t.Fatalf("item=%+v err=%v calls=%d, want id 10001 after 2 calls", item, err, db.calls)
		}
	})
	t.Run("connection lost after sending is not retried", func(t *testing.T) {
		db := &fakeDB{fails: []error{io.ErrUnexpectedEOF}, row: fakeRow{item: Item{ID: 10001, Payload: "x"}}}
		s := newStore(db, db, StoreOptions{WritePolicy: noBackoff})
		_, err := s.CreateItem(context.Background(), "x", "")
		if !errors.Is(err, ErrUnavailable) || db.calls != 1 {
			t.Fatalf("err=%v calls=%d, want ErrUnavailable after 1 call", err, db.calls)
		}
	})
	t.Run("keyed write lost after sending is retried", func(t *testing.T) {
		db := &fakeDB{fails: []error{io.ErrUnexpectedEOF}, row: fakeRow{item: Item{ID: 10001, Payload: "x", Replayed: true}}}
		s := newStore(db, db, StoreOptions{WritePolicy: noBackoff})
		item, err := s.CreateItem(context.Background(), "x", "key-1")
		if err != nil || item.ID != 10001 || !item.Replayed || db.calls != 2 {
			t.Fatalf("item=%+v err=%v calls=%d, want the replayed id 10001 after 2 calls", item, err, db.calls)
		}
	})
	t.Run("key reused with another payload", func(t *testing.T) {
		db := &fakeDB{row: fakeRow{item: Item{ID: 10001, Payload: "first", Replayed: true}}}
		s := newStore(db, db, StoreOptions{WritePolicy: noBackoff})
		_, err := s.CreateItem(context.Background(), "second", "key-1")
		if !errors.Is(err, ErrKeyReused) {
			t.Fatalf("err=%v, want ErrKeyReused", err)
		}
	})
	t.Run("read-only standby is unavailable", func(t *testing.T) {
		db := &fakeDB{fails: []error{&pgconn.PgError{Code: "25006"}}}
		s := newStore(db, db, StoreOptions{WritePolicy: noBackoff})
		_, err := s.CreateItem(context.Background(), "x", "")
		if !errors.Is(err, ErrUnavailable) || db.calls != 1 {
			t.Fatalf("err=%v calls=%d, want ErrUnavailable after 1 call", err, db.calls)
		}
	})
}

// closedAddr returns a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// closedPortDSN returns a DSN for a loopback port nothing listens on.
func closedPortDSN(t *testing.T) string {
	t.Helper()
	return dsnFor(closedAddr(t))
}

// newStore returns a store with a single read lane.
func newStore(read, write db, opts StoreOptions) *PGStore {
	return newLaneStore([]db{read}, write, opts)
}

func dsnFor(addr string) string {
	return "postgres://app:secret@" + addr + "/app?sslmode=disable"
}

// fakeServer accepts TCP connections on loopback and hands each to handle.
func fakeServer(t *testing.T, handle func(net.Conn)) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var conns []net.Conn
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			wg.Go(func() { handle(c) })
		}
	})
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// realStore builds a PGStore over real pgx pools for dsn.
func realStore(t *testing.T, dsn string, read RetryPolicy) *PGStore {
	t.Helper()
	rp, err := newPool(context.Background(), dsn, poolOptions{maxConns: 4})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rp.Close)
	wp, err := newPool(context.Background(), dsn, poolOptions{maxConns: 2})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(wp.Close)
	return NewPGStore([]*pgxpool.Pool{rp}, wp, StoreOptions{ReadPolicy: read, WritePolicy: DefaultWritePolicy()})
}

func TestStoreAgainstUnreachableDatabase(t *testing.T) {
	const margin = 500 * time.Millisecond

	hangs := func(c net.Conn) { _, _ = io.Copy(io.Discard, c) } // never answers
	closes := func(c net.Conn) { c.Close() }                    // server gone mid-connect

	tests := []struct {
		name           string
		dsn            string
		requestTimeout time.Duration
		attemptTimeout time.Duration
		minAttempts    int
	}{
		{"closed port", closedPortDSN(t), 2 * time.Second, 700 * time.Millisecond, 5},
		{"server closes every connection", dsnFor(fakeServer(t, closes)), 2 * time.Second, 700 * time.Millisecond, 5},
		// Each attempt times out; the request deadline still holds.
		{"server never answers", dsnFor(fakeServer(t, hangs)), 600 * time.Millisecond, 250 * time.Millisecond, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := realStore(t, tt.dsn, DefaultReadPolicy(tt.attemptTimeout))

			ctx, cancel := context.WithTimeout(context.Background(), tt.requestTimeout)
			defer cancel()
			start := time.Now()
			res, err := s.GetItem(ctx, 1)
			elapsed := time.Since(start)
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("GetItem err = %v, want ErrUnavailable", err)
			}
			if elapsed > tt.requestTimeout+margin {
				t.Errorf("GetItem took %s, want under %s", elapsed, tt.requestTimeout+margin)
			}
			if res.Attempts < tt.minAttempts {
				t.Errorf("attempts = %d, want at least %d (err %v)", res.Attempts, tt.minAttempts, err)
			}

			ctx, cancel = context.WithTimeout(context.Background(), tt.requestTimeout)
			defer cancel()
			start = time.Now()
			_, err = s.CreateItem(ctx, "x", "")
			if !errors.Is(err, ErrUnavailable) {
				t.Fatalf("CreateItem err = %v, want ErrUnavailable", err)
			}
			if elapsed := time.Since(start); elapsed > tt.requestTimeout+margin {
				t.Errorf("CreateItem took %s, want under %s", elapsed, tt.requestTimeout+margin)
			}

			ctx, cancel = context.WithTimeout(context.Background(), readyTimeout)
			defer cancel()
			if err := s.Ready(ctx); !errors.Is(err, ErrUnavailable) {
				t.Errorf("Ready err = %v, want ErrUnavailable", err)
			}
		})
	}
}
