package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// inflight counts the queries in flight; peak is the most seen at once.
type inflight struct{ now, peak atomic.Int32 }

func (c *inflight) enter() {
	n := c.now.Add(1)
	for p := c.peak.Load(); n > p && !c.peak.CompareAndSwap(p, n); p = c.peak.Load() {
	}
}

func (c *inflight) leave() { c.now.Add(-1) }

// gate holds every Query until it is opened, and counts the queries in
// flight.
type gate struct {
	inflight
	open    chan struct{}
	entered chan []int64
}

func newGate() *gate {
	return &gate{open: make(chan struct{}), entered: make(chan []int64, 100)}
}

func (g *gate) hold(ids []int64) {
	g.enter()
	g.entered <- ids
	<-g.open
	g.leave()
}

// waitQueued waits until n reads wait in the batcher's queue.
func waitQueued(t *testing.T, b *readBatcher, n int) {
	t.Helper()
	waitBatcher(t, b, strconv.Itoa(n)+" reads queued", func(b *readBatcher) bool { return len(b.queue) == n })
}

// waitFilling waits until the batcher's drain loop waits for n reads to
// queue, and checks that no query went out before it.
func waitFilling(t *testing.T, st *stepper, b *readBatcher, n int) {
	t.Helper()
	waitBatcher(t, b, "a fill waiting for "+strconv.Itoa(n)+" reads", func(b *readBatcher) bool { return b.fillTo == n })
	select {
	case ids := <-st.entered:
		t.Fatalf("query %v went out instead of waiting for %d reads", ids, n)
	default:
	}
}

// waitUntil polls cond, at most 5 s, until it holds; on time out it fails
// t with want and cond's last account of the state.
func waitUntil(t *testing.T, want string, cond func() (ok bool, state string)) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s; want %s", state, want)
		}
		time.Sleep(time.Millisecond)
	}
}

// waitBatcher waits (waitUntil) until cond holds of the batcher's state,
// read under its lock.
func waitBatcher(t *testing.T, b *readBatcher, want string, cond func(*readBatcher) bool) {
	t.Helper()
	waitUntil(t, want, func() (bool, string) {
		b.mu.Lock()
		defer b.mu.Unlock()
		return cond(b), fmt.Sprintf("%d reads queued, %d drain loops running", len(b.queue), b.active)
	})
}

// batchStore is a store over a fake database holding every id, with one
// read connection and the given batch cap.
func batchStore(db *fakeDB, maxBatch int) *PGStore {
	db.all = true
	db.row.name, db.row.host, db.row.port = "follower-0", "10.0.0.1", 5432
	return newStore(db, db, StoreOptions{ReadPolicy: noBackoff, ReadConcurrency: 1, MaxReadBatch: maxBatch})
}

type readOutcome struct {
	id  int64
	res ReadResult
	err error
}

// readAll starts one GetItem per id and returns a channel of the outcomes.
func readAll(ctx context.Context, s *PGStore, ids ...int64) <-chan readOutcome {
	out := make(chan readOutcome, len(ids))
	for _, id := range ids {
		go func() {
			res, err := s.GetItem(ctx, id)
			out <- readOutcome{id, res, err}
		}()
	}
	return out
}

func TestLoneReadGoesAloneAtOnce(t *testing.T) {
	db := &fakeDB{}
	s := batchStore(db, 32)
	res, err := s.GetItem(context.Background(), 7)
	if err != nil {
		t.Fatalf("GetItem: %v", err)
	}
	if res.Item.ID != 7 || res.Item.Payload != "seed-7" || res.Follower.Name != "follower-0" || res.Follower.Addr != "10.0.0.1:5432" {
		t.Errorf("got %+v", res)
	}
	if !slices.EqualFunc(db.batches, [][]int64{{7}}, slices.Equal) {
		t.Errorf("queries = %v, want one with id 7", db.batches)
	}
}

