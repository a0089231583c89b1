package drill

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"hastack/cluster"
	"hastack/load"
)

// Options tune a drill. Every phase is bounded, so a run always ends.
type Options struct {
	URL        string        `json:"url"`         // loopback only
	Rate       float64       `json:"rate"`        // requests per second
	WriteRatio float64       `json:"write_ratio"` // share of POSTs
	Timeout    time.Duration `json:"timeout_ns"`  // per request
	Baseline   time.Duration `json:"baseline_ns"` // load before the fault
	FreezeFor  time.Duration `json:"freeze_for_ns"`
	// Recover bounds the wait, from the fault, for the victim to serve again.
	Recover time.Duration `json:"recover_ns"`
	// Settle bounds the wait, after it served again, for traffic to be
	// shared again; After is how long the load goes on once it is.
	Settle time.Duration `json:"settle_ns"`
	After  time.Duration `json:"after_ns"`
	// Ready bounds the wait for a healthy stack before the drill starts.
	Ready   time.Duration `json:"ready_ns"`
	AllocID string        `json:"alloc_id,omitempty"`
	Poll    time.Duration `json:"poll_ns"` // watcher interval
	// Net is the cluster layout's private network (CIDR), whose addresses
	// the load may target besides loopback: the entry address keepalived
	// holds on the namespaces scripts/node.sh made. Empty on one machine.
	Net string `json:"net,omitempty"`
	// Nodes is how many nodes the layout has (1, or 3 for the cluster):
	// how many instances of each service a healthy stack passes.
	Nodes int `json:"nodes,omitempty"`
}

// DefaultOptions are the command's defaults. The write share is 5.5%, not
// 5%: the load spreads writes evenly, and a period of exactly 20 requests
// would land every write on the same backend behind Nginx's round robin.
func DefaultOptions() Options {
	return Options{
		URL: "http://127.0.0.1:8080/data", Rate: 100, WriteRatio: 0.055, Timeout: 10 * time.Second,
		Baseline: 8 * time.Second, FreezeFor: 10 * time.Second, Recover: 60 * time.Second,
		Settle: 60 * time.Second, After: 5 * time.Second, Ready: 120 * time.Second, Poll: 100 * time.Millisecond,
	}
}

// MaxRate bounds Options.Rate: a drill measures resilience, not capacity.
const MaxRate = 1000

// Validate reports the first bad option.
func (o Options) Validate() error {
	u, err := url.Parse(o.URL)
	if err != nil || u.Scheme != "http" || u.Hostname() == "" {
		return fmt.Errorf("url %q: want http://127.0.0.1:PORT/data", o.URL)
	}
	if !o.Allowed(u.Hostname()) {
		return fmt.Errorf("url %q: drills only send load to loopback or the cluster's own network (%s)", o.URL, cmp.Or(o.Net, "none on one machine"))
	}
	switch {
	case !(o.Rate > 0 && o.Rate <= MaxRate):
		return fmt.Errorf("rate must be in (0, %d] requests/s, got %v", MaxRate, o.Rate)
	case !(o.WriteRatio >= 0 && o.WriteRatio <= 1):
		return fmt.Errorf("write ratio must be in [0,1], got %v", o.WriteRatio)
	case o.Timeout <= 0 || o.Baseline <= 0 || o.Recover <= 0 || o.Settle < 0 || o.After < 0 || o.Ready <= 0 || o.Poll <= 0:
		return errors.New("timeout, baseline, recover, ready and poll must be > 0; settle and after >= 0")
	case o.FreezeFor <= 0:
		return fmt.Errorf("freeze-for must be > 0, got %s", o.FreezeFor)
	}
	return nil
}

// Allowed reports whether host may receive the drill's load: a loopback
// address, or an address of the cluster's own network.
func (o Options) Allowed(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	if ip == nil {
		return false
	}
	if ip.IsLoopback() {
		return true
	}
	_, n, err := net.ParseCIDR(o.Net)
	return err == nil && ip.IsPrivate() && n.Contains(ip)
}

// Bound is the longest a scenario's load can run.
func (o Options) Bound() time.Duration {
	return o.Baseline + o.FreezeFor + o.Recover + o.Settle + o.After + 5*time.Second
}

// Healthy is the stack as up.sh leaves it on a layout of nodes nodes: each
// service's passing count. HAProxy and Nginx run on every node.
func Healthy(nodes int) map[string]int {
	nodes = max(nodes, 1)
	return map[string]int{"postgres-primary": 1, "postgres-follower": 2, "haproxy": nodes, "backend": 2, "nginx": nodes}
}

// Driller runs scenarios against the live stack.
type Driller struct {
	Clients *cluster.Clients
	Procfs  Procfs
	Nodes   Nodes     // whole-node faults; nil on one machine
	Log     io.Writer // progress lines; nil for none
}

