package drill

import (
	"maps"
	"net/http"
	"slices"
	"time"

	"hastack/load"
)

// Bucket is one step of a timeline: the requests that started in
// [Start, Start+Step).
type Bucket struct {
	Offset      float64        `json:"offset_s"` // start of the bucket, seconds from the timeline's origin
	Requests    int            `json:"requests"`
	Errors      int            `json:"errors"`
	PerBackend  map[string]int `json:"per_backend"`
	PerFollower map[string]int `json:"per_follower"`
	P99MS       float64        `json:"p99_ms"` // of the bucket's requests, failures included
}

// Timeline is requests bucketed by start time, relative to Origin (the
// fault, so the chart's zero is the moment of the fault).
type Timeline struct {
	Origin    time.Time `json:"origin"`
	StepS     float64   `json:"step_s"`
	Buckets   []Bucket  `json:"buckets"`
	Backends  []string  `json:"backends"`  // every backend seen, sorted
	Followers []string  `json:"followers"` // every follower seen, sorted
}

// BuildTimeline buckets results by start time into steps of step, from the
// first result's bucket to the last one's, with no gaps (an empty step is an
// empty bucket, which is what a chart must show). Bucket edges are aligned
// on origin, so a bucket starts exactly at the fault.
func BuildTimeline(results []load.Result, origin time.Time, step time.Duration) Timeline {
	tl := Timeline{Origin: origin, StepS: step.Seconds()}
	if len(results) == 0 || step <= 0 {
		return tl
	}
	index := func(t time.Time) int {
		d := t.Sub(origin)
		i := int(d / step)
		if d < 0 && d%step != 0 {
			i-- // floor, not truncation toward zero
		}
		return i
	}
	lo, hi := index(results[0].Start), index(results[0].Start)
	for _, r := range results {
		i := index(r.Start)
		lo, hi = min(lo, i), max(hi, i)
	}
	tl.Buckets = make([]Bucket, hi-lo+1)
	lat := make([][]time.Duration, len(tl.Buckets))
	backends, followers := map[string]bool{}, map[string]bool{}
	for i := range tl.Buckets {
		tl.Buckets[i] = Bucket{
			Offset:     float64(lo+i) * step.Seconds(),
			PerBackend: map[string]int{}, PerFollower: map[string]int{},
		}
	}
	for _, r := range results {
		i := index(r.Start) - lo
		b := &tl.Buckets[i]
		b.Requests++
		if !r.OK() {
			b.Errors++
		}
		if r.OK() && r.Backend != "" {
			b.PerBackend[r.Backend]++
			backends[r.Backend] = true
		}
		if r.OK() && r.Follower != "" {
			b.PerFollower[r.Follower]++
			followers[r.Follower] = true
		}
		lat[i] = append(lat[i], r.Latency)
	}
	for i := range tl.Buckets {
		slices.Sort(lat[i])
		tl.Buckets[i].P99MS = ms(load.Percentile(lat[i], 99))
	}
	tl.Backends = slices.Sorted(maps.Keys(backends))
	tl.Followers = slices.Sorted(maps.Keys(followers))
	return tl
}

// Phase is the figures of the requests that started in a window.
type Phase struct {
	From     time.Time              `json:"from"`
	To       time.Time              `json:"to"`
	Requests int                    `json:"requests"`
	Failed   int                    `json:"failed"`
	Errors   map[load.ErrorKind]int `json:"errors"`
	P50MS    float64                `json:"p50_ms"`
	P99MS    float64                `json:"p99_ms"`
	MaxMS    float64                `json:"max_ms"`
	// Shares of successful answers per instance, 0..1.
	BackendShare  map[string]float64 `json:"backend_share"`
	FollowerShare map[string]float64 `json:"follower_share"`
}

// Window returns the results that started in [from, to).
func Window(results []load.Result, from, to time.Time) []load.Result {
	var out []load.Result
	for _, r := range results {
		if !r.Start.Before(from) && r.Start.Before(to) {
			out = append(out, r)
		}
	}
	return out
}

