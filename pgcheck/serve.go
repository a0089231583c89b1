package pgcheck

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"hastack/internal/cli"
)

// Handler serves GET /health: 200 when the check passes, 503 when it fails,
// each with a JSON body saying why. Consul's HTTP check reads the status.
type Handler struct {
	Checker *Checker
	// Timeout bounds one check; keep it under Consul's check timeout so a
	// hung server is reported as such, not as a timed-out check.
	Timeout time.Duration
	Log     *slog.Logger

	mu      sync.Mutex
	failing *bool // nil until the first check
}

type healthBody struct {
	Result
	OK     bool    `json:"ok"`
	Error  string  `json:"error,omitempty"`
	TookMS float64 `json:"took_ms"`
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path != "/health":
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "not found: the check is GET /health"})
		return
	case r.Method != http.MethodGet && r.Method != http.MethodHead:
		w.Header().Set("Allow", "GET, HEAD")
		writeJSON(w, http.StatusMethodNotAllowed, map[string]string{"error": "method not allowed: the check is GET /health"})
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.Timeout)
	defer cancel()
	start := time.Now()
	res, err := h.Checker.Check(ctx)
	body := healthBody{Result: res, OK: err == nil, TookMS: float64(time.Since(start).Microseconds()) / 1000}
	code := http.StatusOK
	if err != nil {
		body.Error, code = err.Error(), http.StatusServiceUnavailable
	}
	h.logChange(err)
	writeJSON(w, code, body)
}

// logChange logs when the check starts or stops failing, not every check.
func (h *Handler) logChange(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	failing := err != nil
	if h.failing != nil && *h.failing == failing {
		return
	}
	h.failing = &failing
	if failing {
		h.Log.Warn("check failing", "err", err)
	} else {
		h.Log.Info("check passing")
	}
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

// Config is the command's configuration.
type Config struct {
	Listen     string
	Role       Role
	ConnString string
	Timeout    time.Duration
}

// ParseConfig reads flags, with defaults from the environment; under Nomad
// the job's "check" port gives the listen address.
func ParseConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	fs := flag.NewFlagSet("pgcheck", flag.ContinueOnError)
	fs.SetOutput(usage)
	var cfg Config
	var role string
	fs.StringVar(&cfg.Listen, "listen", cmp.Or(getenv("LISTEN_ADDR"), getenv("NOMAD_ADDR_check"), "127.0.0.1:8090"), "HTTP listen address (env LISTEN_ADDR, default $NOMAD_ADDR_check or 127.0.0.1:8090)")
	fs.StringVar(&role, "role", getenv("ROLE"), "primary or follower: what pg_is_in_recovery() must say (env ROLE, required)")
	fs.StringVar(&cfg.ConnString, "dsn", getenv("CHECK_DATABASE_URL"), "connection string of the instance; empty reads PGHOST, PGPORT, PGUSER, PGPASSWORD, PGDATABASE (env CHECK_DATABASE_URL)")
	d, err := cli.EnvValue(getenv, "CHECK_TIMEOUT", 800*time.Millisecond, time.ParseDuration)
	if err != nil {
		return cfg, cli.Usage(err)
	}
	fs.DurationVar(&cfg.Timeout, "timeout", d, "deadline of one check, under Consul's check timeout (env CHECK_TIMEOUT)")
	if err := cli.Parse(fs, args); err != nil {
		return cfg, err
	}
	if cfg.Role, err = ParseRole(role); err != nil {
		return cfg, cli.Usage(fmt.Errorf("-role / ROLE: %w", err))
	}
	if cfg.Timeout <= 0 {
		return cfg, cli.Usage(errors.New("-timeout must be positive"))
	}
	return cfg, nil
}

// Run serves the check until ctx is cancelled.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, nil)).With("role", string(cfg.Role))
	dial, err := PGXDialer(cfg.ConnString)
	if err != nil {
		return cli.Usage(err)
	}
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %q: %w", cfg.Listen, err)
	}
	checker := NewChecker(cfg.Role, dial)
	srv := &http.Server{
		Handler:           &Handler{Checker: checker, Timeout: cfg.Timeout, Log: log},
		ReadHeaderTimeout: 2 * time.Second,
		WriteTimeout:      cfg.Timeout + 2*time.Second,
		IdleTimeout:       time.Minute,
	}
	log.Info("serving", "addr", ln.Addr().String(), "timeout", cfg.Timeout.String())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	shutCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.Timeout+time.Second)
	defer cancel()
	if err := srv.Shutdown(shutCtx); err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	if err := checker.Close(shutCtx); err != nil {
		log.Warn("close connection", "err", err)
	}
	log.Info("stopped")
	return nil
}
