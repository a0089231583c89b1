package backend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrNotFound means the requested item does not exist.
var ErrNotFound = errors.New("item not found")

// ErrKeyReused means an idempotency key came back with a different payload.
var ErrKeyReused = errors.New("idempotency key already used for a different payload")

// ErrUnavailable means the database could not be reached (or kept failing
// at the connection level) within the request's deadline and attempts.
var ErrUnavailable = errors.New("database unavailable")

// Item is one row of the items table.
type Item struct {
	ID        int64
	Payload   string
	CreatedAt time.Time
	// Replayed is true when a write with the same idempotency key had
	// already created this row, so the write was not applied twice.
	Replayed bool
}

// Follower identifies the Postgres server that answered a read.
type Follower struct {
	// Name is the Patroni member that answered, e.g. "pg-1", or "primary"
	// when the leader served the read (HAProxy's fallback).
	Name string
	// Addr is the server's own address:port as it sees the connection;
	// empty over a Unix socket.
	Addr string
	// Direct is true when the read's connection went straight to the
	// follower, around the read service (HAProxy) while that was
	// unreachable (see aroundConn).
	Direct bool
}

// ReadResult is an item together with the server that returned it.
type ReadResult struct {
	Item     Item
	Follower Follower
	// Attempts is how many tries the read took; more than 1 means it was
	// retried after a connection-level failure.
	Attempts int
}

// Store is what the HTTP handlers need from the database.
type Store interface {
	// GetItem reads an item from a follower. It returns an error wrapping
	// ErrNotFound or ErrUnavailable for those cases.
	GetItem(ctx context.Context, id int64) (ReadResult, error)
	// CreateItem inserts an item on the primary. A non-empty key makes the
	// write idempotent: the same key returns the row it created the first
	// time. It returns an error wrapping ErrUnavailable when the primary
	// cannot take the write, ErrKeyReused for a key with another payload.
	CreateItem(ctx context.Context, payload, key string) (Item, error)
	// Ready checks that reads can be served right now.
	Ready(ctx context.Context) error
}

// db is the part of *pgxpool.Pool the store uses; tests substitute a fake.
type db interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
	QueryRow(ctx context.Context, sql string, args ...any) pgx.Row
	Ping(ctx context.Context) error
}

const (
	// serverNameSQL names the server that answers: its Patroni member name
	// (the hastack.member setting) while it is a standby, "primary" when it
	// is the leader.
	serverNameSQL = `CASE WHEN pg_is_in_recovery() THEN current_setting('hastack.member') ELSE 'primary' END`
	// One round trip returns the rows of a batch of reads (see readBatcher)
	// and which follower served them.
	readItemsSQL = `SELECT id, payload, created_at, ` + serverNameSQL + `, host(inet_server_addr()), inet_server_port() FROM items WHERE id = ANY($1)`
	// Which follower a read connection reached.
	followerNameSQL = `SELECT ` + serverNameSQL
	// An insert keyed by request_id (NULL: no key, never conflicts). On a
	// repeated key the no-op update locks and returns the existing row, even
	// when the first insert commits concurrently; xmax <> 0 marks that case.
	insertItemSQL = `INSERT INTO items (payload, request_id) VALUES ($1, $2)
ON CONFLICT (request_id) DO UPDATE SET request_id = EXCLUDED.request_id
RETURNING id, created_at, payload, xmax <> 0`
)

