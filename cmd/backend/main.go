// Command backend serves the hastack HTTP API: reads from the Postgres
// followers through HAProxy, writes to the primary.
package main

import (
	"context"
	"os"

	"hastack/backend"
	"hastack/internal/cli"
)

// Nomad sends SIGINT by default; SIGTERM covers everything else.
func main() {
	cli.Main("backend", func(ctx context.Context) error { return backend.Run(ctx, os.Args[1:], os.Getenv, os.Stdout) })
}
