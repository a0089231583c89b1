// Package load drives HTTP load against the hastack data service and reports
// what each request saw: status, the backend and follower that answered, and
// latency. Run emits one Result per request, with its start time, so the same
// library serves both the load command and failure drills that line outcomes
// up against the moment something was killed.
package load

import (
	"errors"
	"fmt"
	"net/url"
	"time"
)

// MaxConcurrency bounds Config.Concurrency: beyond it a single client mostly
// measures its own scheduler, not the service.
const MaxConcurrency = 1024

// Config describes one run. Requests and Duration both bound it: the run
// stops at whichever comes first; a zero value means "no bound of this kind",
// but at least one must be set.
type Config struct {
	URL         string        // target, e.g. http://127.0.0.1:8080/data
	Requests    int           // requests to send; 0 = bounded by Duration only
	Duration    time.Duration // wall-clock bound; 0 = bounded by Requests only
	Concurrency int           // worker goroutines, 1..MaxConcurrency
	Rate        float64       // requests per second across all workers; 0 = as fast as possible
	WriteRatio  float64       // share of POSTs, 0..1
	Timeout     time.Duration // per request, including reading the body
}

// Validate reports the first problem with cfg in words a flag user understands.
func (cfg Config) Validate() error {
	u, err := url.Parse(cfg.URL)
	switch {
	case cfg.URL == "":
		return errors.New("url is empty")
	case err != nil:
		return fmt.Errorf("url %q: %w", cfg.URL, err)
	case u.Scheme != "http" && u.Scheme != "https":
		return fmt.Errorf("url %q: scheme must be http or https", cfg.URL)
	case u.Host == "":
		return fmt.Errorf("url %q: missing host", cfg.URL)
	}
	switch {
	case cfg.Requests < 0:
		return fmt.Errorf("requests must be >= 0, got %d", cfg.Requests)
	case cfg.Duration < 0:
		return fmt.Errorf("duration must be >= 0, got %s", cfg.Duration)
	case cfg.Requests == 0 && cfg.Duration == 0:
		return errors.New("set requests > 0 or duration > 0 (or both): the run needs a bound")
	case cfg.Concurrency < 1 || cfg.Concurrency > MaxConcurrency:
		return fmt.Errorf("concurrency must be in 1..%d, got %d", MaxConcurrency, cfg.Concurrency)
	case cfg.Rate < 0 || cfg.Rate != cfg.Rate: // NaN fails too
		return fmt.Errorf("rate must be >= 0 requests/s, got %v", cfg.Rate)
	case !(cfg.WriteRatio >= 0 && cfg.WriteRatio <= 1):
		return fmt.Errorf("write ratio must be in [0,1], got %v", cfg.WriteRatio)
	case cfg.Timeout <= 0:
		return fmt.Errorf("timeout must be > 0, got %s", cfg.Timeout)
	}
	return nil
}
