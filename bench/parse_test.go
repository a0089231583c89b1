package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"
)

const wrkOut = `Running 2s test @ http://127.0.0.1:8080/data
  2 threads and 4 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   421.22us  172.73us   4.48ms   86.00%
    Req/Sec     4.81k   296.17     5.33k    71.43%
  Latency Distribution
     50%  386.00us
     75%  475.00us
     90%  590.00us
     99%    1.03ms
  19152 requests in 2.00s, 5.36MB read
  Socket errors: connect 1, read 2, write 0, timeout 4
  Non-2xx or 3xx responses: 3
Requests/sec:   9575.83
Transfer/sec:      2.68MB
`

func TestParseWrk(t *testing.T) {
	m, err := ParseWrk([]byte(wrkOut))
	if err != nil {
		t.Fatal(err)
	}
	want := Measure{Requests: 19152, Elapsed: 2 * time.Second, RPS: 9575.83, P50: 386 * time.Microsecond, P99: 1030 * time.Microsecond, Errors: 10}
	if m != want {
		t.Fatalf("got %+v\nwant %+v", m, want)
	}
}

func TestParseWrkRejectsOutputWithoutLatency(t *testing.T) {
	if _, err := ParseWrk([]byte("  10 requests in 1.00s, 1KB read\nRequests/sec: 10.0\n")); err == nil {
		t.Fatal("want an error without --latency output")
	}
	if _, err := ParseWrk([]byte("unable to connect to 127.0.0.1:8080 Connection refused\n")); err == nil {
		t.Fatal("want an error for a failed run")
	}
}

const pgbenchOut = `transaction type: /tmp/x/lookup.sql
scaling factor: 1
query mode: prepared
number of clients: 4
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 40000
number of failed transactions: 2 (0.005%)
latency average = 0.190 ms
initial connection time = 5.123 ms
tps = 20000.123456 (without initial connection time)
`