func TestReadsQueuedBehindABusyConnectionShareOneQuery(t *testing.T) {
	g := newGate()
	db := &fakeDB{onQuery: g.hold}
	s := batchStore(db, 32)

	first := readAll(context.Background(), s, 1)
	<-g.entered // the only connection is busy with read 1
	rest := []int64{2, 3, 4, 5, 6, 7, 8, 9, 10, 11}
	more := readAll(context.Background(), s, rest...)
	waitQueued(t, s.reads, len(rest))
	close(g.open)

	if o := <-first; o.err != nil || o.res.Item.ID != 1 {
		t.Fatalf("read 1: %+v", o)
	}
	for range rest {
		o := <-more
		if o.err != nil || o.res.Item.ID != o.id || o.res.Item.Payload != "seed-"+strconv.FormatInt(o.id, 10) {
			t.Errorf("read %d got %+v err %v", o.id, o.res.Item, o.err)
		}
	}
	if len(db.batches) != 2 || len(db.batches[1]) != len(rest) {
		t.Errorf("queries = %v, want [1] then the 10 queued reads together", db.batches)
	}
	if p := g.peak.Load(); p != 1 {
		t.Errorf("%d queries in flight at once, want at most 1 (the read concurrency)", p)
	}
}

func TestBatchesAreCappedAndDuplicatesAskedOnce(t *testing.T) {
	g := newGate()
	db := &fakeDB{onQuery: g.hold}
	s := batchStore(db, 4)

	first := readAll(context.Background(), s, 100)
	<-g.entered
	// Queued one by one, so the queue's order is known.
	queued := []int64{5, 5, 6, 7, 8, 9, 10, 11, 12}
	more := make(chan readOutcome, len(queued))
	for i, id := range queued {
		go func() { o := <-readAll(context.Background(), s, id); more <- o }()
		waitQueued(t, s.reads, i+1)
	}
	close(g.open)

	<-first
	for range queued {
		if o := <-more; o.err != nil || o.res.Item.ID != o.id {
			t.Errorf("read %d: %+v %v", o.id, o.res.Item, o.err)
		}
	}
	// 9 queued reads in batches of at most 4; the batch holding both reads
	// of id 5 asks for it once.
	want := [][]int64{{100}, {5, 6, 7}, {8, 9, 10, 11}, {12}}
	if !slices.EqualFunc(db.batches, want, slices.Equal) {
		t.Errorf("queries = %v, want %v", db.batches, want)
	}
}

func TestBatchMissesAndFailures(t *testing.T) {
	t.Run("an id without a row is not found, the others are", func(t *testing.T) {
		g := newGate()
		db := &fakeDB{onQuery: g.hold, row: fakeRow{item: Item{ID: 3, Payload: "three"}, name: "follower-1"}}
		s := newStore(db, db, StoreOptions{ReadPolicy: noBackoff, ReadConcurrency: 1, MaxReadBatch: 8})
		first := readAll(context.Background(), s, 1)
		<-g.entered
		more := readAll(context.Background(), s, 3, 4)
		waitQueued(t, s.reads, 2)
		close(g.open)
		if o := <-first; !errors.Is(o.err, ErrNotFound) {
			t.Errorf("read 1: err %v, want ErrNotFound", o.err)
		}
		for range 2 {
			o := <-more
			switch o.id {
			case 3:
				if o.err != nil || o.res.Item.Payload != "three" || o.res.Follower.Name != "follower-1" {
					t.Errorf("read 3: %+v %v", o.res, o.err)
				}
			case 4:
				if !errors.Is(o.err, ErrNotFound) {
					t.Errorf("read 4: err %v, want ErrNotFound", o.err)
				}
			}
		}
	})
	t.Run("a batch cut by a broken connection is retried for all its reads", func(t *testing.T) {
		g := newGate()
		db := &fakeDB{onQuery: g.hold}
		s := batchStore(db, 8)
		first := readAll(context.Background(), s, 1)
		<-g.entered
		db.mu.Lock()
		db.fails = []error{io.ErrUnexpectedEOF} // the next query: the batch
		db.mu.Unlock()
		more := readAll(context.Background(), s, 2, 3, 4)
		waitQueued(t, s.reads, 3)
		close(g.open)
		<-first
		for range 3 {
			if o := <-more; o.err != nil || o.res.Item.ID != o.id || o.res.Attempts != 2 {
				t.Errorf("read %d: %+v err %v, want its row after 2 attempts", o.id, o.res, o.err)
			}
		}
	})
}

