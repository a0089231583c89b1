package load

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// maxBody caps how much of a response is decoded; the rest is drained so the
// connection can still be reused.
const maxBody = 1 << 20

// NewClient returns the client Run uses when given nil: keep-alive with one
// idle connection per worker (so connections are reused, not churned), no
// proxy from the environment (a stray HTTP_PROXY must not reroute the load),
// and cfg.Timeout as the whole-request timeout.
func NewClient(cfg Config) *http.Client {
	dialer := &net.Dialer{Timeout: cfg.Timeout, KeepAlive: 30 * time.Second}
	return &http.Client{
		Timeout: cfg.Timeout,
		Transport: &http.Transport{
			Proxy:                 nil,
			DialContext:           dialer.DialContext,
			MaxIdleConns:          cfg.Concurrency,
			MaxIdleConnsPerHost:   cfg.Concurrency,
			IdleConnTimeout:       90 * time.Second,
			TLSHandshakeTimeout:   cfg.Timeout,
			ResponseHeaderTimeout: cfg.Timeout,
		},
	}
}

// Run sends requests as cfg describes and calls onResult once per request.
//
// Concurrency workers take requests from one dispatcher. The run stops
// issuing at cfg.Requests sent, cfg.Duration elapsed or ctx done, whichever
// comes first, then waits for requests in flight: those are not cancelled by
// the stop but are bounded by cfg.Timeout, so every request sent gets a
// Result. Run returns ctx.Err() if ctx ended the run, nil otherwise.
//
// With cfg.Rate > 0 pacing is open-loop: request n is due at
// start + (n-1)/Rate no matter how long earlier requests took. When every
// worker is busy the due request waits for a free one and is sent at once, so
// a stall is followed by a catch-up burst. Latency is measured from when a
// request is actually sent, not from its due time (no coordinated-omission
// correction); raise Concurrency if workers are the bottleneck.
//
// Writes are spread evenly rather than drawn at random: request n is a POST
// when floor(n*WriteRatio) > floor((n-1)*WriteRatio), so 0.25 makes every
// fourth request a POST and runs are reproducible.
//
// onResult is called from worker goroutines, one call at a time, so it needs
// no locking of its own. It should be quick: workers wait for it.
func Run(ctx context.Context, cfg Config, client *http.Client, onResult func(Result)) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	if client == nil {
		client = NewClient(cfg)
		defer client.CloseIdleConnections()
	}
	if onResult == nil {
		onResult = func(Result) {}
	}

	runCtx, cancel := ctx, context.CancelFunc(func() {})
	if cfg.Duration > 0 {
		runCtx, cancel = context.WithTimeout(ctx, cfg.Duration)
	}
	defer cancel()

	// Requests in flight outlive the stop (see above) but keep ctx's values.
	reqCtx := context.WithoutCancel(ctx)

	jobs := make(chan int64)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for range cfg.Concurrency {
		wg.Go(func() {
			for seq := range jobs {
				r := do(reqCtx, client, cfg, seq)
				mu.Lock()
				onResult(r)
				mu.Unlock()
			}
		})
	}
	dispatch(runCtx, cfg, jobs)
	wg.Wait()
	return ctx.Err()
}

// dispatch hands out sequence numbers until a bound is reached, then closes
// jobs.
func dispatch(ctx context.Context, cfg Config, jobs chan<- int64) {
	defer close(jobs)
	start := time.Now()
	var timer *time.Timer
	defer func() {
		if timer != nil {
			timer.Stop()
		}
	}()
	for seq := int64(1); cfg.Requests == 0 || seq <= int64(cfg.Requests); seq++ {
		if cfg.Rate > 0 {
			due := start.Add(time.Duration(float64(seq-1) / cfg.Rate * float64(time.Second)))
			// A request due at or after the end of the run is not sent: a
			// rate r for a duration d sends r*d requests, not one more
			// when its timer wins the race with the deadline.
			if end, ok := ctx.Deadline(); ok && !due.Before(end) {
				return
			}
			if wait := time.Until(due); wait > 0 {
				if timer == nil {
					timer = time.NewTimer(wait)
				} else {
					timer.Reset(wait)
				}
				select {
				case <-ctx.Done():
					return
				case <-timer.C:
				}
			}
		}
		if ctx.Err() != nil {
			return
		}
		select {
		case <-ctx.Done():
			return
		case jobs <- seq:
		}
	}
}

// isWrite spreads cfg.WriteRatio evenly over the sequence.
func isWrite(ratio float64, seq int64) bool {
	return math.Floor(float64(seq)*ratio) > math.Floor(float64(seq-1)*ratio)
}

// answer is the union of the service's GET, POST and error bodies.
type answer struct {
	BackendID string `json:"backend_id"`
	Follower  *struct {
		Name   string `json:"name"`
		Addr   string `json:"addr"`
		Direct bool   `json:"direct"`
	} `json:"follower"`
	Row *struct {
		ID int64 `json:"id"`
	} `json:"row"`
	ID    int64  `json:"id"`
	Error string `json:"error"`
}

// do sends request seq and describes its outcome.
func do(ctx context.Context, client *http.Client, cfg Config, seq int64) Result {
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()

	r := Result{Seq: seq, Method: http.MethodGet, Start: time.Now()}
	var body io.Reader
	var key string
	if isWrite(cfg.WriteRatio, seq) {
		r.Method = http.MethodPost
		key = fmt.Sprintf("load-%d-%d", r.Start.UnixNano(), seq)
		body = strings.NewReader(fmt.Sprintf(`{"payload":%q}`, key))
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, cfg.URL, body)
	if err != nil {
		r.Kind, r.Err = KindConnError, err.Error()
		return r
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
		// Writes carry an idempotency key, as the API invites: the backend
		// writes a repeated key once, so Go's transport may resend the POST
		// when a kept-alive connection turns out closed (Nginx closes idle
		// ones when it reloads), like it resends GETs.
		req.Header.Set("Idempotency-Key", key)
	}

	resp, err := client.Do(req)
	if err != nil {
		r.Latency = time.Since(r.Start)
		r.Kind, r.Err = classify(err), err.Error()
		return r
	}
	r.Status = resp.StatusCode
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	r.Latency = time.Since(r.Start)
	if err != nil {
		r.Kind, r.Err = classify(err), "reading body: "+err.Error()
		return r
	}

	var a answer
	jsonErr := json.Unmarshal(data, &a)
	if jsonErr == nil {
		// Error answers may name a backend too; keep what they say.
		r.Backend = a.BackendID
		if a.Follower != nil {
			r.Follower, r.FollowerAddr, r.Direct = a.Follower.Name, a.Follower.Addr, a.Follower.Direct
		}
		r.ID = a.ID
		if a.Row != nil {
			r.ID = a.Row.ID
		}
	}

	want := http.StatusOK
	if r.Method == http.MethodPost {
		want = http.StatusCreated
	}
	switch {
	case r.Status != want:
		r.Kind = StatusKind(r.Status)
		r.Err = a.Error
		if r.Err == "" {
			r.Err = http.StatusText(r.Status)
		}
	case jsonErr != nil:
		r.Kind, r.Err = KindBadBody, "invalid JSON: "+jsonErr.Error()
	case a.BackendID == "":
		r.Kind, r.Err = KindBadBody, "no backend_id in body"
	}
	return r
}
