package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"hastack/internal/cli"
	"hastack/load"
)

// newBackend answers GET /data like the service, alternating backends and
// followers; failEvery > 0 makes every failEvery-th request a 503.
func newBackend(t *testing.T, failEvery int64) string {
	t.Helper()
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		i := n.Add(1)
		w.Header().Set("Content-Type", "application/json")
		if failEvery > 0 && i%failEvery == 0 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = io.WriteString(w, `{"error":"database unavailable"}`)
			return
		}
		if r.Method == http.MethodPost {
			w.WriteHeader(http.StatusCreated)
			fmt.Fprintf(w, `{"id":%d,"backend_id":"backend-%d","created_at":"x"}`, 10000+i, i%2)
			return
		}
		fmt.Fprintf(w, `{"backend_id":"backend-%d","follower":{"name":"follower-%d","addr":"127.0.0.1:2000%d"},"row":{"id":%d,"payload":"p","created_at":"x"},"took_ms":1.2}`,
			i%2, i%2, i%2, i)
	}))
	t.Cleanup(srv.Close)
	return srv.URL + "/data"
}

func noEnv(string) string { return "" }

func TestRunPrintsSummary(t *testing.T) {
	url := newBackend(t, 0)
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-url", url, "-n", "20", "-c", "4", "-write-ratio", "0.25"}, noEnv, &stdout, &stderr)
	if err != nil {
		t.Fatalf("run: %v\nstderr: %s", err, stderr.String())
	}
	out := stdout.String()
	for _, want := range []string{
		"requests: 20 ok: 20 failed: 0",
		"per backend:   backend-0",
		"per follower:  follower-0",
		"errors:        none",
		"latency:       p50 ",
		"writes:        5 sent, 5 ids returned",
		" GET 200 backend-",
		"POST 201 backend-",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if lines := strings.Count(out, " id="); lines != 20 {
		t.Errorf("%d per-request lines, want 20", lines)
	}
}

func TestRunFailuresAndJSON(t *testing.T) {
	url := newBackend(t, 5)
	path := filepath.Join(t.TempDir(), "summary.json")
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-url", url, "-n", "10", "-quiet", "-json", path}, noEnv, &stdout, &stderr)
	var failed failedError
	if !errors.As(err, &failed) || failed.n != 2 {
		t.Fatalf("run = %v, want 2 failed", err)
	}
	if code := cli.ExitCode("load", err, &stderr); code != 1 || !strings.Contains(stderr.String(), "FAIL: 2 requests failed") {
		t.Errorf("exit %d, stderr %q", code, stderr.String())
	}
	if strings.Contains(stdout.String(), " id=") {
		t.Errorf("-quiet printed per-request lines:\n%s", stdout.String())
	}
	if !strings.Contains(stdout.String(), "errors:        http_503 2") {
		t.Errorf("summary:\n%s", stdout.String())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var sum load.Summary
	if err := json.Unmarshal(data, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Total != 10 || sum.Failed != 2 || sum.Errors["http_503"] != 2 {
		t.Errorf("JSON summary: %s", data)
	}
}

func TestRunJSONToStdout(t *testing.T) {
	url := newBackend(t, 0)
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-url", url, "-n", "5", "-json", "-"}, noEnv, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	var sum load.Summary
	if err := json.Unmarshal(stdout.Bytes(), &sum); err != nil {
		t.Fatalf("stdout is not only JSON: %v\n%s", err, stdout.String())
	}
	if sum.OK != 5 || !strings.Contains(stderr.String(), "requests: 5 ok: 5") {
		t.Errorf("sum %+v, stderr:\n%s", sum, stderr.String())
	}
}

func TestRunEnvFallback(t *testing.T) {
	url := newBackend(t, 0)
	env := map[string]string{"LOAD_URL": url, "LOAD_REQUESTS": "3", "LOAD_CONCURRENCY": "1"}
	var stdout, stderr bytes.Buffer
	if err := run(context.Background(), []string{"-quiet"}, func(k string) string { return env[k] }, &stdout, &stderr); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(stdout.String(), "requests: 3 ok: 3") {
		t.Errorf("stdout:\n%s", stdout.String())
	}
}

func TestRunBadFlags(t *testing.T) {
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want string
	}{
		{"unknown flag", []string{"-bogus"}, nil, "flag provided but not defined"},
		{"zero concurrency", []string{"-c", "0"}, nil, "concurrency must be in 1..1024"},
		{"write ratio", []string{"-write-ratio", "2"}, nil, "write ratio must be in [0,1]"},
		{"bad url", []string{"-url", "ftp://x/data"}, nil, "scheme must be http or https"},
		{"no bound", []string{"-n", "0", "-duration", "0"}, nil, "needs a bound"},
		{"stray argument", []string{"extra"}, nil, "unexpected arguments"},
		{"bad env", nil, map[string]string{"LOAD_TIMEOUT": "soon"}, `LOAD_TIMEOUT="soon"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			// The URL points nowhere: a bad flag must stop the run before any request.
			err := run(context.Background(), tt.args, func(k string) string { return tt.env[k] }, &stdout, &stderr)
			var usage cli.UsageError
			if !errors.As(err, &usage) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run = %v, want usage error with %q", err, tt.want)
			}
			if code := cli.ExitCode("load", err, io.Discard); code != 2 {
				t.Errorf("exit code %d, want 2", code)
			}
			if stdout.Len() != 0 {
				t.Errorf("wrote to stdout before validating:\n%s", stdout.String())
			}
		})
	}
}

func TestRunHelp(t *testing.T) {
	var stdout, stderr bytes.Buffer
	err := run(context.Background(), []string{"-h"}, noEnv, &stdout, &stderr)
	if cli.ExitCode("load", err, io.Discard) != 0 || !strings.Contains(stderr.String(), "-write-ratio") {
		t.Errorf("run -h = %v, stderr:\n%s", err, stderr.String())
	}
}