func TestGivingUpLeavesTheQueueAtOnce(t *testing.T) {
	g := newGate()
	db := &fakeDB{onQuery: g.hold}
	s := batchStore(db, 8)
	first := readAll(context.Background(), s, 1)
	<-g.entered

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := s.GetItem(ctx, 2) // queued behind the held query, then gives up
	if !errors.Is(err, ErrUnavailable) || time.Since(start) > time.Second {
		t.Errorf("err %v after %s, want ErrUnavailable at its 50ms deadline", err, time.Since(start))
	}
	live := readAll(context.Background(), s, 3)
	waitQueued(t, s.reads, 2)
	close(g.open)
	<-first
	if o := <-live; o.err != nil || o.res.Item.ID != 3 {
		t.Errorf("read 3: %+v %v", o.res, o.err)
	}
	// The read that gave up was dropped, not sent.
	if len(db.batches) != 2 || !slices.Equal(db.batches[1], []int64{3}) {
		t.Errorf("queries = %v, want [1] then [3]", db.batches)
	}
}

func TestManyConcurrentReadsStayWithinTheConcurrency(t *testing.T) {
	var queries inflight
	db := &fakeDB{onQuery: func([]int64) {
		queries.enter()
		time.Sleep(100 * time.Microsecond) // a query takes a little while
		queries.leave()
	}}
	db.all = true
	s := newStore(db, db, StoreOptions{ReadPolicy: noBackoff, ReadConcurrency: 3, MaxReadBatch: 16})

	const readers, each = 50, 40
	var wg sync.WaitGroup
	var bad atomic.Int32
	for r := range readers {
		wg.Go(func() {
			for i := range each {
				id := int64(r*each + i + 1)
				res, err := s.GetItem(context.Background(), id)
				if err != nil || res.Item.ID != id {
					bad.Add(1)
				}
			}
		})
	}
	wg.Wait()
	if n := bad.Load(); n != 0 {
		t.Errorf("%d reads got an error or another read's row", n)
	}
	if p := queries.peak.Load(); p > 3 {
		t.Errorf("%d queries in flight at once, want at most 3", p)
	}
	if q := len(db.batches); q >= readers*each {
		t.Errorf("%d queries for %d reads: nothing was batched", q, readers*each)
	}
	t.Logf("%d reads in %d queries", readers*each, len(db.batches))
}

func TestReadsGoAroundAStalledQuery(t *testing.T) {
	hung, entered := make(chan struct{}), make(chan struct{})
	var calls atomic.Int32
	db := &fakeDB{onQuery: func([]int64) {
		if calls.Add(1) == 1 {
			close(entered)
			<-hung // the first query hangs, like one on a frozen follower
		}
	}}
	db.all = true
	s := newStore(db, db, StoreOptions{ReadPolicy: noBackoff, ReadConcurrency: 1, MaxReadBatch: 8, ReadStallAfter: 20 * time.Millisecond})
	defer close(hung)

	stuck := readAll(context.Background(), s, 1)
	<-entered // read 1 is out, hanging
	start := time.Now()
	res, err := s.GetItem(context.Background(), 2)
	if err != nil || res.Item.ID != 2 {
		t.Fatalf("read 2 behind the hung query: %+v %v", res, err)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("read 2 took %s, want it to go around the hung query after ~20ms", d)
	}
	select {
	case o := <-stuck:
		t.Fatalf("read 1 answered while its query hangs: %+v", o)
	default:
	}
	// Once the slot was handed on, the batcher is back to one query at a
	// time: reads keep flowing while the hung query still holds on.
	for id := int64(3); id < 6; id++ {
		if res, err := s.GetItem(context.Background(), id); err != nil || res.Item.ID != id {
			t.Fatalf("read %d: %+v %v", id, res, err)
		}
	}
	s.reads.mu.Lock()
	active := s.reads.active
	s.reads.mu.Unlock()
	if active > 1 {
		t.Errorf("%d drain loops hold a slot, want at most 1", active)
	}
}

