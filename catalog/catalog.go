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
	q := (&consul.QueryOptions{}).WithContext(ctx)
	entries, _, err := c.Health().Service(service, "", true, q)
	if err != nil {
		return nil, fmt.Errorf("consul health of %s: %w", service, err)
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
	return out, nil
}
