package bench

import (
	"math"
	"strconv"
	"strings"
	"testing"
)

// exposition is a backend's /metrics text in the shape client_golang
// writes it, with made-up counts: [4]int are the cumulative counts at
// the bounds and +Inf.
func exposition(reqCounts, waitCounts, queryCounts [4]int, batches, reads int) string {
	var b strings.Builder
	header := func(name string) { b.WriteString("# HELP " + name + " x\n# TYPE " + name + " histogram\n") }
	series := func(name, labels string, bounds []string, counts [4]int, sum float64) {
		for i, le := range append(bounds, "+Inf") {
			b.WriteString(name + "_bucket{" + labels + `le="` + le + `"} ` + strconv.Itoa(counts[i]) + "\n")
		}
		b.WriteString(name + "_sum{" + strings.TrimSuffix(labels, ",") + "} " + strconv.FormatFloat(sum, 'g', -1, 64) + "\n")
		b.WriteString(name + "_count{" + strings.TrimSuffix(labels, ",") + "} " + strconv.Itoa(counts[3]) + "\n")
	}
	secs := []string{"0.001", "0.005", "0.01"}
	header(metricRequest)
	series(metricRequest, `route="GET /data",`, secs, reqCounts, 1)
	series(metricRequest, `route="GET /readyz",`, secs, [4]int{1000, 1000, 1000, 1000}, 0.1) // must not count
	header(metricWait)
	series(metricWait, "", secs, waitCounts, 0.5)
	header(metricQuery)
	series(metricQuery, "", secs, queryCounts, 0.5)
	header(metricBatch)
	series(metricBatch, "", []string{"1", "8", "32"}, [4]int{0, 0, batches, batches}, float64(reads))
	return b.String()
}

func TestParseHistogramsKeepsDataRouteAndSumsBackends(t *testing.T) {
	a, err := ParseHistograms(strings.NewReader(exposition([4]int{10, 80, 99, 100}, [4]int{5, 9, 10, 10}, [4]int{8, 10, 10, 10}, 10, 100)))
	if err != nil {
		t.Fatal(err)
	}
	if got := a[metricRequest]; got.Count != 100 || got.Counts[0] != 10 {
		t.Fatalf("request histogram %+v: want GET /data's only (100 requests, 10 under 1 ms)", got)
	}
	b, err := ParseHistograms(strings.NewReader(exposition([4]int{0, 0, 50, 100}, [4]int{0, 0, 0, 10}, [4]int{0, 0, 10, 10}, 10, 300)))
	if err != nil {
		t.Fatal(err)
	}
	if err := a.add(b); err != nil {
		t.Fatal(err)
	}
	req := a[metricRequest]
	if req.Count != 200 || req.Counts[2] != 149 {
		t.Errorf("summed request histogram %+v, want 200 requests, 149 under 10 ms", req)
	}
	if in := InsideFrom(a); in.Batches != 20 || in.MeanBatch != 20 || in.Requests != 200 || in.Under10ms != 149.0/200 {
		t.Errorf("inside %+v: want 20 queries of 20 reads on average, 200 requests, 74.5%% under 10 ms", in)
	}
}

func TestParseHistogramsWantsEveryHistogram(t *testing.T) {
	if _, err := ParseHistograms(strings.NewReader("# TYPE foo counter\nfoo 1\n")); err == nil || !strings.Contains(err.Error(), metricRequest) {
		t.Errorf("err = %v, want one naming the missing %s", err, metricRequest)
	}
}

