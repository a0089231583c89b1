//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"hastack/cluster"
	"hastack/drill"
	"hastack/load"
)

// testRestartsDuringOutages checks that an instance that restarts while
// what it depends on is down starts all the same and serves what it can:
// a backend restarted while HAProxy is stopped reads straight from the
// followers (and through HAProxy once it is back); a follower that crashes
// while the primary does not pass its check starts again on its own data
// and serves reads.
func testRestartsDuringOutages(t *testing.T) {
	c := clients(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("BackendRestartsWhileHAProxyIsDown", func(t *testing.T) {
		// -detach: the CLI's deployment monitor exits 1 when the stop
		// cancels a deployment still in progress; the poll below waits.
		if _, err := nomadCLI("job", "stop", "-detach", "haproxy"); err != nil {
			t.Fatal(err)
		}
		// Whatever happens below, HAProxy comes back for the tests after.
		defer func() {
			if _, err := nomadCLI("job", "run", "-detach", "-var-file=jobs/hastack.vars.hcl", "jobs/haproxy.nomad.hcl"); err != nil {
				t.Fatal(err)
			}
			poll(t, ctx, "haproxy to pass again", c.ServicesPassing(map[string]int{"haproxy": 1}))
			leaveBalanced(t, dataURL)
		}()
		poll(t, ctx, "haproxy to stop", c.JobsStopped([]string{"haproxy"}))

		v, err := drill.ResolveVictim(ctx, c, drill.Roles["backend"], "")
		if err != nil {
			t.Fatal(err)
		}
		restartAndWait(t, ctx, c, v)
		poll(t, ctx, "both backends to pass", c.ServicesPassing(map[string]int{"backend": 2}))

		s, err := reads(ctx)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("HAProxy down, %s restarted: %d of %d reads ok, %d straight to a follower, backends %v",
			v.Name, s.OK, s.Total, s.Direct, s.PerBackend)
		if s.Failed != 0 || s.PerBackend[v.Name] == 0 || s.Direct != s.Total {
			t.Errorf("want every read served, %s serving too, and every read going straight to a follower: %d failed (%v), %s served %d, %d of %d direct",
				v.Name, s.Failed, s.Errors, v.Name, s.PerBackend[v.Name], s.Direct, s.Total)
		}
	})

	t.Run("FollowerRestartsWhilePrimaryIsDown", func(t *testing.T) {
		in := drill.Injector{Clients: c, Procfs: drill.HostProcfs}
		primary, err := drill.ResolveVictim(ctx, c, drill.Roles["primary"], "")
		if err != nil {
			t.Fatal(err)
		}
		// A frozen primary fails its check: it leaves the passing set, and
		// the followers' primary.env renders empty.
		resume, err := in.Freeze(ctx, &primary)
		if err != nil {
			t.Fatal(err)
		}
		resumed := false
		defer func() {
			if !resumed {
				_ = resume()
			}
		}()
		poll(t, ctx, "the frozen primary to leave the passing set", func(ctx context.Context) error {
			if p, err := c.Passing(ctx, "postgres-primary"); err != nil || len(p) > 0 {
				return fmt.Errorf("passing primaries %v, err %v", p, err)
			}
			return nil
		})

		v, err := drill.ResolveVictim(ctx, c, drill.Roles["follower"], "")
		if err != nil {
			t.Fatal(err)
		}
		_, before, err := taskStartedAt(ctx, c, v)
		if err != nil {
			t.Fatal(err)
		}
		if err := in.Kill(ctx, &v); err != nil {
			t.Fatal(err)
		}
		waitStartedAfter(t, ctx, c, v, before)
		poll(t, ctx, v.Name+" to pass its check again", func(ctx context.Context) error {
			insts, err := c.Passing(ctx, "postgres-follower")
			if err != nil {
				return err
			}
			if !slices.ContainsFunc(insts, func(i cluster.Instance) bool { return i.Meta["name"] == v.Name }) {
				return fmt.Errorf("%s not passing yet", v.Name)
			}
			return nil
		})
		// Its share of the reads comes back as the backends spread their
		// connections again; a bounded wait, not a fixed one.
		poll(t, ctx, v.Name+" to serve reads with no primary", func(ctx context.Context) error {
			s, err := reads(ctx)
			if err != nil {
				return err
			}
			if s.Failed != 0 {
				return fmt.Errorf("%d reads failed (%v)", s.Failed, s.Errors)
			}
			if s.PerFollower[v.Name] == 0 {
				return fmt.Errorf("no read from %s yet: %v", v.Name, s.PerFollower)
			}
			return nil
		})
		resumed = true
		if err := resume(); err != nil {
			t.Fatal(err)
		}
		poll(t, ctx, "the primary to pass again", c.ServicesPassing(map[string]int{"postgres-primary": 1}))
		leaveBalanced(t, dataURL)
	})
}

func poll(t *testing.T, ctx context.Context, what string, cond func(context.Context) error) {
	t.Helper()
	pctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := cluster.Poll(pctx, what, cond); err != nil {
		t.Fatal(err)
	}
}

// reads sends 100 GETs to /data and sums up their outcomes; an error only
// when ctx ended the run.
func reads(ctx context.Context) (load.Summary, error) {
	res, err := runLoad(ctx, load.Config{URL: dataURL, Requests: 100, Concurrency: 4, Rate: 200, Timeout: 5 * time.Second})
	return load.Summarize(res), err
}

// taskStartedAt is when the victim's task last started, as Nomad says
// (zero while it does not run), with the allocation it read.
func taskStartedAt(ctx context.Context, c *cluster.Clients, v drill.Victim) (*nomad.Allocation, time.Time, error) {
	a, _, err := c.Nomad.Allocations().Info(v.AllocID, (&nomad.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("allocation of %s: %w", v.Name, err)
	}
	ts := a.TaskStates[v.Task]
	if ts == nil || ts.State != "running" {
		return a, time.Time{}, nil
	}
	return a, ts.StartedAt, nil
}

// waitStartedAfter waits until the victim's task runs again, started after
// before. A failed call to Nomad is one more poll, not the end of the test.
func waitStartedAfter(t *testing.T, ctx context.Context, c *cluster.Clients, v drill.Victim, before time.Time) {
	t.Helper()
	poll(t, ctx, v.Name+" to run again", func(ctx context.Context) error {
		_, at, err := taskStartedAt(ctx, c, v)
		if err != nil {
			return err
		}
		if !at.After(before) {
			return fmt.Errorf("%s not started again yet", v.Name)
		}
		return nil
	})
}

// restartAndWait restarts the victim's allocation in place (nomad alloc
// restart) and waits until its task runs again.
func restartAndWait(t *testing.T, ctx context.Context, c *cluster.Clients, v drill.Victim) {
	t.Helper()
	a, before, err := taskStartedAt(ctx, c, v)
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Nomad.Allocations().Restart(a, v.Task, (&nomad.QueryOptions{}).WithContext(ctx)); err != nil {
		t.Fatalf("restart %s: %v", v.Name, err)
	}
	waitStartedAfter(t, ctx, c, v, before)
}