// A follower that hangs (frozen): once a query on one of its connections
// stalls, the reads going around it skip its other connections too, rather
// than hang on them until the attempt's deadline and retry.
func TestReadsGoAroundAStalledFollowersOtherLanes(t *testing.T) {
	hung, entered := make(chan struct{}), make(chan struct{}, 16)
	defer close(hung)
	lane := func(name string, hangs bool) *fakeDB {
		db := &fakeDB{all: true}
		db.row.name = name
		if hangs {
			db.onQuery = func([]int64) {
				entered <- struct{}{}
				select { // bounded, so the test fails rather than hangs
				case <-hung:
				case <-time.After(3 * time.Second):
				}
			}
		}
		return db
	}
	// Lanes in turn: the first read takes lane 1, the next lane 2, both on
	// the hung follower-0.
	names := []string{"follower-1", "follower-0", "follower-0", "follower-1"}
	dbs := make([]db, len(names))
	for i, n := range names {
		dbs[i] = lane(n, n == "follower-0")
	}
	s := newLaneStore(dbs, &fakeDB{}, StoreOptions{ReadPolicy: noBackoff, ReadConcurrency: 1, ReadStallAfter: 20 * time.Millisecond})
	for i, n := range names {
		s.lanes[i].follower.Store(n)
	}

	stuck := readAll(context.Background(), s, 1)
	<-entered // read 1 is out on lane 1, hanging
	res, err := s.GetItem(context.Background(), 2)
	if err != nil || res.Follower.Name != "follower-1" || res.Attempts != 1 {
		t.Errorf("read 2 behind the stalled query: %+v %v; want it from follower-1 at the first attempt", res, err)
	}
	if n := len(entered); n != 0 {
		t.Errorf("%d more queries went to the hung follower's lanes, want none", n)
	}
	select {
	case o := <-stuck:
		t.Fatalf("read 1 answered while its query hangs: %+v", o)
	default:
	}
}

// A frozen follower whose connections are all busy (their queries, or the
// readiness pings, hang on it) while every other lane is suspect: a lane
// on the live follower failed once (its new connection went to the frozen
// one), and that passed over its neighbour too. A read takes a free
// suspect lane, not a busy one, where it would wait out the attempt behind
// the hung query. A follower-freeze drill had a backend fail the first
// attempt of nearly every read for 2.7 s this way, and one read with a 503.
func TestReadsTakeAFreeSuspectLaneOverABusyOne(t *testing.T) {
	frozen := fakeServer(t, func(c net.Conn) { _, _ = io.Copy(io.Discard, c) })
	hung := func() *pgxpool.Pool {
		p, err := newPool(context.Background(), "postgres://app@"+frozen+"/hastack?connect_timeout=30", poolOptions{maxConns: 1})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.Close)
		ctx, cancel := context.WithCancel(context.Background())
		t.Cleanup(cancel)
		go func() { _ = p.Ping(ctx) }() // hangs in the connect, holding the only connection
		return p
	}
	live := func() *fakeDB {
		db := &fakeDB{all: true}
		db.row.name = "follower-1"
		return db
	}
	// The first read's lane in turn is lane 1.
	dbs := []db{live(), hung(), hung(), live()}
	s := newLaneStore(dbs, &fakeDB{}, StoreOptions{ReadPolicy: RetryPolicy{MaxAttempts: 1, AttemptTimeout: 5 * time.Second}, ReadConcurrency: 1})
	for i, f := range []string{"follower-1", "follower-0", "follower-0", "follower-1"} {
		s.lanes[i].follower.Store(f)
	}
	waitUntil(t, "lanes 1 and 2 busy", func() (bool, string) {
		b1, b2 := s.lanes[1].busy(), s.lanes[2].busy()
		return b1 && b2, fmt.Sprintf("lane 1 busy %t, lane 2 busy %t", b1, b2)
	})
	s.suspect(s.lanes[0]) // and lane 3, on the same follower
	if s.lanes[3].suspectUntil.Load() == 0 {
		t.Fatal("lane 3 is not suspect: the test does not set up what it means to")
	}

	start := time.Now()
	res, err := s.GetItem(context.Background(), 7)
	if err != nil || res.Follower.Name != "follower-1" {
		t.Fatalf("read: %+v, %v; want it from follower-1", res, err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("read took %s: it waited behind a hung connection", took)
	}
}

