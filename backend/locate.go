package backend

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"sync"
	"time"

	consul "github.com/hashicorp/consul/api"

	"hastack/catalog"
)

// lookupTimeout bounds one question to the Consul agent; past it a new
// connection goes to the last address known instead.
const lookupTimeout = 300 * time.Millisecond

// locator answers where a service's passing instances are now.
type locator interface {
	Passing(ctx context.Context, service string) ([]string, error)
}

// consulLocator asks the local Consul agent's health API.
type consulLocator struct{ client *consul.Client }

func newConsulLocator() (*consulLocator, error) {
	// The agent's address comes from CONSUL_HTTP_ADDR, 127.0.0.1:8500 by
	// default: every Nomad client runs one.
	c, err := consul.NewClient(consul.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return &consulLocator{client: c}, nil
}

func (l *consulLocator) Passing(ctx context.Context, service string) ([]string, error) {
	insts, err := catalog.Passing(ctx, l.client, service)
	if err != nil {
		return nil, err
	}
	addrs := make([]string, len(insts))
	for i, in := range insts {
		addrs[i] = in.Addr
	}
	return addrs, nil
}

// WaitPassing waits (a Consul blocking query, see catalog.WaitPassing) for
// the passing set of service to differ from the one at index, and returns
// the instances' names (their "name" meta, else their ID).
func (l *consulLocator) WaitPassing(ctx context.Context, service string, index uint64) ([]string, uint64, error) {
	insts, next, err := catalog.WaitPassing(ctx, l.client, service, index, watchWait)
	if err != nil {
		return nil, 0, err
	}
	names := make([]string, len(insts))
	for i, in := range insts {
		names[i] = cmp.Or(in.Meta["name"], in.ID)
	}
	return names, next, nil
}

// fallbackAfter bounds the dial to the service when there is a fallback,
// leaving the rest of the connect timeout to the fallback: on loopback or a
// LAN a live listener answers in well under a millisecond.
const fallbackAfter = 300 * time.Millisecond

// serviceDialer opens database connections to wherever Consul says the
// service is at that moment, so a primary or HAProxy that moved (a planned
// stop, a reschedule to another node, a new dynamic port) is found by the
// next connection the pool opens, without restarting the backend. When
// Consul lists no passing instance or does not answer, it dials the last
// address it found, or failing that the DSN's own.
//
// With a fallback service set, a service instance that refuses the
// connection or does not answer within fallbackAfter is gone around: the
// connection goes straight to a passing instance of the fallback. For reads
// that is a follower itself when HAProxy is down (killed, restarting), so
// reads go on while it comes back; such a connection is an *aroundConn,
// which the pool recycles after aroundLifetime (see keepConn), so the reads
// return through HAProxy soon after it is back.
type serviceDialer struct {
	service  string
	fallback string // Consul service to dial straight when service fails; "" for none
	// near is this backend's own host: an instance of service on it is
	// preferred (the HAProxy of the backend's own node), others are used
	// when it has none.
	near   string
	loc    locator
	log    *slog.Logger
	dialer net.Dialer
	// aroundLifetime is how long a connection to the fallback is used,
	// plus up to half again (jitter, so they do not all go at once).
	aroundLifetime time.Duration

	mu   sync.Mutex
	last string
}

// Dial implements pgconn.DialFunc; addr is the DSN's host:port.
func (d *serviceDialer) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	target := d.locate(ctx, addr)
	dctx := ctx
	if d.fallback != "" {
		var cancel context.CancelFunc
		dctx, cancel = context.WithTimeout(ctx, fallbackAfter)
		defer cancel()
	}
	c, err := d.dialer.DialContext(dctx, network, target)
	if err == nil {
		return c, nil
	}
	err = fmt.Errorf("dial %s at %s: %w", d.service, target, err)
	if d.fallback == "" || ctx.Err() != nil {
		return nil, err
	}
	return d.dialFallback(ctx, network, err)
}

// dialFallback connects to a passing instance of the fallback service,
// after the service failed with cause.
func (d *serviceDialer) dialFallback(ctx context.Context, network string, cause error) (net.Conn, error) {
	target, err := d.pickPassing(ctx, d.fallback, "")
	if err != nil {
		return nil, errors.Join(cause, fmt.Errorf("fall back to %s: %w", d.fallback, err))
	}
	c, err := d.dialer.DialContext(ctx, network, target)
	if err != nil {
		return nil, errors.Join(cause, fmt.Errorf("fall back to %s at %s: %w", d.fallback, target, err))
	}
	d.log.Warn("database service unreachable: connected straight to the fallback", "service", d.service, "fallback", d.fallback, "addr", target, "cause", cause.Error())
	life := d.aroundLifetime
	if life > 0 {
		life += rand.N(life/2 + 1)
	}
	return &aroundConn{Conn: c, expires: time.Now().Add(life)}, nil
}

// aroundConn is a connection that went around the dialer's service
// straight to its fallback, to be used until expires.
type aroundConn struct {
	net.Conn
	expires time.Time
}

// expired reports whether c went around its service and has had its time:
// the pool then closes it instead of using it again (keepConn), and the
// next connection tries the service first. A connection through the
// service itself lives the pool's whole lifetime.
func expired(c net.Conn, now time.Time) bool {
	a, ok := c.(*aroundConn)
	return ok && !now.Before(a.expires)
}

// wentAround reports whether c went around its service, straight to the
// fallback.
func wentAround(c net.Conn) bool {
	_, ok := c.(*aroundConn)
	return ok
}

// pickPassing asks Consul, within lookupTimeout, for the passing instances
// of service and returns one (see pickNear).
func (d *serviceDialer) pickPassing(ctx context.Context, service, near string) (string, error) {
	lctx, cancel := context.WithTimeout(ctx, lookupTimeout)
	defer cancel()
	addrs, err := d.loc.Passing(lctx, service)
	if err != nil {
		return "", err
	}
	if len(addrs) == 0 {
		return "", errors.New("no passing instance")
	}
	return pickNear(addrs, near), nil
}

// pickNear picks one of addrs, on host near when one is, else any, at
// random.
func pickNear(addrs []string, near string) string {
	var local []string
	for _, a := range addrs {
		if h, _, err := net.SplitHostPort(a); err == nil && near != "" && h == near {
			local = append(local, a)
		}
	}
	if len(local) > 0 {
		addrs = local
	}
	return addrs[rand.IntN(len(addrs))]
}

// locate returns a passing instance of the service (on the backend's own
// host if there is one), else the last address found, else dsnAddr (the
// DSN's own host:port).
func (d *serviceDialer) locate(ctx context.Context, dsnAddr string) string {
	a, err := d.pickPassing(ctx, d.service, d.near)
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil {
		if a != d.last && d.last != "" {
			d.log.Info("database service moved", "service", d.service, "from", d.last, "to", a)
		}
		d.last = a
		return a
	}
	target := dsnAddr
	if d.last != "" {
		target = d.last
	}
	d.log.Debug("service not located, dialing the last known address", "service", d.service, "addr", target, "err", err)
	return target
}
