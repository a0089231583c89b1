package backend

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

const (
	// maxBodyBytes caps a POST /data body.
	maxBodyBytes = 4 << 10
	// maxPayloadBytes caps the payload field.
	maxPayloadBytes = 1024
	// readyTimeout bounds the /readyz ping, well inside Consul's check timeout.
	readyTimeout = time.Second
)

// Server is the HTTP API of one backend instance.
type Server struct {
	id             string
	store          Store
	seedRows       int64
	requestTimeout time.Duration
	metrics        *Metrics
	log            *slog.Logger
	mux            *http.ServeMux
}

// ServerOptions configures a Server.
type ServerOptions struct {
	ID             string
	Store          Store
	SeedRows       int64
	RequestTimeout time.Duration
	// Registry, if set, is served on /metrics and receives the HTTP metrics.
	Registry *prometheus.Registry
	// Metrics records HTTP and retry metrics; nil means none.
	Metrics *Metrics
	Logger  *slog.Logger
}

// NewServer returns the API handler with all routes registered.
func NewServer(o ServerOptions) *Server {
	s := &Server{
		id: o.ID, store: o.Store, seedRows: max(o.SeedRows, 1),
		requestTimeout: o.RequestTimeout, metrics: o.Metrics, log: o.Logger,
		mux: http.NewServeMux(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.requestTimeout <= 0 {
		s.requestTimeout = 2 * time.Second
	}
	s.mux.HandleFunc("GET /data", s.getData)
	s.mux.HandleFunc("POST /data", s.postData)
	s.mux.HandleFunc("GET /healthz", s.healthz)
	s.mux.HandleFunc("GET /readyz", s.readyz)
	if o.Registry != nil {
		s.mux.Handle("GET /metrics", promhttp.HandlerFor(o.Registry, promhttp.HandlerOpts{Registry: o.Registry}))
	}
	return s
}

// ServeHTTP routes the request, records metrics by route pattern, and turns
// the mux's plain-text 404/405 answers into JSON.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	// Route once and call the handler directly (ServeMux.ServeHTTP would
	// match the request again); the handlers use no path wildcards.
	h, route := s.mux.Handler(r)
	sw := &statusWriter{ResponseWriter: w}
	if route == "" {
		route = "unmatched"
		sw.jsonErrors = true
		sw.backendID = s.id
	}
	h.ServeHTTP(sw, r)
	if sw.code == 0 {
		sw.code = http.StatusOK
	}
	if s.metrics != nil {
		s.metrics.requests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
		s.metrics.duration.WithLabelValues(route).Observe(time.Since(start).Seconds())
	}
	// Off by default: its arguments cost an allocation per request.
	if s.log.Enabled(r.Context(), slog.LevelDebug) {
		s.log.Debug("request", "method", r.Method, "path", r.URL.Path, "route", route, "code", sw.code, "took", time.Since(start))
	}
}

// statusWriter remembers the status code; for unmatched routes it replaces
// the mux's text error body with a JSON one (keeping headers such as Allow).
type statusWriter struct {
	http.ResponseWriter
	code       int
	jsonErrors bool
	backendID  string
	replaced   bool
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code != 0 {
		return
	}
	w.code = code
	if w.jsonErrors && code >= 400 {
		w.replaced = true
		h := w.Header()
		h.Del("Content-Length")
		h.Set("Content-Type", "application/json")
		w.ResponseWriter.WriteHeader(code)
		_ = json.NewEncoder(w.ResponseWriter).Encode(errorBody{Error: strings.ToLower(http.StatusText(code)), BackendID: w.backendID})
		return
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if w.replaced {
		return len(b), nil
	}
	return w.ResponseWriter.Write(b)
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

type errorBody struct {
	Error     string   `json:"error"`
	BackendID string   `json:"backend_id"`
	TookMS    *float64 `json:"took_ms,omitempty"`
}

type followerJSON struct {
	Name   string `json:"name"`
	Addr   string `json:"addr"`
	Direct bool   `json:"direct,omitempty"` // around HAProxy, while it was down
}

type rowJSON struct {
	ID        int64     `json:"id"`
	Payload   string    `json:"payload"`
	CreatedAt time.Time `json:"created_at"`
}

type getDataResponse struct {
	BackendID string       `json:"backend_id"`
	Follower  followerJSON `json:"follower"`
	Row       rowJSON      `json:"row"`
	Attempts  int          `json:"attempts"`
	TookMS    float64      `json:"took_ms"`
}

type postDataRequest struct {
	Payload *string `json:"payload"`
}

type postDataResponse struct {
	ID        int64     `json:"id"`
	BackendID string    `json:"backend_id"`
	CreatedAt time.Time `json:"created_at"`
	// Replayed: an earlier request with the same Idempotency-Key created it.
	Replayed bool `json:"replayed,omitempty"`
}

// IdempotencyKeyHeader names the request header that makes a POST safe to
// repeat. Nginx sets it (the client's own, or its request id) so that it can
// retry a POST on the other backend without writing the row twice.
const IdempotencyKeyHeader = "Idempotency-Key"

// maxKeyBytes bounds an idempotency key.
const maxKeyBytes = 128

// validKey accepts 1..128 printable ASCII characters without spaces.
func validKey(k string) bool {
	if len(k) == 0 || len(k) > maxKeyBytes {
		return false
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return false
		}
	}
	return true
}

type statusResponse struct {
	Status    string `json:"status"`
	BackendID string `json:"backend_id"`
	Error     string `json:"error,omitempty"`
}

func (s *Server) getData(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	var id int64
	if q := r.URL.Query(); q.Has("id") {
		raw := q.Get("id")
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil || n < 1 {
			s.writeError(w, http.StatusBadRequest, fmt.Sprintf("id must be a positive integer, got %q", raw), nil)
			return
		}
		id = n
	} else {
		id = rand.Int64N(s.seedRows) + 1
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
	defer cancel()
	res, err := s.store.GetItem(ctx, id)
	took := millis(time.Since(start))
	if err != nil {
		s.storeError(w, r, err, took)
		return
	}
	s.writeJSON(w, http.StatusOK, getDataResponse{
		BackendID: s.id,
		Follower:  followerJSON(res.Follower),
		Row:       rowJSON{ID: res.Item.ID, Payload: res.Item.Payload, CreatedAt: res.Item.CreatedAt},
		Attempts:  res.Attempts,
		TookMS:    took,
	})
}

func (s *Server) postData(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	key := r.Header.Get(IdempotencyKeyHeader)
	if _, sent := r.Header[IdempotencyKeyHeader]; sent && !validKey(key) {
		s.writeError(w, http.StatusBadRequest, fmt.Sprintf("%s must be 1 to %d printable ASCII characters", IdempotencyKeyHeader, maxKeyBytes), nil)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxBodyBytes)
	var req postDataRequest
	if err := decodeOne(r.Body, &req); err != nil {
		if tooBig := (*http.MaxBytesError)(nil); errors.As(err, &tooBig) {
			s.writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("body larger than %d bytes", maxBodyBytes), nil)
			return
		}
		s.writeError(w, http.StatusBadRequest, "invalid JSON body: "+err.Error(), nil)
		return
	}
	switch {
	case req.Payload == nil || *req.Payload == "":
		s.writeError(w, http.StatusBadRequest, "payload is required and must be a non-empty string", nil)
		return
	case len(*req.Payload) > maxPayloadBytes:
		s.writeError(w, http.StatusBadRequest, fmt.Sprintf("payload longer than %d bytes", maxPayloadBytes), nil)
		return
	case strings.ContainsRune(*req.Payload, 0):
		// Postgres text cannot hold NUL; reject it here instead of a 500.
		s.writeError(w, http.StatusBadRequest, "payload must not contain NUL characters", nil)
		return
	}

	ctx, cancel := context.WithTimeout(r.Context(), s.requestTimeout)
	defer cancel()
	item, err := s.store.CreateItem(ctx, *req.Payload, key)
	if err != nil {
		s.storeError(w, r, err, millis(time.Since(start)))
		return
	}
	// A replay answers like the first request did: the write exists once.
	s.writeJSON(w, http.StatusCreated, postDataResponse{ID: item.ID, BackendID: s.id, CreatedAt: item.CreatedAt, Replayed: item.Replayed})
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	s.writeJSON(w, http.StatusOK, statusResponse{Status: "ok", BackendID: s.id})
}

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), readyTimeout)
	defer cancel()
	if err := s.store.Ready(ctx); err != nil {
		s.log.Debug("not ready", "err", err)
		s.writeJSON(w, http.StatusServiceUnavailable, statusResponse{Status: "unavailable", BackendID: s.id, Error: ErrUnavailable.Error()})
		return
	}
	s.writeJSON(w, http.StatusOK, statusResponse{Status: "ready", BackendID: s.id})
}

