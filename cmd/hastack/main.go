// Command hastack answers operational questions about a running hastack by
// asking Nomad and Consul: it waits for the agents and services to be ready,
// ensures the database secrets exist and prints connection strings.
//
//	hastack wait-agents   [-timeout 90s] [-nodes 1]
//	hastack wait-consul   [-timeout 90s]
//	hastack wait-http     [-timeout 90s] URL
//	hastack wait-services [-timeout 300s] [-jobs postgres,haproxy] name=count...
//	hastack wait-stopped  [-timeout 90s] job...
//	hastack secrets
//	hastack dsn postgres-primary|postgres-follower|haproxy
package main

import (
	"cmp"
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"hastack/cluster"
	"hastack/internal/cli"
)

func main() {
	cli.Main("hastack", func(ctx context.Context) error { return run(ctx, os.Args[1:], os.Stdout, os.Stderr) })
}

const usage = `usage: hastack <command> [flags]
  wait-agents   [-timeout 90s] [-nodes N]            wait for N Consul and Nomad servers and N ready Nomad clients
  wait-consul   [-timeout 90s]                       wait until the Consul agent at CONSUL_HTTP_ADDR answers
  wait-http     [-timeout 90s] URL                   wait until GET URL answers 200
  wait-services [-timeout 300s] [-jobs a,b] name=N... wait until each service has N passing instances
  wait-stopped  [-timeout 90s] job...                 wait until the jobs' allocations are gone
  secrets                                            create the database passwords in Nomad variables unless present
  dsn SERVICE                                        print a connection string for the app user`

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return cli.Usage(fmt.Errorf("no command\n%s", usage))
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	timeout := fs.Duration("timeout", 90*time.Second, "give up after this long")
	jobs := fs.String("jobs", "", "comma-separated jobs whose failing allocations are reported on timeout")
	nodes := fs.Int("nodes", 1, "wait-agents: how many nodes, each a Consul server and a Nomad server and client")
	if err := fs.Parse(args); err != nil {
		return cli.Usage(err)
	}
	if *timeout <= 0 {
		return cli.Usage(fmt.Errorf("-timeout must be positive"))
	}
	if *nodes < 1 {
		return cli.Usage(fmt.Errorf("-nodes must be at least 1"))
	}
	c, err := cluster.NewClients()
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()

	switch cmd {
	case "wait-agents":
		start := time.Now()
		if err := cluster.Poll(ctx, fmt.Sprintf("a consul leader and %d servers", *nodes), c.ConsulServersReady(*nodes)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "consul: leader elected, servers alive: %d (after %s)\n", *nodes, time.Since(start).Round(100*time.Millisecond))
		what := fmt.Sprintf("a nomad leader, %d servers and %d ready clients with raw_exec, consul and the %s volume", *nodes, *nodes, cluster.PostgresVolume)
		if err := cluster.Poll(ctx, what, c.NomadReady(*nodes)); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "nomad: leader elected, servers alive: %d, clients ready: %d (after %s)\n", *nodes, *nodes, time.Since(start).Round(100*time.Millisecond))
		return nil
	case "wait-consul":
		return cluster.Poll(ctx, "the consul agent at "+cmp.Or(os.Getenv("CONSUL_HTTP_ADDR"), "127.0.0.1:8500"), c.ConsulAgentUp)
	case "wait-http":
		if fs.NArg() != 1 {
			return cli.Usage(fmt.Errorf("wait-http needs one URL"))
		}
		start := time.Now()
		if err := cluster.Poll(ctx, "GET "+fs.Arg(0)+" to answer 200", cluster.HTTPOK(fs.Arg(0))); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "%s answers after %s\n", fs.Arg(0), time.Since(start).Round(100*time.Millisecond))
		return nil
	case "wait-services":
		wants, err := cluster.ParseWants(fs.Args())
		if err != nil {
			return cli.Usage(err)
		}
		if len(wants) == 0 {
			return cli.Usage(fmt.Errorf("wait-services needs name=count arguments"))
		}
		start := time.Now()
		if err := cluster.Poll(ctx, "services to pass their checks", c.ServicesPassing(wants)); err != nil {
			if *jobs != "" {
				pctx, pcancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer pcancel()
				if p := c.Problems(pctx, strings.Split(*jobs, ",")); p != "" {
					err = fmt.Errorf("%w\nallocations that are not healthy:\n%s", err, p)
				}
			}
			return err
		}
		fmt.Fprintf(stdout, "services passing after %s: %s\n", time.Since(start).Round(100*time.Millisecond), strings.Join(fs.Args(), " "))
		return nil
	case "wait-stopped":
		if fs.NArg() == 0 {
			return cli.Usage(fmt.Errorf("wait-stopped needs job names"))
		}
		return cluster.Poll(ctx, "allocations to stop", c.JobsStopped(fs.Args()))
	case "secrets":
		created, err := c.EnsureSecrets(ctx)
		if err != nil {
			return err
		}
		if created {
			fmt.Fprintf(stdout, "secrets: created database passwords in Nomad variable %s\n", cluster.SecretsPath)
		} else {
			fmt.Fprintf(stdout, "secrets: present in Nomad variable %s\n", cluster.SecretsPath)
		}
		return nil
	case "dsn":
		if fs.NArg() != 1 {
			return cli.Usage(fmt.Errorf("dsn needs one service name (postgres-primary, postgres-follower, haproxy)"))
		}
		dsn, err := c.DSN(ctx, fs.Arg(0))
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, dsn)
		return nil
	default:
		return cli.Usage(fmt.Errorf("unknown command %q\n%s", cmd, usage))
	}
}
