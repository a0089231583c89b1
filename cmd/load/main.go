// Command load sends GET (and optionally POST) requests to the hastack data
// service, prints one line per response and a summary, and exits 1 if any
// request failed.
package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"hastack/internal/cli"
	"hastack/load"
)

// Ctrl-C stops issuing requests; in-flight ones finish and are summarized.
func main() {
	cli.Main("load", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Getenv, os.Stdout, os.Stderr) })
}

// failedError means the run completed but some requests failed: exit status 1.
type failedError struct{ n int }

func (e failedError) Error() string { return fmt.Sprintf("FAIL: %d requests failed", e.n) }

// run parses args (falling back to LOAD_* variables from getenv), sends the
// load and writes the report. Per-request lines and the summary go to
// stdout, unless -json is "-": then stdout carries only the JSON summary and
// the text goes to stderr.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	cfg, opts, err := parseFlags(args, getenv, stderr)
	if err != nil {
		return err
	}
	out := stdout
	if opts.jsonPath == "-" {
		out = stderr
	}

	var results []load.Result
	runErr := load.Run(ctx, cfg, nil, func(r load.Result) {
		results = append(results, r)
		if !opts.quiet {
			fmt.Fprintln(out, formatResult(len(results), r))
		}
	})
	switch {
	case errors.Is(runErr, context.Canceled):
		fmt.Fprintln(out, "interrupted: summary of requests sent so far")
	case runErr != nil:
		return runErr
	}

	sum := load.Summarize(results)
	if err := sum.WriteText(out); err != nil {
		return err
	}
	if opts.jsonPath != "" {
		if err := writeJSON(opts.jsonPath, stdout, sum); err != nil {
			return err
		}
	}
	if sum.Failed > 0 {
		return failedError{sum.Failed}
	}
	return nil
}

type options struct {
	quiet    bool
	jsonPath string
}

func parseFlags(args []string, getenv func(string) string, stderr io.Writer) (load.Config, options, error) {
	var (
		cfg  load.Config
		opts options
	)
	// A flag's default is its LOAD_* variable when set, else def; a value
	// that does not parse is reported, not ignored.
	env := &cli.Env{Getenv: getenv}
	envInt := func(name string, def int) int { return cli.EnvOr(env, name, def, strconv.Atoi) }
	envFloat := func(name string, def float64) float64 {
		return cli.EnvOr(env, name, def, func(s string) (float64, error) { return strconv.ParseFloat(s, 64) })
	}
	envDur := func(name string, def time.Duration) time.Duration {
		return cli.EnvOr(env, name, def, time.ParseDuration)
	}

	fs := flag.NewFlagSet("load", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(fs.Output(), "usage: load [flags]\n\nSends requests to the data service and summarizes who answered.\nEach flag falls back to the LOAD_* variable shown, then to its default.\n\nflags:")
		fs.PrintDefaults()
	}
	// The running layout's entry (HASTACK_URL, from scripts/env.sh) unless
	// told otherwise.
	defURL := "http://127.0.0.1:8080/data"
	if u := getenv("HASTACK_URL"); u != "" {
		defURL = strings.TrimSuffix(u, "/") + "/data"
	}
	fs.StringVar(&cfg.URL, "url", cmp.Or(getenv("LOAD_URL"), defURL), "target `URL` (LOAD_URL, else $HASTACK_URL/data)")
	fs.IntVar(&cfg.Requests, "n", envInt("LOAD_REQUESTS", 1000), "requests to send, 0 = until -duration (LOAD_REQUESTS)")
	fs.DurationVar(&cfg.Duration, "duration", envDur("LOAD_DURATION", 60*time.Second), "hard bound on the run, 0 = until -n (LOAD_DURATION)")
	fs.IntVar(&cfg.Concurrency, "c", envInt("LOAD_CONCURRENCY", 8), "concurrent workers (LOAD_CONCURRENCY)")
	fs.Float64Var(&cfg.Rate, "rate", envFloat("LOAD_RATE", 0), "requests per second over all workers, 0 = as fast as possible (LOAD_RATE)")
	fs.Float64Var(&cfg.WriteRatio, "write-ratio", envFloat("LOAD_WRITE_RATIO", 0), "share of POSTs, 0..1 (LOAD_WRITE_RATIO)")
	fs.DurationVar(&cfg.Timeout, "timeout", envDur("LOAD_TIMEOUT", 5*time.Second), "per-request timeout (LOAD_TIMEOUT)")
	fs.BoolVar(&opts.quiet, "quiet", false, "no per-request lines")
	fs.StringVar(&opts.jsonPath, "json", getenv("LOAD_JSON"), "also write the summary as JSON to `FILE`, - for stdout (LOAD_JSON)")

	if err := errors.Join(env.Errs...); err != nil {
		return cfg, opts, cli.Usage(err)
	}
	if err := cli.Parse(fs, args); err != nil {
		return cfg, opts, err
	}
	if err := cfg.Validate(); err != nil {
		return cfg, opts, cli.Usage(err)
	}
	return cfg, opts, nil
}

// formatResult renders one response line, e.g.
//
//	17  GET 200 backend-1 follower-0 127.0.0.1:25123 id=4242 1.8ms
//	18  GET ERR http_502 bad gateway 3.1ms
func formatResult(n int, r load.Result) string {
	lat := load.FormatLatency(r.Latency)
	if !r.OK() {
		return fmt.Sprintf("%5d %4s ERR %s %s %s", n, r.Method, r.Kind, r.Err, lat)
	}
	return fmt.Sprintf("%5d %4s %d %s %s %s id=%d %s", n, r.Method, r.Status,
		r.Backend, cmp.Or(r.Follower, "-"), cmp.Or(r.FollowerAddr, "-"), r.ID, lat)
}

func writeJSON(path string, stdout io.Writer, sum load.Summary) error {
	data, err := json.MarshalIndent(sum, "", "  ")
	if err != nil {
		return err
	}
	data = append(data, '\n')
	if path == "-" {
		_, err = stdout.Write(data)
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return fmt.Errorf("writing summary: %w", err)
	}
	return nil
}
