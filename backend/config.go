package backend

import (
	"cmp"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"hastack/internal/cli"
)

// Config is the validated configuration of one backend instance.
type Config struct {
	// Listen is the TCP address the HTTP server binds to.
	Listen string
	// ID names this instance in responses and logs (e.g. "backend-0").
	ID string
	// ReadDSN points at HAProxy in front of the streaming-replication followers.
	ReadDSN string
	// WriteDSN points at the primary.
	WriteDSN string
	// ReadService and WriteService, if set, name the Consul services that
	// new read and write connections go to (where they are at that moment),
	// instead of the DSNs' host:port.
	ReadService, WriteService string
	// FollowerService, if set, names the followers' Consul service: when
	// one joins its passing set, reads move to new connections until they
	// are spread over the followers again (see spreadReads).
	FollowerService string
	// SeedRows is N in the random key range 1..N used by GET /data without an id.
	SeedRows int64
	// RequestTimeout bounds a whole /data request, retries included.
	RequestTimeout time.Duration
	// ReadAttemptTimeout bounds one read attempt, so a hung follower costs
	// one attempt and not the whole request.
	ReadAttemptTimeout time.Duration
	// ShutdownTimeout bounds the graceful drain after SIGINT/SIGTERM.
	ShutdownTimeout time.Duration
	// DebugListen, if set, serves net/http/pprof there (keep it on loopback).
	DebugListen string
	// ReadPoolSize and WritePoolSize are the pools' MaxConns.
	ReadPoolSize  int
	WritePoolSize int
	// ReadBatchMax caps how many queued reads go out in one query.
	ReadBatchMax int
	// ReadConcurrency is how many read queries may be in flight at once.
	ReadConcurrency int
	// ReadBatchWait is how long, under load (after a batch of at least
	// ReadBatchWaitAfter reads), the oldest queued read may wait for
	// ReadBatchMax reads to queue before its query goes; zero never waits.
	ReadBatchWait      time.Duration
	ReadBatchWaitAfter int
	// ReadBatchFillRecent ends that wait once as many reads are queued as
	// in the largest recent batch, instead of ReadBatchMax.
	ReadBatchFillRecent bool
	// LogLevel is the minimum level written to stdout.
	LogLevel slog.Level
}

// envReader reads typed defaults from the environment and collects the
// values it could not parse, so all config mistakes are reported at once.
type envReader struct{ cli.Env }

func (e *envReader) str(key, def string) string {
	return cmp.Or(e.Getenv(key), def)
}

func (e *envReader) duration(key string, def time.Duration) time.Duration {
	return cli.EnvOr(&e.Env, key, def, func(v string) (time.Duration, error) {
		d, err := time.ParseDuration(v)
		if err != nil {
			return 0, errors.New("not a duration (want e.g. 2s, 700ms)")
		}
		return d, nil
	})
}

func (e *envReader) int64(key string, def int64) int64 {
	return cli.EnvOr(&e.Env, key, def, func(v string) (int64, error) {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return 0, errors.New("not an integer")
		}
		return n, nil
	})
}

func (e *envReader) boolean(key string, def bool) bool {
	return cli.EnvOr(&e.Env, key, def, func(v string) (bool, error) {
		b, err := strconv.ParseBool(v)
		if err != nil {
			return false, errors.New("not a boolean (want true or false)")
		}
		return b, nil
	})
}

