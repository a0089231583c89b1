package backend

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

func envMap(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func TestRunServesAndShutsDown(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	pr, pw := io.Pipe()
	env := envMap(map[string]string{
		"READ_DATABASE_URL":  closedPortDSN(t),
		"WRITE_DATABASE_URL": closedPortDSN(t),
		"NOMAD_ALLOC_INDEX":  "3",
	})
	done := make(chan error, 1)
	go func() {
		done <- Run(ctx, []string{"-listen", "127.0.0.1:0", "-request-timeout", "1s"}, env, pw)
		pw.Close()
	}()

	// Read the JSON log until "listening" tells us the port; keep draining after.
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			var line struct {
				Msg, Addr string
				BackendID string `json:"backend_id"`
			}
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "listening" {
				if line.BackendID != "backend-3" {
					t.Errorf("backend_id = %q, want backend-3", line.BackendID)
				}
				addr <- line.Addr
			}
		}
	}()
	var base string
	select {
	case a := <-addr:
		base = "http://" + a
	case err := <-done:
		t.Fatalf("Run returned before listening: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no listening log line within 10s")
	}

	client := &http.Client{Timeout: 5 * time.Second}
	for _, c := range []struct {
		path string
		want int
	}{
		{"/healthz", http.StatusOK},
		{"/readyz", http.StatusServiceUnavailable},
		{"/data?id=1", http.StatusServiceUnavailable},
		{"/metrics", http.StatusOK},
	} {
		resp, err := client.Get(base + c.path)
		if err != nil {
			t.Fatalf("GET %s: %v", c.path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.want {
			t.Errorf("GET %s = %d, want %d", c.path, resp.StatusCode, c.want)
		}
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run after cancel: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
}

func TestRunFailsFast(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()

	good := map[string]string{"READ_DATABASE_URL": "postgres://a@127.0.0.1:1/db", "WRITE_DATABASE_URL": "postgres://a@127.0.0.1:1/db"}
	without := func(k string) map[string]string {
		m := map[string]string{}
		for kk, v := range good {
			if kk != k {
				m[kk] = v
			}
		}
		return m
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		wantErr string
	}{
		{"missing read dsn", []string{"-listen", "127.0.0.1:0"}, without("READ_DATABASE_URL"), "READ_DATABASE_URL is required"},
		{"missing write dsn", []string{"-listen", "127.0.0.1:0"}, without("WRITE_DATABASE_URL"), "WRITE_DATABASE_URL is required"},
		{"bad port", []string{"-listen", "127.0.0.1:99999"}, good, "listen on"},
		{"port taken", []string{"-listen", taken.Addr().String()}, good, "address already in use"},
		{"bad duration env", []string{"-listen", "127.0.0.1:0"}, merge(good, "REQUEST_TIMEOUT", "soon"), `REQUEST_TIMEOUT="soon": not a duration`},
		{"bad boolean env", []string{"-listen", "127.0.0.1:0"}, merge(good, "READ_BATCH_FILL_RECENT", "sometimes"), `READ_BATCH_FILL_RECENT="sometimes": not a boolean`},
		{"bad integer env", []string{"-listen", "127.0.0.1:0"}, merge(good, "READ_POOL_SIZE", "four"), `READ_POOL_SIZE="four": not an integer`},
		{"zero seed rows", []string{"-listen", "127.0.0.1:0", "-seed-rows", "0"}, good, "SEED_ROWS must be >= 1"},
		{"zero read batch", []string{"-listen", "127.0.0.1:0"}, merge(good, "READ_BATCH_MAX", "0"), "READ_BATCH_MAX must be in 1..1000"},
		{"batch wait too long", []string{"-listen", "127.0.0.1:0", "-read-batch-wait", "500ms"}, good, "READ_BATCH_WAIT must be in 0..10ms"},
		{"zero batch wait trigger", []string{"-listen", "127.0.0.1:0"}, merge(good, "READ_BATCH_WAIT_AFTER", "0"), "READ_BATCH_WAIT_AFTER must be in 1..1000"},
		{"concurrency above pool", []string{"-listen", "127.0.0.1:0", "-read-concurrency", "3"}, merge(good, "READ_POOL_SIZE", "2"), "must not exceed -read-pool-size"},
		{"bad log level", []string{"-listen", "127.0.0.1:0"}, merge(good, "LOG_LEVEL", "loud"), "LOG_LEVEL"},
		{"bad dsn", []string{"-listen", "127.0.0.1:0"}, merge(good, "READ_DATABASE_URL", "postgres://a:b@host:notaport/db"), "READ_DATABASE_URL"},
		{"unknown flag", []string{"-nope"}, good, "flag provided but not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			err := Run(ctx, tt.args, envMap(tt.env), io.Discard)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("Run err = %v, want it to mention %q", err, tt.wantErr)
			}
			if ctx.Err() != nil {
				t.Fatal("Run did not fail fast")
			}
		})
	}
}

func merge(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for kk, vv := range m {
		if kk != k {
			out[kk] = vv
		}
	}
	return out
}

func TestParseConfigDefaultsAndPrecedence(t *testing.T) {
	env := map[string]string{
		"READ_DATABASE_URL": "postgres://r@h/db", "WRITE_DATABASE_URL": "postgres://w@h/db",
		"NOMAD_ADDR_http": "10.0.0.5:25123", "NOMAD_ALLOC_INDEX": "1", "SEED_ROWS": "500",
	}
	cfg, err := ParseConfig(nil, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "10.0.0.5:25123" || cfg.ID != "backend-1" || cfg.SeedRows != 500 ||
		cfg.RequestTimeout != 2*time.Second || cfg.ReadAttemptTimeout != 700*time.Millisecond ||
		cfg.ReadPoolSize != 4 || cfg.ReadConcurrency != 1 || cfg.WritePoolSize != 4 || cfg.ReadBatchMax != 32 {
		t.Errorf("defaults: %+v", cfg)
	}

	env["LISTEN_ADDR"] = "127.0.0.1:9000"
	cfg, err = ParseConfig([]string{"-id", "flagged", "-seed-rows", "7"}, envMap(env), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Listen != "127.0.0.1:9000" || cfg.ID != "flagged" || cfg.SeedRows != 7 {
		t.Errorf("precedence: %+v", cfg)
	}
}
