package drill

import (
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"hastack/load"
)

// Events are the moments a drill watches for, in milliseconds after the
// fault; nil when the moment was not seen (or does not apply).
type Events struct {
	ResumedMS        *float64 `json:"resumed_ms,omitempty"`       // freeze: SIGCONT sent
	OutOfCatalogMS   *float64 `json:"out_of_catalog_ms"`          // left Consul's passing set
	OutOfConfigMS    *float64 `json:"out_of_config_ms,omitempty"` // the rendered LB config no longer named it
	RestartedMS      *float64 `json:"restarted_ms"`               // Nomad: task running again (restart or replacement)
	HealthyMS        *float64 `json:"healthy_ms"`                 // back in Consul's passing set
	BackInConfigMS   *float64 `json:"back_in_config_ms,omitempty"`
	ServedAgainMS    *float64 `json:"served_again_ms"`     // first successful request it served after leaving
	SharedAgainMS    *float64 `json:"shared_again_ms"`     // first 5 s window with >= half its fair share
	ErrorsFirstMS    *float64 `json:"errors_first_ms"`     // first failed request started after the fault
	ErrorsLastMS     *float64 `json:"errors_last_ms"`      // last failed request ended
	OutOfRotationMS  *float64 `json:"out_of_rotation_ms"`  // config for balanced roles, catalog otherwise
	BackInRotationMS *float64 `json:"back_in_rotation_ms"` // likewise: back in config, or healthy
	// FullStrengthMS: node faults, every service at its count again after
	// the node came back.
	FullStrengthMS *float64 `json:"full_strength_ms,omitempty"`
}

// Result is everything one scenario run measured.
type Result struct {
	Scenario Scenario `json:"scenario"`
	Victim   Victim   `json:"victim"`
	Options  Options  `json:"options"`

	Start time.Time `json:"start"` // load started
	Fault time.Time `json:"fault"` // fault injected
	End   time.Time `json:"end"`   // load stopped

	Events Events `json:"events"`

	Total        load.Summary `json:"total"`
	Before       Phase        `json:"before"` // baseline, up to the fault
	During       Phase        `json:"during"` // fault until it served again (or the end)
	After        Phase        `json:"after"`  // from serving again to the end
	FailedReads  int          `json:"failed_reads"`
	FailedWrites int          `json:"failed_writes"`
	// FailedWriteP99MS is how long failed writes took to fail: a clean
	// outage answers quickly.
	FailedWriteP99MS float64 `json:"failed_write_p99_ms"`
	// EntryErrors are requests that reached no Nginx at all (refused or
	// timed out connections), counted in FailedReads/FailedWrites too.
	EntryErrors int `json:"entry_errors"`
	// WriteGapMS is the longest time from the fault on in which no write
	// was acknowledged: how long writes were unavailable.
	WriteGapMS float64 `json:"write_gap_ms"`

	Writes   WriteCheck `json:"writes"`
	Timeline Timeline   `json:"timeline"`
	Targets  Targets    `json:"targets"`
	// Misses are hard targets missed (failed requests, lost writes): the
	// command exits 1. Slow are time targets missed.
	Misses []string `json:"misses"`
	Slow   []string `json:"slow"`
	Err    string   `json:"err,omitempty"` // the run could not complete

	Observations Observations  `json:"observations"`
	Requests     []load.Result `json:"-"` // written separately, one JSON line each
}

// Passed reports whether every hard target was met.
func (r *Result) Passed() bool { return len(r.Misses) == 0 && r.Err == "" }

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func msSince(t, origin time.Time, ok bool) *float64 {
	if !ok {
		return nil
	}
	v := ms(t.Sub(origin))
	return &v
}

