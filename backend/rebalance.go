package backend

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Keeping each backend's reads spread over the followers. HAProxy balances
// connections, not queries, and over all its clients: its leastconn keeps
// the followers' totals even, not each backend's share. A backend whose read
// lanes all lead to one follower has nowhere to retry when that follower
// hangs (a follower-freeze drill failed 24 reads that way, after the lanes'
// lifetime recycling had drifted one backend onto follower-0 and the other
// onto follower-1), and a follower that comes back gets no reads until the
// lanes' connections expire. So the backend watches the followers' passing
// set in Consul and, when one joins or a lane's answers start coming from
// another follower, moves lanes to new connections one at a time until they
// are spread evenly over the passing followers again.

const (
	// watchWait is how long one Consul blocking query may wait for a change.
	watchWait = 30 * time.Second
	// watchRetry is the pause before asking Consul again after an error.
	watchRetry = time.Second
	// spreadBudget bounds one rebalance: attempts past it wait for the next
	// join or for the connections' lifetime.
	spreadBudget = 15 * time.Second
)

// spreadPolicy paces a rebalance's moves: each new connection has
// AttemptTimeout to open; after one lands on a follower that has its share
// already (HAProxy may not have the joined follower yet: consul-template
// renders and HAProxy reloads within a second), the next waits BaseBackoff,
// doubling up to MaxBackoff while they keep missing. MaxAttempts per lane.
var spreadPolicy = RetryPolicy{MaxAttempts: 4, AttemptTimeout: 2 * time.Second, BaseBackoff: 250 * time.Millisecond, MaxBackoff: time.Second}

// passingWatcher waits on a service's passing set (a Consul blocking query):
// with index > 0 it answers once the set differs from the one at index, or
// after a while. It returns the instances' names and the next index.
type passingWatcher interface {
	WaitPassing(ctx context.Context, service string, index uint64) (names []string, next uint64, err error)
}

// watchPassing calls onChange with the passing set of service at every
// answer from Consul, and joined set when an instance joined it since the
// previous one (the instances passing at the first answer did not join).
// It returns when ctx ends.
func watchPassing(ctx context.Context, w passingWatcher, service string, onChange func(passing []string, joined bool), log *slog.Logger) {
	var index uint64
	var known map[string]bool // nil until the first answer
	for ctx.Err() == nil {
		names, next, err := w.WaitPassing(ctx, service, index)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			log.Debug("watch followers", "service", service, "err", err)
			index = 0
			if !pause(ctx, watchRetry) {
				return
			}
			continue
		}
		// Consul's index may go backwards (a restored snapshot): start over.
		// It is never meant to be 0; 1 still blocks.
		if next < index {
			index = 0
		} else {
			index = max(next, 1)
		}
		now := make(map[string]bool, len(names))
		joined := false
		for _, n := range names {
			now[n] = true
			if known != nil && !known[n] {
				joined = true
			}
		}
		known = now
		onChange(names, joined)
	}
}

// resetter is a read lane that can drop its connection (pgxpool.Pool): an
// idle one at once, one in use when its query ends.
type resetter interface {
	Reset()
}

// spreadReads moves read lanes to new connections, one at a time, until
// every follower in passing serves its even share of the lanes, the
// attempts run out, or ctx ends. A lane is passed over by the reads while
// it reconnects, so they never wait for a new connection.
func (s *PGStore) spreadReads(ctx context.Context, passing []string) {
	if len(passing) == 0 {
		return
	}
	start := time.Now()
	parent := ctx
	ctx, cancel := context.WithTimeout(ctx, spreadBudget)
	defer cancel()
	share := len(s.lanes) / len(passing)
	moved := make(map[*readLane]bool, len(s.lanes))
	misses := 0
	for moves := 0; ; moves++ {
		lane, crowded := s.mostCrowdedLane(passing, share, moved)
		if lane == nil {
			if moves > 0 {
				s.log.Info("reads spread over the followers", "new_connections", moves, "took", time.Since(start).String(), "lanes", s.laneFollowers())
			}
			return
		}
		if parent.Err() != nil {
			return // shutting down
		}
		if moves == spreadPolicy.MaxAttempts*len(s.lanes) || ctx.Err() != nil {
			s.log.Warn("reads not spread over the followers; the connections' lifetime will", "new_connections", moves, "took", time.Since(start).String(), "lanes", s.laneFollowers())
			return
		}
		moved[lane] = true
		landed, err := s.reconnect(ctx, lane)
		s.log.Debug("read lane moved", "from", crowded, "to", landed, "err", err)
		if err == nil && slices.Contains(passing, landed) && countLanes(s.laneFollowers())[landed] <= share {
			misses = 0
			continue
		}
		misses++
		pause(ctx, spreadPolicy.backoff(misses)) // an ended ctx stops the loop above
	}
}

