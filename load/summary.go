package load

import (
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

// Summary aggregates a run. Latency figures are over all requests, failures
// included (a timeout counts with its full wait, a refused connection with
// its near-zero one), because that is what a client of the service sees.
// Durations appear twice in JSON: as nanoseconds and as float milliseconds.
type Summary struct {
	Start      time.Time     `json:"start"`
	Total      int           `json:"total"`
	OK         int           `json:"ok"`
	Failed     int           `json:"failed"`
	Writes     int           `json:"writes"`    // POSTs sent
	WriteIDs   int           `json:"write_ids"` // POSTs that succeeded and returned a row id
	Duration   time.Duration `json:"duration_ns"`
	DurationMS float64       `json:"duration_ms"`
	Throughput float64       `json:"throughput_rps"` // Total / Duration

	Errors      map[ErrorKind]int `json:"errors"`
	PerBackend  map[string]int    `json:"per_backend"`  // every answer that named a backend
	PerFollower map[string]int    `json:"per_follower"` // by follower name; GETs only
	// Direct are the reads that went around HAProxy, straight to a
	// follower, while it was unreachable (Result.Direct).
	Direct int `json:"direct"`

	P50   time.Duration `json:"p50_ns"`
	P90   time.Duration `json:"p90_ns"`
	P99   time.Duration `json:"p99_ns"`
	Max   time.Duration `json:"max_ns"`
	P50MS float64       `json:"p50_ms"`
	P90MS float64       `json:"p90_ms"`
	P99MS float64       `json:"p99_ms"`
	MaxMS float64       `json:"max_ms"`
}

// Summarize aggregates results in any order. Duration runs from the first
// start to the last end. Empty input gives zero values and empty maps.
func Summarize(results []Result) Summary {
	s := Summary{
		Errors:      map[ErrorKind]int{},
		PerBackend:  map[string]int{},
		PerFollower: map[string]int{},
	}
	if len(results) == 0 {
		return s
	}
	lat := make([]time.Duration, 0, len(results))
	var end time.Time
	for i, r := range results {
		if i == 0 || r.Start.Before(s.Start) {
			s.Start = r.Start
		}
		if e := r.End(); e.After(end) {
			end = e
		}
		lat = append(lat, r.Latency)
		s.Total++
		if r.OK() {
			s.OK++
		} else {
			s.Failed++
			s.Errors[r.Kind]++
		}
		if r.Backend != "" {
			s.PerBackend[r.Backend]++
		}
		if r.Follower != "" {
			s.PerFollower[r.Follower]++
		}
		if r.Direct {
			s.Direct++
		}
		if r.Method == http.MethodPost {
			s.Writes++
			if r.OK() && r.ID != 0 {
				s.WriteIDs++
			}
		}
	}
	slices.Sort(lat)
	s.P50, s.P90, s.P99 = Percentile(lat, 50), Percentile(lat, 90), Percentile(lat, 99)
	s.Max = lat[len(lat)-1]
	s.Duration = end.Sub(s.Start)
	if s.Duration > 0 {
		s.Throughput = float64(s.Total) / s.Duration.Seconds()
	}
	s.DurationMS, s.P50MS, s.P90MS, s.P99MS, s.MaxMS = ms(s.Duration), ms(s.P50), ms(s.P90), ms(s.P99), ms(s.Max)
	return s
}

// Percentile returns the p-th percentile (0..100) of sorted by the
// nearest-rank method: the smallest value with at least p% of values at or
// below it. p <= 0 gives the minimum, p >= 100 the maximum, empty input 0.
func Percentile(sorted []time.Duration, p float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	rank := int(math.Ceil(p / 100 * float64(len(sorted))))
	rank = min(max(rank, 1), len(sorted))
	return sorted[rank-1]
}

// WriteText writes a short human-readable block, keys sorted.
func (s Summary) WriteText(w io.Writer) error {
	var b strings.Builder
	fmt.Fprintf(&b, "requests: %d ok: %d failed: %d  duration: %s  throughput: %.1f req/s\n",
		s.Total, s.OK, s.Failed, fmtSeconds(s.Duration), s.Throughput)
	if s.Writes > 0 {
		fmt.Fprintf(&b, "writes:        %d sent, %d ids returned\n", s.Writes, s.WriteIDs)
	}
	fmt.Fprintf(&b, "per backend:   %s\n", shares(s.PerBackend))
	fmt.Fprintf(&b, "per follower:  %s\n", shares(s.PerFollower))
	if s.Direct > 0 {
		fmt.Fprintf(&b, "around HAProxy: %d reads went straight to a follower while it was unreachable\n", s.Direct)
	}
	fmt.Fprintf(&b, "errors:        %s\n", counts(s.Errors))
	fmt.Fprintf(&b, "latency:       p50 %s  p90 %s  p99 %s  max %s\n",
		FormatLatency(s.P50), FormatLatency(s.P90), FormatLatency(s.P99), FormatLatency(s.Max))
	_, err := io.WriteString(w, b.String())
	return err
}

// shares renders "a 3 (75.0%)  b 1 (25.0%)", percentages of the map's total.
func shares(m map[string]int) string {
	if len(m) == 0 {
		return "none"
	}
	total := 0
	for _, n := range m {
		total += n
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d (%.1f%%)", k, m[k], 100*float64(m[k])/float64(total)))
	}
	return strings.Join(parts, "  ")
}

func counts(m map[ErrorKind]int) string {
	if len(m) == 0 {
		return "none"
	}
	parts := make([]string, 0, len(m))
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %d", k, m[k]))
	}
	return strings.Join(parts, "  ")
}

// FormatLatency renders d in milliseconds with one decimal ("1.9ms"), or in
// seconds from one second up ("5.00s").
func FormatLatency(d time.Duration) string {
	if d >= time.Second {
		return fmt.Sprintf("%.2fs", d.Seconds())
	}
	return fmt.Sprintf("%.1fms", ms(d))
}

func fmtSeconds(d time.Duration) string {
	if d < time.Second {
		return FormatLatency(d)
	}
	return fmt.Sprintf("%.1fs", d.Seconds())
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