// PhaseOf summarizes the results that started in [from, to).
func PhaseOf(results []load.Result, from, to time.Time) Phase {
	w := Window(results, from, to)
	s := load.Summarize(w)
	p := Phase{
		From: from, To: to, Requests: s.Total, Failed: s.Failed, Errors: s.Errors,
		P50MS: s.P50MS, P99MS: s.P99MS, MaxMS: s.MaxMS,
		BackendShare: map[string]float64{}, FollowerShare: map[string]float64{},
	}
	var okB, okF int
	backends, followers := map[string]int{}, map[string]int{}
	for _, r := range w {
		if !r.OK() {
			continue
		}
		if r.Backend != "" {
			okB++
			backends[r.Backend]++
		}
		if r.Follower != "" {
			okF++
			followers[r.Follower]++
		}
	}
	for k, n := range backends {
		p.BackendShare[k] = float64(n) / float64(okB)
	}
	for k, n := range followers {
		p.FollowerShare[k] = float64(n) / float64(okF)
	}
	return p
}

// Identity says which instance answered a request, for a role whose
// instances are named in responses: the backend or the follower.
func Identity(role string, r load.Result) string {
	switch role {
	case "backend":
		return r.Backend
	case "follower":
		return r.Follower
	}
	return ""
}

// Needs returns whether a request needed the victim of role: for a
// replicated role, one that the victim served (by name); for the single
// points, every request of the kind that goes through it: writes for the
// primary; reads for HAProxy, but not those that went around it, straight
// to a follower while it was down (load.Result.Direct); any for Nginx.
func Needs(role, victim string) func(load.Result) bool {
	switch {
	case Roles[role].Replicated:
		return func(r load.Result) bool { return Identity(role, r) == victim }
	case role == "primary":
		return func(r load.Result) bool { return r.Method == http.MethodPost }
	case role == "haproxy":
		return func(r load.Result) bool { return r.Method == http.MethodGet && !r.Direct }
	}
	return func(load.Result) bool { return true }
}

// FirstServed returns the start of the first successful request after since
// that needed the victim (see Needs).
func FirstServed(results []load.Result, needs func(load.Result) bool, since time.Time) (time.Time, bool) {
	var best time.Time
	found := false
	for _, r := range results {
		if !r.OK() || r.Start.Before(since) || !needs(r) {
			continue
		}
		if !found || r.Start.Before(best) {
			best, found = r.Start, true
		}
	}
	return best, found
}

// SharedAgain returns the start of the first window of length win, sliding
// by step from since, in which the victim had at least half its fair share
// (1/instances) of the role's successful answers. ok is false when no such
// window ended before the last result.
func SharedAgain(results []load.Result, role, victim string, instances int, since time.Time, win, step time.Duration) (time.Time, bool) {
	if instances < 1 || win <= 0 || step <= 0 || len(results) == 0 {
		return time.Time{}, false
	}
	var last time.Time
	for _, r := range results {
		if r.Start.After(last) {
			last = r.Start
		}
	}
	want := 0.5 / float64(instances)
	for from := since; !from.Add(win).After(last); from = from.Add(step) {
		total, mine := 0, 0
		for _, r := range Window(results, from, from.Add(win)) {
			id := Identity(role, r)
			if !r.OK() || id == "" {
				continue
			}
			total++
			if id == victim {
				mine++
			}
		}
		if total > 0 && float64(mine)/float64(total) >= want {
			return from, true
		}
	}
	return time.Time{}, false
}

// ErrorWindow returns the first and last end of a failed request that
// started at or after since: the span during which clients saw errors.
func ErrorWindow(results []load.Result, since time.Time) (first, last time.Time, n int) {
	for _, r := range results {
		if r.OK() || r.Start.Before(since) {
			continue
		}
		n++
		if first.IsZero() || r.Start.Before(first) {
			first = r.Start
		}
		if e := r.End(); e.After(last) {
			last = e
		}
	}
	return first, last, n
}

// CountFailed counts failed requests with the given method ("" = any).
func CountFailed(results []load.Result, method string) int {
	n := 0
	for _, r := range results {
		if !r.OK() && (method == "" || r.Method == method) {
			n++
		}
	}
	return n
}

// AckedWrites returns the row ids of successful POSTs.
func AckedWrites(results []load.Result) []int64 {
	var ids []int64
	for _, r := range results {
		if r.OK() && r.Method == http.MethodPost && r.ID != 0 {
			ids = append(ids, r.ID)
		}
	}
	slices.Sort(ids)
	return ids
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
