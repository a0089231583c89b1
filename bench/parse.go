// Package bench measures the hastack request path against the database's own
// limit on the same machine, in the same run: pgbench through HAProxy and
// directly to a follower, wrk against one backend, through Nginx, and against
// a static Nginx location, each at several concurrency levels, with the CPU
// every process group spent per 1000 requests.
package bench

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"hastack/load"
)

// Measure is what one load run achieved.
type Measure struct {
	Requests int64         `json:"requests"`
	Elapsed  time.Duration `json:"elapsed_ns"`
	RPS      float64       `json:"rps"`
	P50      time.Duration `json:"p50_ns"`
	P99      time.Duration `json:"p99_ns"`
	Errors   int64         `json:"errors"`
	// AbortedClients are pgbench clients that stopped on an error; each is
	// one error in Errors too.
	AbortedClients int64 `json:"aborted_clients,omitempty"`
}

var (
	wrkTotal   = regexp.MustCompile(`(\d+) requests in ([\d.]+\w+),`)
	wrkRPS     = regexp.MustCompile(`Requests/sec:\s+([\d.]+)`)
	wrkPct     = regexp.MustCompile(`^\s+(50|99)(?:\.000)?%\s+([\d.]+\w+)`)
	wrkNon2xx  = regexp.MustCompile(`Non-2xx or 3xx responses: (\d+)`)
	wrkSockErr = regexp.MustCompile(`Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)`)
)

// wrkDuration parses wrk's units: us, ms, s, m, h.
func wrkDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(s)
	if err == nil {
		return d, nil
	}
	return 0, fmt.Errorf("wrk duration %q: %w", s, err)
}

// ParseWrk reads the output of `wrk --latency`. Non-2xx answers and socket
// errors count as errors.
func ParseWrk(out []byte) (Measure, error) {
	var m Measure
	s := string(out)
	t := wrkTotal.FindStringSubmatch(s)
	r := wrkRPS.FindStringSubmatch(s)
	if t == nil || r == nil {
		return m, fmt.Errorf("wrk output has no totals:\n%s", out)
	}
	m.Requests, _ = strconv.ParseInt(t[1], 10, 64)
	var err error
	if m.Elapsed, err = wrkDuration(t[2]); err != nil {
		return m, err
	}
	m.RPS, _ = strconv.ParseFloat(r[1], 64)
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		p := wrkPct.FindStringSubmatch(sc.Text())
		if p == nil {
			continue
		}
		d, err := wrkDuration(p[2])
		if err != nil {
			return m, err
		}
		if p[1] == "50" {
			m.P50 = d
		} else {
			m.P99 = d
		}
	}
	if m.P50 == 0 || m.P99 == 0 {
		return m, fmt.Errorf("wrk output has no latency distribution (run with --latency):\n%s", out)
	}
	if e := wrkNon2xx.FindStringSubmatch(s); e != nil {
		n, _ := strconv.ParseInt(e[1], 10, 64)
		m.Errors += n
	}
	if e := wrkSockErr.FindStringSubmatch(s); e != nil {
		for _, f := range e[1:] {
			n, _ := strconv.ParseInt(f, 10, 64)
			m.Errors += n
		}
	}
	return m, nil
}

var (
	pgbenchTx     = regexp.MustCompile(`number of transactions actually processed: (\d+)`)
	pgbenchTPS    = regexp.MustCompile(`tps = ([\d.]+) \(without initial connection time\)`)
	pgbenchFailed = regexp.MustCompile(`number of failed transactions: (\d+)`)
	// pgbenchAbort is pgbench 15's message for a client that stopped ("client
	// 3 script 0 aborted in command 1 query 0: ERROR: ...", "client 3
	// aborted while establishing connection", ...). Not anchored to a line:
	// the threads' messages on stderr can interleave.
	pgbenchAbort    = regexp.MustCompile(`client (\d+) (?:script \d+ )?aborted`)
	pgbenchRunAbort = []byte("Run was aborted")
)

// pgbenchAborted counts the clients that aborted in pgbench's output: each
// distinct client that says so, and at least one if the run says it was
// aborted.
func pgbenchAborted(out []byte) int64 {
	clients := map[string]bool{}
	for _, m := range pgbenchAbort.FindAllSubmatch(out, -1) {
		clients[string(m[1])] = true
	}
	n := int64(len(clients))
	if n == 0 && bytes.Contains(out, pgbenchRunAbort) {
		n = 1
	}
	return n
}

// ParsePgbench reads pgbench's summary and the per-transaction latency logs
// it wrote with --log (files starting with logPrefix) for the percentiles.
// Errors are the failed transactions pgbench counts (serialization and
// deadlock failures, with --max-tries 1) plus one for every client that
// aborted; after an abort pgbench prints no rate when nothing ran.
func ParsePgbench(out []byte, logPrefix string, elapsed time.Duration) (Measure, error) {
	var m Measure
	m.AbortedClients = pgbenchAborted(out)
	tx := pgbenchTx.FindSubmatch(out)
	tps := pgbenchTPS.FindSubmatch(out)
	if tx == nil || (tps == nil && m.AbortedClients == 0) {
		return m, fmt.Errorf("pgbench output has no totals:\n%s", out)
	}
	m.Requests, _ = strconv.ParseInt(string(tx[1]), 10, 64)
	if tps != nil {
		m.RPS, _ = strconv.ParseFloat(string(tps[1]), 64)
	}
	m.Elapsed = elapsed
	if f := pgbenchFailed.FindSubmatch(out); f != nil {
		m.Errors, _ = strconv.ParseInt(string(f[1]), 10, 64)
	}
	m.Errors += m.AbortedClients
	lat, err := pgbenchLatencies(logPrefix)
	if err != nil {
		return m, err
	}
	m.P50 = load.Percentile(lat, 50)
	m.P99 = load.Percentile(lat, 99)
	return m, nil
}

// pgbenchLatencies reads pgbench --log files: the third field of each line is
// the transaction's latency in microseconds.
func pgbenchLatencies(prefix string) ([]time.Duration, error) {
	files, err := filepath.Glob(prefix + ".*")
	if err != nil || len(files) == 0 {
		return nil, fmt.Errorf("no pgbench latency logs at %s.*", prefix)
	}
	var lat []time.Duration
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		for _, line := range strings.Split(string(b), "\n") {
			fields := strings.Fields(line)
			if len(fields) < 3 {
				continue
			}
			us, err := strconv.ParseInt(fields[2], 10, 64)
			if err != nil {
				return nil, fmt.Errorf("pgbench log %s: %q: %w", f, line, err)
			}
			lat = append(lat, time.Duration(us)*time.Microsecond)
		}
	}
	slices.Sort(lat)
	return lat, nil
}
