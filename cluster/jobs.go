package cluster

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	nomad "github.com/hashicorp/nomad/api"
)

// JobsStopped holds when no allocation of the given jobs is still running or
// pending on a client, so their processes and ports are gone.
func (c *Clients) JobsStopped(jobs []string) func(context.Context) error {
	return func(ctx context.Context) error {
		var live []string
		for _, job := range jobs {
			q := (&nomad.QueryOptions{}).WithContext(ctx)
			allocs, _, err := c.Nomad.Jobs().Allocations(job, true, q)
			if err != nil {
				var uerr nomad.UnexpectedResponseError
				if errors.As(err, &uerr) && uerr.StatusCode() == 404 {
					continue
				}
				return fmt.Errorf("allocations of %s: %w", job, err)
			}
			for _, a := range allocs {
				if a.ClientStatus == nomad.AllocClientStatusRunning || a.ClientStatus == nomad.AllocClientStatusPending {
					live = append(live, a.Name)
				}
			}
		}
		if len(live) > 0 {
			sort.Strings(live)
			return fmt.Errorf("still running: %s", strings.Join(live, ", "))
		}
		return nil
	}
}

// Problems summarizes recent task events of unhealthy allocations, to say why
// a wait for health timed out.
func (c *Clients) Problems(ctx context.Context, jobs []string) string {
	var b strings.Builder
	for _, job := range jobs {
		q := (&nomad.QueryOptions{}).WithContext(ctx)
		allocs, _, err := c.Nomad.Jobs().Allocations(job, false, q)
		if err != nil {
			fmt.Fprintf(&b, "  %s: %v\n", job, err)
			continue
		}
		for _, a := range allocs {
			if a.ClientStatus == nomad.AllocClientStatusComplete {
				continue
			}
			for task, st := range a.TaskStates {
				if st.State == "running" && !st.Failed && st.Restarts == 0 {
					continue
				}
				fmt.Fprintf(&b, "  %s %s (%s) task %s: %s, restarts %d\n", a.Name, a.ID[:8], a.ClientStatus, task, st.State, st.Restarts)
				evs := st.Events
				if len(evs) > 3 {
					evs = evs[len(evs)-3:]
				}
				for _, e := range evs {
					fmt.Fprintf(&b, "      %s: %s\n", e.Type, e.DisplayMessage)
				}
			}
		}
	}
	return b.String()
}