// twoLaneStore is a store with two read lanes, one per follower, that hold
// every id; one read query in flight.
func twoLaneStore() (s *PGStore, f0, f1 *fakeDB) {
	lane := func(name string) *fakeDB {
		db := &fakeDB{all: true}
		db.row.name = name
		return db
	}
	f0, f1 = lane("follower-0"), lane("follower-1")
	return newLaneStore([]db{f0, f1}, f0, StoreOptions{ReadPolicy: noBackoff, ReadConcurrency: 1}), f0, f1
}

func TestBatchesTakeTheReadLanesInTurn(t *testing.T) {
	s, f0, f1 := twoLaneStore()

	// One read at a time: each goes alone, and they alternate lanes, so a
	// backend's reads alternate followers even when they never overlap.
	per := map[string]int{}
	for id := int64(1); id <= 10; id++ {
		res, err := s.GetItem(context.Background(), id)
		if err != nil {
			t.Fatal(err)
		}
		per[res.Follower.Name]++
	}
	if per["follower-0"] != 5 || per["follower-1"] != 5 {
		t.Errorf("reads per follower %v, want 5 and 5", per)
	}

	// A retry moves to the other lane: with one failure queued on each, the
	// read fails on both and succeeds on the third attempt (staying on one
	// lane, it would have succeeded on the second, leaving one failure).
	f0.mu.Lock()
	f0.fails = []error{io.ErrUnexpectedEOF}
	f0.mu.Unlock()
	f1.mu.Lock()
	f1.fails = []error{io.ErrUnexpectedEOF}
	f1.mu.Unlock()
	res, err := s.GetItem(context.Background(), 42)
	if err != nil || res.Attempts != 3 {
		t.Fatalf("got %+v %v, want the row after 3 attempts", res, err)
	}
	f0.mu.Lock()
	f1.mu.Lock()
	left := len(f0.fails) + len(f1.fails)
	f1.mu.Unlock()
	f0.mu.Unlock()
	if left != 0 {
		t.Errorf("%d queued failures left, want 0: each lane had its turn", left)
	}
}

func TestALaneThatFailedIsPassedOver(t *testing.T) {
	s, f0, _ := twoLaneStore()
	f0.fails = []error{io.ErrUnexpectedEOF, io.ErrUnexpectedEOF, io.ErrUnexpectedEOF}

	// Whichever lane comes first, follower-0's fails once and is then
	// passed over: every read is served by follower-1, none fails twice.
	for id := int64(1); id <= 6; id++ {
		res, err := s.GetItem(context.Background(), id)
		if err != nil || res.Follower.Name != "follower-1" {
			t.Fatalf("read %d: %+v %v, want it from follower-1", id, res, err)
		}
	}
	f0.mu.Lock()
	defer f0.mu.Unlock()
	if f0.calls != 1 {
		t.Errorf("follower-0's lane got %d queries, want 1 (then passed over)", f0.calls)
	}
}

// pingProbe is a read lane whose ping takes delay, and reports on cut
// whether its context ended before that.
type pingProbe struct {
	*fakeDB
	delay time.Duration
	cut   chan bool
}

func (p *pingProbe) Ping(ctx context.Context) error {
	passed := pause(ctx, p.delay)
	p.cut <- !passed
	if !passed {
		return ctx.Err()
	}
	return nil
}

