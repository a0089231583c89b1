package load

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	ms := func(n int) time.Duration { return time.Duration(n) * time.Millisecond }
	hundred := make([]time.Duration, 100)
	for i := range hundred {
		hundred[i] = ms(i + 1)
	}
	tests := []struct {
		name   string
		sorted []time.Duration
		p      float64
		want   time.Duration
	}{
		{"empty", nil, 50, 0},
		{"one p0", []time.Duration{ms(7)}, 0, ms(7)},
		{"one p50", []time.Duration{ms(7)}, 50, ms(7)},
		{"one p100", []time.Duration{ms(7)}, 100, ms(7)},
		{"p0 is min", hundred, 0, ms(1)},
		{"p50", hundred, 50, ms(50)},
		{"p90", hundred, 90, ms(90)},
		{"p99", hundred, 99, ms(99)},
		{"p100 is max", hundred, 100, ms(100)},
		{"p above 100 clamps", hundred, 150, ms(100)},
		{"negative p clamps", hundred, -5, ms(1)},
		{"nearest rank rounds up", []time.Duration{ms(1), ms(2), ms(3), ms(4)}, 51, ms(3)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Percentile(tt.sorted, tt.p); got != tt.want {
				t.Errorf("Percentile(%v) = %v, want %v", tt.p, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	t0 := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	var results []Result
	// 1..100 ms, in reverse so Summarize must sort its own copy.
	for i := 100; i >= 1; i-- {
		r := Result{
			Start:   t0.Add(time.Duration(i) * time.Millisecond),
			Latency: time.Duration(i) * time.Millisecond,
			Method:  "GET",
			Status:  200,
		}
		switch {
		case i%10 == 0:
			r.Status, r.Kind = 503, StatusKind(503)
		case i == 33:
			r.Status, r.Kind = 0, KindTimeout
		default:
			r.Backend = []string{"backend-0", "backend-1"}[i%2]
			r.Follower = []string{"follower-0", "follower-1", "follower-2"}[i%3]
			r.Direct = i > 95 // 96..99: around HAProxy
		}
		if i%25 == 1 { // 1, 26, 51, 76
			r.Method, r.Status, r.ID, r.Follower = "POST", 201, int64(i), ""
		}
		results = append(results, r)
	}
	s := Summarize(results)

	if s.Total != 100 || s.OK != 89 || s.Failed != 11 {
		t.Errorf("total/ok/failed = %d/%d/%d, want 100/89/11", s.Total, s.OK, s.Failed)
	}
	if s.Errors[StatusKind(503)] != 10 || s.Errors[KindTimeout] != 1 || len(s.Errors) != 2 {
		t.Errorf("errors = %v", s.Errors)
	}
	// Named backends: 89 OK minus none; i=33 timed out (odd), 10 failures on multiples of 10 (even).
	if s.PerBackend["backend-0"] != 40 || s.PerBackend["backend-1"] != 49 {
		t.Errorf("per backend = %v", s.PerBackend)
	}
	followers := 0
	for _, n := range s.PerFollower {
		followers += n
	}
	if followers != 85 || len(s.PerFollower) != 3 {
		t.Errorf("per follower = %v (sum %d), want 3 followers summing to 85", s.PerFollower, followers)
	}
	if s.Direct != 4 {
		t.Errorf("direct = %d, want 4", s.Direct)
	}
	if s.Writes != 4 || s.WriteIDs != 4 {
		t.Errorf("writes/ids = %d/%d, want 4/4", s.Writes, s.WriteIDs)
	}
	if s.P50 != 50*time.Millisecond || s.P90 != 90*time.Millisecond || s.P99 != 99*time.Millisecond || s.Max != 100*time.Millisecond {
		t.Errorf("p50/p90/p99/max = %v/%v/%v/%v", s.P50, s.P90, s.P99, s.Max)
	}
	if s.P99MS != 99 {
		t.Errorf("p99_ms = %v, want 99", s.P99MS)
	}
	// First start t0+1ms, last end t0+100ms+100ms.
	if want := 199 * time.Millisecond; s.Duration != want {
		t.Errorf("duration = %v, want %v", s.Duration, want)
	}
	if s.Throughput < 502 || s.Throughput > 503 {
		t.Errorf("throughput = %v, want ~502.5", s.Throughput)
	}

	var text bytes.Buffer
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"requests: 100 ok: 89 failed: 11",
		"backend-0 40 (44.9%)  backend-1 49 (55.1%)",
		"errors:        http_503 10  timeout 1",
		"p50 50.0ms  p90 90.0ms  p99 99.0ms  max 100.0ms",
		"writes:        4 sent, 4 ids returned",
		"around HAProxy: 4 reads went straight to a follower",
	} {
		if !strings.Contains(text.String(), want) {
			t.Errorf("text lacks %q:\n%s", want, text.String())
		}
	}

	var decoded map[string]any
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &decoded); err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{"total", "per_backend", "per_follower", "errors", "p50_ms", "max_ms", "duration_ms", "throughput_rps", "write_ids", "direct"} {
		if _, ok := decoded[key]; !ok {
			t.Errorf("JSON lacks %q: %s", key, data)
		}
	}
}

func TestSummarizeEmpty(t *testing.T) {
	s := Summarize(nil)
	if s.Total != 0 || s.P99 != 0 || s.Max != 0 || s.Throughput != 0 || s.Duration != 0 {
		t.Errorf("empty summary not zero: %+v", s)
	}
	var text bytes.Buffer
	if err := s.WriteText(&text); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(text.String(), "errors:        none") {
		t.Errorf("text:\n%s", text.String())
	}
	data, err := json.Marshal(s)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"errors":{}`) {
		t.Errorf("empty maps should marshal as {}: %s", data)
	}
}
