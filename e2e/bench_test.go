//go:build e2e

package e2e

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"hastack/bench"
)

// The benchmark is not a timed test: this runs it once in smoke mode to prove
// the command works end to end and writes a valid result. The targets are
// read from a full run (scripts/bench.sh), not asserted here.
func testBenchmarkSmoke(t *testing.T) {
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(root, "scripts", "bench.sh"), "-smoke", "-out", out)
	b, err := cmd.CombinedOutput()
	t.Logf("%s", b)
	if err != nil {
		t.Fatalf("scripts/bench.sh -smoke: %v", err)
	}
	files, _ := filepath.Glob(filepath.Join(out, "bench-*.json"))
	if len(files) != 1 {
		t.Fatalf("want one JSON result in %s, got %v", out, files)
	}
	raw, err := os.ReadFile(files[0])
	if err != nil {
		t.Fatal(err)
	}
	var rep bench.Report
	if err := json.Unmarshal(raw, &rep); err != nil {
		t.Fatalf("result is not valid JSON: %v", err)
	}
	if want := bench.SchedAutogroup(); rep.Autogroup != want {
		t.Errorf("result records scheduler autogroup %q, the machine has %q", rep.Autogroup, want)
	}
	paths := map[string]bool{}
	for _, r := range rep.Rows {
		paths[r.Path] = true
		if r.Measure.Requests <= 0 || r.Measure.RPS <= 0 || r.Measure.P99 <= 0 {
			t.Errorf("%s at %d: no measurement: %+v", r.Path, r.Conns, r.Measure)
		}
		if r.Measure.Errors != 0 {
			t.Errorf("%s at %d: %d errors", r.Path, r.Conns, r.Measure.Errors)
		}
		// Where the time went inside the backends: read from their
		// histograms on the paths that cross them. They count what they
		// answered between two scrapes around wrk's run, so about what wrk
		// counted (a backend records a request just after answering it:
		// the last few may land after the second scrape).
		if r.Path == "full-stack" || r.Path == "backend-direct" {
			in := r.Inside
			if in == nil || in.Requests*100 < uint64(r.Measure.Requests)*99 || in.Batches == 0 || in.MeanBatch < 1 || in.RequestP99 <= 0 || in.QueryP99 <= 0 {
				t.Errorf("%s at %d: inside the backends %+v, want requests (about wrk's %d), queries and percentiles", r.Path, r.Conns, in, r.Measure.Requests)
			}
		} else if r.Inside != nil {
			t.Errorf("%s at %d: reports inside the backends, which it does not cross", r.Path, r.Conns)
		}
	}
	for _, p := range []string{"db-haproxy", "db-direct", "backend-direct", "full-stack", "nginx-static"} {
		if !paths[p] {
			t.Errorf("result has no %s row", p)
		}
	}
	// The stack idles, but its agents and checks always use some CPU.
	if rep.Idle == nil || rep.Idle.MachineCores <= 0 || rep.Idle.GroupCores["platform"] <= 0 {
		t.Errorf("idle measurement %+v: want the machine's and the platform's CPU", rep.Idle)
	}
	if rep.Cores < 1 || rep.DBLimit <= 0 {
		t.Errorf("cores %d, database limit %v: want both positive", rep.Cores, rep.DBLimit)
	}
}
