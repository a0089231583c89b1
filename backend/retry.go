package backend

import (
	"context"
	"errors"
	"io"
	"net"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
)

// connectionError reports whether err means "this connection or server is
// unusable right now" as opposed to "this query is wrong" or "no such row".
// Such errors make a read worth retrying on another connection, which
// HAProxy may route to the other follower, and make a request answer 503
// rather than 500 once retries run out.
func connectionError(err error) bool {
	if err == nil || errors.Is(err, pgx.ErrNoRows) || errors.Is(err, context.Canceled) {
		return false
	}
	// A server answer decides by SQLSTATE, even inside a ConnectError
	// (a wrong password is a 28P01 during connect, and retrying won't fix it).
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", // admin_shutdown: the follower is being stopped
			"57P02", // crash_shutdown
			"57P03": // cannot_connect_now: starting up or in recovery
			return true
		}
		// Class 08: connection exception.
		return len(pgErr.Code) == 5 && pgErr.Code[:2] == "08"
	}
	var connectErr *pgconn.ConnectError
	var netErr net.Error
	switch {
	case errors.As(err, &connectErr),
		pgconn.SafeToRetry(err),
		pgconn.Timeout(err),
		errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, io.EOF),
		errors.Is(err, io.ErrUnexpectedEOF),
		errors.Is(err, net.ErrClosed),
		errors.Is(err, syscall.ECONNREFUSED),
		errors.Is(err, syscall.ECONNRESET),
		errors.Is(err, syscall.EPIPE),
		errors.As(err, &netErr):
		return true
	}
	return false
}

// writeSafeToRetry reports whether a failed write certainly never reached
// the server, so sending it again cannot insert a row twice. A failed
// connect has sent nothing of the query either.
func writeSafeToRetry(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		return false
	}
	var connectErr *pgconn.ConnectError
	return pgconn.SafeToRetry(err) || errors.As(err, &connectErr)
}

// writeUnavailable reports whether a failed write means the primary is not
// usable (down, restarting, or demoted to a read-only standby).
func writeUnavailable(err error) bool {
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "25006" { // read_only_sql_transaction
		return true
	}
	return connectionError(err)
}

// RetryPolicy bounds the retries of one operation. The caller's context
// deadline bounds them too; whichever ends first wins.
type RetryPolicy struct {
	// MaxAttempts counts the first try.
	MaxAttempts int
	// AttemptTimeout bounds each attempt; zero means only the caller's deadline.
	AttemptTimeout time.Duration
	// BaseBackoff is the pause after the first failure; it doubles after
	// each further failure up to MaxBackoff.
	BaseBackoff time.Duration
	MaxBackoff  time.Duration
}

// DefaultReadPolicy retries a read up to 5 times, 10ms, 20ms, 40ms, 80ms apart.
func DefaultReadPolicy(attemptTimeout time.Duration) RetryPolicy {
	return RetryPolicy{MaxAttempts: 5, AttemptTimeout: attemptTimeout, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

// DefaultWritePolicy retries a write that was never sent up to 3 times.
func DefaultWritePolicy() RetryPolicy {
	return RetryPolicy{MaxAttempts: 3, BaseBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond}
}

func (p RetryPolicy) backoff(failures int) time.Duration {
	d := p.BaseBackoff
	for i := 1; i < failures && d < p.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, p.MaxBackoff)
}

// retry runs op until it succeeds, fails with an error retryable rejects,
// MaxAttempts is reached or ctx ends. It returns the number of attempts
// made and the last error. onRetry, if set, is called before each retry.
func retry(ctx context.Context, p RetryPolicy, retryable func(error) bool, onRetry func(attempt int, err error), op func(ctx context.Context) error) (int, error) {
	var err error
	attempt := 0
	for {
		attempt++
		err = runAttempt(ctx, p.AttemptTimeout, op)
		if err == nil || !retryable(err) || attempt >= max(p.MaxAttempts, 1) || ctx.Err() != nil {
			return attempt, err
		}
		if onRetry != nil {
			onRetry(attempt, err)
		}
		if !pause(ctx, p.backoff(attempt)) {
			return attempt, errors.Join(err, ctx.Err())
		}
	}
}

// pause waits d or until ctx ends; it reports whether d passed.
func pause(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func runAttempt(ctx context.Context, timeout time.Duration, op func(ctx context.Context) error) error {
	if timeout <= 0 {
		return op(ctx)
	}
	actx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return op(actx)
}
