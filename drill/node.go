package drill

import (
	"context"
	"fmt"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"hastack/cluster"
)

// NodePrefix names the cluster layout's nodes: hastack-1, hastack-2, ...
// (the network namespaces scripts/node.sh creates, and the agents' names).
const NodePrefix = "hastack-"

// NodeIndex is N of a cluster node's name hastack-N.
func NodeIndex(name string) (int, error) {
	n, err := strconv.Atoi(strings.TrimPrefix(name, NodePrefix))
	if err != nil || !strings.HasPrefix(name, NodePrefix) || n < 1 {
		return 0, fmt.Errorf("node %q is not a cluster node (%sN): node faults need the cluster layout (HASTACK_NODES=3 scripts/up.sh)", name, NodePrefix)
	}
	return n, nil
}

// Nodes applies whole-machine faults to the cluster layout's nodes.
type Nodes interface {
	// Do runs verb (kill, isolate, start, heal) on node n.
	Do(ctx context.Context, verb string, n int) error
}

// NodeScript runs scripts/node.sh, the same command an operator uses.
type NodeScript struct {
	Path string // scripts/node.sh
}

// nodeVerbTimeout bounds one node.sh call: a kill or a link change is
// immediate; a start waits for the node's Consul agent (up to 30 s).
const nodeVerbTimeout = 60 * time.Second

// Do runs "node.sh verb n" and returns its output with the error.
func (s NodeScript) Do(ctx context.Context, verb string, n int) error {
	ctx, cancel := context.WithTimeout(ctx, nodeVerbTimeout)
	defer cancel()
	out, err := exec.CommandContext(ctx, s.Path, verb, strconv.Itoa(n)).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s %d: %w: %s", s.Path, verb, n, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// victimNode fills in the Nomad node the victim's allocation runs on.
func victimNode(ctx context.Context, c *cluster.Clients, v *Victim) error {
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	a, _, err := c.Nomad.Allocations().Info(v.AllocID, q)
	if err != nil {
		return fmt.Errorf("alloc %s: %w", v.AllocID, err)
	}
	v.Node = a.NodeName
	return nil
}

// entryNginx returns the allocation of the Nginx on the node that holds the
// entry address (the URL's host) now.
func (d *Driller) entryNginx(ctx context.Context, o Options) (string, error) {
	u, err := url.Parse(o.URL)
	if err != nil {
		return "", err
	}
	addr := u.Hostname()
	nginx := Roles["nginx"]
	allocs, err := runningAllocs(ctx, d.Clients, nginx.Job, nginx.Group)
	if err != nil {
		return "", err
	}
	for _, a := range allocs {
		out, err := exec.CommandContext(ctx, "ip", "-n", a.NodeName, "-o", "-4", "addr", "show").Output()
		if err != nil {
			continue // not a namespace of this host
		}
		for _, f := range strings.Fields(string(out)) {
			if strings.HasPrefix(f, addr+"/") {
				return a.ID, nil
			}
		}
	}
	return "", fmt.Errorf("no Nginx on the node holding %s", addr)
}
