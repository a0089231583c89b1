package backend

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// Connection lifetimes. A new connection costs a round of SCRAM
// authentication on both ends and a new Postgres process, and the read that
// finds its lane's connection expired waits for all of it: read connections
// renewed every 10-15 s made the full stack's p99 at 64 connections 1-2 ms
// longer (scripts/bench.sh; docs/performance.md). Reads spread over the
// followers again after one rejoins without waiting for a lifetime (the
// rebalancer, FollowerService), and the primary is a single server, so
// every connection lives minutes; only a read connection that went around a
// dead HAProxy straight to a follower is recycled within 10-15 s
// (aroundConnLifetime), so reads soon go through HAProxy again.
const (
	connLifetime       = 5 * time.Minute
	aroundConnLifetime = 10 * time.Second
	// A read query this late lets the reads queued behind it go around it.
	readStallAfter = 100 * time.Millisecond
)

// Run parses the config, starts the HTTP server and serves until ctx is
// cancelled, then drains in-flight requests within the shutdown timeout.
// It returns early with a clear error when the config is invalid or the
// listen address cannot be bound. The database need not be up.
func Run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	cfg, err := ParseConfig(args, getenv, stdout)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewJSONHandler(stdout, &slog.HandlerOptions{Level: cfg.LogLevel})).With("backend_id", cfg.ID)

	// Listen first: a taken or malformed port fails here, before anything else.
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %q: %w", cfg.Listen, err)
	}
	defer ln.Close()

	if cfg.DebugListen != "" {
		stop, err := serveDebug(cfg.DebugListen, log)
		if err != nil {
			return err
		}
		defer stop()
	}

	// Each read lane is a pool of one connection (see PGStore).
	readOpts := poolOptions{maxConns: 1, lifetime: connLifetime}
	writeOpts := poolOptions{maxConns: int32(cfg.WritePoolSize), lifetime: connLifetime}
	var loc *consulLocator
	if cfg.ReadService != "" || cfg.WriteService != "" || cfg.FollowerService != "" {
		loc, err = newConsulLocator()
		if err != nil {
			return err
		}
		if cfg.ReadService != "" {
			// With HAProxy down, reads connect to a follower directly.
			readOpts.dial = (&serviceDialer{service: cfg.ReadService, fallback: cfg.FollowerService, near: cfg.Host(), loc: loc, log: log, aroundLifetime: aroundConnLifetime}).Dial
		}
		if cfg.WriteService != "" {
			writeOpts.dial = (&serviceDialer{service: cfg.WriteService, loc: loc, log: log}).Dial
		}
	}
	pools := map[string]*pgxpool.Pool{}
	readPools := make([]*pgxpool.Pool, cfg.ReadPoolSize)
	for i := range readPools {
		p, err := newPool(ctx, cfg.ReadDSN, readOpts)
		if err != nil {
			return fmt.Errorf("read pool: %w", err)
		}
		defer p.Close()
		readPools[i] = p
		pools["read-"+strconv.Itoa(i)] = p
	}
	writePool, err := newPool(ctx, cfg.WriteDSN, writeOpts)
	if err != nil {
		return fmt.Errorf("write pool: %w", err)
	}
	defer writePool.Close()
	pools["write"] = writePool

	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		newPoolCollector(pools),
	)
	metrics := NewMetrics(reg)

	store := NewPGStore(readPools, writePool, StoreOptions{
		ReadPolicy:      DefaultReadPolicy(cfg.ReadAttemptTimeout),
		WritePolicy:     DefaultWritePolicy(),
		ReadConcurrency: cfg.ReadConcurrency,
		// Far above a batch's usual round trip (a few ms even under load).
		ReadStallAfter:      readStallAfter,
		MaxReadBatch:        cfg.ReadBatchMax,
		ReadBatchWait:       cfg.ReadBatchWait,
		ReadBatchWaitAfter:  cfg.ReadBatchWaitAfter,
		ReadBatchFillRecent: cfg.ReadBatchFillRecent,
		OnReadRetry:         metrics.readRetries.Inc,
		OnReadBatch:         metrics.observeBatch,
		Logger:              log,
	})
	if cfg.FollowerService != "" {
		// Deferred after the pools' Close, so it runs before them.
		defer startRebalancer(ctx, loc, cfg.FollowerService, store, log)()
	}
	if cfg.WriteService != "" {
		defer startLeaderWatch(ctx, loc, cfg.WriteService, writePool, log)()
	}
	srv := &http.Server{
		Handler: NewServer(ServerOptions{
			ID: cfg.ID, Store: store, SeedRows: cfg.SeedRows, RequestTimeout: cfg.RequestTimeout,
			Registry: reg, Metrics: metrics, Logger: log,
		}),
		ReadHeaderTimeout: 5 * time.Second,
		ReadTimeout:       10 * time.Second,
		WriteTimeout:      cfg.RequestTimeout + 10*time.Second,
		IdleTimeout:       60 * time.Second,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}

	// Informational only: report whether the databases answer, without
	// holding up startup (the pools are lazy and we serve 503 meanwhile).
	var wg sync.WaitGroup
	probeCtx, stopProbes := context.WithTimeout(ctx, time.Second)
	defer stopProbes()
	for name, pool := range pools {
		wg.Go(func() {
			if err := pool.Ping(probeCtx); err != nil {
				log.Warn("database not reachable yet", "pool", name, "err", err)
				return
			}
			log.Info("database reachable", "pool", name)
		})
	}
	defer wg.Wait() // runs before the pools close

	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String(),
		"read_pool_size", cfg.ReadPoolSize, "read_concurrency", cfg.ReadConcurrency, "read_batch_max", cfg.ReadBatchMax,
		"read_batch_wait", cfg.ReadBatchWait.String(), "read_batch_wait_after", cfg.ReadBatchWaitAfter, "read_batch_fill_recent", cfg.ReadBatchFillRecent, "write_pool_size", cfg.WritePoolSize,
		"request_timeout", cfg.RequestTimeout.String(), "read_attempt_timeout", cfg.ReadAttemptTimeout.String())

	select {
	case err := <-serveErr:
		return fmt.Errorf("serve http: %w", err)
	case <-ctx.Done():
	}

	log.Info("shutting down", "timeout", cfg.ShutdownTimeout.String())
	shutdownCtx, cancel := context.WithTimeout(context.Background(), cfg.ShutdownTimeout)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if serr := <-serveErr; !errors.Is(serr, http.ErrServerClosed) {
		err = errors.Join(err, serr)
	}
	if err != nil {
		return fmt.Errorf("shutdown: %w", err)
	}
	log.Info("stopped")
	return nil
}
