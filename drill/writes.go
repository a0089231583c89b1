package drill

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"hastack/cluster"
)

// WriteCheck is the verdict on acknowledged writes: each id a POST got back
// must exist on the primary and on every follower once they caught up.
type WriteCheck struct {
	Acked int `json:"acked"`
	// Missing maps a server (primary, follower-0, ...) to acknowledged ids it
	// lacks; empty when nothing is lost.
	Missing map[string][]int64 `json:"missing"`
	// CaughtUpMS is how long the followers took to replay up to the
	// primary's WAL position taken after the run.
	CaughtUpMS float64  `json:"caught_up_ms"`
	Checked    []string `json:"checked"` // servers checked
	Err        string   `json:"err,omitempty"`
}

// Lost is the number of (server, id) pairs missing.
func (w WriteCheck) Lost() int {
	n := 0
	for _, ids := range w.Missing {
		n += len(ids)
	}
	return n
}

const missingSQL = `SELECT t.id FROM unnest($1::bigint[]) AS t(id)
WHERE NOT EXISTS (SELECT 1 FROM items i WHERE i.id = t.id) ORDER BY t.id`

// CheckWrites waits until the primary and the expected number of followers
// pass their checks, takes the primary's WAL position, waits until each
// follower has replayed up to it, then looks every acknowledged id up on
// all of them. ctx bounds the whole check.
func CheckWrites(ctx context.Context, c *cluster.Clients, ids []int64, followers int) WriteCheck {
	wc := WriteCheck{Acked: len(ids), Missing: map[string][]int64{}}
	if err := checkWrites(ctx, c, ids, followers, &wc); err != nil {
		wc.Err = err.Error()
	}
	return wc
}

func checkWrites(ctx context.Context, c *cluster.Clients, ids []int64, followers int, wc *WriteCheck) error {
	want := map[string]int{"postgres-primary": 1, "postgres-follower": followers}
	if err := cluster.Poll(ctx, "primary and followers passing", c.ServicesPassing(want)); err != nil {
		return err
	}
	prim, err := c.Passing(ctx, "postgres-primary")
	if err != nil {
		return err
	}
	fols, err := c.Passing(ctx, "postgres-follower")
	if err != nil {
		return err
	}
	pc, err := c.Connect(ctx, prim[0].Addr)
	if err != nil {
		return fmt.Errorf("primary: %w", err)
	}
	defer pc.Close(context.WithoutCancel(ctx))
	lsn, err := cluster.PrimaryLSN(ctx, pc)
	if err != nil {
		return err
	}
	var errs []error
	lookup := func(name string, conn *pgx.Conn) {
		rows, err := conn.Query(ctx, missingSQL, ids)
		if err == nil {
			var missing []int64
			missing, err = pgx.CollectRows(rows, pgx.RowTo[int64])
			if len(missing) > 0 {
				wc.Missing[name] = missing
			}
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			return
		}
		wc.Checked = append(wc.Checked, name)
	}
	lookup("primary", pc)

	start := time.Now()
	for _, f := range fols {
		name := f.Meta["name"]
		if name == "" {
			name = f.Addr
		}
		fc, err := c.Connect(ctx, f.Addr)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
			continue
		}
		err = cluster.Poll(ctx, name+" replayed up to "+lsn, cluster.ReplayedTo(fc, lsn))
		if err == nil {
			lookup(name, fc)
		} else {
			errs = append(errs, err)
		}
		fc.Close(context.WithoutCancel(ctx))
	}
	wc.CaughtUpMS = ms(time.Since(start))
	return errors.Join(errs...)
}
