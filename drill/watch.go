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

// FirstRestarted returns when the victim's task started running again after
// since: the same allocation restarted (a later StartedAt) or a replacement
// with the same name (index) running. The time is the task's StartedAt as
// Nomad recorded it, not when a poll happened to see it; the poll's time
// when StartedAt is missing or not within (since, poll].
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
				if a.StartedAt.After(since) && !a.StartedAt.After(s.At) {
					return a.StartedAt, true
				}
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

// Watcher follows Consul, the rendered load-balancer config and Nomad for
// one role until its context ends. Every observation is stamped when its
// answer arrived. Consul's passing set is followed with blocking queries, so
// a change is seen as it happens, not at the next poll; the rendered config
// is polled and a change is dated by the file's modification time (when
// consul-template wrote it); Nomad is polled and a restart is dated by the
// task's StartedAt.
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
	wg.Go(func() { w.watchCatalog(ctx) })
	if w.Role.LBJob != "" {
		var st configState
		loop(func(ctx context.Context) { w.pollConfig(ctx, &st) })
	}
	loop(w.pollNomad)
	wg.Wait()
}

// catalogWait is how long one blocking query on Consul waits for a change
// before it answers anyway.
const catalogWait = 2 * time.Second

// watchCatalog records the victim service's passing instances each time
// Consul answers a blocking query: at once when they change.
func (w *Watcher) watchCatalog(ctx context.Context) {
	var index uint64
	for ctx.Err() == nil {
		next, err := w.pollCatalog(ctx, index)
		if err != nil {
			// Do not spin on an agent that fails fast.
			select {
			case <-ctx.Done():
			case <-time.After(w.Interval):
			}
		}
		index = next
	}
}

// pollCatalog makes one query, blocking until the service's health index
// passes index (0: answer at once), and returns the index to wait on next.
func (w *Watcher) pollCatalog(parent context.Context, index uint64) (uint64, error) {
	// A deadline past the wait: a hung API call must not stall the timeline.
	ctx, cancel := context.WithTimeout(parent, catalogWait+time.Second)
	defer cancel()
	q := (&consul.QueryOptions{WaitIndex: index, WaitTime: catalogWait}).WithContext(ctx)
	entries, meta, err := w.Clients.Consul.Health().Service(w.Role.Service, "", true, q)
	s := Snapshot{At: time.Now()}
	next := uint64(0)
	if err != nil {
		if parent.Err() != nil {
			return 0, err // the drill is over, not an observation
		}
		s.Err = err.Error()
	} else if meta.LastIndex >= index {
		// Consul's rule: an index that goes backwards means start over.
		next = meta.LastIndex
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
	if err != nil {
		return 0, err
	}
	return next, nil
}

// configState is what pollConfig keeps between polls: the LB allocation it
// reads (re-resolved when gone) and the last servers it saw.
type configState struct {
	lb   *nomad.Allocation
	last *Snapshot
}

// pollConfig reads the LB's rendered config. When the servers it names
// changed since the last poll, the observation is dated by the file's
// modification time, if that lies between the two polls: when
// consul-template rendered it, to the millisecond, not to the poll.
func (w *Watcher) pollConfig(parent context.Context, st *configState) {
	ctx, cancel := context.WithTimeout(parent, time.Second)
	defer cancel()
	text, err := func() (string, error) {
		if st.lb == nil {
			allocs, err := runningAllocs(ctx, w.Clients, w.Role.LBJob, w.Role.LBJob)
			if err != nil {
				return "", err
			}
			if len(allocs) == 0 {
				return "", fmt.Errorf("no running %s allocation", w.Role.LBJob)
			}
			q := (&nomad.QueryOptions{}).WithContext(ctx)
			if st.lb, _, err = w.Clients.Nomad.Allocations().Info(allocs[0].ID, q); err != nil {
				st.lb = nil
				return "", err
			}
		}
		// Through the agent's own address, not AllocFS().Cat: Cat builds a
		// new client (and connection) per call, and polling at 10/s would
		// exhaust Nomad's per-client connection limit (429s for everyone).
		q := (&nomad.QueryOptions{Params: map[string]string{"path": w.Role.LBConfig}}).WithContext(ctx)
		rc, err := w.Clients.Nomad.Raw().Response("/v1/client/fs/cat/"+st.lb.ID, q)
		if err != nil {
			st.lb = nil
			return "", err
		}
		defer rc.Close()
		b, err := io.ReadAll(rc)
		return string(b), err
	}()
	s := Snapshot{At: time.Now()}
	if err != nil {
		if parent.Err() != nil {
			return
		}
		s.Err = err.Error()
	} else {
		if w.Role.LBJob == "haproxy" {
			s.Members = HAProxyServers(text)
		} else {
			s.Members = NginxServers(text)
		}
		if st.last != nil && !slices.Equal(st.last.Members, s.Members) {
			// Stat goes through the API client's own connection.
			q := (&nomad.QueryOptions{}).WithContext(ctx)
			if fi, _, err := w.Clients.Nomad.AllocFS().Stat(st.lb, w.Role.LBConfig, q); err == nil &&
				fi.ModTime.After(st.last.At) && fi.ModTime.Before(s.At) {
				s.At = fi.ModTime
			}
		}
		st.last = &s
	}
	w.mu.Lock()
	w.obs.Config = append(w.obs.Config, s)
	w.mu.Unlock()
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
