package backend

import (
	"context"
	"log/slog"
	"slices"
	"sync"
	"time"
)

// Rebalancing reads when a follower joins. HAProxy balances connections,
// not queries, and the read lanes keep their connections for
// readConnLifetime: without help, a follower that comes back (replaced,
// restarted, or thawed after a hang) gets reads only as the lanes' old
// connections expire, up to 15 s later. So the backend watches the
// followers' passing set in Consul and, when one joins, moves read lanes to
// new connections one at a time until its lanes are spread evenly over the
// passing followers (HAProxy's leastconn sends a new connection to the
// follower with the fewest).

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

// watchJoins calls onJoin with the passing set each time an instance joins
// the passing set of service, after the first answer (the instances passing
// at start are not joins). It returns when ctx ends.
func watchJoins(ctx context.Context, w passingWatcher, service string, onJoin func(passing []string), log *slog.Logger) {
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
		if joined {
			onJoin(names)
		}
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
	ctx, cancel := context.WithTimeout(ctx, spreadBudget)
	defer cancel()
	share := len(s.lanes) / len(passing)
	moved := make(map[*readLane]bool, len(s.lanes))
	misses := 0
	for moves := 0; ; moves++ {
		lane, crowded := s.mostCrowdedLane(passing, share, moved)
		if lane == nil {
			s.log.Info("reads spread over the followers", "new_connections", moves, "took", time.Since(start).String(), "lanes", s.laneFollowers())
			return
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

// startRebalancer watches service and, each time a follower joins, spreads
// the store's reads over the passing followers: one spread at a time, and
// joins that come while one runs fold into one more. stop ends both and
// waits for them; call it before closing the pools.
func startRebalancer(ctx context.Context, w passingWatcher, service string, s *PGStore, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	kick := make(chan []string, 1) // the latest passing set not spread over yet
	var wg sync.WaitGroup
	wg.Go(func() {
		watchJoins(ctx, w, service, func(passing []string) {
			log.Info("follower joined: spreading reads over the passing followers", "passing", passing)
			select {
			case <-kick: // replace a pending set with the newer one
			default:
			}
			kick <- passing
		}, log)
	})
	wg.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case passing := <-kick:
				s.spreadReads(ctx, passing)
			}
		}
	})
	return func() {
		cancel()
		wg.Wait()
	}
}
