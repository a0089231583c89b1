// Command bench measures the running hastack against the database's own
// limit: pgbench through HAProxy and straight to a follower, wrk on one
// backend, through Nginx and on a static Nginx answer, at several concurrency
// levels. It prints a table and writes it as JSON under -out.
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"hastack/bench"
	"hastack/cluster"
	"hastack/internal/cli"
)

func main() {
	cli.Main("bench", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	levels := fs.String("levels", "16,64,256", "comma-separated concurrent connections per level")
	duration := fs.Duration("duration", 10*time.Second, "measured time per path and level")
	warmup := fs.Duration("warmup", 3*time.Second, "unmeasured load before each measurement")
	threads := fs.Int("threads", 2, "load generator threads (wrk -t, pgbench -j)")
	smoke := fs.Bool("smoke", false, "4 connections, 1s idle, 1s warm-up and 2s per path (about 17s in all), to prove the command works (overrides -levels, -duration, -warmup, -idle)")
	out := fs.String("out", "results/bench", "directory for the JSON result")
	nginx := fs.String("nginx", cmp.Or(os.Getenv("HASTACK_URL"), "http://127.0.0.1:8080"), "Nginx base URL")
	pgbench := fs.String("pgbench", "/usr/lib/postgresql/15/bin/pgbench", "pgbench binary")
	wrk := fs.String("wrk", "/usr/bin/wrk", "wrk binary")
	seedRows := fs.Int("seed-rows", 10000, "key range of the lookup (the backend's -seed-rows)")
	idle := fs.Duration("idle", 10*time.Second, "measure the stack's CPU with no load this long before the paths; 0 skips it")
	paths := fs.String("paths", strings.Join(bench.PathNames(), ","), "comma-separated paths to measure; without db-haproxy and db-direct there is no database limit to compare with")
	if err := fs.Parse(args); err != nil {
		return cli.Usage(err)
	}
	cfg := bench.Config{Duration: *duration, Warmup: *warmup, Threads: *threads, Pgbench: *pgbench, Wrk: *wrk, SeedRows: *seedRows, Idle: *idle}
	if *smoke {
		*levels, cfg.Duration, cfg.Warmup, cfg.Idle = "4", 2*time.Second, time.Second, time.Second
	}
	if cfg.Idle < 0 {
		return cli.Usage(fmt.Errorf("-idle must not be negative"))
	}
	for _, l := range strings.Split(*levels, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(l))
		if err != nil || n < 1 || n > 4096 {
			return cli.Usage(fmt.Errorf("-levels: %q is not a connection count in 1..4096", l))
		}
		cfg.Levels = append(cfg.Levels, n)
	}
	if cfg.Duration < time.Second || cfg.Threads < 1 || *seedRows < 1 {
		return cli.Usage(fmt.Errorf("-duration must be at least 1s, -threads and -seed-rows positive"))
	}
	for _, p := range strings.Split(*paths, ",") {
		p = strings.TrimSpace(p)
		if !slices.Contains(bench.PathNames(), p) {
			return cli.Usage(fmt.Errorf("-paths: %q is not one of %s", p, strings.Join(bench.PathNames(), ", ")))
		}
		cfg.Paths = append(cfg.Paths, p)
	}
	for _, b := range []string{cfg.Pgbench, cfg.Wrk} {
		if _, err := os.Stat(b); err != nil {
			return fmt.Errorf("%s missing: run scripts/install.sh", b)
		}
	}
	work, err := os.MkdirTemp("", "hastack-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cfg.WorkDir = work

	t, err := targets(ctx, strings.TrimRight(*nginx, "/"))
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "benchmarking: %v connections, %s each after %s warm-up (%s)\n", cfg.Levels, cfg.Duration, cfg.Warmup, strings.Join(cfg.Paths, ", "))
	rep, err := bench.Run(ctx, cfg, t, func(r bench.Row) {
		bound := ""
		if r.LoadgenBound {
			bound = "  (load generator at its limit)"
		}
		fmt.Fprintf(stdout, "  %-15s %4d conns  %8.0f req/s  p99 %6.2fms  errors %d  loadgen %.2f cores%s\n", r.Path, r.Conns, r.Measure.RPS,
			float64(r.Measure.P99)/float64(time.Millisecond), r.Measure.Errors, r.LoadgenCores, bound)
	})
	if err != nil {
		return err
	}
	fmt.Fprintln(stdout)
	if err := rep.WriteTable(stdout); err != nil {
		return err
	}
	p, err := rep.WriteJSON(*out)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "\nwrote %s\n", p)
	// The table and JSON are written; a run with errors still fails, so
	// scripts and tests that run it see the missed zero-error target.
	if n := rep.Errors(); n > 0 {
		return fmt.Errorf("%d errors in this run (see ERRORS above)", n)
	}
	return nil
}

// targets asks Consul where each measured path starts.
func targets(ctx context.Context, nginx string) (bench.Targets, error) {
	t := bench.Targets{NginxURL: nginx + "/data", StaticURL: nginx + "/nginx-health"}
	c, err := cluster.NewClients()
	if err != nil {
		return t, err
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if t.HAProxyDSN, err = c.DSN(ctx, "haproxy"); err != nil {
		return t, fmt.Errorf("%w: is the stack up (scripts/up.sh)?", err)
	}
	if t.FollowerDSN, err = c.DSN(ctx, "postgres-follower"); err != nil {
		return t, err
	}
	backends, err := c.Passing(ctx, "backend")
	if err != nil {
		return t, err
	}
	if len(backends) == 0 {
		return t, fmt.Errorf("no passing backend in Consul")
	}
	t.BackendURL = "http://" + backends[0].Addr + "/data"
	for _, b := range backends {
		t.BackendMetrics = append(t.BackendMetrics, "http://"+b.Addr+"/metrics")
	}
	return t, nil
}