// Ready answers as soon as one lane does, but the slower pings must run to
// their end: pgx closes a connection whose ping is cancelled midway, and
// every /readyz would then cost the lanes their connections.
func TestReadyLeavesTheSlowerPingsAlone(t *testing.T) {
	slow := &pingProbe{fakeDB: &fakeDB{}, delay: 50 * time.Millisecond, cut: make(chan bool, 1)}
	s := newLaneStore([]db{&fakeDB{}, slow}, &fakeDB{}, StoreOptions{ReadPolicy: noBackoff})

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := s.Ready(ctx); err != nil {
		t.Fatalf("Ready = %v, want nil: one lane answered", err)
	}
	cancel() // what net/http does to the request's context once /readyz has answered
	if <-slow.cut {
		t.Error("the slower lane's ping was cancelled once the first lane answered")
	}
}

// The pings stay bounded by the caller's deadline: a hung lane does not
// keep Ready, or its own ping, waiting past it.
func TestReadyIsBoundedByTheDeadline(t *testing.T) {
	hung := &pingProbe{fakeDB: &fakeDB{}, delay: time.Hour, cut: make(chan bool, 1)}
	down := &fakeDB{pingErr: io.ErrUnexpectedEOF}
	s := newLaneStore([]db{down, hung}, &fakeDB{}, StoreOptions{ReadPolicy: noBackoff})

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := s.Ready(ctx)
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Ready = %v, want ErrUnavailable", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("Ready took %s with a 50ms deadline", took)
	}
	if !<-hung.cut {
		t.Error("the hung lane's ping ran past the deadline")
	}
}

// stepper holds every query until the test lets it go, one at a time.
type stepper struct {
	entered chan []int64
	next    chan struct{}
}

func newStepper() *stepper {
	return &stepper{entered: make(chan []int64, 100), next: make(chan struct{})}
}

func (s *stepper) hold(ids []int64) {
	s.entered <- ids
	<-s.next
}

// query waits (bounded) for the next query and returns its ids, sorted.
func (s *stepper) query(t *testing.T) []int64 {
	t.Helper()
	select {
	case ids := <-s.entered:
		ids = slices.Clone(ids)
		slices.Sort(ids)
		return ids
	case <-time.After(5 * time.Second):
		t.Fatal("no query within 5s")
		return nil
	}
}

// waitStore is batchStore whose queries, after a batch of at least after
// reads, wait up to wait for maxBatch reads to queue.
func waitStore(db *fakeDB, maxBatch int, wait time.Duration, after int) *PGStore {
	db.all = true
	db.row.name, db.row.host, db.row.port = "follower-0", "10.0.0.1", 5432
	return newStore(db, db, StoreOptions{ReadPolicy: noBackoff, ReadConcurrency: 1, MaxReadBatch: maxBatch, ReadBatchWait: wait, ReadBatchWaitAfter: after})
}

// loadUp sends read 1 alone, then reads 2 and 3 together (a batch of two),
// and queues the given reads behind them. It returns every outcome.
func loadUp(t *testing.T, st *stepper, s *PGStore, queued ...int64) <-chan readOutcome {
	t.Helper()
	out := make(chan readOutcome, 3+len(queued))
	forward := func(c <-chan readOutcome, n int) {
		for range n {
			out <- <-c
		}
	}
	go forward(readAll(context.Background(), s, 1), 1)
	if got := st.query(t); !slices.Equal(got, []int64{1}) {
		t.Fatalf("first query %v, want [1]", got)
	}
	go forward(readAll(context.Background(), s, 2, 3), 2)
	waitQueued(t, s.reads, 2)
	st.next <- struct{}{}
	if got := st.query(t); !slices.Equal(got, []int64{2, 3}) {
		t.Fatalf("second query %v, want [2 3]", got)
	}
	go forward(readAll(context.Background(), s, queued...), len(queued))
	waitQueued(t, s.reads, len(queued))
	return out
}

// expectOutcomes checks n successful reads.
func expectOutcomes(t *testing.T, out <-chan readOutcome, n int) {
	t.Helper()
	for range n {
		o := <-out
		if o.err != nil || o.res.Item.ID != o.id {
			t.Errorf("read %d: %+v, %v", o.id, o.res, o.err)
		}
	}
}

