package backend

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// scriptedWatcher answers WaitPassing from a script, records the indexes it
// was asked with, and blocks until ctx ends once the script is spent.
type scriptedWatcher struct {
	answers []watchAnswer
	mu      sync.Mutex
	asked   []uint64
}

type watchAnswer struct {
	names []string
	index uint64
}

func (w *scriptedWatcher) WaitPassing(ctx context.Context, service string, index uint64) ([]string, uint64, error) {
	w.mu.Lock()
	w.asked = append(w.asked, index)
	if len(w.answers) > 0 {
		a := w.answers[0]
		w.answers = w.answers[1:]
		w.mu.Unlock()
		return a.names, a.index, nil
	}
	w.mu.Unlock()
	<-ctx.Done()
	return nil, 0, ctx.Err()
}

func TestWatchPassingReportsEverySetAndTheJoins(t *testing.T) {
	answers := []watchAnswer{
		{[]string{"follower-0", "follower-1"}, 10}, // at start: not a join
		{[]string{"follower-1"}, 12},               // follower-0 left
		{[]string{"follower-1", "follower-0"}, 15}, // and joined again
		{[]string{"follower-1", "follower-0"}, 16}, // nothing new
		{[]string{"follower-1", "follower-0"}, 3},  // index went backwards
		{[]string{"follower-1", "follower-0", "follower-2"}, 0},
	}
	w := &scriptedWatcher{answers: slices.Clone(answers)}
	ctx, cancel := context.WithCancel(context.Background())
	var sets [][]string
	var joined []bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		watchPassing(ctx, w, "postgres-follower", func(p []string, j bool) {
			sets, joined = append(sets, p), append(joined, j)
			if len(sets) == len(answers) {
				cancel()
			}
		}, slog.New(slog.DiscardHandler))
	}()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cancel()
		t.Fatal("watchPassing did not return after its context ended")
	}
	if len(sets) != len(answers) {
		t.Fatalf("%d sets reported, want %d", len(sets), len(answers))
	}
	for i, a := range answers {
		if !slices.Equal(sets[i], a.names) {
			t.Errorf("set %d = %v, want %v", i, sets[i], a.names)
		}
	}
	if want := []bool{false, false, true, false, false, true}; !slices.Equal(joined, want) {
		t.Errorf("joined = %v, want %v", joined, want)
	}
	// Each query waits on the previous answer's index; after the index
	// went backwards (16 -> 3) the next one starts over from 0.
	if wantAsked := []uint64{0, 10, 12, 15, 16, 0}; !slices.Equal(w.asked, wantAsked) {
		t.Errorf("indexes asked = %v, want %v", w.asked, wantAsked)
	}
}

// fakeHAProxy hands each new connection the next follower of its script,
// then the last one for good.
type fakeHAProxy struct {
	mu     sync.Mutex
	script []string
	opened int
}

func (h *fakeHAProxy) connect() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opened++
	f := h.script[0]
	if len(h.script) > 1 {
		h.script = h.script[1:]
	}
	return f
}

func (h *fakeHAProxy) release(string) {}

// placer places new connections on followers, as HAProxy does.
type placer interface {
	connect() string
	release(follower string) // a connection it placed closed
}

// connLane is a read lane over one connection that a placer places.
type connLane struct {
	*fakeDB
	hp    placer
	mu    sync.Mutex
	conn  string // follower of the current connection; "" when none
	fresh bool   // placed by hp (not there from the start)
}

func (l *connLane) Reset() {
	l.mu.Lock()
	if l.fresh {
		l.hp.release(l.conn)
	}
	l.conn, l.fresh = "", false
	l.mu.Unlock()
}

