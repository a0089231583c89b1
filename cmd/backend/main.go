// Command backend serves the hastack HTTP API: reads from the Postgres
// followers through HAProxy, writes to the primary.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"hastack/backend"
)

func main() {
	// Nomad sends SIGINT by default; SIGTERM covers everything else.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := backend.Run(ctx, os.Args[1:], os.Getenv, os.Stdout)
	stop()
	switch {
	case err == nil:
	case errors.Is(err, flag.ErrHelp):
		os.Exit(0)
	default:
		fmt.Fprintln(os.Stderr, "backend:", err)
		os.Exit(1)
	}
}
