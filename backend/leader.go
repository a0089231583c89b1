package backend

import (
	"context"
	"log/slog"
	"slices"
	"sync"
)

// startLeaderWatch follows the passing instances of the primary's service
// (Patroni's leader) and resets pool when a new leader passes, so the
// writes after a failover go to new connections at once. Without it, each
// pooled connection to a leader whose machine is gone fails one write,
// after the whole request deadline, before the pool opens one to the new
// leader. A leader that only left and came back (a restart in place) keeps
// its connections.
func startLeaderWatch(ctx context.Context, w passingWatcher, service string, pool resetter, log *slog.Logger) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() {
		var last []string // the last non-empty passing set
		watchPassing(ctx, w, service, func(p []string, _ bool) {
			if len(p) == 0 {
				return
			}
			// A new leader is one the last set did not have: a stale entry
			// of an old leader beside the new one (Consul's view of a
			// healed node lags a few seconds) is no reason to reset.
			if last != nil && !slices.ContainsFunc(p, func(m string) bool { return slices.Contains(last, m) }) {
				log.Info("new leader: write connections reset", "service", service, "from", last, "to", p)
				pool.Reset()
			}
			last = slices.Clone(p)
		}, log)
	})
	return func() {
		cancel()
		wg.Wait()
	}
}
