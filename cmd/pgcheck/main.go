// Command pgcheck serves the Consul health check of one hastack Postgres
// instance: GET /health passes when the server answers SQL and is in the
// recovery state its role requires (see package pgcheck).
package main

import (
	"context"
	"os"

	"hastack/internal/cli"
	"hastack/pgcheck"
)

func main() {
	cli.Main("pgcheck", func(ctx context.Context) error { return pgcheck.Run(ctx, os.Args[1:], os.Getenv, os.Stdout) })
}