func TestUnderLoadAQueryWaitsForAFullBatch(t *testing.T) {
	st := newStepper()
	s := waitStore(&fakeDB{onQuery: st.hold}, 4, time.Minute, 2)
	out := loadUp(t, st, s, 4)
	st.next <- struct{}{} // reads 2 and 3 answer: a batch of two means load

	waitFilling(t, st, s.reads, 4)
	more := readAll(context.Background(), s, 5, 6, 7)
	if got := st.query(t); !slices.Equal(got, []int64{4, 5, 6, 7}) {
		t.Fatalf("third query %v, want the full batch [4 5 6 7] as soon as it filled", got)
	}
	st.next <- struct{}{}
	expectOutcomes(t, out, 4)
	expectOutcomes(t, more, 3)
}

func TestAFillWaitEndsAfterTheWait(t *testing.T) {
	const wait = 30 * time.Millisecond
	st := newStepper()
	s := waitStore(&fakeDB{onQuery: st.hold}, 32, wait, 2)
	out := loadUp(t, st, s)
	start := time.Now() // read 4 queues after this
	later := readAll(context.Background(), s, 4)
	waitQueued(t, s.reads, 1)
	st.next <- struct{}{}
	if got := st.query(t); !slices.Equal(got, []int64{4}) {
		t.Fatalf("third query %v, want [4]", got)
	}
	if took := time.Since(start); took < wait {
		t.Errorf("read 4 went out %s after it queued, want after the %s wait", took, wait)
	}
	st.next <- struct{}{}
	expectOutcomes(t, out, 3)
	expectOutcomes(t, later, 1)
}

func TestAFillWaitCountsFromTheOldestReadsArrival(t *testing.T) {
	// The wait is a minute of the batcher's clock: a query that waited it
	// in real time would fail the test at stepper.query's 5 s.
	clk := &clock{t: time.Unix(1000, 0)}
	st := newStepper()
	s := waitStore(&fakeDB{onQuery: st.hold}, 32, time.Minute, 2)
	s.reads.now = clk.now
	out := loadUp(t, st, s, 4)
	clk.advance(time.Minute) // read 4 waits out the fill behind the query of 2 and 3
	st.next <- struct{}{}
	if got := st.query(t); !slices.Equal(got, []int64{4}) {
		t.Fatalf("third query %v, want [4] at once: it has waited the whole fill", got)
	}
	st.next <- struct{}{}
	expectOutcomes(t, out, 4)

	// Read 5 comes to a backend still under load (the batch before it
	// was 1, below 2: so first a batch of two again), and it waits.
	out = loadUp(t, st, s, 5)
	clk.advance(time.Minute - 10*time.Second) // ten seconds of the fill left: real ones
	st.next <- struct{}{}
	waitFilling(t, st, s.reads, 32) // with read 5 alone and 10 s of its fill left
	more := readAll(context.Background(), s, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21,
		22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35, 36)
	got := st.query(t)
	if len(got) != 32 || got[0] != 5 {
		t.Fatalf("query %v, want a full batch of 32 led by read 5", got)
	}
	st.next <- struct{}{}
	expectOutcomes(t, out, 4)
	expectOutcomes(t, more, 31)
}

func TestAFillWaitsForAsManyReadsAsTheLargestRecentBatch(t *testing.T) {
	// Batches of one, then two: two reads are what the clients send at
	// once lately, so a fill waits for two, not for 32. A wait of a minute
	// would fail the test at stepper.query's 5 s.
	st := newStepper()
	s := waitStore(&fakeDB{onQuery: st.hold}, 32, time.Minute, 2)
	s.reads.fillToPeak = true
	out := loadUp(t, st, s, 4)
	st.next <- struct{}{}
	waitFilling(t, st, s.reads, 2) // the largest recent batch, with 1 read queued
	more := readAll(context.Background(), s, 5)
	if got := st.query(t); !slices.Equal(got, []int64{4, 5}) {
		t.Fatalf("third query %v, want [4 5] as soon as two were queued", got)
	}
	st.next <- struct{}{}
	expectOutcomes(t, out, 4)
	expectOutcomes(t, more, 1)

	s.reads.mu.Lock()
	defer s.reads.mu.Unlock()
	if s.reads.peak != 2 {
		t.Errorf("largest recent batch %d after batches of 1, 2 and 2, want 2", s.reads.peak)
	}
}

