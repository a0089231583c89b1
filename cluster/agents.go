package cluster

import (
	"context"
	"fmt"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"
)

// ConsulReady holds when the Consul server has elected a leader. Its calls
// end with ctx, so a stalled agent cannot hold a wait past its deadline.
func (c *Clients) ConsulReady(ctx context.Context) error {
	leader, err := c.Consul.Status().LeaderWithQueryOptions((&consul.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return fmt.Errorf("consul status: %w", err)
	}
	if leader == "" {
		return fmt.Errorf("consul has no leader yet")
	}
	return nil
}

// NomadReady holds when the Nomad server has a leader and at least one client
// node is ready with a healthy raw_exec driver and Consul fingerprinted.
// Its calls end with ctx.
func (c *Clients) NomadReady(ctx context.Context) error {
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	var leader string
	// Status().Leader() takes no options: the same endpoint, with them.
	if _, err := c.Nomad.Raw().Query("/v1/status/leader", &leader, q); err != nil {
		return fmt.Errorf("nomad status: %w", err)
	}
	if leader == "" {
		return fmt.Errorf("nomad has no leader yet")
	}
	nodes, _, err := c.Nomad.Nodes().List(q)
	if err != nil {
		return fmt.Errorf("nomad nodes: %w", err)
	}
	for _, stub := range nodes {
		if stub.Status != "ready" {
			continue
		}
		node, _, err := c.Nomad.Nodes().Info(stub.ID, q)
		if err != nil {
			return fmt.Errorf("nomad node %s: %w", stub.Name, err)
		}
		d, ok := node.Drivers["raw_exec"]
		if !ok || !d.Detected || !d.Healthy {
			return fmt.Errorf("node %s: raw_exec driver not healthy yet", node.Name)
		}
		if node.Attributes["consul.version"] == "" {
			return fmt.Errorf("node %s: consul not fingerprinted yet", node.Name)
		}
		return nil
	}
	return fmt.Errorf("no ready nomad client node yet (%d known)", len(nodes))
}
