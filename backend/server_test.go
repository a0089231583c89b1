package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// fakeStore lets each test decide what the database answers.
type fakeStore struct {
	get    func(ctx context.Context, id int64) (ReadResult, error)
	create func(ctx context.Context, payload, key string) (Item, error)
	ready  error
	// The arguments of the last CreateItem call.
	payload, key string
}

func (f *fakeStore) GetItem(ctx context.Context, id int64) (ReadResult, error) {
	return f.get(ctx, id)
}

func (f *fakeStore) CreateItem(ctx context.Context, payload, key string) (Item, error) {
	f.payload, f.key = payload, key
	return f.create(ctx, payload, key)
}

func (f *fakeStore) Ready(ctx context.Context) error { return f.ready }

var created = time.Date(2024, 5, 6, 7, 8, 9, 123456000, time.UTC)

func okStore() *fakeStore {
	return &fakeStore{
		get: func(_ context.Context, id int64) (ReadResult, error) {
			if id > 10000 {
				return ReadResult{}, fmt.Errorf("read item %d: %w", id, ErrNotFound)
			}
			return ReadResult{
				Item:     Item{ID: id, Payload: "payload", CreatedAt: created},
				Follower: Follower{Name: "follower-1", Addr: "127.0.0.1:23456"},
				Attempts: 1,
			}, nil
		},
		create: func(_ context.Context, payload, _ string) (Item, error) {
			return Item{ID: 10001, Payload: payload, CreatedAt: created}, nil
		},
	}
}

func newTestServer(store Store) *Server {
	reg := prometheus.NewRegistry()
	return NewServer(ServerOptions{
		ID: "backend-0", Store: store, SeedRows: 10, RequestTimeout: time.Second,
		Registry: reg, Metrics: NewMetrics(reg),
	})
}

// do sends a request and decodes a JSON answer, failing on non-JSON.
func do(t *testing.T, h http.Handler, method, target, body string) (int, map[string]any) {
	t.Helper()
	return doWith(t, h, method, target, body, nil)
}

func doWith(t *testing.T, h http.Handler, method, target, body string, header http.Header) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	if ct := rec.Header().Get("Content-Type"); ct != "application/json" {
		t.Fatalf("%s %s: Content-Type = %q, want application/json (body %q)", method, target, ct, rec.Body.String())
	}
	var got map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &got); err != nil {
		t.Fatalf("%s %s: body %q is not JSON: %v", method, target, rec.Body.String(), err)
	}
	return rec.Code, got
}

func TestGetData(t *testing.T) {
	s := newTestServer(okStore())

	code, body := do(t, s, "GET", "/data?id=42", "")
	if code != http.StatusOK {
		t.Fatalf("code = %d, want 200: %v", code, body)
	}
	if body["backend_id"] != "backend-0" {
		t.Errorf("backend_id = %v", body["backend_id"])
	}
	follower, _ := body["follower"].(map[string]any)
	if follower["name"] != "follower-1" || follower["addr"] != "127.0.0.1:23456" {
		t.Errorf("follower = %v", body["follower"])
	}
	row, _ := body["row"].(map[string]any)
	if row["id"] != 42.0 || row["payload"] != "payload" || row["created_at"] != "2024-05-06T07:08:09.123456Z" {
		t.Errorf("row = %v", body["row"])
	}
	if _, ok := body["took_ms"].(float64); !ok {
		t.Errorf("took_ms missing: %v", body)
	}
}

func TestGetDataRandomIDInSeedRange(t *testing.T) {
	var seen []int64
	store := okStore()
	get := store.get
	store.get = func(ctx context.Context, id int64) (ReadResult, error) {
		seen = append(seen, id)
		return get(ctx, id)
	}
	s := newTestServer(store)
	for range 50 {
		if code, body := do(t, s, "GET", "/data", ""); code != http.StatusOK {
			t.Fatalf("code = %d: %v", code, body)
		}
	}
	for _, id := range seen {
		if id < 1 || id > 10 {
			t.Fatalf("random id %d outside 1..10", id)
		}
	}
}