func TestTheLargestRecentBatchFollowsTheLoadDown(t *testing.T) {
	b := &readBatcher{}
	for i, c := range []struct{ size, peak int }{
		{1, 1}, {20, 20},
		{3, 20}, {3, 20}, {3, 20}, {3, 19}, // one off after four smaller batches
		{3, 19}, {19, 19}, {3, 19}, {3, 19}, {3, 19}, {3, 18}, // as large as the peak: the count restarts
	} {
		b.notePeak(c.size)
		if b.peak != c.peak {
			t.Fatalf("batch %d (%d reads): peak %d, want %d", i, c.size, b.peak, c.peak)
		}
	}
}

func TestWithoutLoadReadsGoAtOnce(t *testing.T) {
	// A wait of a minute would fail the test at stepper.query's 5 s.
	t.Run("after small batches", func(t *testing.T) {
		st := newStepper()
		s := waitStore(&fakeDB{onQuery: st.hold}, 32, time.Minute, 3)
		out := loadUp(t, st, s, 4)
		st.next <- struct{}{} // a batch of two: below 3, no load
		if got := st.query(t); !slices.Equal(got, []int64{4}) {
			t.Fatalf("third query %v, want [4]", got)
		}
		st.next <- struct{}{}
		expectOutcomes(t, out, 4)
	})
	t.Run("on an idle backend after a large batch", func(t *testing.T) {
		st := newStepper()
		s := waitStore(&fakeDB{onQuery: st.hold}, 32, time.Minute, 2)
		out := loadUp(t, st, s)
		st.next <- struct{}{}
		expectOutcomes(t, out, 3)
		waitBatcher(t, s.reads, "no drain loop", func(b *readBatcher) bool { return b.active == 0 })
		later := readAll(context.Background(), s, 9)
		if got := st.query(t); !slices.Equal(got, []int64{9}) {
			t.Fatalf("query %v, want [9] at once", got)
		}
		st.next <- struct{}{}
		expectOutcomes(t, later, 1)
	})
}

// clock is a settable time for the batcher's BatchStats.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func TestBatchStatsTellTheQueueFromTheQuery(t *testing.T) {
	g := newGate()
	db := &fakeDB{onQuery: g.hold, all: true}
	clk := &clock{t: time.Unix(1000, 0)}
	var mu sync.Mutex
	var stats []BatchStats
	s := newStore(db, db, StoreOptions{ReadPolicy: noBackoff, ReadConcurrency: 1, MaxReadBatch: 32, now: clk.now,
		OnReadBatch: func(b BatchStats) {
			mu.Lock()
			defer mu.Unlock()
			stats = append(stats, b)
		}})

	const held = 30 * time.Millisecond
	first := readAll(context.Background(), s, 1)
	<-g.entered // read 1's query is out
	second := readAll(context.Background(), s, 2)
	waitQueued(t, s.reads, 1)
	clk.advance(10 * time.Millisecond)
	third := readAll(context.Background(), s, 3) // queued 10 ms after read 2
	waitQueued(t, s.reads, 2)
	clk.advance(held - 10*time.Millisecond)
	close(g.open)
	for _, out := range []<-chan readOutcome{first, second, third} {
		if o := <-out; o.err != nil {
			t.Fatalf("read %d: %v", o.id, o.err)
		}
	}

	mu.Lock()
	defer mu.Unlock()
	want := []BatchStats{
		{Size: 1, Wait: 0, Query: held}, // read 1 alone, sent at once
		{Size: 2, Wait: held, Query: 0}, // reads 2 and 3 behind it; read 2 waited longest
	}
	if !slices.Equal(stats, want) {
		t.Errorf("batch stats %+v, want %+v", stats, want)
	}
}