// PGStore is the Postgres Store: reads through HAProxy to the followers,
// writes through a pool to the primary.
//
// Reads go over a few connections ("lanes", each a pool of one connection),
// taken in turn by successive batches, and a retry moves to the next lane.
// HAProxy balances connections, not queries, so taking the lanes in turn is
// what spreads reads over the followers: a pool hands out its most recently
// used connection first, which kept a backend's reads on one follower for
// seconds at a time. A lane whose query failed at the connection level is
// passed over for laneSuspectFor, and a lane still busy with a stalled query
// is passed over too, while another lane is free, with every lane whose
// last answer came from the same follower: that follower may be hung.
type PGStore struct {
	lanes    []*readLane
	nextLane atomic.Uint32
	write    db
	reads    *readBatcher
	// laneMoved is marked (see signal) when a lane's answers start coming
	// from another follower; the rebalancer listens.
	laneMoved   chan struct{}
	readPolicy  RetryPolicy
	writePolicy RetryPolicy
	// stallAfter: a lane's query without an answer for this long makes
	// its follower's other lanes passed over (zero: never).
	stallAfter  time.Duration
	onReadRetry func()
	log         *slog.Logger
}

// StoreOptions tunes a PGStore. Zero values take the defaults.
type StoreOptions struct {
	ReadPolicy  RetryPolicy
	WritePolicy RetryPolicy
	// ReadConcurrency is how many read queries may be in flight at once;
	// reads beyond it queue and go out in batches.
	ReadConcurrency int
	// ReadStallAfter is how long a read query may go without an answer
	// before the reads queued behind it may go out on another connection;
	// zero means never.
	ReadStallAfter time.Duration
	// MaxReadBatch caps the reads sent in one query; 1 sends each alone.
	MaxReadBatch int
	// ReadBatchWait is how long, after a batch of at least
	// ReadBatchWaitAfter reads, the oldest queued read may wait for
	// MaxReadBatch reads to queue before its query goes; zero never waits.
	ReadBatchWait      time.Duration
	ReadBatchWaitAfter int
	// ReadBatchFillRecent makes that wait end once as many reads are
	// queued as in the largest recent batch, rather than MaxReadBatch.
	ReadBatchFillRecent bool
	// OnReadRetry is called once per read retry (for metrics).
	OnReadRetry func()
	// OnReadBatch is called after every read batch (for metrics).
	OnReadBatch func(BatchStats)
	Logger      *slog.Logger
	// now is the clock of the batcher: OnReadBatch's durations and how long
	// a queued read has waited for its batch to fill; nil: time.Now.
	now func() time.Time
}

// NewPGStore returns a store over the given read lanes and write pool. It
// does not own the pools; the caller closes them.
func NewPGStore(reads []*pgxpool.Pool, write *pgxpool.Pool, opts StoreOptions) *PGStore {
	lanes := make([]db, len(reads))
	for i, p := range reads {
		lanes[i] = p
	}
	return newLaneStore(lanes, write, opts)
}

// laneSuspectFor is how long a lane whose query failed at the connection
// level is passed over: about as long as Consul and HAProxy take to drop a
// dead or hung follower, so the lane's next connection goes elsewhere.
const laneSuspectFor = 2 * time.Second

// readLane is one read connection (a pool of one).
type readLane struct {
	db
	suspectUntil atomic.Int64 // unix nanoseconds
	follower     atomic.Value // string: who answered its last query
	retiring     atomic.Bool  // moving to a new connection (see spreadReads)
	queryStart   atomic.Int64 // unix nanoseconds the running query started; 0: none
}

// stalledFollowers returns the followers of the lanes whose running query
// has gone without an answer for longer than stallAfter.
func (s *PGStore) stalledFollowers(now int64) []string {
	if s.stallAfter <= 0 {
		return nil
	}
	var slow []string
	for _, l := range s.lanes {
		if t := l.queryStart.Load(); t != 0 && now-t > int64(s.stallAfter) {
			if f := l.lastFollower(); f != "" {
				slow = append(slow, f)
			}
		}
	}
	return slow
}

// lastFollower is the follower of the lane's last answer; "" when unknown.
func (l *readLane) lastFollower() string {
	f, _ := l.follower.Load().(string)
	return f
}