func TestGetDataErrors(t *testing.T) {
	unavailable := &fakeStore{get: func(ctx context.Context, id int64) (ReadResult, error) {
		return ReadResult{}, fmt.Errorf("read item %d after 5 attempt(s): %w: %w", id, ErrUnavailable, errors.New("dial: connection refused"))
	}}
	broken := &fakeStore{get: func(ctx context.Context, id int64) (ReadResult, error) {
		return ReadResult{}, errors.New(`relation "items" does not exist`)
	}}
	tests := []struct {
		name   string
		store  Store
		target string
		want   int
	}{
		{"id not a number", okStore(), "/data?id=abc", http.StatusBadRequest},
		{"id zero", okStore(), "/data?id=0", http.StatusBadRequest},
		{"id negative", okStore(), "/data?id=-1", http.StatusBadRequest},
		{"id empty", okStore(), "/data?id=", http.StatusBadRequest},
		{"id overflows int64", okStore(), "/data?id=9223372036854775808", http.StatusBadRequest},
		{"not found", okStore(), "/data?id=10001", http.StatusNotFound},
		{"database unavailable", unavailable, "/data?id=1", http.StatusServiceUnavailable},
		{"unexpected error", broken, "/data?id=1", http.StatusInternalServerError},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, newTestServer(tt.store), "GET", tt.target, "")
			if code != tt.want {
				t.Errorf("code = %d, want %d: %v", code, tt.want, body)
			}
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("no error message: %v", body)
			}
			if body["backend_id"] != "backend-0" {
				t.Errorf("backend_id = %v", body["backend_id"])
			}
			if tt.want == http.StatusServiceUnavailable && body["error"] != "database unavailable" {
				t.Errorf("error = %v, want database unavailable", body["error"])
			}
			if tt.want == http.StatusInternalServerError && strings.Contains(fmt.Sprint(body["error"]), "relation") {
				t.Errorf("500 leaks the internal error: %v", body["error"])
			}
		})
	}
}

func TestPostData(t *testing.T) {
	store := okStore()
	code, body := do(t, newTestServer(store), "POST", "/data", `{"payload":"hello"}`)
	if code != http.StatusCreated {
		t.Fatalf("code = %d, want 201: %v", code, body)
	}
	if got := store.payload; got != "hello" || store.key != "" || body["id"] != 10001.0 || body["backend_id"] != "backend-0" || body["created_at"] != "2024-05-06T07:08:09.123456Z" {
		t.Errorf("payload %q, body %v", got, body)
	}
}

func TestPostDataErrors(t *testing.T) {
	unavailable := okStore()
	unavailable.create = func(ctx context.Context, payload, _ string) (Item, error) {
		return Item{}, fmt.Errorf("insert item: %w", ErrUnavailable)
	}
	tests := []struct {
		name  string
		store Store
		body  string
		want  int
	}{
		{"not JSON", okStore(), `payload=x`, http.StatusBadRequest},
		{"truncated JSON", okStore(), `{"payload":"x"`, http.StatusBadRequest},
		{"empty body", okStore(), ``, http.StatusBadRequest},
		{"missing payload", okStore(), `{}`, http.StatusBadRequest},
		{"empty payload", okStore(), `{"payload":""}`, http.StatusBadRequest},
		{"payload not a string", okStore(), `{"payload":5}`, http.StatusBadRequest},
		{"unknown field", okStore(), `{"payload":"x","extra":1}`, http.StatusBadRequest},
		{"trailing data", okStore(), `{"payload":"x"} {"payload":"y"}`, http.StatusBadRequest},
		{"payload too long", okStore(), `{"payload":"` + strings.Repeat("a", maxPayloadBytes+1) + `"}`, http.StatusBadRequest},
		{"NUL in payload", okStore(), `{"payload":"a\u0000b"}`, http.StatusBadRequest},
		{"body too large", okStore(), `{"payload":"` + strings.Repeat("a", maxBodyBytes) + `"}`, http.StatusRequestEntityTooLarge},
		{"primary down", unavailable, `{"payload":"x"}`, http.StatusServiceUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, newTestServer(tt.store), "POST", "/data", tt.body)
			if code != tt.want {
				t.Errorf("code = %d, want %d: %v", code, tt.want, body)
			}
			if msg, _ := body["error"].(string); msg == "" {
				t.Errorf("no error message: %v", body)
			}
		})
	}
}