// decodeOne decodes exactly one JSON object with only known fields from r.
func decodeOne(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		if err != nil {
			return err
		}
		return errors.New("trailing data after the object")
	}
	return nil
}

// statusClientClosedRequest is Nginx's code for a request whose client went
// away before the answer: no HTTP client ever receives it.
const statusClientClosedRequest = 499

// storeError maps a store error to a status: not found 404, a reused
// idempotency key 409, database unreachable 503, a client that went away
// 499, anything else 500 (a bug or a schema problem).
func (s *Server) storeError(w http.ResponseWriter, r *http.Request, err error, took float64) {
	switch {
	case errors.Is(err, ErrNotFound):
		s.writeError(w, http.StatusNotFound, err.Error(), nil)
	case errors.Is(err, ErrKeyReused):
		s.writeError(w, http.StatusConflict, ErrKeyReused.Error(), nil)
	case errors.Is(err, ErrUnavailable):
		// Expected during a failover drill; keep it out of info logs.
		s.log.Debug("database unavailable", "method", r.Method, "path", r.URL.Path, "err", err)
		s.writeError(w, http.StatusServiceUnavailable, ErrUnavailable.Error(), &took)
	case r.Context().Err() != nil:
		// The client went away (Nginx closes the upstream connection when
		// its client does): nobody reads this answer, and the database was
		// not at fault, so the metrics count it as Nginx does, not as a 503.
		s.writeError(w, statusClientClosedRequest, "client closed the request", &took)
	default:
		s.log.Error("unexpected store error", "method", r.Method, "path", r.URL.Path, "err", err)
		s.writeError(w, http.StatusInternalServerError, "internal error", &took)
	}
}

func (s *Server) writeError(w http.ResponseWriter, code int, msg string, took *float64) {
	s.writeJSON(w, code, errorBody{Error: msg, BackendID: s.id, TookMS: took})
}

func (s *Server) writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	if err := json.NewEncoder(w).Encode(v); err != nil {
		s.log.Debug("write response", "err", err)
	}
}

// millis converts d to fractional milliseconds with microsecond precision.
func millis(d time.Duration) float64 {
	return float64(d.Microseconds()) / 1000
}