// suspect passes over lane, and every lane whose last query went to the
// same follower, for laneSuspectFor: their connections likely lead to the
// same dead or hung server. Where they lead is unknown until they answer
// again, so a rebalance (spreadReads) moves them first.
func (s *PGStore) suspect(lane *readLane) {
	until := time.Now().Add(laneSuspectFor).UnixNano()
	f := lane.lastFollower()
	lane.suspectUntil.Store(until)
	lane.follower.Store("")
	if f == "" {
		return
	}
	for _, l := range s.lanes {
		if l.lastFollower() == f {
			l.suspectUntil.Store(until)
			l.follower.Store("")
		}
	}
}

// busy reports whether the lane's connection is taken (or being opened).
func (l *readLane) busy() bool {
	p, ok := l.db.(*pgxpool.Pool)
	if !ok {
		return false
	}
	st := p.Stat()
	return st.AcquiredConns()+st.ConstructingConns() >= st.MaxConns()
}

// pickLane returns the lane for attempt n (from 1) of a batch that starts
// at base: the next in turn that is neither suspect, moving to a new
// connection, busy, nor on a follower with a stalled query; failing that,
// the next that is at least free and not suspect; then the next that is
// free, though suspect; or, with every lane busy or moving, the one in
// turn. A busy lane comes last because a query on it waits behind the
// one it is busy with, which may hang (a frozen follower holds every
// connection to it busy, with reads or readiness pings); a suspect lane's
// failure was a guess about its follower that a new try may prove wrong.
func (s *PGStore) pickLane(base uint32, n int32) *readLane {
	now := time.Now().UnixNano()
	first := int((base + uint32(n) - 1) % uint32(len(s.lanes)))
	slow := s.stalledFollowers(now)
	var onSlow, suspect *readLane // the first free lane of each kind
	for k := range s.lanes {
		l := s.lanes[(first+k)%len(s.lanes)]
		switch {
		case l.retiring.Load() || l.busy():
		case l.suspectUntil.Load() > now:
			suspect = cmp.Or(suspect, l)
		case slices.Contains(slow, l.lastFollower()):
			onSlow = cmp.Or(onSlow, l)
		default:
			return l
		}
	}
	return cmp.Or(onSlow, suspect, s.lanes[first])
}