// ParseConfig reads flags from args with environment fallbacks from getenv,
// then validates the result. Flags win over the environment, which wins over
// the built-in defaults. Usage text goes to usage (on -h or a bad flag).
func ParseConfig(args []string, getenv func(string) string, usage io.Writer) (Config, error) {
	env := &envReader{cli.Env{Getenv: getenv}}

	// Under Nomad the job gives us a dynamic port and an alloc index.
	defListen := cmp.Or(getenv("NOMAD_ADDR_http"), "127.0.0.1:8081")
	defID := ""
	if idx := getenv("NOMAD_ALLOC_INDEX"); idx != "" {
		defID = "backend-" + idx
	} else if host, err := os.Hostname(); err == nil {
		defID = "backend-" + host
	}

	fs := flag.NewFlagSet("backend", flag.ContinueOnError)
	fs.SetOutput(usage)
	var cfg Config
	var logLevel string
	fs.StringVar(&cfg.Listen, "listen", env.str("LISTEN_ADDR", defListen), "HTTP listen address (env LISTEN_ADDR, default $NOMAD_ADDR_http or 127.0.0.1:8081)")
	fs.StringVar(&cfg.ID, "id", env.str("BACKEND_ID", defID), "instance id in responses and logs (env BACKEND_ID, default backend-$NOMAD_ALLOC_INDEX or backend-<hostname>)")
	fs.StringVar(&cfg.ReadDSN, "read-dsn", env.str("READ_DATABASE_URL", ""), "Postgres DSN for reads, via HAProxy to the followers (env READ_DATABASE_URL, required)")
	fs.StringVar(&cfg.WriteDSN, "write-dsn", env.str("WRITE_DATABASE_URL", ""), "Postgres DSN for writes, the primary (env WRITE_DATABASE_URL, required)")
	fs.StringVar(&cfg.ReadService, "read-service", env.str("READ_SERVICE", ""), "Consul service new read connections go to, instead of the read DSN's host:port (env READ_SERVICE, e.g. haproxy)")
	fs.StringVar(&cfg.WriteService, "write-service", env.str("WRITE_SERVICE", ""), "Consul service new write connections go to, instead of the write DSN's host:port (env WRITE_SERVICE, e.g. postgres-primary)")
	fs.StringVar(&cfg.FollowerService, "follower-service", env.str("FOLLOWER_SERVICE", ""), "Consul service of the followers: when one joins, reads are spread over them again at once, not as read connections expire; and while -read-service is unreachable, read connections go straight to them (env FOLLOWER_SERVICE, e.g. postgres-follower)")
	fs.Int64Var(&cfg.SeedRows, "seed-rows", env.int64("SEED_ROWS", 10000), "GET /data without id picks a random id in 1..N (env SEED_ROWS)")
	fs.DurationVar(&cfg.RequestTimeout, "request-timeout", env.duration("REQUEST_TIMEOUT", 2*time.Second), "deadline of a whole /data request, retries included (env REQUEST_TIMEOUT)")
	fs.DurationVar(&cfg.ReadAttemptTimeout, "read-attempt-timeout", env.duration("READ_ATTEMPT_TIMEOUT", 700*time.Millisecond), "deadline of one read attempt (env READ_ATTEMPT_TIMEOUT)")
	// Below Nomad's default kill_timeout (5s), so we drain before SIGKILL.
	fs.DurationVar(&cfg.ShutdownTimeout, "shutdown-timeout", env.duration("SHUTDOWN_TIMEOUT", 4*time.Second), "graceful shutdown deadline (env SHUTDOWN_TIMEOUT)")
	// One read query in flight at a time: reads that arrive while it is out
	// queue and go out together in the next one (see readBatcher), so
	// fewer queries in flight mean larger batches and less work per read.
	// One per backend serves the most requests when the stack shares a few
	// cores (scripts/bench.sh). Successive batches take the read
	// connections in turn (see PGStore): HAProxy's leastconn spreads the
	// backends' connections evenly over the followers, so reads spread
	// evenly too, and four per backend make it likely that each backend
	// has a connection to every follower for retries to go to.
	readConc := fs.Int64("read-concurrency", env.int64("READ_CONCURRENCY", 1), "read queries in flight at once; reads beyond go out together in the next (env READ_CONCURRENCY)")
	readPool := fs.Int64("read-pool-size", env.int64("READ_POOL_SIZE", 4), "read connections, taken in turn by successive queries; at least -read-concurrency (env READ_POOL_SIZE)")
	// Reads that arrive while every read connection is busy go out
	// together, in one query, when a connection comes free.
	readBatch := fs.Int64("read-batch-max", env.int64("READ_BATCH_MAX", 32), "max reads sent in one query when reads queue for a connection; 1 sends each alone (env READ_BATCH_MAX)")
	// Under load, a query waits a little for more reads to join it: fewer,
	// larger queries cost every hop less CPU per read (see readBatcher;
	// figures in docs/performance.md, "Reads are batched").
	fs.DurationVar(&cfg.ReadBatchWait, "read-batch-wait", env.duration("READ_BATCH_WAIT", time.Millisecond), "under load, how long a queued read may wait for -read-batch-max reads to join it before its query goes (counted from its arrival, so a wait behind a query counts); 0 never waits (env READ_BATCH_WAIT)")
	fs.BoolVar(&cfg.ReadBatchFillRecent, "read-batch-fill-recent", env.boolean("READ_BATCH_FILL_RECENT", false), "a -read-batch-wait ends once as many reads are queued as in the largest recent batch, not -read-batch-max: far more throughput with few clients per backend, a longer tail under the full stack's load (env READ_BATCH_FILL_RECENT)")
	readWaitAfter := fs.Int64("read-batch-wait-after", env.int64("READ_BATCH_WAIT_AFTER", 4), "a batch of at least this many reads means load: the next query may wait -read-batch-wait (env READ_BATCH_WAIT_AFTER)")
	writePool := fs.Int64("write-pool-size", env.int64("WRITE_POOL_SIZE", 4), "max connections of the write pool (env WRITE_POOL_SIZE)")
	fs.StringVar(&cfg.DebugListen, "debug-listen", env.str("DEBUG_LISTEN_ADDR", ""), "serve pprof profiles on this address, e.g. 127.0.0.1:6060 (env DEBUG_LISTEN_ADDR, default off)")
	fs.StringVar(&logLevel, "log-level", env.str("LOG_LEVEL", "info"), "debug, info, warn or error (env LOG_LEVEL)")

	if err := fs.Parse(args); err != nil {
		return Config{}, err
	}
	if fs.NArg() > 0 {
		return Config{}, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}

	errs := env.Errs
	if cfg.Listen == "" {
		errs = append(errs, errors.New("-listen / LISTEN_ADDR is empty"))
	}
	if cfg.ID == "" {
		errs = append(errs, errors.New("-id / BACKEND_ID is empty and no hostname is available"))
	}
	errs = append(errs, checkDSN("-read-dsn / READ_DATABASE_URL", cfg.ReadDSN))
	errs = append(errs, checkDSN("-write-dsn / WRITE_DATABASE_URL", cfg.WriteDSN))
	if cfg.SeedRows < 1 {
		errs = append(errs, fmt.Errorf("-seed-rows / SEED_ROWS must be >= 1, got %d", cfg.SeedRows))
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"-request-timeout / REQUEST_TIMEOUT", cfg.RequestTimeout},
		{"-read-attempt-timeout / READ_ATTEMPT_TIMEOUT", cfg.ReadAttemptTimeout},
		{"-shutdown-timeout / SHUTDOWN_TIMEOUT", cfg.ShutdownTimeout},
	} {
		if d.v <= 0 {
			errs = append(errs, fmt.Errorf("%s must be > 0, got %s", d.name, d.v))
		}
	}
	for _, p := range []struct {
		name string
		v    int64
		dst  *int
	}{
		{"-read-pool-size / READ_POOL_SIZE", *readPool, &cfg.ReadPoolSize},
		{"-write-pool-size / WRITE_POOL_SIZE", *writePool, &cfg.WritePoolSize},
		{"-read-batch-max / READ_BATCH_MAX", *readBatch, &cfg.ReadBatchMax},
		{"-read-concurrency / READ_CONCURRENCY", *readConc, &cfg.ReadConcurrency},
		{"-read-batch-wait-after / READ_BATCH_WAIT_AFTER", *readWaitAfter, &cfg.ReadBatchWaitAfter},
	} {
		if p.v < 1 || p.v > 1000 {
			errs = append(errs, fmt.Errorf("%s must be in 1..1000, got %d", p.name, p.v))
			continue
		}
		*p.dst = int(p.v)
	}
	// A wait is meant to be far below a read's round trip under load and
	// its attempt deadline; a typo like 500ms would slow every busy read.
	if cfg.ReadBatchWait < 0 || cfg.ReadBatchWait > 10*time.Millisecond {
		errs = append(errs, fmt.Errorf("-read-batch-wait / READ_BATCH_WAIT must be in 0..10ms, got %s", cfg.ReadBatchWait))
	}
	if cfg.ReadConcurrency > cfg.ReadPoolSize && cfg.ReadPoolSize > 0 {
		errs = append(errs, fmt.Errorf("-read-concurrency / READ_CONCURRENCY (%d) must not exceed -read-pool-size / READ_POOL_SIZE (%d)", cfg.ReadConcurrency, cfg.ReadPoolSize))
	}
	if err := cfg.LogLevel.UnmarshalText([]byte(logLevel)); err != nil {
		errs = append(errs, fmt.Errorf("-log-level / LOG_LEVEL: %q is not one of debug, info, warn, error", logLevel))
	}
	if err := errors.Join(errs...); err != nil {
		return Config{}, fmt.Errorf("invalid config: %w", err)
	}
	return cfg, nil
}

// checkDSN reports a missing or unparsable DSN. pgx redacts the password
// in its parse errors, so the message is safe to log.
func checkDSN(name, dsn string) error {
	if dsn == "" {
		return fmt.Errorf("%s is required", name)
	}
	if _, err := pgxpool.ParseConfig(dsn); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// Host is the host part of Listen: the address of this backend's node,
// where it prefers its database services to be (see serviceDialer.near).
func (c Config) Host() string {
	h, _, err := net.SplitHostPort(c.Listen)
	if err != nil {
		return ""
	}
	return h
}
