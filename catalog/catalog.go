// Package catalog asks Consul where a service's healthy instances are. It
// is small on purpose: the backend uses it to find the databases, and the
// operator tools (package cluster) use it too.
package catalog

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"time"

	consul "github.com/hashicorp/consul/api"
)

// Instance is one passing instance of a Consul service.
type Instance struct {
	Service string
	ID      string
	Addr    string // host:port
	Meta    map[string]string
}

// Passing lists the instances of service whose checks all pass, by address.
func Passing(ctx context.Context, c *consul.Client, service string) ([]Instance, error) {
	insts, _, err := WaitPassing(ctx, c, service, 0, 0)
	return insts, err
}

// WaitPassing is Passing as a Consul blocking query: with index > 0 it
// answers once the passing set differs from the one at index, or after
// about wait. It returns the index to pass to the next call.
func WaitPassing(ctx context.Context, c *consul.Client, service string, index uint64, wait time.Duration) ([]Instance, uint64, error) {
	q := (&consul.QueryOptions{WaitIndex: index, WaitTime: wait}).WithContext(ctx)
	entries, meta, err := c.Health().Service(service, "", true, q)
	if err != nil {
		return nil, 0, fmt.Errorf("consul health of %s: %w", service, err)
	}
	out := make([]Instance, 0, len(entries))
	for _, e := range entries {
		addr := e.Service.Address
		if addr == "" {
			addr = e.Node.Address
		}
		out = append(out, Instance{
			Service: service,
			ID:      e.Service.ID,
			Addr:    net.JoinHostPort(addr, strconv.Itoa(e.Service.Port)),
			Meta:    e.Service.Meta,
		})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr < out[j].Addr })
	return out, meta.LastIndex, nil
}