// Analyze derives the events, phases, timeline and target verdicts from the
// recorded requests and observations. It is pure: r.Requests,
// r.Observations, r.Victim, r.Scenario, r.Start, r.Fault, r.End and (for a
// freeze) resumed must be set.
func (r *Result) Analyze(resumed time.Time) {
	role := Roles[r.Scenario.Role]
	res := r.Requests
	obs := r.Observations
	// Seen by the drill as it ran, not derived from the recordings.
	ev := Events{FullStrengthMS: r.Events.FullStrengthMS}
	if !resumed.IsZero() {
		ev.ResumedMS = msSince(resumed, r.Fault, true)
	}

	cat, catLeft := FindOutage(obs.Catalog, r.Victim.Name, r.Fault)
	if catLeft {
		ev.OutOfCatalogMS = msSince(cat.Left, r.Fault, true)
		ev.HealthyMS = msSince(cat.Back, r.Fault, !cat.Back.IsZero())
	}
	if role.LBJob != "" {
		cfg, cfgLeft := FindOutage(obs.Config, r.Victim.Name, r.Fault)
		if cfgLeft {
			ev.OutOfConfigMS = msSince(cfg.Left, r.Fault, true)
			ev.BackInConfigMS = msSince(cfg.Back, r.Fault, !cfg.Back.IsZero())
			ev.OutOfRotationMS = ev.OutOfConfigMS
			ev.BackInRotationMS = ev.BackInConfigMS
		}
	} else {
		ev.OutOfRotationMS, ev.BackInRotationMS = ev.OutOfCatalogMS, ev.HealthyMS
	}
	if t, ok := FirstRestarted(obs.Nomad, r.Victim, r.Fault); ok {
		ev.RestartedMS = msSince(t, r.Fault, true)
	}

	needs := Needs(r.Scenario.Role, r.Victim.Name)
	// Served again counts from when it could: a stopped instance serves on
	// through its drain, so a request it answered then is not a return.
	// From the replacement passing its checks; for a freeze that never left
	// the catalog, from the resume; for a single point, after the last
	// request that failed because of it.
	since := later(r.Fault, resumed)
	switch {
	case catLeft && !cat.Back.IsZero():
		since = later(since, cat.Back)
	case catLeft:
		since = r.End // left and never came back: not served again
	}
	first, last, nerr := ErrorWindow(res, r.Fault)
	if !role.Replicated && nerr > 0 {
		since = first
		for _, q := range res {
			if !q.OK() && needs(q) && q.Start.After(since) {
				since = q.Start
			}
		}
		since = since.Add(time.Nanosecond)
	}
	served, servedOK := FirstServed(res, needs, since)
	ev.ServedAgainMS = msSince(served, r.Fault, servedOK)
	r.Before = PhaseOf(res, r.Start, r.Fault)
	if servedOK && role.Replicated {
		instances := max(len(r.Before.BackendShare), 1)
		if r.Scenario.Role == "follower" {
			instances = max(len(r.Before.FollowerShare), 1)
		}
		if t, ok := SharedAgain(res, r.Scenario.Role, r.Victim.Name, instances, served, 5*time.Second, 500*time.Millisecond); ok {
			ev.SharedAgainMS = msSince(t, r.Fault, true)
		}
	}
	ev.ErrorsFirstMS = msSince(first, r.Fault, nerr > 0)
	ev.ErrorsLastMS = msSince(last, r.Fault, nerr > 0)
	r.Events = ev

	r.Total = load.Summarize(res)
	recovered := r.End
	if servedOK {
		recovered = served
	}
	r.During = PhaseOf(res, r.Fault, recovered)
	r.After = PhaseOf(res, recovered, r.End.Add(time.Nanosecond))
	r.FailedReads = CountFailed(res, http.MethodGet)
	r.FailedWrites = CountFailed(res, http.MethodPost)
	var failedWrites []time.Duration
	for _, q := range res {
		if !q.OK() && q.Method == http.MethodPost {
			failedWrites = append(failedWrites, q.Latency)
		}
	}
	slices.Sort(failedWrites)
	r.FailedWriteP99MS = ms(load.Percentile(failedWrites, 99))
	r.EntryErrors = CountEntryErrors(res, r.Fault)
	r.WriteGapMS = ms(WriteGap(res, r.Fault, r.End))
	r.Timeline = BuildTimeline(res, r.Fault, time.Second)
	r.Targets = TargetsFor(r.Scenario)
	r.Misses, r.Slow = Evaluate(r)
}

