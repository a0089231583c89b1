package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"time"
)

// Config says what to measure and for how long.
type Config struct {
	Levels   []int         // concurrent connections per level
	Duration time.Duration // measured time per path and level
	Warmup   time.Duration // unmeasured load before each measurement
	Threads  int           // load generator threads (wrk -t, pgbench -j)
	WorkDir  string        // scratch files (pgbench script and logs)
	Pgbench  string        // pgbench binary
	Wrk      string        // wrk binary
	SeedRows int           // key range of the lookup, as the backend uses
	Paths    []string      // paths to measure (see PathNames); empty: all
	Idle     time.Duration // how long to measure the stack's CPU with no load first; 0: skip
}

// Targets are where each path is measured, found through Consul.
type Targets struct {
	HAProxyDSN  string // pgbench through HAProxy to the followers
	FollowerDSN string // pgbench straight to one follower
	BackendURL  string // GET /data on one backend instance
	NginxURL    string // GET /data through Nginx
	StaticURL   string // a static answer from Nginx itself
	// BackendMetrics are every backend's /metrics: where the time goes
	// inside them. Empty: not read.
	BackendMetrics []string
}

// Row is one measured path at one concurrency level.
type Row struct {
	Path      string             `json:"path"`
	Conns     int                `json:"conns"`
	Measure   Measure            `json:"measure"`
	CPUPer1k  map[string]float64 `json:"cpu_seconds_per_1k_requests"`
	RatioToDB float64            `json:"ratio_to_db_limit"`
	// The load generator (wrk or pgbench) over its measured run: its CPU
	// seconds per wall second, the threads it ran, and whether that is at
	// its limit (see loadgenBound).
	LoadgenCores   float64 `json:"loadgen_cores"`
	LoadgenThreads int     `json:"loadgen_threads"`
	LoadgenBound   bool    `json:"loadgen_bound"`
	BackendRSS     int64   `json:"backend_max_rss_bytes,omitempty"`
	Inside         *Inside `json:"inside_backends,omitempty"`
	Description    string  `json:"description"`
}

// Report is a whole run.
type Report struct {
	Started   time.Time `json:"started"`
	Host      string    `json:"host"`
	Cores     int       `json:"cores"`           // online CPUs (see OnlineCPUs)
	Autogroup string    `json:"sched_autogroup"` // kernel.sched_autogroup_enabled at the start
	Duration  string    `json:"duration_per_level"`
	Warmup    string    `json:"warmup_per_level"`
	DBLimit   float64   `json:"db_limit_rps"`
	Idle      *Idle     `json:"idle,omitempty"`
	Rows      []Row     `json:"rows"`
}

// Idle is the CPU the machine and each group used with no load, in cores
// (CPU seconds per second): what the stack costs before serving anything.
type Idle struct {
	Seconds      float64            `json:"seconds"`
	MachineCores float64            `json:"machine_busy_cores"`
	GroupCores   map[string]float64 `json:"group_cores"`
}

// MeasureIdle samples the machine and the groups d apart.
func MeasureIdle(ctx context.Context, d time.Duration) (*Idle, error) {
	sample := func() (busy float64, groups CPUSample, err error) {
		if busy, err = MachineCPU(); err != nil {
			return 0, nil, err
		}
		groups, err = SampleCPU()
		return busy, groups, err
	}
	busy0, before, err := sample()
	if err != nil {
		return nil, err
	}
	start := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(d):
	}
	busy1, after, err := sample()
	if err != nil {
		return nil, err
	}
	secs := time.Since(start).Seconds()
	idle := &Idle{Seconds: secs, MachineCores: (busy1 - busy0) / secs, GroupCores: map[string]float64{}}
	for g, used := range after.Sub(before) {
		if g != "loadgen" {
			idle.GroupCores[g] = used / secs
		}
	}
	return idle, nil
}

// lookupScript is one lookup of one row by a random key, with the columns
// GET /data answers with, one transaction each (pgbench -M prepared runs it
// as a prepared statement). It is not the query /data sends: a backend
// gathers the reads that arrive together into one `WHERE id = ANY($1)`
// query (backend/store.go), so a path's ratio to the database limit
// compares HTTP requests/s with these single-lookup transactions/s.
const lookupScript = `\set id random(1, %d)
SELECT id, payload, created_at, current_setting('cluster_name'), host(inet_server_addr()), inet_server_port() FROM items WHERE id = :id;
`

// pathKind says what else a path's measurement tells.
type pathKind int

const (
	// kindDB: the database alone; its best rate is the run's database limit.
	kindDB pathKind = iota
	// kindBackends: crosses the backends, so their memory and where the
	// time went inside them are measured too.
	kindBackends
	// kindProxy: Nginx alone.
	kindProxy
)

