package load

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// backend answers like the data service behind Nginx: GETs alternate
// backend and follower ids, every tenth GET (by arrival) is a 503, POSTs
// create rows with increasing ids.
type backend struct {
	gets, posts atomic.Int64
	badPosts    atomic.Int64 // POST bodies that were not {"payload":"load-..."}
}

func (b *backend) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodGet:
		n := b.gets.Add(1) - 1
		if n%10 == 3 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"no healthy follower"}`)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{
			"backend_id": fmt.Sprintf("backend-%d", n%2),
			"follower":   map[string]any{"name": fmt.Sprintf("follower-%d", n%2), "addr": fmt.Sprintf("127.0.0.1:%d", 20000+n%2)},
			"row":        map[string]any{"id": 1 + n, "payload": "x", "created_at": "2024-01-01T00:00:00Z"},
			"took_ms":    1.2,
		})
	case http.MethodPost:
		var in struct{ Payload string }
		if err := json.NewDecoder(r.Body).Decode(&in); err != nil || !strings.HasPrefix(in.Payload, "load-") {
			b.badPosts.Add(1)
		}
		n := b.posts.Add(1)
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"id": 10000 + n, "backend_id": "backend-0", "created_at": "2024-01-01T00:00:00Z"})
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func newBackend(t *testing.T) (*backend, string) {
	t.Helper()
	b := &backend{}
	srv := httptest.NewServer(b)
	t.Cleanup(srv.Close)
	return b, srv.URL + "/data"
}

func baseConfig(url string) Config {
	return Config{URL: url, Requests: 20, Concurrency: 4, Timeout: 5 * time.Second}
}

// collect runs cfg and returns every result; the append is deliberately
// unlocked to check that Run serializes onResult (go test -race).
func collect(t *testing.T, ctx context.Context, cfg Config) ([]Result, error) {
	t.Helper()
	var results []Result
	err := Run(ctx, cfg, nil, func(r Result) { results = append(results, r) })
	return results, err
}

func TestRunBackend(t *testing.T) {
	b, url := newBackend(t)
	results, err := collect(t, context.Background(), baseConfig(url))
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(results)
	// Arrivals 0..19: 3 and 13 are 503s (both odd), so 10 even and 8 odd answer.
	if s.Total != 20 || s.OK != 18 || s.Errors[StatusKind(503)] != 2 || len(s.Errors) != 1 {
		t.Errorf("total/ok/errors = %d/%d/%v", s.Total, s.OK, s.Errors)
	}
	if s.PerBackend["backend-0"] != 10 || s.PerBackend["backend-1"] != 8 {
		t.Errorf("per backend = %v", s.PerBackend)
	}
	if s.PerFollower["follower-0"] != 10 || s.PerFollower["follower-1"] != 8 {
		t.Errorf("per follower = %v", s.PerFollower)
	}
	seen := map[int64]bool{}
	for _, r := range results {
		seen[r.Seq] = true
		if r.Method != http.MethodGet {
			t.Errorf("method %s with write ratio 0", r.Method)
		}
		switch {
		case r.OK() && (r.Status != 200 || r.ID == 0 || r.FollowerAddr == "" || r.Start.IsZero() || r.Latency <= 0):
			t.Errorf("ok result incomplete: %+v", r)
		case r.Kind == StatusKind(503) && (r.Status != 503 || r.Err != "no healthy follower"):
			t.Errorf("503 result: %+v", r)
		}
	}
	if len(seen) != 20 || !seen[1] || !seen[20] {
		t.Errorf("sequence numbers not 1..20: %v", seen)
	}
	if got := b.gets.Load(); got != 20 {
		t.Errorf("server saw %d GETs, want 20", got)
	}
}

func TestRunFailureKinds(t *testing.T) {
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(hang.Close)
	t.Cleanup(func() { close(release) }) // runs before hang.Close

	slowBody := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusOK)
		_, _ = io.WriteString(w, `{"backend_id":`)
		w.(http.Flusher).Flush()
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(slowBody.Close)

	bodies := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/notjson":
			_, _ = io.WriteString(w, "<html>hello</html>")
		case "/nobackend":
			_, _ = io.WriteString(w, `{"row":{"id":1}}`)
		case "/badgateway":
			w.WriteHeader(http.StatusBadGateway) // Nginx's own page, not JSON
			_, _ = io.WriteString(w, "<html>502</html>")
		}
	}))
	t.Cleanup(bodies.Close)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String() + "/data"
	_ = ln.Close()

	tests := []struct {
		name string
		url  string
		want ErrorKind
	}{
		{"hang past timeout", hang.URL, KindTimeout},
		{"body stalls past timeout", slowBody.URL, KindTimeout},
		{"closed port", closed, KindConnRefused},
		{"not json", bodies.URL + "/notjson", KindBadBody},
		{"no backend_id", bodies.URL + "/nobackend", KindBadBody},
		{"status without json", bodies.URL + "/badgateway", StatusKind(502)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := Config{URL: tt.url, Requests: 3, Concurrency: 2, Timeout: 100 * time.Millisecond}
			results, err := collect(t, context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			s := Summarize(results)
			if s.Total != 3 || s.Failed != 3 || s.Errors[tt.want] != 3 {
				t.Fatalf("total/failed/errors = %d/%d/%v, want 3 x %s; first: %+v", s.Total, s.Failed, s.Errors, tt.want, results[0])
			}
			if results[0].Err == "" {
				t.Errorf("failed result has no Err: %+v", results[0])
			}
		})
	}
}

func TestRunRequestsBoundExact(t *testing.T) {
	b, url := newBackend(t)
	cfg := baseConfig(url)
	cfg.Requests, cfg.Concurrency = 37, 8
	results, err := collect(t, context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) != 37 || b.gets.Load() != 37 {
		t.Errorf("results %d, server GETs %d, want 37 each", len(results), b.gets.Load())
	}
}

func TestRunDurationBound(t *testing.T) {
	_, url := newBackend(t)
	cfg := baseConfig(url)
	cfg.Requests, cfg.Duration = 0, 100*time.Millisecond
	start := time.Now()
	results, err := collect(t, context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if elapsed := time.Since(start); elapsed > 3*time.Second {
		t.Errorf("run took %v with a 100ms bound", elapsed)
	}
	if len(results) == 0 {
		t.Error("no requests sent")
	}
}

func TestRunRate(t *testing.T) {
	_, url := newBackend(t)
	cfg := baseConfig(url)
	cfg.Requests, cfg.Duration, cfg.Rate = 0, 500*time.Millisecond, 200
	results, err := collect(t, context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	// Never more than rate × duration (the request due at 500 ms is past
	// the end); fewer only when the machine is too slow to keep the pace.
	if n := len(results); n < 60 || n > 100 {
		t.Errorf("rate 200/s for 500ms sent %d, want 60..100", n)
	}
}

func TestRunWrites(t *testing.T) {
	b, url := newBackend(t)
	cfg := baseConfig(url)
	cfg.WriteRatio = 1
	results, err := collect(t, context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := Summarize(results)
	if s.Writes != 20 || s.WriteIDs != 20 || s.OK != 20 || b.gets.Load() != 0 || b.posts.Load() != 20 {
		t.Errorf("writes/ids/ok = %d/%d/%d, server gets/posts = %d/%d", s.Writes, s.WriteIDs, s.OK, b.gets.Load(), b.posts.Load())
	}
	if b.badPosts.Load() != 0 {
		t.Errorf("%d POST bodies lacked a load- payload", b.badPosts.Load())
	}
	for _, r := range results {
		if r.Method != http.MethodPost || r.Status != 201 || r.ID <= 10000 {
			t.Errorf("write result: %+v", r)
		}
	}
}

func TestIsWriteSpreadsEvenly(t *testing.T) {
	for _, ratio := range []float64{0, 0.1, 0.25, 0.5, 1} {
		writes := 0
		for seq := int64(1); seq <= 100; seq++ {
			if isWrite(ratio, seq) {
				writes++
			}
		}
		if want := int(ratio * 100); writes != want {
			t.Errorf("ratio %v: %d writes in 100, want %d", ratio, writes, want)
		}
	}
}

func TestRunContextCancel(t *testing.T) {
	_, url := newBackend(t)
	cfg := baseConfig(url)
	cfg.Requests, cfg.Duration = 0, time.Minute
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var results []Result
	err := Run(ctx, cfg, nil, func(r Result) {
		results = append(results, r)
		if len(results) == 5 {
			cancel()
		}
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
	// In-flight requests finish and are reported, nothing new is started.
	if len(results) < 5 || len(results) > 5+cfg.Concurrency+1 {
		t.Errorf("got %d results after cancelling at 5", len(results))
	}
	for _, r := range results {
		if r.Status == 0 {
			t.Errorf("stop cancelled a request in flight: %+v", r)
		}
	}
}

func TestValidate(t *testing.T) {
	good := Config{URL: "http://127.0.0.1:8080/data", Requests: 1, Concurrency: 1, Timeout: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(*Config)
		want   string
	}{
		{"empty url", func(c *Config) { c.URL = "" }, "url is empty"},
		{"ftp url", func(c *Config) { c.URL = "ftp://host/x" }, "scheme must be http or https"},
		{"no host", func(c *Config) { c.URL = "http:///data" }, "missing host"},
		{"no bound", func(c *Config) { c.Requests = 0 }, "needs a bound"},
		{"negative requests", func(c *Config) { c.Requests = -1 }, "requests must be >= 0"},
		{"zero concurrency", func(c *Config) { c.Concurrency = 0 }, "concurrency must be in 1..1024"},
		{"huge concurrency", func(c *Config) { c.Concurrency = 2000 }, "concurrency must be in 1..1024"},
		{"negative rate", func(c *Config) { c.Rate = -1 }, "rate must be >= 0"},
		{"write ratio", func(c *Config) { c.WriteRatio = 1.5 }, "write ratio must be in [0,1]"},
		{"timeout", func(c *Config) { c.Timeout = 0 }, "timeout must be > 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := good
			tt.mutate(&cfg)
			err := cfg.Validate()
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Validate() = %v, want %q", err, tt.want)
			}
			if err := Run(context.Background(), cfg, nil, nil); err == nil {
				t.Error("Run accepted an invalid config")
			}
		})
	}
}
