// Command drill runs failure drills against the live hastack: a steady load
// through Nginx, one fault (stop, kill, freeze) on one instance, and the
// measured effect on clients and on the catalog. It prints a summary table
// and writes result.json, every request's outcome and report.html under
// -out. It exits 1 when a scenario misses a target: a hard one (FAIL: a
// failed request where none may fail, a lost acknowledged write) or a time
// one (SLOW: out of or back in rotation later than its target); 2 on bad
// flags.
//
//	drill -scenario follower-kill
//	drill -scenario backend-kill,backend-freeze -rate 50
//	drill -suite
//	drill -reanalyze results/drills/20260101T120000Z
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"hastack/cluster"
	"hastack/drill"
	"hastack/drill/report"
	"hastack/internal/cli"
)

// The first Ctrl-C ends the drill cleanly: a frozen instance is resumed,
// the load stops, writes are checked and the report is still written.
func main() {
	cli.Main("drill", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

type listFlag []string

func (l *listFlag) String() string     { return strings.Join(*l, ",") }
func (l *listFlag) Set(s string) error { *l = append(*l, s); return nil }

type config struct {
	scenarios []drill.Scenario
	opts      drill.Options
	out       string
	reanalyze string
}

func parseFlags(args []string, stderr io.Writer) (config, error) {
	var (
		cfg       config
		names     listFlag
		suite     bool
		nodeSuite bool
	)
	o := drill.DefaultOptions()
	// scripts/env.sh (and every script through scripts/lib.sh) says where
	// the running layout's entry is and, on the cluster, its network.
	if u := os.Getenv("HASTACK_URL"); u != "" {
		o.URL = strings.TrimSuffix(u, "/") + "/data"
	}
	o.Net = os.Getenv("HASTACK_NET")
	fs := flag.NewFlagSet("drill", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: drill -scenario NAME[,NAME...] | -suite [flags]\n\nscenarios: %s\n\nflags:\n",
			strings.Join(drill.ScenarioNames(), ", "))
		fs.PrintDefaults()
	}
	fs.Var(&names, "scenario", "scenario `name`s to run, comma-separated or repeated")
	fs.BoolVar(&suite, "suite", false, "run every process scenario, in order (with -nodes, the node scenarios too)")
	fs.BoolVar(&nodeSuite, "nodes", false, "with -suite: also the node scenarios (the cluster layout)")
	fs.StringVar(&o.URL, "url", o.URL, "load target (loopback, or the cluster's network; default $HASTACK_URL/data)")
	fs.StringVar(&o.Net, "net", o.Net, "the cluster's private network (CIDR) the load may target besides loopback (default $HASTACK_NET)")
	fs.Float64Var(&o.Rate, "rate", o.Rate, fmt.Sprintf("requests per second, at most %d", drill.MaxRate))
	fs.Float64Var(&o.WriteRatio, "write-ratio", o.WriteRatio, "share of POSTs, 0..1")
	fs.DurationVar(&o.Timeout, "timeout", o.Timeout, "per-request timeout")
	fs.DurationVar(&o.Baseline, "baseline", o.Baseline, "load before the fault")
	fs.DurationVar(&o.FreezeFor, "freeze-for", o.FreezeFor, "how long a freeze holds before SIGCONT")
	fs.DurationVar(&o.Recover, "recover", o.Recover, "bound on the wait, from the fault, for the victim to serve again")
	fs.DurationVar(&o.Settle, "settle", o.Settle, "bound on the wait, after it serves again, for traffic to be shared again")
	fs.DurationVar(&o.After, "after", o.After, "load after recovery, for the after figures")
	fs.DurationVar(&o.Ready, "ready", o.Ready, "bound on the wait for a healthy stack before each scenario")
	fs.StringVar(&o.AllocID, "alloc", "", "victim allocation `ID` (or 8+ char prefix); default: lowest index of the role")
	fs.StringVar(&cfg.out, "out", "", "output `dir` (default results/drills/<UTC timestamp>)")
	fs.StringVar(&cfg.reanalyze, "reanalyze", "", "recompute the figures and report of an earlier run in `dir` from its recorded requests, without touching the stack")
	if err := cli.Parse(fs, args); err != nil {
		return cfg, err
	}
	switch {
	case cfg.reanalyze != "" && (suite || len(names) > 0):
		return cfg, cli.Usage(errors.New("-reanalyze runs no scenario: drop -suite and -scenario"))
	case cfg.reanalyze != "":
		return cfg, nil
	case suite && len(names) > 0:
		return cfg, cli.Usage(errors.New("-suite and -scenario exclude each other"))
	case suite:
		cfg.scenarios = drill.Scenarios
		if !nodeSuite {
			cfg.scenarios = slices.DeleteFunc(slices.Clone(cfg.scenarios), func(s drill.Scenario) bool { return s.Fault.NodeFault() })
		}
	case len(names) == 0:
		return cfg, cli.Usage(errors.New("name a -scenario or pass -suite"))
	default:
		sc, err := drill.ParseScenarios(names)
		if err != nil {
			return cfg, cli.Usage(err)
		}
		cfg.scenarios = sc
	}
	if o.AllocID != "" && len(cfg.scenarios) > 1 {
		return cfg, cli.Usage(errors.New("-alloc picks one victim: use it with a single -scenario"))
	}
	if err := o.Validate(); err != nil {
		return cfg, cli.Usage(err)
	}
	cfg.opts = o
	if cfg.out == "" {
		cfg.out = filepath.Join("results", "drills", time.Now().UTC().Format("20060102T150405Z"))
	}
	return cfg, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	if cfg.reanalyze != "" {
		results, err := drill.ReadFiles(cfg.reanalyze)
		if err != nil {
			return err
		}
		results.Reanalyze()
		if err := write(cfg.reanalyze, results); err != nil {
			return err
		}
		return drill.WriteTable(stdout, results.Results)
	}
	for _, sc := range cfg.scenarios {
		if sc.Fault != drill.FaultStop && os.Geteuid() != 0 {
			return fmt.Errorf("%s: kill and freeze signal the task's processes (run by Nomad as root or postgres): run as root", sc.Name)
		}
	}
	clients, err := cluster.NewClients()
	if err != nil {
		return err
	}
	if cfg.opts.Nodes, err = clients.NodeCount(ctx); err != nil {
		return err
	}
	d := &drill.Driller{Clients: clients, Procfs: drill.HostProcfs, Log: stderr}
	if cfg.opts.Nodes > 1 {
		exe, err := os.Executable()
		if err != nil {
			return err
		}
		// bin/drill and scripts/node.sh live in the same checkout.
		d.Nodes = drill.NodeScript{Path: filepath.Join(filepath.Dir(filepath.Dir(exe)), "scripts", "node.sh")}
	}
	for _, sc := range cfg.scenarios {
		if sc.Fault.NodeFault() && cfg.opts.Nodes < 3 {
			return fmt.Errorf("%s: node faults need the cluster layout (HASTACK_NODES=3 scripts/up.sh); this stack has %d node", sc.Name, cfg.opts.Nodes)
		}
	}
	var results drill.Run
	var runErrs []error
	for _, sc := range cfg.scenarios {
		if ctx.Err() != nil {
			break
		}
		fmt.Fprintf(stderr, "=== %s (%s on a %s, %.0f req/s, %.1f%% writes)\n", sc.Name, sc.Fault, sc.Role, cfg.opts.Rate, 100*cfg.opts.WriteRatio)
		r, err := d.Run(ctx, sc, cfg.opts)
		if err != nil {
			runErrs = append(runErrs, fmt.Errorf("%s: %w", sc.Name, err))
		}
		if !r.Start.IsZero() {
			results.Results = append(results.Results, r)
		}
	}
	if len(results.Results) > 0 {
		if err := write(cfg.out, results); err != nil {
			return err
		}
		if err := drill.WriteTable(stdout, results.Results); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "\nresults: %s\nreport:  %s\n", filepath.Join(cfg.out, "result.json"), filepath.Join(cfg.out, "report.html"))
	}
	var failed, slow []string
	for _, r := range results.Results {
		switch {
		case !r.Passed():
			failed = append(failed, r.Scenario.Name)
		case len(r.Slow) > 0:
			slow = append(slow, r.Scenario.Name)
		}
	}
	if err := errors.Join(runErrs...); err != nil {
		return err
	}
	var missed []error
	if len(failed) > 0 {
		missed = append(missed, fmt.Errorf("FAIL: %s missed a hard target (see above)", strings.Join(failed, ", ")))
	}
	if len(slow) > 0 {
		missed = append(missed, fmt.Errorf("SLOW: %s missed a time target (see above)", strings.Join(slow, ", ")))
	}
	return errors.Join(missed...)
}

func write(dir string, results drill.Run) error {
	if err := results.WriteFiles(dir); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	f, err := os.Create(filepath.Join(dir, "report.html"))
	if err != nil {
		return err
	}
	if err := report.Render(f, results, time.Now()); err != nil {
		f.Close()
		return fmt.Errorf("render report: %w", err)
	}
	return f.Close()
}
