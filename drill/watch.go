package drill

import (
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"

	"hastack/cluster"
)

// AllocState is one allocation as Nomad saw it in a poll.
type AllocState struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	ClientStatus string    `json:"client_status"`
	TaskState    string    `json:"task_state"`
	Restarts     uint64    `json:"restarts"`
	StartedAt    time.Time `json:"started_at"`
}

// NomadSnapshot is one poll of the victim group's allocations.
type NomadSnapshot struct {
	At     time.Time    `json:"at"`
	Allocs []AllocState `json:"allocs"`
	Err    string       `json:"err,omitempty"`
}

// FirstRestarted returns when Nomad first reported the victim's task running
// again after since: the same allocation restarted (a later StartedAt) or a
// replacement with the same name (index) running.
func FirstRestarted(states []NomadSnapshot, v Victim, since time.Time) (time.Time, bool) {
	for _, s := range states {
		if s.Err != "" || s.At.Before(since) {
			continue
		}
		for _, a := range s.Allocs {
			if a.Name != v.AllocName || a.ClientStatus != nomad.AllocClientStatusRunning || a.TaskState != "running" {
				continue
			}
			if a.ID != v.AllocID || a.StartedAt.After(since) {
				return s.At, true
			}
		}
	}
	return time.Time{}, false
}

// Observations is everything the watchers recorded during a drill.
type Observations struct {
	Catalog []Snapshot      `json:"catalog"`          // passing instances of the victim's service
	Config  []Snapshot      `json:"config,omitempty"` // servers named in the LB's rendered config
	Nomad   []NomadSnapshot `json:"nomad"`
}

// Watcher polls Consul, the rendered load-balancer config and Nomad for one
// role until its context ends.
type Watcher struct {
	Clients  *cluster.Clients
	Role     Role
	Interval time.Duration

	mu  sync.Mutex
	obs Observations
}

// Observed returns a copy of what has been recorded so far.
func (w *Watcher) Observed() Observations {
	w.mu.Lock()
	defer w.mu.Unlock()
	return Observations{
		Catalog: slices.Clone(w.obs.Catalog),
		Config:  slices.Clone(w.obs.Config),
		Nomad:   slices.Clone(w.obs.Nomad),
	}
}

// Run polls until ctx ends. Each source has its own loop, so a slow API call
// on one does not delay the others.
func (w *Watcher) Run(ctx context.Context) {
	var wg sync.WaitGroup
	loop := func(poll func(context.Context)) {
		wg.Go(func() {
			t := time.NewTicker(w.Interval)
			defer t.Stop()
			for {
				poll(ctx)
				select {
				case <-ctx.Done():
					return
				case <-t.C:
				}
			}
		})
	}
	loop(w.pollCatalog)
	if w.Role.LBJob != "" {
		var lb *nomad.Allocation
		loop(func(ctx context.Context) { lb = w.pollConfig(ctx, lb) })
	}
	loop(w.pollNomad)
	wg.Wait()
}

func (w *Watcher) pollCatalog(parent context.Context) {
	// A per-poll deadline: a hung API call must not stall the timeline.
	ctx, cancel := context.WithTimeout(parent, time.Second)
	defer cancel()
	q := (&consul.QueryOptions{}).WithContext(ctx)
	entries, _, err := w.Clients.Consul.Health().Service(w.Role.Service, "", true, q)
	s := Snapshot{At: time.Now()}
	if err != nil {
		if parent.Err() != nil {
			return // the drill is over, not an observation
		}
		s.Err = err.Error()
	}
	for _, e := range entries {
		name := e.Service.Meta["name"]
		if name == "" || !w.Role.Replicated {
			name = w.Role.Service
		}
		if !slices.Contains(s.Members, name) {
			s.Members = append(s.Members, name)
		}
	}
	slices.Sort(s.Members)
	w.mu.Lock()
	w.obs.Catalog = append(w.obs.Catalog, s)
	w.mu.Unlock()
}

// pollConfig reads the LB's rendered config; lb is the allocation read last
// time, re-resolved when it is gone.
func (w *Watcher) pollConfig(parent context.Context, lb *nomad.Allocation) *nomad.Allocation {
	ctx, cancel := context.WithTimeout(parent, time.Second)
	defer cancel()
	s := Snapshot{At: time.Now()}
	text, err := func() (string, error) {
		if lb == nil {
			allocs, err := runningAllocs(ctx, w.Clients, w.Role.LBJob, w.Role.LBJob)
			if err != nil {
				return "", err
			}
			if len(allocs) == 0 {
				return "", fmt.Errorf("no running %s allocation", w.Role.LBJob)
			}
			q := (&nomad.QueryOptions{}).WithContext(ctx)
			if lb, _, err = w.Clients.Nomad.Allocations().Info(allocs[0].ID, q); err != nil {
				lb = nil
				return "", err
			}
		}
		// Through the agent's own address, not AllocFS().Cat: Cat builds a
		// new client (and connection) per call, and polling at 10/s would
		// exhaust Nomad's per-client connection limit (429s for everyone).
		q := (&nomad.QueryOptions{Params: map[string]string{"path": w.Role.LBConfig}}).WithContext(ctx)
		rc, err := w.Clients.Nomad.Raw().Response("/v1/client/fs/cat/"+lb.ID, q)
		if err != nil {
			lb = nil
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}()
	if err != nil {
		if parent.Err() != nil {
			return lb
		}
		s.Err = err.Error()
	} else if w.Role.LBJob == "haproxy" {
		s.Members = HAProxyServers(text)
	} else {
		s.Members = NginxServers(text)
	}
	w.mu.Lock()
	w.obs.Config = append(w.obs.Config, s)
	w.mu.Unlock()
	return lb
}

func (w *Watcher) pollNomad(parent context.Context) {
	ctx, cancel := context.WithTimeout(parent, time.Second)
	defer cancel()
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	allocs, _, err := w.Clients.Nomad.Jobs().Allocations(w.Role.Job, false, q)
	s := NomadSnapshot{At: time.Now()}
	if err != nil {
		if parent.Err() != nil {
			return
		}
		s.Err = err.Error()
	}
	for _, a := range allocs {
		if a.TaskGroup != w.Role.Group {
			continue
		}
		st := AllocState{ID: a.ID, Name: a.Name, ClientStatus: a.ClientStatus}
		if ts := a.TaskStates[w.Role.Task]; ts != nil {
			st.TaskState, st.Restarts, st.StartedAt = ts.State, ts.Restarts, ts.StartedAt
		}
		s.Allocs = append(s.Allocs, st)
	}
	w.mu.Lock()
	w.obs.Nomad = append(w.obs.Nomad, s)
	w.mu.Unlock()
}