// Evaluate checks a result against its targets. Hard misses: failed
// requests where none may fail, writes that failed other than with a 503,
// lost or unverified writes. Slow: time targets.
func Evaluate(r *Result) (misses, slow []string) {
	// Empty, not nil: result.json says [] for "none missed", not null.
	misses, slow = []string{}, []string{}
	t := r.Targets
	// Failed requests as the targets count them: without the entry's
	// when those are allowed.
	failed, failedReads := r.Total.Failed, r.FailedReads
	if t.EntryErrorsAllowed {
		for _, q := range r.Requests {
			if !q.OK() && EntryError(q) {
				failed--
				if q.Method == http.MethodGet {
					failedReads--
				}
			}
		}
	}
	if t.ZeroFailed && failed > 0 {
		misses = append(misses, fmt.Sprintf("%d failed requests (%s), want 0", failed, kinds(r.Total.Errors)))
	}
	if t.ZeroFailedReads && failedReads > 0 {
		misses = append(misses, fmt.Sprintf("%d failed reads, want 0", failedReads))
	}
	if t.WritesFail503 {
		for _, q := range r.Requests {
			if !q.OK() && q.Method == http.MethodPost && q.Kind != load.StatusKind(http.StatusServiceUnavailable) &&
				!(t.EntryErrorsAllowed && EntryError(q)) {
				misses = append(misses, fmt.Sprintf("a write failed with %s, want only clean 503s", q.Kind))
				break
			}
		}
		if r.FailedWriteP99MS > 2500 && t.WriteGap == 0 {
			slow = append(slow, fmt.Sprintf("failed writes took %.0f ms (p99) to fail, want a quick 503", r.FailedWriteP99MS))
		}
	}
	if n := r.Writes.Lost(); n > 0 {
		misses = append(misses, fmt.Sprintf("%d acknowledged writes missing (%v)", n, r.Writes.Missing))
	}
	if r.Writes.Err != "" {
		misses = append(misses, "write check incomplete: "+r.Writes.Err)
	}
	within := func(what string, got *float64, want time.Duration) {
		switch {
		case want <= 0:
		case got == nil:
			slow = append(slow, fmt.Sprintf("%s: not seen, want within %s", what, want))
		case *got > ms(want):
			slow = append(slow, fmt.Sprintf("%s after %.0f ms, want within %s", what, *got, want))
		}
	}
	if t.WriteGap > 0 {
		g := r.WriteGapMS
		within("writes acknowledged again", &g, t.WriteGap)
	}
	within("out of rotation", r.Events.OutOfRotationMS, t.OutOfRotation)
	within("back in rotation", r.Events.BackInRotationMS, t.BackInRotation)
	if t.SharedAgain > 0 && r.Events.BackInRotationMS != nil {
		var d *float64
		if r.Events.SharedAgainMS != nil {
			v := *r.Events.SharedAgainMS - *r.Events.BackInRotationMS
			d = &v
		}
		within("traffic shared again", d, t.SharedAgain)
	}
	return misses, slow
}

func kinds(m map[load.ErrorKind]int) string {
	parts := []string{}
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, ", ")
}

// EntryError reports whether a request failed without any HTTP answer:
// its connection to the entry address was refused, reset, or timed out.
// On the cluster those are the requests caught while keepalived moves the
// entry address from a lost node to another.
func EntryError(q load.Result) bool {
	switch q.Kind {
	case load.KindTimeout, load.KindConnRefused, load.KindConnReset, load.KindConnError:
		return true
	}
	return false
}

// CountEntryErrors counts the requests started after the fault that failed
// with an EntryError.
func CountEntryErrors(res []load.Result, fault time.Time) int {
	n := 0
	for _, q := range res {
		if !q.OK() && EntryError(q) && !q.Start.Before(fault) {
			n++
		}
	}
	return n
}

// WriteGap is the longest stretch from fault to end in which no write was
// acknowledged: between the fault or the end of one acknowledged write and
// the end of the next one. A write that waits (a commit held for a
// synchronous standby) counts as unavailable for as long as it waits.
func WriteGap(res []load.Result, fault, end time.Time) time.Duration {
	var acks []time.Time
	for _, q := range res {
		if q.OK() && q.Method == http.MethodPost {
			if done := q.Start.Add(q.Latency); done.After(fault) {
				acks = append(acks, done)
			}
		}
	}
	slices.SortFunc(acks, func(a, b time.Time) int { return a.Compare(b) })
	gap, prev := time.Duration(0), fault
	for _, a := range acks {
		gap = max(gap, a.Sub(prev))
		prev = a
	}
	if !end.IsZero() && end.After(prev) {
		gap = max(gap, end.Sub(prev))
	}
	return gap
}
