package backend

import (
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
)

// latencyBuckets span a loopback round trip under no load (a fraction of
// a millisecond) to the longest a request may take.
var latencyBuckets = []float64{.00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2, 5}

// Metrics are the service's Prometheus instruments.
type Metrics struct {
	requests    *prometheus.CounterVec
	duration    *prometheus.HistogramVec
	readRetries prometheus.Counter
	readBatch   prometheus.Histogram
	readWait    prometheus.Histogram
	readQuery   prometheus.Histogram
}

// NewMetrics registers the service's instruments on reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "hastack", Subsystem: "backend", Name: "http_requests_total",
			Help: "HTTP requests by route pattern and status code.",
		}, []string{"route", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: "hastack", Subsystem: "backend", Name: "http_request_duration_seconds",
			Help:    "HTTP request duration by route pattern.",
			Buckets: latencyBuckets,
		}, []string{"route"}),
		readRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "hastack", Subsystem: "backend", Name: "read_retries_total",
			Help: "Reads retried on another connection after a connection-level failure.",
		}),
		readBatch: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "hastack", Subsystem: "backend", Name: "read_batch_size",
			Help:    "Reads sent together in one query.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64},
		}),
		readWait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "hastack", Subsystem: "backend", Name: "read_batch_wait_seconds",
			Help:    "How long the oldest read of each batch waited in the queue before its query went out.",
			Buckets: latencyBuckets,
		}),
		readQuery: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: "hastack", Subsystem: "backend", Name: "read_query_duration_seconds",
			Help:    "Round trip of each read batch's query, retries included.",
			Buckets: latencyBuckets,
		}),
	}
	reg.MustRegister(m.requests, m.duration, m.readRetries, m.readBatch, m.readWait, m.readQuery)
	return m
}

// observeBatch records one read batch: together with the request
// duration, the wait and query histograms tell where a read's time goes
// (queued behind a query in flight, or in the query's round trip).
func (m *Metrics) observeBatch(s BatchStats) {
	m.readBatch.Observe(float64(s.Size))
	m.readWait.Observe(s.Wait.Seconds())
	m.readQuery.Observe(s.Query.Seconds())
}

// poolCollector exports pgxpool statistics of named pools.
type poolCollector struct {
	pools map[string]*pgxpool.Pool

	total, idle, acquired, constructing, maxConns       *prometheus.Desc
	acquires, emptyAcquires, newConns, lifetimeDestroys *prometheus.Desc
}

func newPoolCollector(pools map[string]*pgxpool.Pool) *poolCollector {
	d := func(name, help string) *prometheus.Desc {
		return prometheus.NewDesc("hastack_backend_pool_"+name, help, []string{"pool"}, nil)
	}
	return &poolCollector{
		pools:            pools,
		total:            d("total_conns", "Connections open or being opened."),
		idle:             d("idle_conns", "Idle connections."),
		acquired:         d("acquired_conns", "Connections in use."),
		constructing:     d("constructing_conns", "Connections being opened."),
		maxConns:         d("max_conns", "Configured maximum connections."),
		acquires:         d("acquires_total", "Successful acquires."),
		emptyAcquires:    d("empty_acquires_total", "Acquires that had to wait for or open a connection."),
		newConns:         d("new_conns_total", "Connections opened."),
		lifetimeDestroys: d("max_lifetime_destroys_total", "Connections closed for reaching MaxConnLifetime."),
	}
}

// Describe implements prometheus.Collector.
func (c *poolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.total, c.idle, c.acquired, c.constructing, c.maxConns, c.acquires, c.emptyAcquires, c.newConns, c.lifetimeDestroys} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *poolCollector) Collect(ch chan<- prometheus.Metric) {
	for name, p := range c.pools {
		s := p.Stat()
		g := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, name)
		}
		k := func(d *prometheus.Desc, v float64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, v, name)
		}
		g(c.total, float64(s.TotalConns()))
		g(c.idle, float64(s.IdleConns()))
		g(c.acquired, float64(s.AcquiredConns()))
		g(c.constructing, float64(s.ConstructingConns()))
		g(c.maxConns, float64(s.MaxConns()))
		k(c.acquires, float64(s.AcquireCount()))
		k(c.emptyAcquires, float64(s.EmptyAcquireCount()))
		k(c.newConns, float64(s.NewConnsCount()))
		k(c.lifetimeDestroys, float64(s.MaxLifetimeDestroyCount()))
	}
}