// path is one measured path: run measures it at conns connections for d
// (measure false: a warm-up, nothing parsed).
type path struct {
	name, desc string
	kind       pathKind
	run        func(ctx context.Context, e pathEnv, conns int, d time.Duration, measure bool) (Measure, loadgen, error)
}

// pathEnv is what the paths run with.
type pathEnv struct {
	cfg    Config
	t      Targets
	script string // pgbench's lookup script
}

// paths are the measured paths, in the order they run.
var paths = []path{
	{"db-haproxy", "pgbench -M prepared, one-row lookups by key (/data batches its reads), through HAProxy to both followers", kindDB,
		func(ctx context.Context, e pathEnv, c int, d time.Duration, m bool) (Measure, loadgen, error) {
			return e.cfg.pgbench(ctx, e.t.HAProxyDSN, e.script, c, d, m)
		}},
	{"db-direct", "pgbench -M prepared, one-row lookups by key (/data batches its reads), straight to one follower", kindDB,
		func(ctx context.Context, e pathEnv, c int, d time.Duration, m bool) (Measure, loadgen, error) {
			return e.cfg.pgbench(ctx, e.t.FollowerDSN, e.script, c, d, m)
		}},
	{"backend-direct", "wrk GET /data on one backend instance (no Nginx)", kindBackends,
		func(ctx context.Context, e pathEnv, c int, d time.Duration, m bool) (Measure, loadgen, error) {
			return e.cfg.wrk(ctx, e.t.BackendURL, c, d)
		}},
	{"full-stack", "wrk GET /data through Nginx, both backends, HAProxy, both followers", kindBackends,
		func(ctx context.Context, e pathEnv, c int, d time.Duration, m bool) (Measure, loadgen, error) {
			return e.cfg.wrk(ctx, e.t.NginxURL, c, d)
		}},
	{"nginx-static", "wrk GET a static answer from Nginx (the proxy's own ceiling)", kindProxy,
		func(ctx context.Context, e pathEnv, c int, d time.Duration, m bool) (Measure, loadgen, error) {
			return e.cfg.wrk(ctx, e.t.StaticURL, c, d)
		}},
}

// PathNames are the measured paths' names, in the order they run.
func PathNames() []string {
	names := make([]string, len(paths))
	for i, p := range paths {
		names[i] = p.name
	}
	return names
}

// Run measures every path at every level. progress gets one line per row.
func Run(ctx context.Context, cfg Config, t Targets, progress func(Row)) (*Report, error) {
	host, _ := os.Hostname()
	rep := &Report{Started: time.Now().UTC(), Host: host, Cores: OnlineCPUs(), Autogroup: SchedAutogroup(), Duration: cfg.Duration.String(), Warmup: cfg.Warmup.String()}
	script := filepath.Join(cfg.WorkDir, "lookup.sql")
	if err := os.WriteFile(script, fmt.Appendf(nil, lookupScript, cfg.SeedRows), 0o644); err != nil {
		return nil, err
	}
	env := pathEnv{cfg: cfg, t: t, script: script}
	if cfg.Idle > 0 {
		idle, err := MeasureIdle(ctx, cfg.Idle)
		if err != nil {
			return rep, fmt.Errorf("idle: %w", err)
		}
		rep.Idle = idle
	}
	for _, p := range paths {
		if len(cfg.Paths) > 0 && !slices.Contains(cfg.Paths, p.name) {
			continue
		}
		for _, c := range cfg.Levels {
			if cfg.Warmup > 0 {
				if _, _, err := p.run(ctx, env, c, cfg.Warmup, false); err != nil {
					return rep, fmt.Errorf("%s warmup at %d connections: %w", p.name, c, err)
				}
			}
			var inside func() (*Inside, error)
			if p.kind == kindBackends && len(t.BackendMetrics) > 0 {
				var err error
				if inside, err = insideSince(ctx, t.BackendMetrics); err != nil {
					return rep, err
				}
			}
			before, err := SampleCPU()
			if err != nil {
				return rep, err
			}
			stopRSS := func() int64 { return 0 }
			if p.kind == kindBackends {
				stopRSS = watchMaxRSS("backend", 250*time.Millisecond) // while they are under load
			}
			m, gen, err := p.run(ctx, env, c, cfg.Duration, true)
			rss := stopRSS()
			if err != nil {
				return rep, fmt.Errorf("%s at %d connections: %w", p.name, c, err)
			}
			after, err := SampleCPU()
			if err != nil {
				return rep, err
			}
			var in *Inside
			if inside != nil {
				if in, err = inside(); err != nil {
					return rep, fmt.Errorf("%s at %d connections: %w", p.name, c, err)
				}
			}
			used := after.Sub(before)
			used["loadgen"] = gen.cpu.Seconds()
			row := Row{Path: p.name, Conns: c, Measure: m, CPUPer1k: map[string]float64{}, BackendRSS: rss, Inside: in, Description: p.desc,
				LoadgenThreads: gen.threads}
			if gen.wall > 0 {
				row.LoadgenCores = gen.cpu.Seconds() / gen.wall.Seconds()
			}
			row.LoadgenBound = loadgenBound(row.LoadgenCores, gen.threads, rep.Cores)
			if m.Requests > 0 {
				for _, g := range Groups {
					row.CPUPer1k[g] = used[g] / (float64(m.Requests) / 1000)
				}
			}
			if p.kind == kindDB {
				rep.DBLimit = max(rep.DBLimit, m.RPS)
			}
			rep.Rows = append(rep.Rows, row)
			if progress != nil {
				progress(row)
			}
		}
	}
	for i := range rep.Rows {
		if rep.DBLimit > 0 {
			rep.Rows[i].RatioToDB = rep.Rows[i].Measure.RPS / rep.DBLimit
		}
	}
	return rep, nil
}