func TestParsePgbench(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "log")
	// client tx latency(us) script epoch us
	// Two threads' logs, 50 transactions each, latencies 10µs..1000µs.
	var first, second []byte
	for i := 1; i <= 100; i++ {
		line := fmt.Appendf(nil, "0 %d %d 0 1700000000 123\n", i, i*10)
		if i%2 == 0 {
			first = append(first, line...)
		} else {
			second = append(second, line...)
		}
	}
	if err := os.WriteFile(prefix+".123", first, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prefix+".123.1", second, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParsePgbench([]byte(pgbenchOut), prefix, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests != 40000 || m.RPS != 20000.123456 || m.Errors != 2 {
		t.Errorf("totals: %+v", m)
	}
	if m.P50 != 500*time.Microsecond || m.P99 != 990*time.Microsecond {
		t.Errorf("p50 %v p99 %v, want 500µs and 990µs", m.P50, m.P99)
	}
}

func TestStatTicks(t *testing.T) {
	// comm with spaces and parentheses; utime 11, stime 22, cutime 33, cstime 44.
	stat := []byte("1234 (postgres: app (x)) S 1 2 3 4 5 6 7 8 9 10 11 22 33 44 20 0 1 0 100 200 300")
	got, err := statTicks(stat)
	if err != nil || got != 110 {
		t.Fatalf("statTicks = %d, %v; want 110", got, err)
	}
}

func TestGroupOf(t *testing.T) {
	for _, c := range []struct {
		comm  string
		nomad bool
		want  string
	}{
		{"nginx", true, "nginx"},
		{"postgres", true, "postgres"},
		{"postgres", false, ""}, // a system Postgres is not ours
		{"backend", true, "backend"},
		{"haproxy", true, "haproxy"},
		{"wrk", false, "loadgen"},
		{"pgbench", false, "loadgen"},
		{"bash", true, ""},
		{"nomad", false, "platform"},
		{"consul", false, "platform"},
		{"patroni", true, "platform"},
		{"patroni", false, ""},
	} {
		if got := groupOf(c.comm, c.nomad); got != c.want {
			t.Errorf("groupOf(%q, %v) = %q, want %q", c.comm, c.nomad, got, c.want)
		}
	}
}

func TestUnderNomad(t *testing.T) {
	for _, c := range []struct {
		env, cgroup string
		want        bool
	}{
		{"PATH=/bin\x00NOMAD_ALLOC_ID=abc\x00", "6:freezer:/\n", true},
		{"", "6:freezer:/nomad/59291576-6f8c\n0::/\n", true},      // cgroup v1, environment overwritten
		{"", "0::/nomad.slice/abc.postgres.scope\n", true},        // cgroup v2
		{"PATH=/bin\x00", "6:freezer:/\n0::/user.slice\n", false}, // not a Nomad task
	} {
		if got := underNomad([]byte(c.env), []byte(c.cgroup)); got != c.want {
			t.Errorf("underNomad(%q, %q) = %v, want %v", c.env, c.cgroup, got, c.want)
		}
	}
}

func TestParseMachineCPU(t *testing.T) {
	stat := []byte("cpu  100 5 50 800 40 3 2 0 0 0\ncpu0 50 2 25 400 20 1 1 0 0 0\n")
	// Busy: all of user..steal but idle (800) and iowait (40), of 1000 ticks.
	busy, err := parseMachineCPU(stat)
	if err != nil || busy != 1.6 {
		t.Errorf("parseMachineCPU = %v, %v; want busy 1.6 s", busy, err)
	}
	if _, err := parseMachineCPU([]byte("intr 1 2 3\n")); err == nil {
		t.Error("no cpu line: want an error")
	}
}

// pgbenchAbortOut is pgbench 15.18's output when two of four clients aborted
// on an SQL error mid-run (exit status 2), stdout and stderr together: the
// threads' messages interleave, so one line holds two prefixes.
const pgbenchAbortOut = `pgbench (15.18 (Debian 15.18-0+deb12u1))
transaction type: /tmp/x/lookup.sql
scaling factor: 1
query mode: prepared
number of clients: 4
number of threads: 2
maximum number of tries: 1
duration: 2 s
number of transactions actually processed: 324
number of failed transactions: 0 (0.000%)
latency average = 0.096 ms
initial connection time = 8.246 ms
tps = 41795.665635 (without initial connection time)
pgbench: pgbench: error: client 2 script 0 aborted in command 0 query 0: ERROR:  division by zero
error: client 3 script 0 aborted in command 0 query 0: ERROR:  division by zero
pgbench: error: Run was aborted; the above results are incomplete.
`

func TestParsePgbenchAbortedClients(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "log")
	if err := os.WriteFile(prefix+".1", []byte("0 1 100 0 1700000000 1\n0 2 300 0 1700000000 2\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	m, err := ParsePgbench([]byte(pgbenchAbortOut), prefix, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if m.Requests != 324 || m.RPS != 41795.665635 || m.Errors != 2 || m.AbortedClients != 2 {
		t.Errorf("got %+v, want 324 transactions and 2 errors, both aborted clients", m)
	}

	// Every client aborted at its first transaction: no rate, still a row.
	none := "number of transactions actually processed: 0\nnumber of failed transactions: 0 (NaN%)\n" +
		"pgbench: error: client 0 script 0 aborted in command 0 query 0: ERROR:  x\n" +
		"pgbench: error: client 1 aborted while establishing connection\n" +
		"pgbench: error: client 0 script 0 aborted in command 0 query 0: ERROR:  x\n" + // the same client twice counts once
		"pgbench: error: Run was aborted; the above results are incomplete.\n"
	if err := os.WriteFile(prefix+".1", nil, 0o644); err != nil {
		t.Fatal(err)
	}
	m, err = ParsePgbench([]byte(none), prefix, 2*time.Second)
	if err != nil || m.Requests != 0 || m.RPS != 0 || m.Errors != 2 || m.AbortedClients != 2 {
		t.Errorf("got %+v, %v; want no transactions and 2 errors", m, err)
	}

	if n := pgbenchAborted([]byte("pgbench: error: Run was aborted; the above results are incomplete.\n")); n != 1 {
		t.Errorf("an aborted run without client lines: %d aborted, want 1", n)
	}
}

func TestParseCPUList(t *testing.T) {
	for s, want := range map[string]int{"0-1\n": 2, "0": 1, "0-3,6,8-9": 7} {
		if got, err := parseCPUList(s); err != nil || got != want {
			t.Errorf("parseCPUList(%q) = %d, %v; want %d", s, got, err, want)
		}
	}
	for _, s := range []string{"", "a-b", "3-1"} {
		if _, err := parseCPUList(s); err == nil {
			t.Errorf("parseCPUList(%q): want an error", s)
		}
	}
	if n := OnlineCPUs(); n < 1 {
		t.Errorf("OnlineCPUs() = %d", n)
	}
}