func TestPostDataIdempotencyKey(t *testing.T) {
	store := okStore()
	store.create = func(ctx context.Context, payload, key string) (Item, error) {
		if key == "reused" {
			return Item{}, fmt.Errorf("insert: %w", ErrKeyReused)
		}
		return Item{ID: 10001, Payload: payload, CreatedAt: created, Replayed: true}, nil
	}
	h := newTestServer(store)
	code, body := doWith(t, h, "POST", "/data", `{"payload":"x"}`, http.Header{IdempotencyKeyHeader: {"0af3c1d2e4"}})
	if code != http.StatusCreated || store.key != "0af3c1d2e4" || body["replayed"] != true {
		t.Errorf("valid key: code %d, key %q, body %v; want 201, the key passed on, replayed", code, store.key, body)
	}
	for name, key := range map[string]string{"empty": "", "space": "a b", "too long": strings.Repeat("k", maxKeyBytes+1), "non-ASCII": "clé"} {
		code, body := doWith(t, h, "POST", "/data", `{"payload":"x"}`, http.Header{IdempotencyKeyHeader: {key}})
		if code != http.StatusBadRequest || body["error"] == nil {
			t.Errorf("%s key: code %d body %v, want 400 with an error", name, code, body)
		}
	}
	code, body = doWith(t, h, "POST", "/data", `{"payload":"x"}`, http.Header{IdempotencyKeyHeader: {"reused"}})
	if code != http.StatusConflict || body["error"] == nil {
		t.Errorf("reused key: code %d body %v, want 409 with an error", code, body)
	}
}

func TestPostDataMaxPayloadAccepted(t *testing.T) {
	code, body := do(t, newTestServer(okStore()), "POST", "/data", `{"payload":"`+strings.Repeat("a", maxPayloadBytes)+`"}`)
	if code != http.StatusCreated {
		t.Errorf("code = %d, want 201: %v", code, body)
	}
}

func TestHealthAndReady(t *testing.T) {
	down := okStore()
	down.ready = fmt.Errorf("ping: %w", ErrUnavailable)
	tests := []struct {
		name       string
		store      Store
		target     string
		want       int
		wantStatus string
	}{
		{"healthz with database up", okStore(), "/healthz", http.StatusOK, "ok"},
		{"healthz with database down", down, "/healthz", http.StatusOK, "ok"},
		{"readyz with database up", okStore(), "/readyz", http.StatusOK, "ready"},
		{"readyz with database down", down, "/readyz", http.StatusServiceUnavailable, "unavailable"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, body := do(t, newTestServer(tt.store), "GET", tt.target, "")
			if code != tt.want || body["status"] != tt.wantStatus || body["backend_id"] != "backend-0" {
				t.Errorf("code %d body %v, want %d status %q", code, body, tt.want, tt.wantStatus)
			}
		})
	}
}

func TestUnmatchedRoutesAnswerJSON(t *testing.T) {
	s := newTestServer(okStore())
	if code, body := do(t, s, "GET", "/nope", ""); code != http.StatusNotFound || body["error"] == nil {
		t.Errorf("GET /nope: %d %v, want 404 JSON", code, body)
	}
	req := httptest.NewRequest("DELETE", "/data", nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusMethodNotAllowed || rec.Header().Get("Allow") == "" || rec.Header().Get("Content-Type") != "application/json" {
		t.Errorf("DELETE /data: %d Allow=%q CT=%q body %q, want 405 JSON with Allow",
			rec.Code, rec.Header().Get("Allow"), rec.Header().Get("Content-Type"), rec.Body.String())
	}
}

func TestMetrics(t *testing.T) {
	s := newTestServer(okStore())
	do(t, s, "GET", "/data?id=1", "")
	req := httptest.NewRequest("GET", "/metrics", nil)
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		t.Fatalf("code = %d", rec.Code)
	}
	want := `hastack_backend_http_requests_total{code="200",route="GET /data"} 1`
	if !strings.Contains(rec.Body.String(), want) {
		t.Errorf("metrics lack %q:\n%s", want, rec.Body.String())
	}
}

func TestAClientThatLeftIsNotCountedAsUnavailable(t *testing.T) {
	store := okStore()
	store.get = func(ctx context.Context, _ int64) (ReadResult, error) {
		<-ctx.Done() // the read outlives its client
		return ReadResult{}, fmt.Errorf("read: %w", ctx.Err())
	}
	s := newTestServer(store)
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as net/http does when the client's connection closes
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/data?id=1", nil).WithContext(ctx))
	if rec.Code != statusClientClosedRequest {
		t.Errorf("code = %d, want %d", rec.Code, statusClientClosedRequest)
	}
	rec = httptest.NewRecorder()
	s.ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if body := rec.Body.String(); !strings.Contains(body, `hastack_backend_http_requests_total{code="499",route="GET /data"} 1`) || strings.Contains(body, `code="503"`) {
		t.Errorf("metrics should count the request as 499, not 503:\n%s", body)
	}
}