func (l *connLane) QueryRow(ctx context.Context, sql string, args ...any) pgx.Row {
	if sql != followerNameSQL {
		return fakeRow{err: errors.New("unexpected query " + sql)}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.conn == "" {
		l.conn, l.fresh = l.hp.connect(), true
	}
	return nameRow(l.conn)
}

type nameRow string

func (r nameRow) Scan(dest ...any) error {
	*dest[0].(*string) = string(r)
	return nil
}

// laneStoreOn returns a store whose lanes' connections are on the given
// followers.
func laneStoreOn(hp placer, on ...string) *PGStore {
	dbs := make([]db, len(on))
	for i, f := range on {
		dbs[i] = &connLane{fakeDB: &fakeDB{}, hp: hp, conn: f}
	}
	s := newLaneStore(dbs, &fakeDB{}, StoreOptions{ReadPolicy: noBackoff})
	for i, f := range on {
		s.lanes[i].follower.Store(f)
	}
	return s
}

// spread reports whether two lanes are on each of the two followers.
func spread(s *PGStore, f0, f1 string) bool {
	n := countLanes(s.laneFollowers())
	return n[f0] == 2 && n[f1] == 2
}

// wantSpread fails t unless two lanes are on each of the two followers.
func wantSpread(t *testing.T, s *PGStore, f0, f1 string) {
	t.Helper()
	if !spread(s, f0, f1) {
		t.Errorf("lanes %v, want two on %s and two on %s", s.laneFollowers(), f0, f1)
	}
}

func TestSpreadReadsMovesLanesToTheJoinedFollower(t *testing.T) {
	// HAProxy does not have follower-0 for the first new connection yet.
	hp := &fakeHAProxy{script: []string{"follower-1", "follower-0", "follower-0"}}
	s := laneStoreOn(hp, "follower-1", "follower-1", "follower-1", "follower-1")

	s.spreadReads(context.Background(), []string{"follower-0", "follower-1"})

	wantSpread(t, s, "follower-0", "follower-1")
	if hp.opened != 3 {
		t.Errorf("%d new connections, want 3 (one landed on the crowded follower)", hp.opened)
	}
	for i, l := range s.lanes {
		if l.retiring.Load() {
			t.Errorf("lane %d still passed over after the spread", i)
		}
	}
}

func TestSpreadReadsLeavesSpreadLanesAlone(t *testing.T) {
	hp := &fakeHAProxy{script: []string{"follower-0"}}
	s := laneStoreOn(hp, "follower-0", "follower-1", "follower-0", "follower-1")
	s.spreadReads(context.Background(), []string{"follower-1", "follower-0"})
	if hp.opened != 0 {
		t.Errorf("%d new connections on lanes already spread, want 0", hp.opened)
	}
}

func TestSpreadReadsMovesLanesOffAFollowerThatLeft(t *testing.T) {
	hp := &fakeHAProxy{script: []string{"follower-2", "follower-1", "follower-2"}}
	s := laneStoreOn(hp, "follower-0", "follower-1", "follower-0", "follower-1")
	s.spreadReads(context.Background(), []string{"follower-1", "follower-2"})
	wantSpread(t, s, "follower-1", "follower-2")
}

// Reads pass over a lane while it moves to a new connection.
func TestPickLanePassesOverAMovingLane(t *testing.T) {
	s, _, _ := twoLaneStore()
	if l := s.pickLane(0, 1); l != s.lanes[0] {
		t.Fatal("a first attempt from base 0 should take lane 0 in turn")
	}
	s.lanes[0].retiring.Store(true)
	if l := s.pickLane(0, 1); l != s.lanes[1] {
		t.Error("the first attempt took lane 0 while it moves to a new connection")
	}
}

// A lane that failed, and the lanes on the same follower, count as on no
// follower until they answer again: a follower that comes back after a crash
// finds them moved to new connections, not taken for still on it.
func TestSuspectLanesAreMovedFirst(t *testing.T) {
	hp := &fakeHAProxy{script: []string{"follower-0"}} // the one with the fewest connections
	s := laneStoreOn(hp, "follower-0", "follower-1", "follower-0", "follower-1")
	s.suspect(s.lanes[0])
	if got := s.laneFollowers(); !slices.Equal(got, []string{"", "follower-1", "", "follower-1"}) {
		t.Fatalf("lanes after a failure on follower-0's = %v, want follower-0's cleared", got)
	}
	s.spreadReads(context.Background(), []string{"follower-0", "follower-1"})
	wantSpread(t, s, "follower-0", "follower-1")
	if hp.opened != 2 {
		t.Errorf("%d new connections, want 2: the two cleared lanes", hp.opened)
	}
}

// newWorkerHAProxy is HAProxy's leastconn right after a reload: the new
// worker counts only the connections opened since (the old worker keeps
// the others), and breaks ties the same way every time.
type newWorkerHAProxy struct {
	mu     sync.Mutex
	conns  map[string]int
	order  []string // tie-break
	opened int
}

func (h *newWorkerHAProxy) connect() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.opened++
	best := h.order[0]
	for _, f := range h.order[1:] {
		if h.conns[f] < h.conns[best] {
			best = f
		}
	}
	h.conns[best]++
	return best
}

