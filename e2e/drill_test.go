//go:build e2e

package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"hastack/cluster"
	"hastack/drill"
	"hastack/drill/report"
	"hastack/load"
)

// testDrills runs the crash and freeze drills against the running stack (see
// TestMain) at a modest rate and checks the claim: no failed request, no lost
// write, and the victim left rotation and came back. The bounds are generous;
// the real figures are in the report under results/drills/e2e-*.
//
// DRILL_SCREENSHOT=docs/drill-report.png (relative to the repository root)
// also saves a headless-Chromium screenshot of the report there.
func testDrills(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("drills signal the tasks' processes: run as root")
	}
	clients, err := cluster.NewClients()
	if err != nil {
		t.Fatal(err)
	}
	d := &drill.Driller{Clients: clients, Procfs: drill.HostProcfs, Log: testWriter{t}}
	o := drill.DefaultOptions()
	o.Rate, o.Baseline, o.FreezeFor = 50, 5*time.Second, 8*time.Second
	o.Recover, o.Settle, o.After = 45*time.Second, 15*time.Second, 3*time.Second

	var run drill.Run
	for _, name := range []string{"follower-kill", "backend-kill", "follower-freeze", "backend-freeze", "haproxy-kill"} {
		t.Run(name, func(t *testing.T) {
			sc, err := drill.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), o.Ready+o.Bound()+2*time.Minute)
			defer cancel()
			r, err := d.Run(ctx, sc, o)
			if !r.Start.IsZero() {
				run.Results = append(run.Results, r)
			}
			if err != nil {
				t.Fatalf("drill did not complete: %v", err)
			}
			e := r.Events
			t.Logf("%d requests, failed %s; out of rotation %s, healthy %s, back in rotation %s, served again %s",
				r.Total.Total, drill.FailedText(r), drill.FormatMS(e.OutOfRotationMS), drill.FormatMS(e.HealthyMS),
				drill.FormatMS(e.BackInRotationMS), drill.FormatMS(e.ServedAgainMS))
			if r.Total.Total < int(o.Rate*o.Baseline.Seconds()) {
				t.Errorf("only %d requests sent: the load did not run", r.Total.Total)
			}
			if r.Total.Failed != 0 {
				t.Errorf("%s failed requests, want 0", drill.FailedText(r))
			}
			if r.Writes.Err != "" || r.Writes.Lost() != 0 || r.Writes.Acked == 0 {
				t.Errorf("writes: %d acknowledged, %d lost, check error %q; want some, none lost", r.Writes.Acked, r.Writes.Lost(), r.Writes.Err)
			}
			within := func(what string, v *float64, bound time.Duration) {
				if v == nil || *v > float64(bound.Milliseconds()) {
					t.Errorf("%s: %s, want within %s", what, drill.FormatMS(v), bound)
				}
			}
			within("out of rotation", e.OutOfRotationMS, 5*time.Second)
			within("back in rotation", e.BackInRotationMS, 30*time.Second)
			within("served traffic again", e.ServedAgainMS, 45*time.Second)
		})
	}

	if len(run.Results) == 0 {
		return
	}
	leaveBalanced(t, o.URL)

	html := writeRun(t, run, "e2e-")
	if shot := os.Getenv("DRILL_SCREENSHOT"); shot != "" {
		shot = filepath.Join(root, shot)
		if err := os.MkdirAll(filepath.Dir(shot), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := report.Screenshot(context.Background(), html, shot, 1280, 2000); err != nil {
			t.Fatal(err)
		}
		t.Logf("screenshot: %s", shot)
	}
}

// writeRun writes a drill run's files and report.html under
// results/drills/<prefix><UTC time> and returns the report's path.
func writeRun(t *testing.T, run drill.Run, prefix string) string {
	t.Helper()
	dir := filepath.Join(root, "results", "drills", prefix+time.Now().UTC().Format("20060102T150405Z"))
	if err := run.WriteFiles(dir); err != nil {
		t.Fatal(err)
	}
	html := filepath.Join(dir, "report.html")
	f, err := os.Create(html)
	if err != nil {
		t.Fatal(err)
	}
	if err := report.Render(f, run, time.Now()); err != nil {
		f.Close()
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	t.Logf("report: %s", html)
	return html
}

// leaveBalanced waits (bounded) until reads spread over both backends and
// both followers again, so the tests after this one find the stack as
// up.sh left it: a restarted follower only wins back pooled connections as
// the backends recycle them.
func leaveBalanced(t *testing.T, url string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	err := cluster.Poll(ctx, "reads to spread over both backends and both followers after the drills", func(ctx context.Context) error {
		res, err := runLoad(ctx, load.Config{URL: url, Requests: 200, Concurrency: 4, Rate: 100, Timeout: 5 * time.Second})
		if err != nil {
			return err
		}
		s := load.Summarize(res)
		balanced := s.Failed == 0 && len(s.PerBackend) == 2 && len(s.PerFollower) == 2
		for _, m := range []map[string]int{s.PerBackend, s.PerFollower} {
			for _, n := range m {
				balanced = balanced && n >= s.Total/10
			}
		}
		if !balanced {
			return fmt.Errorf("backends %v, followers %v, failed %d", s.PerBackend, s.PerFollower, s.Failed)
		}
		return nil
	})
	if err != nil {
		t.Error(err)
	}
}

// testWriter sends the driller's progress lines to the test log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}