func (cfg Config) pgbench(ctx context.Context, dsn, script string, conns int, d time.Duration, measure bool) (Measure, loadgen, error) {
	prefix := filepath.Join(cfg.WorkDir, "pgbench-log")
	old, _ := filepath.Glob(prefix + ".*")
	for _, f := range old {
		os.Remove(f)
	}
	threads := min(cfg.Threads, conns)
	args := []string{"-n", "-M", "prepared", "-f", script, "-c", strconv.Itoa(conns), "-j", strconv.Itoa(threads),
		"-T", strconv.Itoa(max(int(d.Seconds()), 1))}
	if measure { // per-transaction latencies, for the percentiles
		args = append(args, "--log", "--log-prefix", prefix)
	}
	args = append(args, dsn)
	out, gen, err := runTool(ctx, cfg.Pgbench, args, d)
	gen.threads = threads
	// pgbench exits 2 when a client aborted on an SQL error (anything but a
	// serialization failure or deadlock) or lost its connection, after
	// printing the totals of what ran: the aborted clients are errors of
	// this row, not the end of the run. Any other failure (no connection
	// at the start, bad arguments) is.
	var exit *exec.ExitError
	if err != nil && !(errors.As(err, &exit) && exit.ExitCode() == 2 && pgbenchAborted(out) > 0) {
		return Measure{}, gen, err
	}
	if !measure {
		return Measure{}, gen, nil
	}
	m, err := ParsePgbench(out, prefix, d)
	return m, gen, err
}

func (cfg Config) wrk(ctx context.Context, url string, conns int, d time.Duration) (Measure, loadgen, error) {
	threads := min(cfg.Threads, conns)
	args := []string{"-t", strconv.Itoa(threads), "-c", strconv.Itoa(conns), "-d", fmt.Sprintf("%ds", max(int(d.Seconds()), 1)), // wrk takes whole seconds
		"--latency", "--timeout", "5s", url}
	out, gen, err := runTool(ctx, cfg.Wrk, args, d)
	gen.threads = threads
	if err != nil {
		return Measure{}, gen, err
	}
	m, err := ParseWrk(out)
	return m, gen, err
}

// loadgen is what a load generator's run cost it.
type loadgen struct {
	cpu     time.Duration // user + system, from wait4's rusage (not /proc)
	wall    time.Duration // from start to exit
	threads int           // wrk -t, pgbench -j
}

// loadgenBoundShare is how much of the cores its threads can run on a load
// generator may use before its row is marked as measuring the generator.
const loadgenBoundShare = 0.9

// loadgenBound says whether a load generator that used cores (CPU seconds
// per wall second) with threads threads on a machine of machineCores was at
// its own limit: each of its threads runs on at most one core, so it can
// never use more than min(threads, machineCores) cores; past 90% of that it
// cannot go faster, and the row's rate is the generator's, not the path's.
// This is the only case it flags. Below it the generator still shares the
// cores with the stack (its CPU per 1000 requests is in the table), so a
// faster generator would free some CPU for the stack, but it was not what
// stopped the rate.
func loadgenBound(cores float64, threads, machineCores int) bool {
	usable := loadgenUsable(threads, machineCores)
	return usable > 0 && cores > loadgenBoundShare*float64(usable)
}

// loadgenUsable is how many cores a load generator with threads threads
// can use on a machine of machineCores: one per thread, at most all.
func loadgenUsable(threads, machineCores int) int { return min(threads, machineCores) }

// runTool runs a load generator bounded by its own duration plus a margin,
// and returns its output (stdout and stderr) and what it cost.
func runTool(ctx context.Context, bin string, args []string, d time.Duration) ([]byte, loadgen, error) {
	ctx, cancel := context.WithTimeout(ctx, d+30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	err := cmd.Run()
	gen := loadgen{wall: time.Since(start)}
	if cmd.ProcessState != nil {
		gen.cpu = cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	}
	if err != nil {
		return out.Bytes(), gen, fmt.Errorf("%s: %w\n%s", filepath.Base(bin), err, out.Bytes())
	}
	return out.Bytes(), gen, nil
}
