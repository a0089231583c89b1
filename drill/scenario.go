// Package drill runs failure drills against the live hastack: it sends a
// steady load through Nginx, injects one fault into one instance (a planned
// stop, a crash, a freeze), watches Consul, the rendered load-balancer
// configs and Nomad until the instance is replaced and serves again, and
// turns what every request saw into figures and a timeline.
//
// The measurement code (timelines, percentiles, detection of rotation
// changes from catalog snapshots, target checks) is pure and tested without
// a cluster; the cluster-facing code is in victim.go, fault.go, watch.go and
// writes.go.
package drill

import (
	"cmp"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Fault is what is done to the victim.
type Fault string

const (
	// FaultStop is a planned stop through Nomad (nomad alloc stop): the
	// service deregisters, shutdown_delay runs, then the kill signal.
	FaultStop Fault = "stop"
	// FaultKill sends SIGKILL to every process of the task: a crash.
	FaultKill Fault = "kill"
	// FaultFreeze sends SIGSTOP to every process of the task, holds, then
	// SIGCONT: a hung instance that keeps its sockets open.
	FaultFreeze Fault = "freeze"
	// FaultNodeKill is a power cut of the victim's whole node (node.sh
	// kill: every process SIGKILLed, its link down), held for FreezeFor,
	// then the node is started again (node.sh start).
	FaultNodeKill Fault = "node-kill"
	// FaultNodeIsolate cuts the victim's node off the network with its
	// processes alive (node.sh isolate), a partition, for FreezeFor, then
	// heals it.
	FaultNodeIsolate Fault = "node-isolate"
	// FaultConsulRestart and FaultNomadRestart restart one agent of the
	// victim's node, a server of its cluster (node.sh restart-consul,
	// restart-nomad): a planned restart, an upgrade.
	FaultConsulRestart Fault = "consul-restart"
	FaultNomadRestart  Fault = "nomad-restart"
)

// NodeFault reports whether f hits a whole node (cluster layout only).
func (f Fault) NodeFault() bool {
	switch f {
	case FaultNodeKill, FaultNodeIsolate, FaultConsulRestart, FaultNomadRestart:
		return true
	}
	return false
}

// Role is a kind of instance in the stack and where Nomad and Consul know it.
type Role struct {
	Name    string // follower, backend, primary, haproxy, nginx
	Job     string // Nomad job
	Group   string // Nomad task group
	Task    string // Nomad task
	Service string // Consul service
	// Replicated roles have several instances told apart by a name
	// (pg-0, backend-1) that responses carry and replacements keep.
	Replicated bool
	// Prefix names the instances (Prefix-N, N the allocation index); the
	// role's name when empty.
	Prefix string
	// ByService: the group's allocations play several roles (Patroni
	// members are leader or follower), so an instance of this role is an
	// allocation whose Service passes in Consul right now.
	ByService bool
	// LBJob, LBTask and LBConfig locate the rendered load-balancer config
	// that names the instances (empty for roles no balancer lists).
	LBJob    string
	LBConfig string // path inside the LB allocation's directory
}

// Roles are the instance kinds a drill can hit.
var Roles = map[string]Role{
	"follower": {Name: "follower", Job: "postgres", Group: "db", Task: "patroni", Service: "postgres-follower",
		Replicated: true, Prefix: "pg", ByService: true, LBJob: "haproxy", LBConfig: "haproxy/local/haproxy.cfg"},
	"backend": {Name: "backend", Job: "backend", Group: "backend", Task: "backend", Service: "backend",
		Replicated: true, LBJob: "nginx", LBConfig: "nginx/local/nginx.conf"},
	"primary": {Name: "primary", Job: "postgres", Group: "db", Task: "patroni", Service: "postgres-primary", ByService: true},
	"haproxy": {Name: "haproxy", Job: "haproxy", Group: "haproxy", Task: "haproxy", Service: "haproxy"},
	"nginx":   {Name: "nginx", Job: "nginx", Group: "nginx", Task: "nginx", Service: "nginx"},
}

// InstanceName is how the victim is named in the catalog, the rendered
// configs and responses: pg-N / backend-N for replicated roles (N is the
// allocation index, which a replacement keeps), the service name otherwise.
func (r Role) InstanceName(allocIndex int) string {
	if r.Replicated {
		return fmt.Sprintf("%s-%d", cmp.Or(r.Prefix, r.Name), allocIndex)
	}
	return r.Service
}

// Scenario is one named drill: a fault applied to an instance of a role.
type Scenario struct {
	Name  string `json:"name"`
	Role  string `json:"role"`
	Fault Fault  `json:"fault"`
}

// Scenarios lists every drill, in suite order: the replicated roles first,
// then the single points, whose outages are longest.
var Scenarios = []Scenario{
	{"follower-stop", "follower", FaultStop},
	{"follower-kill", "follower", FaultKill},
	{"follower-freeze", "follower", FaultFreeze},
	{"backend-stop", "backend", FaultStop},
	{"backend-kill", "backend", FaultKill},
	{"backend-freeze", "backend", FaultFreeze},
	{"primary-stop", "primary", FaultStop},
	{"primary-kill", "primary", FaultKill},
	{"haproxy-kill", "haproxy", FaultKill},
	{"nginx-kill", "nginx", FaultKill},
	// The cluster layout's machines.
	{"node-follower-kill", "follower", FaultNodeKill},
	{"node-primary-kill", "primary", FaultNodeKill},
	{"node-primary-isolate", "primary", FaultNodeIsolate},
	{"node-entry-kill", "nginx", FaultNodeKill},
	// On the primary's node: the agents Patroni and the leader depend on.
	{"consul-restart", "primary", FaultConsulRestart},
	{"nomad-restart", "primary", FaultNomadRestart},
}

// ScenarioNames returns the known scenario names in suite order.
func ScenarioNames() []string {
	names := make([]string, len(Scenarios))
	for i, s := range Scenarios {
		names[i] = s.Name
	}
	return names
}

// Lookup finds a scenario by name.
func Lookup(name string) (Scenario, error) {
	for _, s := range Scenarios {
		if s.Name == name {
			return s, nil
		}
	}
	return Scenario{}, fmt.Errorf("unknown scenario %q (known: %s)", name, strings.Join(ScenarioNames(), ", "))
}

// ParseScenarios reads comma-separated names (repeated flags joined), keeps
// the order given and drops duplicates.
func ParseScenarios(lists []string) ([]Scenario, error) {
	var out []Scenario
	var seen []string
	for _, l := range lists {
		for n := range strings.SplitSeq(l, ",") {
			n = strings.TrimSpace(n)
			if n == "" || slices.Contains(seen, n) {
				continue
			}
			s, err := Lookup(n)
			if err != nil {
				return nil, err
			}
			seen = append(seen, n)
			out = append(out, s)
		}
	}
	return out, nil
}

// Targets are what a scenario must achieve (see the targets). Zero
// durations mean "no target".
type Targets struct {
	ZeroFailed      bool          `json:"zero_failed"`       // no failed request at all
	ZeroFailedReads bool          `json:"zero_failed_reads"` // no failed GET
	OutOfRotation   time.Duration `json:"out_of_rotation_ns"`
	BackInRotation  time.Duration `json:"back_in_rotation_ns"` // fault to back in the LB config
	SharedAgain     time.Duration `json:"shared_again_ns"`     // back in rotation to a fair share
	WritesFail503   bool          `json:"writes_fail_503"`     // failed writes are 503s, quick
	// EntryErrorsAllowed: requests that found no Nginx at the entry address
	// (refused or timed out connections while keepalived moves it) are
	// counted apart and do not fail ZeroFailed or ZeroFailedReads.
	EntryErrorsAllowed bool `json:"entry_errors_allowed,omitempty"`
	// WriteGap bounds the longest time, from the fault on, with no write
	// acknowledged: how long writes were unavailable.
	WriteGap time.Duration `json:"write_gap_ns,omitempty"`
}

// None reports whether no target applies beyond the lost-writes check
// every scenario has.
func (t Targets) None() bool { return t == Targets{} }

// TargetsFor gives the targets of a scenario. Every scenario also requires
// zero lost acknowledged writes.
func TargetsFor(s Scenario) Targets {
	if s.Fault.NodeFault() {
		// Every node runs a Postgres member: losing one is losing the
		// leader or a standby, perhaps the synchronous one, whose loss
		// holds commits until Patroni names the other standby (Patroni
		// 3.0.2 has no quorum commit). So on every node fault reads may
		// not fail, writes may fail only with a clean 503 and must be
		// acknowledged again within the bound. A killed node may also hold
		// the entry address: its connections are counted apart.
		t := Targets{EntryErrorsAllowed: true, ZeroFailedReads: true, WritesFail503: true, WriteGap: 10 * time.Second}
		switch s.Fault {
		case FaultNodeIsolate:
			t.WriteGap = 12 * time.Second
		case FaultConsulRestart, FaultNomadRestart:
			// A server restarting costs nothing.
			t = Targets{ZeroFailed: true}
		}
		return t
	}
	switch {
	case s.Role == "follower" || s.Role == "backend":
		t := Targets{ZeroFailed: true}
		switch s.Fault {
		case FaultKill:
			t.OutOfRotation = time.Second
			fallthrough
		case FaultStop:
			t.BackInRotation = 10 * time.Second
			t.SharedAgain = 60 * time.Second
		case FaultFreeze:
			t.OutOfRotation = 3 * time.Second
		}
		return t
	case s.Role == "primary":
		return Targets{ZeroFailedReads: true, WritesFail503: true}
	case s.Role == "haproxy":
		// While HAProxy is down the backends' read connections go straight
		// to the followers (backend.serviceDialer); writes never pass it.
		return Targets{ZeroFailed: true}
	}
	return Targets{} // nginx, the single point: measured, no target yet
}