func (d *Driller) logf(format string, args ...any) {
	if d.Log != nil {
		fmt.Fprintf(d.Log, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05.000")}, args...)...)
	}
}

// Run drills one scenario: waits for a healthy stack, starts the load,
// injects the fault after the baseline, waits (bounded) for the victim to
// be replaced and serve again and for traffic to be shared again, stops the
// load, checks the acknowledged writes and analyzes. The result is returned
// even with an error, holding what was measured.
func (d *Driller) Run(ctx context.Context, sc Scenario, o Options) (*Result, error) {
	r := &Result{Scenario: sc, Options: o}
	if err := o.Validate(); err != nil {
		return r, err
	}
	role, ok := Roles[sc.Role]
	if !ok {
		return r, fmt.Errorf("scenario %s: unknown role %q", sc.Name, sc.Role)
	}
	readyCtx, cancel := context.WithTimeout(ctx, o.Ready)
	err := cluster.Poll(readyCtx, "a healthy stack before the drill", d.Clients.ServicesPassing(Healthy(o.Nodes)))
	cancel()
	if err != nil {
		return r, err
	}
	allocID := o.AllocID
	if sc.Fault.NodeFault() && sc.Role == "nginx" && allocID == "" {
		// The Nginx that matters is the one whose node holds the entry.
		if allocID, err = d.entryNginx(ctx, o); err != nil {
			return r, err
		}
	}
	v, err := ResolveVictim(ctx, d.Clients, role, allocID)
	if err != nil {
		return r, err
	}
	if err := victimNode(ctx, d.Clients, &v); err != nil {
		return r, err
	}
	if sc.Fault.NodeFault() {
		// Watch the cluster through a node that stays.
		if err := d.Clients.AvoidNode(ctx, v.Node); err != nil {
			return r, err
		}
	}
	r.Victim = v
	d.logf("%s: victim %s (alloc %s, %s, node %s)", sc.Name, v.Name, v.AllocID[:8], v.AllocName, v.Node)

	// Watchers and load run until stopped below; both are bounded by Bound.
	watchCtx, stopWatch := context.WithTimeout(context.WithoutCancel(ctx), o.Bound()+time.Minute)
	defer stopWatch()
	w := &Watcher{Clients: d.Clients, Role: role, Interval: o.Poll}
	watchDone := make(chan struct{})
	go func() { w.Run(watchCtx); close(watchDone) }()

	var (
		mu      sync.Mutex
		results []load.Result
	)
	snapshot := func() []load.Result {
		mu.Lock()
		defer mu.Unlock()
		return append([]load.Result(nil), results...)
	}
	cfg := load.Config{
		URL: o.URL, Duration: o.Bound(), Rate: o.Rate, WriteRatio: o.WriteRatio, Timeout: o.Timeout,
		// Enough workers that a stall of a whole timeout does not slow the pace.
		Concurrency: int(min(max(math.Ceil(o.Rate*o.Timeout.Seconds()), 16), load.MaxConcurrency)),
	}
	loadCtx, stopLoad := context.WithCancel(ctx)
	defer stopLoad()
	loadDone := make(chan error, 1)
	r.Start = time.Now()
	go func() {
		loadDone <- load.Run(loadCtx, cfg, nil, func(res load.Result) {
			mu.Lock()
			results = append(results, res)
			mu.Unlock()
		})
	}()

	runErr := d.drive(ctx, sc, o, r, w, snapshot)

	stopLoad()
	if err := <-loadDone; err != nil && !errors.Is(err, context.Canceled) {
		runErr = errors.Join(runErr, err)
	}
	r.End = time.Now()
	stopWatch()
	<-watchDone
	r.Requests = snapshot()
	r.Observations = w.Observed()

	// Checked even when interrupted: an acknowledged write must never be lost.
	ids := AckedWrites(r.Requests)
	d.logf("%s: checking %d acknowledged writes on the primary and the followers", sc.Name, len(ids))
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 90*time.Second)
	r.Writes = CheckWrites(wctx, d.Clients, ids, Healthy(o.Nodes)["postgres-follower"])
	cancel()

	resumed := time.Time{}
	if r.Events.ResumedMS != nil {
		resumed = r.Fault.Add(time.Duration(*r.Events.ResumedMS * float64(time.Millisecond)))
	}
	if !r.Fault.IsZero() {
		r.Analyze(resumed)
	}
	if runErr != nil {
		r.Err = runErr.Error()
	}
	return r, runErr
}

