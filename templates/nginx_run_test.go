package templates

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"hastack/cluster"
)

// seenRequest is what a fake backend saw of one request.
type seenRequest struct {
	backend, method string
	key             string // the Idempotency-Key header; "" when not sent
	keySent         bool
}

// keyRecorder is a fake backend pool that records each request's key.
type keyRecorder struct {
	mu   sync.Mutex
	seen []seenRequest
}

func (k *keyRecorder) record(backend string, r *http.Request) {
	k.mu.Lock()
	defer k.mu.Unlock()
	_, sent := r.Header["Idempotency-Key"]
	k.seen = append(k.seen, seenRequest{backend, r.Method, r.Header.Get("Idempotency-Key"), sent})
}

func (k *keyRecorder) all() []seenRequest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]seenRequest(nil), k.seen...)
}

// startNginx runs nginx on the config rendered into dir and waits until it
// answers its health location at addr; it stops nginx at the test's end.
func startNginx(t *testing.T, dir, cfg, addr string) {
	t.Helper()
	cmd := exec.Command(lookPath(t, "nginx"), "-e", "stderr", "-p", dir, "-c", cfg, "-g", "daemon off;")
	logf, err := os.Create(filepath.Join(dir, "nginx.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start nginx: %v", err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGQUIT)
		_ = cmd.Wait()
		logf.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err = cluster.Poll(ctx, "nginx on the rendered config", func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/nginx-health", nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return errors.New(resp.Status)
		}
		return nil
	})
	if err != nil {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("%v\n%s", err, log)
	}
}

// Nginx, run on the rendered config, gives every write that comes without
// an idempotency key one of its own, the same on the other backend when it
// retries the write there, and gives reads none (making one costs it CPU on
// every request).
func TestNginxKeysWritesNotReads(t *testing.T) {
	c, consulAddr := startConsul(t)
	rec := &keyRecorder{}
	backend := func(name string, failWrites bool) int {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			rec.record(name, r)
			if failWrites && r.Method == http.MethodPost {
				w.WriteHeader(http.StatusBadGateway) // nginx tries the other backend
				return
			}
			fmt.Fprintln(w, `{"ok":true}`)
		}))
		t.Cleanup(srv.Close)
		return srv.Listener.Addr().(*net.TCPAddr).Port
	}
	register(t, c, instance{"backend", "b0", "backend-0", backend("backend-0", true), true})
	register(t, c, instance{"backend", "b1", "backend-1", backend("backend-1", false), true})

	env := taskEnv(t)
	out := render(t, consulAddr, "nginx.ctmpl", env)
	if n := len(lines(out, "server 127.0.0.1")); n != 2 {
		t.Fatalf("rendered %d upstream servers, want 2:\n%s", n, out)
	}
	addr := env["NOMAD_ADDR_http"]
	startNginx(t, env["NOMAD_TASK_DIR"], filepath.Join(env["NOMAD_TASK_DIR"], "nginx.conf"), addr)

	do := func(method, key string) {
		t.Helper()
		req, err := http.NewRequest(method, "http://"+addr+"/data", strings.NewReader(`{"payload":"x"}`))
		if err != nil {
			t.Fatal(err)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s through nginx: %s, want 200", method, resp.Status)
		}
	}
	// Round robin over two backends: of two writes, one goes to backend-0
	// first, which fails it, and nginx retries it on backend-1.
	do(http.MethodPost, "")
	do(http.MethodPost, "")
	do(http.MethodPost, "client-key-1")
	for range 4 {
		do(http.MethodGet, "")
	}

	hexKey := regexp.MustCompile(`^[0-9a-f]{32}$`)
	var retried, own, keys []string
	for _, s := range rec.all() {
		switch {
		case s.method == http.MethodGet && s.keySent:
			t.Errorf("%s got a GET with Idempotency-Key %q, want none", s.backend, s.key)
		case s.method == http.MethodPost && s.key == "client-key-1":
			own = append(own, s.backend)
		case s.method == http.MethodPost && !hexKey.MatchString(s.key):
			t.Errorf("%s got a POST with Idempotency-Key %q (sent %v), want nginx's request id", s.backend, s.key, s.keySent)
		case s.method == http.MethodPost && s.backend == "backend-0":
			retried = append(retried, s.key)
		case s.method == http.MethodPost:
			keys = append(keys, s.key)
		}
	}
	if len(retried) == 0 {
		t.Fatalf("no write reached backend-0 first (seen %+v): the retry was not exercised", rec.all())
	}
	for _, k := range retried {
		n := 0
		for _, got := range keys {
			if got == k {
				n++
			}
		}
		if n != 1 {
			t.Errorf("write failed on backend-0 with key %s reached backend-1 %d times with it, want once (seen %+v)", k, n, rec.all())
		}
	}
	if len(keys) != 2 || keys[0] == keys[1] {
		t.Errorf("backend-1's writes had keys %q, want two different ones", keys)
	}
	if len(own) == 0 || own[len(own)-1] != "backend-1" {
		t.Errorf("the write with the client's own key reached %q, want it kept to backend-1", own)
	}
}
