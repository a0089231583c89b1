package cluster

import (
	"context"
	"fmt"
	"net"
	"sort"
	"strings"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"
)

// PostgresVolume is the Nomad host volume every client offers for Postgres
// data (scripts/up.sh on one node, scripts/node.sh on the cluster), and
// PostgresVolumeMeta the client meta key with its path: raw_exec tasks see
// no mount, they read ${meta.postgres_volume}.
const (
	PostgresVolume     = "postgres"
	PostgresVolumeMeta = "postgres_volume"
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

// ConsulAgentUp holds when the Consul agent answers its HTTP API, leader or
// not: what Nomad's fingerprint of its agent asks. Its calls end with ctx.
func (c *Clients) ConsulAgentUp(ctx context.Context) error {
	var self map[string]any
	// Agent().Self() takes no options: the same endpoint, with them.
	if _, err := c.Consul.Raw().Query("/v1/agent/self", &self, (&consul.QueryOptions{}).WithContext(ctx)); err != nil {
		return fmt.Errorf("consul agent: %w", err)
	}
	return nil
}

// ConsulServersReady holds when Consul has a leader, and n servers are alive
// members of the LAN pool and voters in Raft. Its calls end with ctx.
func (c *Clients) ConsulServersReady(n int) func(context.Context) error {
	return func(ctx context.Context) error {
		if err := c.ConsulReady(ctx); err != nil {
			return err
		}
		q := (&consul.QueryOptions{}).WithContext(ctx)
		var members []*consul.AgentMember
		// Agent().Members() takes no options: the same endpoint, with them.
		if _, err := c.Consul.Raw().Query("/v1/agent/members", &members, q); err != nil {
			return fmt.Errorf("consul members: %w", err)
		}
		raft, err := c.Consul.Operator().RaftGetConfiguration(q)
		if err != nil {
			return fmt.Errorf("consul raft configuration: %w", err)
		}
		return consulServers(n, members, raft)
	}
}

// serfAlive is a Consul member's Status while it answers gossip.
const serfAlive = 1

// consulServers says whether n Consul servers are alive and Raft voters.
func consulServers(n int, members []*consul.AgentMember, raft *consul.RaftConfiguration) error {
	var alive []string
	for _, m := range members {
		if m.IsConsulServer() && m.Status == serfAlive {
			alive = append(alive, m.Name)
		}
	}
	voters := 0
	for _, s := range raft.Servers {
		if s.Voter {
			voters++
		}
	}
	if len(alive) < n {
		sort.Strings(alive)
		return fmt.Errorf("consul servers alive %d/%d (%s)", len(alive), n, strings.Join(alive, ", "))
	}
	if voters < n {
		return fmt.Errorf("consul raft voters %d/%d", voters, n)
	}
	return nil
}

// NomadReady holds when Nomad has a leader, n servers are alive and Raft
// voters, and n client nodes are ready, each with a healthy raw_exec driver,
// its Consul agent fingerprinted and the Postgres host volume. Its calls end
// with ctx.
func (c *Clients) NomadReady(n int) func(context.Context) error {
	return func(ctx context.Context) error {
		q := (&nomad.QueryOptions{}).WithContext(ctx)
		var leader string
		// Status().Leader() takes no options: the same endpoint, with them.
		if _, err := c.Nomad.Raw().Query("/v1/status/leader", &leader, q); err != nil {
			return fmt.Errorf("nomad status: %w", err)
		}
		if leader == "" {
			return fmt.Errorf("nomad has no leader yet")
		}
		var members nomad.ServerMembers
		if _, err := c.Nomad.Raw().Query("/v1/agent/members", &members, q); err != nil {
			return fmt.Errorf("nomad server members: %w", err)
		}
		raft, err := c.Nomad.Operator().RaftGetConfiguration(q)
		if err != nil {
			return fmt.Errorf("nomad raft configuration: %w", err)
		}
		stubs, _, err := c.Nomad.Nodes().List(q)
		if err != nil {
			return fmt.Errorf("nomad nodes: %w", err)
		}
		nodes := make([]*nomad.Node, 0, len(stubs))
		for _, stub := range stubs {
			if stub.Status != nomad.NodeStatusReady {
				// The list says enough about a node that is not ready.
				nodes = append(nodes, &nomad.Node{Name: stub.Name, Status: stub.Status})
				continue
			}
			node, _, err := c.Nomad.Nodes().Info(stub.ID, q)
			if err != nil {
				return fmt.Errorf("nomad node %s: %w", stub.Name, err)
			}
			nodes = append(nodes, node)
		}
		return nomadCluster(n, members.Members, raft, nodes)
	}
}

// nomadCluster says whether n Nomad servers are alive and Raft voters, and
// n client nodes ready to run hastack's tasks.
func nomadCluster(n int, members []*nomad.AgentMember, raft *nomad.RaftConfiguration, nodes []*nomad.Node) error {
	alive := 0
	for _, m := range members {
		if m.Status == "alive" {
			alive++
		}
	}
	if alive < n {
		return fmt.Errorf("nomad servers alive %d/%d", alive, n)
	}
	voters := 0
	for _, s := range raft.Servers {
		if s.Voter {
			voters++
		}
	}
	if voters < n {
		return fmt.Errorf("nomad raft voters %d/%d", voters, n)
	}
	ready := 0
	var why []string
	for _, node := range nodes {
		if err := nodeReady(node); err != nil {
			why = append(why, err.Error())
			continue
		}
		ready++
	}
	if ready < n {
		sort.Strings(why)
		msg := fmt.Sprintf("nomad clients ready %d/%d", ready, n)
		if len(why) > 0 {
			msg += " (" + strings.Join(why, "; ") + ")"
		}
		return fmt.Errorf("%s", msg)
	}
	return nil
}

// nodeReady says whether a client node can run hastack's tasks.
func nodeReady(node *nomad.Node) error {
	if node.Status != nomad.NodeStatusReady {
		return fmt.Errorf("node %s: %s", node.Name, node.Status)
	}
	if d, ok := node.Drivers["raw_exec"]; !ok || !d.Detected || !d.Healthy {
		return fmt.Errorf("node %s: raw_exec driver not healthy yet", node.Name)
	}
	if node.Attributes["consul.version"] == "" {
		return fmt.Errorf("node %s: consul not fingerprinted yet", node.Name)
	}
	v, ok := node.HostVolumes[PostgresVolume]
	if !ok || node.Meta[PostgresVolumeMeta] != v.Path {
		return fmt.Errorf("node %s: no host volume %q with its path in meta.%s (an agent started without them: restart it with scripts/down.sh and scripts/up.sh)", node.Name, PostgresVolume, PostgresVolumeMeta)
	}
	return nil
}

// NodeCount is how many Nomad client nodes the cluster has registered,
// ready or not: the layout's size (1, or 3 for the cluster layout).
func (c *Clients) NodeCount(ctx context.Context) (int, error) {
	nodes, _, err := c.Nomad.Nodes().List((&nomad.QueryOptions{}).WithContext(ctx))
	if err != nil {
		return 0, fmt.Errorf("nomad nodes: %w", err)
	}
	return len(nodes), nil
}

// AvoidNode points c at the agents of another ready node when c's Nomad
// address is node's, so that a drill that takes node down keeps its view
// of the cluster. Consul is asked on the same host, port 8500. It does
// nothing when c already talks to another node.
func (c *Clients) AvoidNode(ctx context.Context, node string) error {
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	stubs, _, err := c.Nomad.Nodes().List(q)
	if err != nil {
		return fmt.Errorf("nomad nodes: %w", err)
	}
	current := c.Nomad.Address()
	var other string
	for _, n := range stubs {
		info, _, err := c.Nomad.Nodes().Info(n.ID, q)
		if err != nil {
			return fmt.Errorf("nomad node %s: %w", n.Name, err)
		}
		if n.Name == node {
			if !strings.Contains(current, "//"+info.HTTPAddr) {
				return nil
			}
			continue
		}
		if n.Status == "ready" && other == "" {
			other = info.HTTPAddr
		}
	}
	if other == "" {
		return fmt.Errorf("no other ready node than %s to ask", node)
	}
	host, _, err := net.SplitHostPort(other)
	if err != nil {
		return fmt.Errorf("node address %q: %w", other, err)
	}
	ncfg := nomad.DefaultConfig()
	ncfg.Address = "http://" + other
	n, err := nomad.NewClient(ncfg)
	if err != nil {
		return fmt.Errorf("nomad client: %w", err)
	}
	ccfg := consul.DefaultConfig()
	ccfg.Address = net.JoinHostPort(host, "8500")
	cc, err := consul.NewClient(ccfg)
	if err != nil {
		return fmt.Errorf("consul client: %w", err)
	}
	c.Nomad, c.Consul = n, cc
	return nil
}