// drive runs the phases after the load started: baseline, fault, recovery,
// settle. It sets r.Fault and, for a freeze, r.Events.ResumedMS.
func (d *Driller) drive(ctx context.Context, sc Scenario, o Options, r *Result, w *Watcher, snapshot func() []load.Result) error {
	if err := sleep(ctx, o.Baseline); err != nil {
		return err
	}
	in := Injector{Clients: d.Clients, Procfs: d.Procfs}
	r.Fault = time.Now()
	d.logf("%s: %s %s", sc.Name, sc.Fault, r.Victim.Name)
	switch sc.Fault {
	case FaultStop:
		if err := in.Stop(ctx, &r.Victim); err != nil {
			return err
		}
	case FaultKill:
		if err := in.Kill(ctx, &r.Victim); err != nil {
			return err
		}
	case FaultFreeze:
		resume, err := in.Freeze(ctx, &r.Victim)
		// Always resumed, even if the hold is interrupted.
		defer func() {
			if err := resume(); err != nil {
				d.logf("%s: resume: %v", sc.Name, err)
			}
		}()
		if err != nil {
			return err
		}
		holdErr := sleep(ctx, o.FreezeFor)
		resumeErr := resume()
		v := ms(time.Since(r.Fault))
		r.Events.ResumedMS = &v
		d.logf("%s: resumed %s after %s", sc.Name, r.Victim.Name, o.FreezeFor)
		if err := errors.Join(holdErr, resumeErr); err != nil {
			return err
		}
	case FaultConsulRestart, FaultNomadRestart:
		n, err := d.victimNode(sc, r)
		if err != nil {
			return err
		}
		if err := d.Nodes.Do(ctx, "restart-"+strings.TrimSuffix(string(sc.Fault), "-restart"), n); err != nil {
			return err
		}
		v := ms(time.Since(r.Fault))
		r.Events.ResumedMS = &v
		d.logf("%s: %s of %s restarted", sc.Name, strings.TrimSuffix(string(sc.Fault), "-restart"), r.Victim.Node)
	case FaultNodeKill, FaultNodeIsolate:
		n, err := d.victimNode(sc, r)
		if err != nil {
			return err
		}
		cut, restore := "kill", "start"
		if sc.Fault == FaultNodeIsolate {
			cut, restore = "isolate", "heal"
		}
		if err := d.Nodes.Do(ctx, cut, n); err != nil {
			return err
		}
		// Always brought back, even if the hold is interrupted.
		restored := false
		bringBack := func() error {
			if restored {
				return nil
			}
			restored = true
			return d.Nodes.Do(context.WithoutCancel(ctx), restore, n)
		}
		defer func() {
			if err := bringBack(); err != nil {
				d.logf("%s: %s %s: %v", sc.Name, restore, r.Victim.Node, err)
			}
		}()
		holdErr := sleep(ctx, o.FreezeFor)
		restoreErr := bringBack()
		v := ms(time.Since(r.Fault))
		r.Events.ResumedMS = &v
		d.logf("%s: %s %s after %s", sc.Name, restore, r.Victim.Node, o.FreezeFor)
		if err := errors.Join(holdErr, restoreErr); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unknown fault %q", sc.Fault)
	}
	if len(r.Victim.Procs) > 0 {
		d.logf("%s: signalled %d processes: %v", sc.Name, len(r.Victim.Procs), r.Victim.Procs)
	}

	// Recovery: poll the derived events until the victim served again.
	role := Roles[sc.Role]
	deadline := r.Fault.Add(o.Recover)
	var served time.Time
	for {
		probe := *r
		probe.Requests, probe.Observations, probe.End = snapshot(), w.Observed(), time.Now()
		resumed := time.Time{}
		if r.Events.ResumedMS != nil {
			resumed = r.Fault.Add(time.Duration(*r.Events.ResumedMS * float64(time.Millisecond)))
		}
		probe.Analyze(resumed)
		if e := probe.Events; e.ServedAgainMS != nil && (e.HealthyMS != nil || sc.Fault == FaultFreeze || sc.Fault.NodeFault()) {
			if served.IsZero() {
				served = r.Fault.Add(time.Duration(*e.ServedAgainMS * float64(time.Millisecond)))
				d.logf("%s: %s served again %.0f ms after the fault", sc.Name, r.Victim.Name, *e.ServedAgainMS)
			}
			if !role.Replicated || e.SharedAgainMS != nil || time.Since(served) > o.Settle {
				break
			}
		}
		if time.Now().After(deadline) && served.IsZero() {
			d.logf("%s: %s did not serve again within %s", sc.Name, r.Victim.Name, o.Recover)
			break
		}
		if err := sleep(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
	if sc.Fault.NodeFault() {
		// Back to full strength: the node's members rejoined (the old
		// primary as a follower), every service at its count again.
		fctx, cancel := context.WithDeadline(ctx, r.Fault.Add(o.Recover+o.Settle))
		err := cluster.Poll(fctx, "every instance back after the node returned", d.Clients.ServicesPassing(Healthy(o.Nodes)))
		cancel()
		if err != nil {
			d.logf("%s: %v", sc.Name, err)
		} else {
			v := ms(time.Since(r.Fault))
			r.Events.FullStrengthMS = &v
			d.logf("%s: full strength again %.0f ms after the fault", sc.Name, v)
		}
	}
	return sleep(ctx, o.After)
}

// victimNode is N of the victim's node hastack-N, for a node fault, which
// needs the cluster layout's node control.
func (d *Driller) victimNode(sc Scenario, r *Result) (int, error) {
	if d.Nodes == nil {
		return 0, fmt.Errorf("%s: no node control (the cluster layout's scripts/node.sh)", sc.Name)
	}
	return NodeIndex(r.Victim.Node)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
