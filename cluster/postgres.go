package cluster

import (
	"context"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// AppDSN is the connection string of the app user to the hastack database
// at addr (host:port), with the password from Nomad's variables.
func (c *Clients) AppDSN(ctx context.Context, addr string) (string, error) {
	pw, err := c.Secret(ctx, "app_password")
	if err != nil {
		return "", err
	}
	u := url.URL{Scheme: "postgres", User: url.UserPassword("app", pw), Host: addr, Path: "/hastack", RawQuery: "sslmode=disable"}
	return u.String(), nil
}

// DSN is AppDSN for the first passing instance of service
// (postgres-primary, postgres-follower or haproxy).
func (c *Clients) DSN(ctx context.Context, service string) (string, error) {
	inst, err := c.Passing(ctx, service)
	if err != nil {
		return "", err
	}
	if len(inst) == 0 {
		return "", fmt.Errorf("no passing instance of %s", service)
	}
	return c.AppDSN(ctx, inst[0].Addr)
}

// Connect opens a connection as the app user to the database at addr; a
// server that does not answer fails the connect after 5 s.
func (c *Clients) Connect(ctx context.Context, addr string) (*pgx.Conn, error) {
	dsn, err := c.AppDSN(ctx, addr)
	if err != nil {
		return nil, err
	}
	cfg, err := pgx.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("parse dsn for %s: %w", addr, err)
	}
	cfg.ConnectTimeout = 5 * time.Second
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", addr, err)
	}
	return conn, nil
}

// PrimaryLSN is the primary's current WAL position.
func PrimaryLSN(ctx context.Context, primary *pgx.Conn) (string, error) {
	var lsn string
	if err := primary.QueryRow(ctx, `SELECT pg_current_wal_lsn()::text`).Scan(&lsn); err != nil {
		return "", fmt.Errorf("primary wal position: %w", err)
	}
	return lsn, nil
}

// ReplayedTo is a Poll condition: the follower behind conn has replayed the
// WAL up to lsn, so it holds everything the primary had committed then.
func ReplayedTo(conn *pgx.Conn, lsn string) func(context.Context) error {
	return func(ctx context.Context) error {
		var ok bool
		err := conn.QueryRow(ctx, `SELECT coalesce(pg_last_wal_replay_lsn() >= $1::pg_lsn, false)`, lsn).Scan(&ok)
		if err != nil {
			return fmt.Errorf("replay position: %w", err)
		}
		if !ok {
			return fmt.Errorf("replay behind %s: %w", lsn, ErrNotYet)
		}
		return nil
	}
}