func TestQuantileInterpolatesWithinTheBucket(t *testing.T) {
	h := Histogram{Bounds: []float64{1, 5, 10}, Counts: []uint64{50, 90, 100}, Count: 100}
	for _, c := range []struct{ q, want float64 }{
		{0.25, 0.5},   // half way through the first bucket, from 0
		{0.5, 1},      // the first bucket's top
		{0.7, 3},      // half of (1, 5]
		{0.99, 9.5},   // nine tenths of (5, 10]
		{1, 10},       // the last observation
		{0.95, 7.5},   // half of (5, 10]
		{0.51, 1.1},   // a fortieth into (1, 5]
		{0.9, 5},      // the second bucket's top
		{0.05, 0.1},   // a tenth of the first
		{0.999, 9.95}, // the tail
	} {
		if got := h.Quantile(c.q); math.Abs(got-c.want) > 1e-9 {
			t.Errorf("Quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
	over := Histogram{Bounds: []float64{1}, Counts: []uint64{1}, Count: 10}
	if got := over.Quantile(0.99); got != 1 {
		t.Errorf("a quantile past the last bound = %v, want the last bound 1", got)
	}
	if got := (Histogram{Bounds: []float64{1}, Counts: []uint64{0}}).Quantile(0.5); !math.IsNaN(got) {
		t.Errorf("empty histogram's quantile = %v, want NaN", got)
	}
}

func TestSubIsTheMeasurementAndCatchesARestart(t *testing.T) {
	before := Histograms{metricWait: {Bounds: []float64{1, 2}, Counts: []uint64{3, 4}, Count: 5, Sum: 1}}
	after := Histograms{metricWait: {Bounds: []float64{1, 2}, Counts: []uint64{13, 24}, Count: 25, Sum: 3}}
	d, err := after.Sub(before)
	if err != nil {
		t.Fatal(err)
	}
	if h := d[metricWait]; h.Count != 20 || h.Counts[0] != 10 || h.Counts[1] != 20 || h.Sum != 2 {
		t.Errorf("difference %+v, want 20 observations, 10 then 20 cumulative, sum 2", h)
	}
	if _, err := before.Sub(after); err == nil || !strings.Contains(err.Error(), "restarted") {
		t.Errorf("counters going down: err = %v, want a restart named", err)
	}
}

func TestInsideOfAnIdleRunIsZeroNotNaN(t *testing.T) {
	empty := Histogram{Bounds: []float64{.001, .01}, Counts: []uint64{0, 0}}
	in := InsideFrom(Histograms{metricRequest: empty, metricWait: empty, metricQuery: empty, metricBatch: empty})
	if in != (Inside{}) {
		t.Errorf("inside %+v, want all zero (JSON has no NaN)", in)
	}
}

func TestParseCountersHiddenByRetries(t *testing.T) {
	counters := func(retries, ok, failed int) string {
		return exposition([4]int{10, 80, 99, 100}, [4]int{5, 9, 10, 10}, [4]int{8, 10, 10, 10}, 10, 100) +
			"# TYPE hastack_backend_read_retries_total counter\n" +
			"hastack_backend_read_retries_total " + strconv.Itoa(retries) + "\n" +
			"# TYPE hastack_backend_http_requests_total counter\n" +
			`hastack_backend_http_requests_total{code="200",route="GET /data"} ` + strconv.Itoa(ok) + "\n" +
			`hastack_backend_http_requests_total{code="503",route="GET /data"} ` + strconv.Itoa(failed) + "\n" +
			`hastack_backend_http_requests_total{code="499",route="GET /data"} 9` + "\n" + // the client went away: not an error answer
			`hastack_backend_http_requests_total{code="503",route="GET /readyz"} 40` + "\n" // not /data: must not count
	}
	before, err := ParseHistograms(strings.NewReader(counters(3, 1000, 2)))
	if err != nil {
		t.Fatal(err)
	}
	after, err := ParseHistograms(strings.NewReader(counters(10, 5000, 7)))
	if err != nil {
		t.Fatal(err)
	}
	d, err := after.Sub(before)
	if err != nil {
		t.Fatal(err)
	}
	if in := InsideFrom(d); in.ReadRetries != 7 || in.Not2xx != 5 {
		t.Fatalf("read retries %d, error answers %d; want 7 and 5", in.ReadRetries, in.Not2xx)
	}
	// A backend without the counters: zero, not an error.
	plain, err := ParseHistograms(strings.NewReader(exposition([4]int{10, 80, 99, 100}, [4]int{5, 9, 10, 10}, [4]int{8, 10, 10, 10}, 10, 100)))
	if err != nil {
		t.Fatal(err)
	}
	if in := InsideFrom(plain); in.ReadRetries != 0 || in.Not2xx != 0 {
		t.Fatalf("no counters: %+v", in)
	}
}
