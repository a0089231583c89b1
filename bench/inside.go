package bench

import (
	"context"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// The backends' histograms that tell where a request's time goes.
const (
	metricRequest = "hastack_backend_http_request_duration_seconds" // GET /data, handler to answer
	metricWait    = "hastack_backend_read_batch_wait_seconds"       // per batch: its oldest read's queue wait
	metricQuery   = "hastack_backend_read_query_duration_seconds"   // per batch: the query's round trip
	metricBatch   = "hastack_backend_read_batch_size"               // per batch: reads in it
	dataRoute     = "GET /data"

	// Counters, kept as a Histogram with only its Count: what clients do
	// not see because a retry hid it.
	metricRetries  = "hastack_backend_read_retries_total" // reads retried on another connection
	metricRequests = "hastack_backend_http_requests_total"
	counterNot2xx  = metricRequests + " GET /data not 2xx" // GET /data answered with an error (Nginx may have retried it on the other backend); not 499, a client gone first
)

// Inside is where the time went inside the backends during one measurement:
// the change in their histograms over it, summed over every backend.
// Percentiles are interpolated within buckets, as Prometheus'
// histogram_quantile does, so they are as coarse as the buckets.
type Inside struct {
	Requests   uint64        `json:"requests"` // GET /data answered by the backends
	RequestP50 time.Duration `json:"request_p50_ns"`
	RequestP99 time.Duration `json:"request_p99_ns"`
	Batches    uint64        `json:"batches"` // read queries sent
	MeanBatch  float64       `json:"mean_batch"`
	WaitP99    time.Duration `json:"batch_wait_p99_ns"`   // the oldest read of a batch: behind the query in flight, then waiting for company
	QueryP99   time.Duration `json:"query_p99_ns"`        // the query's round trip through HAProxy to a follower
	Under10ms  float64       `json:"requests_under_10ms"` // share of GET /data answered within 10 ms
	// What a retry hid from the client: reads the backends retried on
	// another connection, and GET /data they answered with an error
	// (Nginx retries those on the other backend).
	ReadRetries uint64 `json:"read_retries"`
	Not2xx      uint64 `json:"backend_answers_not_2xx"`
}

// Histogram is a cumulative histogram: Counts[i] observations were at most
// Bounds[i]; Count is every observation (the +Inf bucket).
type Histogram struct {
	Bounds []float64
	Counts []uint64
	Count  uint64
	Sum    float64
}

// Histograms are the backends' histograms that Inside reads, by metric
// name, summed over the backends scraped.
type Histograms map[string]Histogram

// ScrapeBackends reads every backend's /metrics and sums their histograms.
func ScrapeBackends(ctx context.Context, urls []string) (Histograms, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	sum := Histograms{}
	for _, u := range urls {
		h, err := scrape(ctx, u)
		if err != nil {
			return nil, err
		}
		if err := sum.add(h); err != nil {
			return nil, fmt.Errorf("%s: %w", u, err)
		}
	}
	return sum, nil
}

// insideSince scrapes the backends now, and returns what reads where the
// time went inside them from now until it is called.
func insideSince(ctx context.Context, urls []string) (func() (*Inside, error), error) {
	before, err := ScrapeBackends(ctx, urls)
	if err != nil {
		return nil, err
	}
	return func() (*Inside, error) {
		after, err := ScrapeBackends(ctx, urls)
		if err != nil {
			return nil, err
		}
		d, err := after.Sub(before)
		if err != nil {
			return nil, err
		}
		in := InsideFrom(d)
		return &in, nil
	}, nil
}

func scrape(ctx context.Context, url string) (Histograms, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("scrape backend metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("scrape backend metrics %s: %s", url, resp.Status)
	}
	return ParseHistograms(resp.Body)
}

// ParseHistograms picks the histograms Inside reads out of a Prometheus
// text exposition (the request histogram: its GET /data series only).
func ParseHistograms(r io.Reader) (Histograms, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(r)
	if err != nil {
		return nil, fmt.Errorf("parse backend metrics: %w", err)
	}
	hs := Histograms{}
	for _, name := range []string{metricRequest, metricWait, metricQuery, metricBatch} {
		f, ok := families[name]
		if !ok || f.GetType() != dto.MetricType_HISTOGRAM {
			return nil, fmt.Errorf("backend metrics have no histogram %s", name)
		}
		for _, m := range f.GetMetric() {
			if name == metricRequest && routeOf(m) != dataRoute {
				continue
			}
			h := m.GetHistogram()
			var one Histogram
			for _, b := range h.GetBucket() {
				if math.IsInf(b.GetUpperBound(), +1) {
					continue
				}
				one.Bounds = append(one.Bounds, b.GetUpperBound())
				one.Counts = append(one.Counts, b.GetCumulativeCount())
			}
			one.Count, one.Sum = h.GetSampleCount(), h.GetSampleSum()
			if err := hs.add(Histograms{name: one}); err != nil {
				return nil, err
			}
		}
	}
	// sum adds up a counter family's series that keep accepts; a family
	// the backends do not export sums to zero.
	sum := func(family string, keep func(*dto.Metric) bool) Histogram {
		var h Histogram
		for _, m := range families[family].GetMetric() {
			if keep(m) {
				h.Count += uint64(m.GetCounter().GetValue())
			}
		}
		return h
	}
	counters := Histograms{
		metricRetries: sum(metricRetries, func(*dto.Metric) bool { return true }),
		// 499: the client went away first (wrk closes its connections with
		// requests in flight when its time is up): no answer lost.
		counterNot2xx: sum(metricRequests, func(m *dto.Metric) bool {
			code := labelOf(m, "code")
			return routeOf(m) == dataRoute && !strings.HasPrefix(code, "2") && code != "499"
		}),
	}
	if err := hs.add(counters); err != nil {
		return nil, err
	}
	return hs, nil
}

func routeOf(m *dto.Metric) string { return labelOf(m, "route") }

func labelOf(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// add sums o into hs; histograms of one name must share their buckets.
func (hs Histograms) add(o Histograms) error {
	for name, h := range o {
		cur, ok := hs[name]
		if !ok {
			hs[name] = Histogram{Bounds: slices.Clone(h.Bounds), Counts: slices.Clone(h.Counts), Count: h.Count, Sum: h.Sum}
			continue
		}
		if !slices.Equal(cur.Bounds, h.Bounds) {
			return fmt.Errorf("%s: buckets %v and %v differ", name, cur.Bounds, h.Bounds)
		}
		for i := range cur.Counts {
			cur.Counts[i] += h.Counts[i]
		}
		cur.Count += h.Count
		cur.Sum += h.Sum
		hs[name] = cur
	}
	return nil
}

// Sub is what was observed between before and hs. A count that went down
// means a backend restarted in between (its counters began again), and the
// difference would be wrong: that is an error.
func (hs Histograms) Sub(before Histograms) (Histograms, error) {
	out := Histograms{}
	for name, h := range hs {
		b, ok := before[name]
		if !ok {
			return nil, fmt.Errorf("%s: missing from the first scrape", name)
		}
		if !slices.Equal(b.Bounds, h.Bounds) {
			return nil, fmt.Errorf("%s: buckets changed between scrapes", name)
		}
		d := Histogram{Bounds: slices.Clone(h.Bounds), Counts: make([]uint64, len(h.Counts))}
		if h.Count < b.Count {
			return nil, fmt.Errorf("%s: count went from %d to %d: a backend restarted during the measurement", name, b.Count, h.Count)
		}
		for i := range h.Counts {
			if h.Counts[i] < b.Counts[i] {
				return nil, fmt.Errorf("%s: a bucket went down: a backend restarted during the measurement", name)
			}
			d.Counts[i] = h.Counts[i] - b.Counts[i]
		}
		d.Count, d.Sum = h.Count-b.Count, h.Sum-b.Sum
		out[name] = d
	}
	return out, nil
}

// Quantile interpolates the q-quantile (0 < q <= 1) linearly within its
// bucket, from 0 for the first, as histogram_quantile does. A quantile in
// the +Inf bucket is reported as the largest finite bound; an empty
// histogram has none (NaN).
func (h Histogram) Quantile(q float64) float64 {
	if h.Count == 0 || len(h.Bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(h.Count)
	lower, below := 0.0, uint64(0)
	for i, c := range h.Counts {
		if float64(c) >= rank {
			in := c - below
			if in == 0 {
				return h.Bounds[i]
			}
			return lower + (h.Bounds[i]-lower)*(rank-float64(below))/float64(in)
		}
		lower, below = h.Bounds[i], c
	}
	return h.Bounds[len(h.Bounds)-1]
}

// Under is the share of observations at most bound, which must be one of
// the buckets' bounds.
func (h Histogram) Under(bound float64) float64 {
	i := slices.Index(h.Bounds, bound)
	if i < 0 || h.Count == 0 {
		return math.NaN()
	}
	return float64(h.Counts[i]) / float64(h.Count)
}

// InsideFrom reads an Inside out of the histograms' change over a measurement.
func InsideFrom(d Histograms) Inside {
	sec := func(v float64) time.Duration {
		if math.IsNaN(v) {
			return 0
		}
		return time.Duration(v * float64(time.Second))
	}
	req, wait, query, batch := d[metricRequest], d[metricWait], d[metricQuery], d[metricBatch]
	in := Inside{
		Requests:   req.Count,
		RequestP50: sec(req.Quantile(.5)),
		RequestP99: sec(req.Quantile(.99)),
		Batches:    batch.Count,
		WaitP99:    sec(wait.Quantile(.99)),
		QueryP99:   sec(query.Quantile(.99)),
		// Zero when the backends export no such counter.
		ReadRetries: d[metricRetries].Count,
		Not2xx:      d[counterNot2xx].Count,
	}
	if u := req.Under(.01); !math.IsNaN(u) {
		in.Under10ms = u
	}
	if batch.Count > 0 {
		in.MeanBatch = batch.Sum / float64(batch.Count)
	}
	return in
}