func (h *newWorkerHAProxy) release(f string) {
	h.mu.Lock()
	h.conns[f]--
	h.mu.Unlock()
}

// The other backend has already spread its lanes through the new worker
// (2 and 2), so it counts even: a lane moved again would land on follower-1
// every time; moving the lanes not yet moved tips the count.
func TestSpreadReadsAfterAnHAProxyReload(t *testing.T) {
	hp := &newWorkerHAProxy{conns: map[string]int{"follower-0": 2, "follower-1": 2}, order: []string{"follower-1", "follower-0"}}
	s := laneStoreOn(hp, "follower-1", "follower-1", "follower-1", "follower-1")

	s.spreadReads(context.Background(), []string{"follower-0", "follower-1"})

	wantSpread(t, s, "follower-0", "follower-1")
	// follower-1 (tie), follower-0, follower-1 (tie again), follower-0.
	if hp.opened != 4 {
		t.Errorf("%d new connections, want 4: each lane moved once", hp.opened)
	}
}

// A read marks the store's laneMoved when its lane's answers come from
// another follower than before, and only then.
func TestReadMarksALaneThatMoved(t *testing.T) {
	db := &fakeDB{all: true}
	db.row.name = "follower-0"
	s := newStore(db, db, StoreOptions{ReadPolicy: noBackoff})
	marked := func() bool {
		select {
		case <-s.laneMoved:
			return true
		default:
			return false
		}
	}
	read := func(id int64) {
		t.Helper()
		if _, err := s.GetItem(context.Background(), id); err != nil {
			t.Fatal(err)
		}
	}
	read(1)
	if !marked() {
		t.Error("a lane's first answer did not mark it moved (from no follower)")
	}
	read(2)
	if marked() {
		t.Error("a second answer from the same follower marked the lane moved")
	}
	db.mu.Lock()
	db.row.name = "follower-1" // its connection was replaced, and landed elsewhere
	db.mu.Unlock()
	read(3)
	if !marked() {
		t.Error("an answer from another follower did not mark the lane moved")
	}
}

// waitSpread waits (bounded) until two lanes are on each follower.
func waitSpread(t *testing.T, s *PGStore, f0, f1 string) {
	t.Helper()
	waitUntil(t, "two on "+f0+" and two on "+f1, func() (bool, string) {
		return spread(s, f0, f1), fmt.Sprintf("lanes %v", s.laneFollowers())
	})
}

// The rebalancer spreads the lanes at Consul's first answer, and again when
// a lane moved (here: two lanes drifted back onto follower-1).
func TestRebalancerKeepsTheLanesSpread(t *testing.T) {
	hp := &fakeHAProxy{script: []string{"follower-0"}}
	s := laneStoreOn(hp, "follower-1", "follower-1", "follower-1", "follower-1")
	w := &scriptedWatcher{answers: []watchAnswer{{[]string{"follower-0", "follower-1"}, 7}}}
	stop := startRebalancer(context.Background(), w, "postgres-follower", s, slog.New(slog.DiscardHandler))
	defer stop()

	waitSpread(t, s, "follower-0", "follower-1")
	for _, l := range s.lanes {
		if l.lastFollower() == "follower-0" {
			c := l.db.(*connLane)
			c.mu.Lock()
			c.conn, c.fresh = "follower-1", false
			c.mu.Unlock()
			l.follower.Store("follower-1")
		}
	}
	signal(s.laneMoved)
	waitSpread(t, s, "follower-0", "follower-1")
	if hp.opened != 4 {
		t.Errorf("%d new connections, want 4: two per spread", hp.opened)
	}
}
