package cluster

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strconv"
	"strings"

	consul "github.com/hashicorp/consul/api"
)

// Instance is one passing instance of a Consul service.
type Instance struct {
	Service string
	ID      string
	Addr    string // host:port
	Meta    map[string]string
}

// Passing lists the instances of service whose checks all pass.
func (c *Clients) Passing(ctx context.Context, service string) ([]Instance, error) {
	q := (&consul.QueryOptions{}).WithContext(ctx)
	entries, _, err := c.Consul.Health().Service(service, "", true, q)
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

// ParseWants reads "service=count" arguments.
func ParseWants(args []string) (map[string]int, error) {
	wants := map[string]int{}
	for _, a := range args {
		name, n, ok := strings.Cut(a, "=")
		count, err := strconv.Atoi(n)
		if !ok || name == "" || err != nil || count < 0 {
			return nil, fmt.Errorf("bad service count %q: want name=count, e.g. backend=2", a)
		}
		wants[name] = count
	}
	return wants, nil
}

// ServicesPassing holds when each service has at least the wanted number of
// passing instances.
func (c *Clients) ServicesPassing(wants map[string]int) func(context.Context) error {
	return func(ctx context.Context) error {
		var missing []string
		names := make([]string, 0, len(wants))
		for n := range wants {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, name := range names {
			got, err := c.Passing(ctx, name)
			if err != nil {
				return err
			}
			if len(got) < wants[name] {
				missing = append(missing, fmt.Sprintf("%s %d/%d", name, len(got), wants[name]))
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("passing: %s", strings.Join(missing, ", "))
		}
		return nil
	}
}
