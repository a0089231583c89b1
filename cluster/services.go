package cluster

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"hastack/catalog"
)

// Instance is one passing instance of a Consul service.
type Instance = catalog.Instance

// Passing lists the instances of service whose checks all pass.
func (c *Clients) Passing(ctx context.Context, service string) ([]Instance, error) {
	return catalog.Passing(ctx, c.Consul, service)
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
