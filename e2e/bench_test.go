//go:build e2e

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
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
	checkBenchJSON(t, raw)
	checkBenchStdout(t, b)
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

// checkBenchJSON reads the result as plain JSON, so a renamed or dropped
// field fails here instead of decoding to zero: every field the table is
// made from, and the figures the issue asks for, by their names in the file.
func checkBenchJSON(t *testing.T, raw []byte) {
	t.Helper()
	var rep map[string]any
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	if err := d.Decode(&rep); err != nil {
		t.Fatalf("result is not valid JSON: %v", err)
	}
	// num is obj[key], or NaN (after an error) when it is missing or not a
	// number: every comparison with NaN is false, so it fails only once.
	num := func(obj map[string]any, key, where string) float64 {
		t.Helper()
		n, ok := obj[key].(json.Number)
		if !ok {
			t.Errorf("%s: %q is %v (%T), want a number", where, key, obj[key], obj[key])
			return math.NaN()
		}
		f, _ := n.Float64()
		return f
	}
	obj := func(v any, where string) map[string]any {
		t.Helper()
		m, ok := v.(map[string]any)
		if !ok {
			t.Fatalf("%s is %v (%T), want an object", where, v, v)
		}
		return m
	}
	for _, k := range []string{"started", "host", "sched_autogroup", "duration_per_level", "warmup_per_level"} {
		if s, ok := rep[k].(string); !ok || s == "" {
			t.Errorf("result: %q is %v, want a string", k, rep[k])
		}
	}
	if c := num(rep, "cores", "result"); c < 1 {
		t.Errorf("result: cores %v, want at least 1", c)
	}
	dbLimit := num(rep, "db_limit_rps", "result")
	if dbLimit <= 0 {
		t.Errorf("result: db_limit_rps %v: the run measured the database, want it positive", dbLimit)
	}
	rows, ok := rep["rows"].([]any)
	if !ok || len(rows) == 0 {
		t.Fatalf("result: rows is %v, want a list", rep["rows"])
	}
	fullStack := 0
	for _, v := range rows {
		row := obj(v, "row")
		path, _ := row["path"].(string)
		where := fmt.Sprintf("%s at %v", path, row["conns"])
		num(row, "conns", where)
		m := obj(row["measure"], where+" measure")
		for _, k := range []string{"requests", "elapsed_ns", "rps", "p50_ns", "p99_ns", "errors"} {
			num(m, k, where+" measure")
		}
		cpu := obj(row["cpu_seconds_per_1k_requests"], where+" cpu_seconds_per_1k_requests")
		for _, g := range bench.Groups {
			num(cpu, g, where+" cpu_seconds_per_1k_requests")
		}
		// Every path was measured in a run that measured the database,
		// and had requests: its share of the limit is known.
		if r := num(row, "ratio_to_db_limit", where); dbLimit > 0 && r <= 0 {
			t.Errorf("%s: ratio_to_db_limit %v, want it positive", where, r)
		}
		if c := num(row, "loadgen_cores", where); c <= 0 {
			t.Errorf("%s: loadgen_cores %v, want the load generator's CPU", where, c)
		}
		if n := num(row, "loadgen_threads", where); n < 1 {
			t.Errorf("%s: loadgen_threads %v, want at least 1", where, n)
		}
		if _, ok := row["loadgen_bound"].(bool); !ok {
			t.Errorf("%s: loadgen_bound is %v, want true or false", where, row["loadgen_bound"])
		}
		if path == "full-stack" || path == "backend-direct" {
			in := obj(row["inside_backends"], where+" inside_backends")
			for _, k := range []string{"requests", "request_p99_ns", "batches", "query_p99_ns", "read_retries", "backend_answers_not_2xx"} {
				num(in, k, where+" inside_backends")
			}
		}
		if path != "full-stack" {
			continue
		}
		// The full path crosses every group that serves a request, and
		// the load generator drives it: each spent CPU on it.
		fullStack++
		for _, g := range []string{"nginx", "backend", "haproxy", "postgres", "loadgen"} {
			if c := num(cpu, g, where+" cpu_seconds_per_1k_requests"); c <= 0 {
				t.Errorf("%s: %s used %v CPU seconds per 1000 requests, want more than 0", where, g, c)
			}
		}
		if rss := num(row, "backend_max_rss_bytes", where); rss <= 0 {
			t.Errorf("%s: backend_max_rss_bytes %v, want the backends' RSS", where, rss)
		}
	}
	if fullStack == 0 {
		t.Error("result has no full-stack row")
	}
}

// checkBenchStdout checks what the command printed: the machine's cores, the
// table's header and the verdict on the load generator.
func checkBenchStdout(t *testing.T, out []byte) {
	t.Helper()
	for _, re := range []string{
		`(?m)^machine: \S+, \d+ cores, scheduler autogroup (on|off|unknown);`,
		`(?m)^\s*path\s+conns\s+req/s\s+p50\s+p99\s+errors\s+of DB limit\s+of DB via HAProxy\s+CPU s/1k req: nginx\s+backend\s+haproxy\s+postgres\s+loadgen\s+platform\s+loadgen cores\s+backend RSS\s*$`,
		`(?m)^\s*full-stack\s+4\s+\d+\s`,
		`(?m)^(WARNING: the load generator was at its own limit|the load generator stayed under 90%)`,
	} {
		if !regexp.MustCompile(re).Match(out) {
			t.Errorf("output lacks %s", re)
		}
	}
}
