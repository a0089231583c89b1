package bench

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLoadgenBound(t *testing.T) {
	for _, c := range []struct {
		cores         float64
		threads, cpus int
		want          bool
	}{
		{1.85, 2, 2, true}, // both threads on both cores
		{1.7, 2, 2, false}, // 85%
		{0.95, 1, 2, true}, // one thread runs on one core at most
		{0.95, 4, 1, true}, // four threads on one core
		{1.5, 4, 8, false},
		{0, 0, 2, false},
	} {
		if got := loadgenBound(c.cores, c.threads, c.cpus); got != c.want {
			t.Errorf("loadgenBound(%v, %d threads, %d cores) = %v, want %v", c.cores, c.threads, c.cpus, got, c.want)
		}
	}
}

// A pgbench whose clients abort exits 2 after its totals: the row gets the
// errors and the run goes on, while any other failure still stops it.
func TestPgbenchAbortIsARowsErrors(t *testing.T) {
	dir := t.TempDir()
	fake := filepath.Join(dir, "pgbench")
	// Writes a latency log where --log-prefix says, the totals and the
	// abort, and exits 2 as pgbench 15 does.
	script := "#!/bin/sh\nwhile [ $# -gt 0 ]; do [ \"$1\" = --log-prefix ] && echo '0 1 250 0 1700000000 1' > \"$2.1\"; shift; done\n" +
		"cat <<'OUT'\n" + pgbenchAbortOut + "OUT\nexit 2\n"
	if err := os.WriteFile(fake, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	cfg := Config{Threads: 2, WorkDir: dir, Pgbench: fake}
	m, gen, err := cfg.pgbench(context.Background(), "postgres://x", "lookup.sql", 4, time.Second, true)
	if err != nil {
		t.Fatalf("an aborted client stopped the run: %v", err)
	}
	if m.Errors != 2 || m.AbortedClients != 2 || m.Requests != 324 || gen.threads != 2 || gen.wall <= 0 {
		t.Errorf("got %+v, %+v; want 324 transactions, 2 errors, 2 threads", m, gen)
	}
	if _, _, err := cfg.pgbench(context.Background(), "postgres://x", "lookup.sql", 4, time.Second, false); err != nil {
		t.Errorf("warm-up with aborted clients: %v", err)
	}

	if err := os.WriteFile(fake, []byte("#!/bin/sh\necho 'pgbench: error: connection to server failed' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if _, _, err := cfg.pgbench(context.Background(), "postgres://x", "lookup.sql", 4, time.Second, true); err == nil {
		t.Error("pgbench that could not start: want an error")
	}
}

func TestWriteTableJudgesLoadgenAndErrors(t *testing.T) {
	rep := &Report{Cores: 2, DBLimit: 1000, Rows: []Row{
		{Path: "db-direct", Conns: 4, Measure: Measure{RPS: 1000, Errors: 3, AbortedClients: 3}, LoadgenCores: 0.4, LoadgenThreads: 2},
		{Path: "nginx-static", Conns: 256, Measure: Measure{RPS: 5000}, LoadgenCores: 1.9, LoadgenThreads: 2, LoadgenBound: true},
	}}
	var b bytes.Buffer
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"loadgen cores", "0.40/2", "1.90/2",
		"WARNING: the load generator was at its own limit (over 90% of the cores its threads can use) in nginx-static at 256 (1.90 of 2 cores)",
		"ERRORS: db-direct at 4: 3 errors, 3 of them pgbench clients that aborted",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if rep.Errors() != 3 {
		t.Errorf("Errors() = %d, want 3", rep.Errors())
	}

	rep.Rows = rep.Rows[:1]
	rep.Rows[0].Measure.Errors, rep.Rows[0].Measure.AbortedClients = 0, 0
	b.Reset()
	if err := rep.WriteTable(&b); err != nil {
		t.Fatal(err)
	}
	if out := b.String(); strings.Contains(out, "WARNING") || strings.Contains(out, "ERRORS") ||
		!strings.Contains(out, "stayed under 90% of the cores its threads can use in every row (busiest: db-direct at 4, 0.40 of 2 cores)") {
		t.Errorf("no warning and no errors expected:\n%s", out)
	}
}
