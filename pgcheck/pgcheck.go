// Package pgcheck is the health check of one hastack Postgres instance, served
// over HTTP for Consul: it passes only when the server answers SQL over its
// TCP port, as clients reach it, and its recovery state matches its role (a
// follower must be a hot standby, the primary must not be).
//
// It replaces a script check that forked bash and psql, and a Postgres
// backend process for psql's connection, every second for every instance:
// on the project's 2-core machine that was about a tenth of both cores at
// idle, taken from the request path under load. The checker keeps one
// connection open and asks over it; a connection that fails is closed and the
// next check dials again.
package pgcheck

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Role is what the instance must be.
type Role string

const (
	Primary  Role = "primary"
	Follower Role = "follower"
)

// ParseRole accepts "primary" and "follower".
func ParseRole(s string) (Role, error) {
	switch r := Role(s); r {
	case Primary, Follower:
		return r, nil
	default:
		return "", fmt.Errorf("role %q is not primary or follower", s)
	}
}

// wantRecovery is what pg_is_in_recovery() must answer for the role.
func (r Role) wantRecovery() bool { return r == Follower }

// Conn is one open connection to the instance.
type Conn interface {
	// InRecovery runs SELECT pg_is_in_recovery().
	InRecovery(ctx context.Context) (bool, error)
	Close(ctx context.Context) error
}

// Dialer opens a connection.
type Dialer func(ctx context.Context) (Conn, error)

// Checker checks one instance; its Check calls run one at a time.
type Checker struct {
	role Role
	dial Dialer
	// turn holds the connection: a Check takes it, and puts it back (nil
	// once it failed). A channel, not a mutex, so a Check waiting for a
	// hung one gives up at its own deadline.
	turn chan Conn
}

// NewChecker returns a checker for an instance of role, dialled with dial.
func NewChecker(role Role, dial Dialer) *Checker {
	c := &Checker{role: role, dial: dial, turn: make(chan Conn, 1)}
	c.turn <- nil
	return c
}

// ErrWrongRole is a server that answers but is not what its role requires.
var ErrWrongRole = errors.New("wrong recovery state for the role")

// Result is one check's outcome.
type Result struct {
	Role       Role  `json:"role"`
	InRecovery *bool `json:"in_recovery,omitempty"`
	// Dialled is true when the check had to open a new connection.
	Dialled bool `json:"dialled"`
}

// Check asks the instance for its recovery state within ctx. It fails when
// the server cannot be reached, does not answer in time, or answers with the
// wrong state for the role (ErrWrongRole).
func (c *Checker) Check(ctx context.Context) (Result, error) {
	res := Result{Role: c.role}
	var conn Conn
	select {
	case conn = <-c.turn:
	case <-ctx.Done():
		return res, fmt.Errorf("waiting for the previous check: %w", ctx.Err())
	}
	defer func() { c.turn <- conn }()

	rec, err := c.ask(ctx, &conn, &res)
	if err != nil && !res.Dialled && ctx.Err() == nil {
		// A kept connection can be stale: the server restarted since the
		// last check. Only a fresh one says whether it is up now.
		rec, err = c.ask(ctx, &conn, &res)
	}
	if err != nil {
		return res, err
	}
	res.InRecovery = &rec
	if rec != c.role.wantRecovery() {
		return res, fmt.Errorf("%w: pg_is_in_recovery() = %t, want %t for a %s", ErrWrongRole, rec, c.role.wantRecovery(), c.role)
	}
	return res, nil
}

// ask runs the query on *conn, dialling first when it is nil; a connection
// whose query failed is closed and *conn set to nil.
func (c *Checker) ask(ctx context.Context, conn *Conn, res *Result) (bool, error) {
	if *conn == nil {
		var err error
		if *conn, err = c.dial(ctx); err != nil {
			return false, fmt.Errorf("connect: %w", err)
		}
		res.Dialled = true
	}
	rec, err := (*conn).InRecovery(ctx)
	if err != nil {
		// The connection may be broken or mid-query: never reuse it.
		closeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 100*time.Millisecond)
		_ = (*conn).Close(closeCtx)
		cancel()
		*conn = nil
		return false, fmt.Errorf("SELECT pg_is_in_recovery(): %w", err)
	}
	return rec, nil
}

// Close closes the open connection, if any, once no check holds it.
func (c *Checker) Close(ctx context.Context) error {
	select {
	case conn := <-c.turn:
		defer func() { c.turn <- nil }()
		if conn != nil {
			return conn.Close(ctx)
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PGXDialer dials with pgx. connString may be empty: pgx then reads the
// libpq environment (PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE...).
func PGXDialer(connString string) (Dialer, error) {
	cfg, err := pgx.ParseConfig(connString)
	if err != nil {
		return nil, fmt.Errorf("connection string: %w", err)
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "hastack-pgcheck"
	}
	return func(ctx context.Context) (Conn, error) {
		conn, err := pgx.ConnectConfig(ctx, cfg.Copy())
		if err != nil {
			return nil, err
		}
		return pgxConn{conn}, nil
	}, nil
}

type pgxConn struct{ c *pgx.Conn }

func (p pgxConn) InRecovery(ctx context.Context) (bool, error) {
	var rec bool
	err := p.c.QueryRow(ctx, "SELECT pg_is_in_recovery()").Scan(&rec)
	return rec, err
}

func (p pgxConn) Close(ctx context.Context) error { return p.c.Close(ctx) }