// laneFollowers lists the follower of each lane's last answer.
func (s *PGStore) laneFollowers() []string {
	out := make([]string, len(s.lanes))
	for i, l := range s.lanes {
		out[i] = l.lastFollower()
	}
	return out
}

// countLanes counts the lanes per follower.
func countLanes(followers []string) map[string]int {
	n := make(map[string]int, len(followers))
	for _, f := range followers {
		n[f]++
	}
	return n
}

// mostCrowdedLane returns a lane to move, and the follower it is on, while
// some follower in passing has fewer than share lanes: one on a follower
// that is not passing, or else one on the follower with the most lanes, a
// lane not yet moved first. nil when spread.
//
// Why not yet moved first: HAProxy counts connections per worker, and
// after a reload the old worker keeps the old ones. If the new worker's
// counts are even, a new connection goes to the same follower every time;
// closing that same connection again changes nothing, while closing an old
// one and opening another tips the new worker's count.
func (s *PGStore) mostCrowdedLane(passing []string, share int, moved map[*readLane]bool) (*readLane, string) {
	count := countLanes(s.laneFollowers())
	crowded := passing[0]
	short := false
	for _, f := range passing {
		short = short || count[f] < share
		if count[f] > count[crowded] {
			crowded = f
		}
	}
	if !short {
		return nil, ""
	}
	var again *readLane
	for _, l := range s.lanes {
		f := l.lastFollower()
		if !slices.Contains(passing, f) {
			return l, f // on no passing follower
		}
		if f == crowded && again == nil && moved[l] {
			again = l
		}
	}
	for _, l := range s.lanes {
		if l.lastFollower() == crowded && !moved[l] {
			return l, crowded
		}
	}
	return again, crowded
}

// reconnect gives lane a new connection while the reads pass it over, and
// returns the follower that connection reached.
func (s *PGStore) reconnect(ctx context.Context, lane *readLane) (string, error) {
	r, ok := lane.db.(resetter)
	if !ok {
		return "", nil
	}
	lane.retiring.Store(true)
	defer lane.retiring.Store(false)
	r.Reset()
	ctx, cancel := context.WithTimeout(ctx, spreadPolicy.AttemptTimeout)
	defer cancel()
	var name string
	if err := lane.QueryRow(ctx, followerNameSQL).Scan(&name); err != nil {
		lane.follower.Store("")
		return "", err
	}
	lane.follower.Store(name)
	return name, nil
}

// startRebalancer keeps the store's reads spread over service's passing
// instances: it spreads them when the passing set changes (one joined, or
// left: lanes still on it move off in the background, not on a read's
// time), and when a lane's answers start coming from another follower (a
// connection replaced after its lifetime or a failure). One spread runs at
// a time; events that come while one runs fold into one more. stop ends it
// and waits; call it before closing the pools.
func startRebalancer(ctx context.Context, w passingWatcher, service string, s *PGStore, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var mu sync.Mutex
	var passing []string // the latest set from Consul
	changes := make(chan struct{}, 1)
	var wg sync.WaitGroup
	wg.Go(func() {
		watchPassing(ctx, w, service, func(p []string, joined bool) {
			mu.Lock()
			changed := passing == nil || !slices.Equal(passing, p)
			passing = p
			mu.Unlock()
			if joined {
				log.Info("follower joined: spreading reads over the passing followers", "passing", p)
			}
			if changed {
				signal(changes)
			}
		}, log)
	})
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-changes:
			case <-s.laneMoved:
			}
			mu.Lock()
			p := passing
			mu.Unlock()
			s.spreadReads(ctx, p)
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}

// signal marks c (capacity 1) without waiting: a mark already pending
// stands for both.
func signal(c chan struct{}) {
	select {
	case c <- struct{}{}:
	default:
	}
}
