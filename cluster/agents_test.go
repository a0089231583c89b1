package cluster

import (
	"strings"
	"testing"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"
)

func consulMember(name, role string, status int) *consul.AgentMember {
	return &consul.AgentMember{Name: name, Status: status, Tags: map[string]string{"role": role}}
}

func consulVoters(n int) *consul.RaftConfiguration {
	raft := &consul.RaftConfiguration{}
	for range n {
		raft.Servers = append(raft.Servers, &consul.RaftServer{Voter: true})
	}
	return raft
}

// Consul is ready with n alive servers that are Raft voters; a failed
// server, a client agent or a missing voter does not count.
func TestConsulServers(t *testing.T) {
	const failed = 4
	three := []*consul.AgentMember{
		consulMember("hastack-1", "consul", serfAlive),
		consulMember("hastack-2", "consul", serfAlive),
		consulMember("hastack-3", "consul", serfAlive),
	}
	for _, tc := range []struct {
		name    string
		n       int
		members []*consul.AgentMember
		raft    *consul.RaftConfiguration
		want    string // "" for ready, else a part of the reason
	}{
		{"one node", 1, three[:1], consulVoters(1), ""},
		{"three nodes", 3, three, consulVoters(3), ""},
		{"one failed", 3, []*consul.AgentMember{three[0], three[1], consulMember("hastack-3", "consul", failed)}, consulVoters(3), "servers alive 2/3 (hastack-1, hastack-2)"},
		{"a client is no server", 3, []*consul.AgentMember{three[0], three[1], consulMember("laptop", "node", serfAlive)}, consulVoters(3), "servers alive 2/3"},
		{"not yet a voter", 3, three, consulVoters(2), "raft voters 2/3"},
		{"none yet", 3, nil, &consul.RaftConfiguration{}, "servers alive 0/3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			checkReason(t, consulServers(tc.n, tc.members, tc.raft), tc.want)
		})
	}
}

func nomadNode(name string, edit func(*nomad.Node)) *nomad.Node {
	n := &nomad.Node{
		Name:        name,
		Status:      nomad.NodeStatusReady,
		Drivers:     map[string]*nomad.DriverInfo{"raw_exec": {Detected: true, Healthy: true}},
		Attributes:  map[string]string{"consul.version": "1.16.3"},
		HostVolumes: map[string]*nomad.HostVolumeInfo{PostgresVolume: {Path: "/run/nodes/1/postgres"}},
		Meta:        map[string]string{PostgresVolumeMeta: "/run/nodes/1/postgres"},
	}
	if edit != nil {
		edit(n)
	}
	return n
}

func nomadServers(alive, voters int) ([]*nomad.AgentMember, *nomad.RaftConfiguration) {
	var members []*nomad.AgentMember
	for range alive {
		members = append(members, &nomad.AgentMember{Status: "alive"})
	}
	members = append(members, &nomad.AgentMember{Status: "failed"})
	raft := &nomad.RaftConfiguration{}
	for range voters {
		raft.Servers = append(raft.Servers, &nomad.RaftServer{Voter: true})
	}
	raft.Servers = append(raft.Servers, &nomad.RaftServer{Voter: false})
	return members, raft
}

// Nomad is ready with n alive servers that are Raft voters and n ready
// clients that can run hastack's tasks; the reason names each client that
// cannot.
func TestNomadCluster(t *testing.T) {
	ready := []*nomad.Node{nomadNode("hastack-1", nil), nomadNode("hastack-2", nil), nomadNode("hastack-3", nil)}
	for _, tc := range []struct {
		name          string
		n             int
		alive, voters int
		nodes         []*nomad.Node
		want          string
	}{
		{"one node", 1, 1, 1, ready[:1], ""},
		{"three nodes", 3, 3, 3, ready, ""},
		{"more than asked", 1, 3, 3, ready, ""},
		{"a server down", 3, 2, 3, ready, "servers alive 2/3"},
		{"not yet a voter", 3, 3, 2, ready, "raft voters 2/3"},
		{"a client down", 3, 3, 3, []*nomad.Node{ready[0], ready[1], nomadNode("hastack-3", func(n *nomad.Node) { n.Status = "down" })}, "clients ready 2/3 (node hastack-3: down)"},
		{"raw_exec unhealthy", 3, 3, 3, []*nomad.Node{ready[0], ready[1], nomadNode("hastack-3", func(n *nomad.Node) { n.Drivers["raw_exec"].Healthy = false })}, "node hastack-3: raw_exec driver not healthy"},
		{"no raw_exec", 1, 1, 1, []*nomad.Node{nomadNode("hastack", func(n *nomad.Node) { n.Drivers = nil })}, "node hastack: raw_exec"},
		{"no consul", 3, 3, 3, []*nomad.Node{ready[0], nomadNode("hastack-2", func(n *nomad.Node) { n.Attributes = nil }), ready[2]}, "node hastack-2: consul not fingerprinted"},
		{"no volume", 1, 1, 1, []*nomad.Node{nomadNode("hastack", func(n *nomad.Node) { n.HostVolumes = nil })}, `node hastack: no host volume "postgres"`},
		{"no volume meta", 1, 1, 1, []*nomad.Node{nomadNode("hastack", func(n *nomad.Node) { n.Meta = nil })}, "meta.postgres_volume"},
		{"meta names another path", 1, 1, 1, []*nomad.Node{nomadNode("hastack", func(n *nomad.Node) { n.Meta[PostgresVolumeMeta] = "/elsewhere" })}, "meta.postgres_volume"},
		{"no clients yet", 3, 3, 3, nil, "clients ready 0/3"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			members, raft := nomadServers(tc.alive, tc.voters)
			checkReason(t, nomadCluster(tc.n, members, raft, tc.nodes), tc.want)
		})
	}
}

// checkReason: err is nil when want is "", else names want.
func checkReason(t *testing.T, err error, want string) {
	t.Helper()
	switch {
	case want == "" && err != nil:
		t.Errorf("not ready: %v; want ready", err)
	case want != "" && err == nil:
		t.Errorf("ready; want not ready: %s", want)
	case want != "" && !strings.Contains(err.Error(), want):
		t.Errorf("reason %q; want it to name %q", err, want)
	}
}