func newLaneStore(dbs []db, write db, opts StoreOptions) *PGStore {
	lanes := make([]*readLane, len(dbs))
	for i, d := range dbs {
		lanes[i] = &readLane{db: d}
	}
	if opts.ReadPolicy.MaxAttempts == 0 {
		opts.ReadPolicy = DefaultReadPolicy(700 * time.Millisecond)
	}
	if opts.WritePolicy.MaxAttempts == 0 {
		opts.WritePolicy = DefaultWritePolicy()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &PGStore{
		lanes: lanes, write: write, laneMoved: make(chan struct{}, 1),
		readPolicy: opts.ReadPolicy, writePolicy: opts.WritePolicy,
		stallAfter: opts.ReadStallAfter, onReadRetry: opts.OnReadRetry, log: opts.Logger,
	}
	s.reads = &readBatcher{
		exec:       s.readItems,
		maxActive:  max(opts.ReadConcurrency, 1),
		maxBatch:   max(opts.MaxReadBatch, 1),
		stallAfter: opts.ReadStallAfter,
		fillWait:   opts.ReadBatchWait,
		fillAfter:  opts.ReadBatchWaitAfter,
		fillToPeak: opts.ReadBatchFillRecent,
		full:       make(chan struct{}, 1),
		onBatch:    opts.OnReadBatch,
		now:        opts.now,
	}
	if s.reads.now == nil {
		s.reads.now = time.Now
	}
	return s
}

// GetItem reads one item and the identity of the follower that served it.
// Concurrent reads share queries (see readBatcher); a query that fails at
// the connection level is retried on a fresh connection.
func (s *PGStore) GetItem(ctx context.Context, id int64) (ReadResult, error) {
	r := s.reads.read(ctx, id)
	res := ReadResult{Item: r.item, Follower: r.follower, Attempts: r.attempts}
	err := r.err
	switch {
	case err == nil && r.found:
		res.Item.CreatedAt = res.Item.CreatedAt.UTC()
		return res, nil
	case err == nil:
		return res, fmt.Errorf("read item %d: %w", id, ErrNotFound)
	case connectionError(err) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return res, fmt.Errorf("read item %d after %d attempt(s): %w: %w", id, r.attempts, ErrUnavailable, err)
	default:
		return res, fmt.Errorf("read item %d: %w", id, err)
	}
}

// readItems reads the items with the given ids in one query on one
// connection, retrying connection-level failures; tries counts the
// attempts. It returns the rows found by id and the follower that answered.
func (s *PGStore) readItems(ctx context.Context, ids []int64, tries *atomic.Int32) (map[int64]Item, Follower, error) {
	var (
		items map[int64]Item
		from  Follower
	)
	onRetry := func(attempt int, err error) {
		s.log.Debug("retrying read", "ids", len(ids), "attempt", attempt, "err", err)
		if s.onReadRetry != nil {
			s.onReadRetry()
		}
	}
	base := s.nextLane.Add(1)
	_, err := retry(ctx, s.readPolicy, connectionError, onRetry, func(ctx context.Context) error {
		lane := s.pickLane(base, tries.Add(1))
		// Mark the lane's query as running, unless another (a fallback onto
		// a busy lane) already is: its start is the one that stalls first.
		start := time.Now().UnixNano()
		mine := lane.queryStart.CompareAndSwap(0, start)
		err := s.queryItems(ctx, lane, ids, &items, &from)
		if mine {
			lane.queryStart.Store(0)
		}
		switch {
		case err == nil && from.Name != "":
			if old, _ := lane.follower.Swap(from.Name).(string); old != from.Name {
				signal(s.laneMoved)
			}
		case connectionError(err):
			s.suspect(lane)
		}
		return err
	})
	return items, from, err
}

// queryItems runs one read of ids on lane.
func (s *PGStore) queryItems(ctx context.Context, lane *readLane, ids []int64, items *map[int64]Item, from *Follower) error {
	*items, *from = make(map[int64]Item, len(ids)), Follower{}
	rows, err := lane.Query(ctx, readItemsSQL, ids)
	if err != nil {
		return err
	}
	defer rows.Close()
	if c := rows.Conn(); c != nil {
		from.Direct = wentAround(c.PgConn().Conn())
	}
	for rows.Next() {
		var it Item
		var host *string
		var port *int32
		if err := rows.Scan(&it.ID, &it.Payload, &it.CreatedAt, &from.Name, &host, &port); err != nil {
			return err
		}
		if host != nil && port != nil {
			from.Addr = net.JoinHostPort(*host, strconv.Itoa(int(*port)))
		}
		(*items)[it.ID] = it
	}
	return rows.Err()
}

// CreateItem inserts an item on the primary. Without a key an insert is not
// idempotent, so it is retried only when it certainly never reached the
// server; with a key any connection-level failure is retried, since the
// key makes a repeat return the first row instead of adding another.
func (s *PGStore) CreateItem(ctx context.Context, payload, key string) (Item, error) {
	var item Item
	var keyArg *string
	retryable := writeSafeToRetry
	if key != "" {
		keyArg, retryable = &key, connectionError
	}
	attempts, err := retry(ctx, s.writePolicy, retryable, nil, func(ctx context.Context) error {
		return s.write.QueryRow(ctx, insertItemSQL, payload, keyArg).Scan(&item.ID, &item.CreatedAt, &item.Payload, &item.Replayed)
	})
	switch {
	case err == nil && item.Payload != payload:
		return Item{}, fmt.Errorf("insert item with key %q: %w", key, ErrKeyReused)
	case err == nil:
		item.CreatedAt = item.CreatedAt.UTC()
		return item, nil
	case writeUnavailable(err) || errors.Is(ctx.Err(), context.DeadlineExceeded):
		return item, fmt.Errorf("insert item after %d attempt(s): %w: %w", attempts, ErrUnavailable, err)
	default:
		return item, fmt.Errorf("insert item: %w", err)
	}
}

// Ready pings a follower through every read lane at once: ready as soon as
// one answers, so a lane stuck on a hung follower does not make the whole
// backend look down.
//
// The other pings run on to their end, bounded by ctx's deadline (or
// readyTimeout) but not cut short by the early answer: pgx closes a
// connection whose query is cancelled midway, so cancelling them made every
// /readyz check (one a second, from Consul) close up to three read
// connections, and the next reads on those lanes paid for new ones (connect
// through HAProxy and a SCRAM handshake: 5-10 ms, 2% of requests at 100
// req/s).
func (s *PGStore) Ready(ctx context.Context) error {
	deadline, ok := ctx.Deadline()
	if !ok {
		deadline = time.Now().Add(readyTimeout)
	}
	pingCtx, cancel := context.WithDeadline(context.WithoutCancel(ctx), deadline)
	errs := make(chan error, len(s.lanes))
	var pings sync.WaitGroup
	for _, lane := range s.lanes {
		pings.Go(func() { errs <- lane.Ping(pingCtx) })
	}
	go func() {
		pings.Wait()
		cancel()
	}()
	var failed []error
	for range s.lanes {
		select {
		case err := <-errs:
			if err == nil {
				return nil
			}
			failed = append(failed, err)
		case <-ctx.Done():
			return fmt.Errorf("ping read connections: %w: %w", ErrUnavailable, ctx.Err())
		}
	}
	return fmt.Errorf("ping read connections: %w: %w", ErrUnavailable, errors.Join(failed...))
}

// poolOptions are the pool settings shared by the read and write pools.
type poolOptions struct {
	maxConns int32
	lifetime time.Duration
	// dial, if set, opens the pool's connections (see serviceDialer).
	dial pgconn.DialFunc
}

// keepConn is the pools' AfterRelease: false for a connection that went
// around HAProxy and has had its time (see aroundConn), which the pool then
// closes. Checked when a read hands its connection back, so an idle one
// waits for its next use.
func keepConn(c *pgx.Conn) bool {
	return !expired(c.PgConn().Conn(), time.Now())
}

// newPool builds a lazy pool: it does not connect until first use, so the
// service starts (and answers 503) while the database is down.
func newPool(ctx context.Context, dsn string, opts poolOptions) (*pgxpool.Pool, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn: %w", err)
	}
	cfg.MaxConns = opts.maxConns
	// Notice dead idle connections quickly, and recycle every connection
	// within opts.lifetime (plus jitter, so not all at once): HAProxy only
	// balances new connections, so this is how a follower rejoining behind
	// it gets its share of the pooled connections back.
	cfg.HealthCheckPeriod = 2 * time.Second
	cfg.MaxConnLifetime = opts.lifetime
	cfg.MaxConnLifetimeJitter = opts.lifetime / 2
	cfg.AfterRelease = keepConn
	if opts.dial != nil {
		cfg.ConnConfig.DialFunc = opts.dial
		// pgx resolves the DSN's host before it dials, and gives up when
		// that fails: the dialer decides where to go (it asks Consul), so
		// the host goes to it as it is. A placeholder host, as the job
		// renders while no instance passes, must not stop the pool from
		// connecting once one does.
		cfg.ConnConfig.LookupFunc = func(_ context.Context, host string) ([]string, error) {
			return []string{host}, nil
		}
	}
	if cfg.ConnConfig.ConnectTimeout == 0 {
		cfg.ConnConfig.ConnectTimeout = time.Second
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("create pool: %w", err)
	}
	return pool, nil
}
