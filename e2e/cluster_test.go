//go:build e2e

package e2e

import (
	"cmp"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"hastack/cluster"
	"hastack/drill"
	"hastack/load"
)

// TestCluster brings the three-node layout up (scripts/up.sh with
// HASTACK_NODES=3), checks that every part spreads over the nodes, kills the
// primary's node and then a follower's node under steady reads and writes,
// and tears the cluster down, leaving no namespace, link, process or mount.
func TestCluster(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Fatal("the cluster's nodes are network namespaces: run as root")
	}
	up(t, 3)
	t.Run("SpreadOverTheNodes", testSpreadOverTheNodes)
	t.Run("NodeDrills", testNodeDrills)
	if os.Getenv("HASTACK_E2E_KEEP") == "1" {
		return
	}
	t.Run("DownLeavesNothing", testDownLeavesNothing)
}

// testSpreadOverTheNodes: one Postgres member, one HAProxy and one Nginx on
// every node, the two backends on two nodes, and the entry answering.
func testSpreadOverTheNodes(t *testing.T) {
	c := clients(t)
	ctx := context.Background()
	wctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := cluster.Poll(wctx, "every service of the cluster", c.ServicesPassing(drill.Healthy(3))); err != nil {
		t.Fatal(err)
	}
	perNode := map[string]map[string]int{} // job -> node -> running allocations
	for _, job := range []string{"postgres", "haproxy", "nginx", "backend", "entry"} {
		allocs, _, err := c.Nomad.Jobs().Allocations(job, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		perNode[job] = map[string]int{}
		for _, a := range allocs {
			if a.ClientStatus == nomad.AllocClientStatusRunning {
				perNode[job][a.NodeName]++
			}
		}
	}
	for job, want := range map[string]int{"postgres": 3, "haproxy": 3, "nginx": 3, "entry": 3, "backend": 2} {
		nodes := perNode[job]
		if len(nodes) != want {
			t.Errorf("%s runs on %d nodes (%v), want %d", job, len(nodes), nodes, want)
		}
		for n, k := range nodes {
			if k != 1 || !strings.HasPrefix(n, drill.NodePrefix) {
				t.Errorf("%s: %d allocations on node %s, want one per cluster node", job, k, n)
			}
		}
	}
	members, err := c.Consul.Agent().Members(false)
	if err != nil {
		t.Fatal(err)
	}
	if len(members) != 3 {
		t.Errorf("consul members: %d, want 3", len(members))
	}
	res, err := runLoad(ctx, load.Config{URL: dataURL, Requests: 200, Concurrency: 4, Rate: 100, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if s := load.Summarize(res); s.Failed != 0 || len(s.PerBackend) != 2 || len(s.PerFollower) != 2 {
		t.Errorf("200 reads through %s: %d failed (%v), backends %v, followers %v; want none failed, both backends and followers", dataURL, s.Failed, s.Errors, s.PerBackend, s.PerFollower)
	}
}

// testNodeDrills kills whole nodes under load with the drill command's own
// machinery and checks the claims: no read fails but while the entry
// address moves, no acknowledged write is lost, writes are back within the
// bound, and the node's members rejoin (the old primary as a follower).
func testNodeDrills(t *testing.T) {
	c := clients(t)
	d := &drill.Driller{Clients: c, Procfs: drill.HostProcfs, Log: testWriter{t},
		Nodes: drill.NodeScript{Path: filepath.Join(root, "scripts", "node.sh")}}
	o := drill.DefaultOptions()
	o.URL, o.Net, o.Nodes = dataURL, os.Getenv("HASTACK_NET"), 3
	o.Rate, o.Baseline, o.FreezeFor = 50, 5*time.Second, 20*time.Second
	o.Recover, o.Settle, o.After = 60*time.Second, 90*time.Second, 3*time.Second

	var run drill.Run
	for _, name := range []string{"node-primary-kill", "node-follower-kill"} {
		t.Run(name, func(t *testing.T) {
			sc, err := drill.Lookup(name)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), o.Ready+o.Bound()+3*time.Minute)
			defer cancel()
			r, err := d.Run(ctx, sc, o)
			if !r.Start.IsZero() {
				run.Results = append(run.Results, r)
			}
			if err != nil {
				t.Fatalf("drill did not complete: %v", err)
			}
			t.Logf("node %s: %d requests, failed %s (%d at the entry), longest time without an acknowledged write %.0f ms, full strength after %s",
				r.Victim.Node, r.Total.Total, drill.FailedText(r), r.EntryErrors, r.WriteGapMS, drill.FormatMS(r.Events.FullStrengthMS))
			if !r.Passed() {
				t.Errorf("missed: %v", r.Misses)
			}
			if len(r.Slow) > 0 {
				t.Errorf("slow: %v", r.Slow)
			}
			if r.Writes.Acked == 0 {
				t.Error("no write acknowledged: the drill shows nothing about writes")
			}
			if r.Events.FullStrengthMS == nil {
				t.Error("the stack did not get back to full strength after the node returned")
			}
		})
	}
	if len(run.Results) == 0 {
		return
	}
	writeRun(t, run, "e2e-cluster-")
}

// testDownLeavesNothing: scripts/down.sh removes the nodes, their links and
// the bridge, and every process and mount of the run directory; twice.
func testDownLeavesNothing(t *testing.T) {
	for range 2 {
		if err := script("down.sh", "--purge"); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), drill.NodePrefix) {
		t.Errorf("namespaces left: %s", out)
	}
	links, err := exec.Command("ip", "-o", "link").Output()
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(links)) {
		if strings.Contains(line, "hastack") {
			t.Errorf("link left: %s", line)
		}
	}
	runDir := cmp.Or(os.Getenv("HASTACK_RUN_DIR"), filepath.Join(root, "run"))
	if procs, _ := exec.Command("pgrep", "-af", runDir+"|"+filepath.Join(root, "bin")).Output(); len(procs) > 0 {
		t.Errorf("processes left:\n%s", procs)
	}
	mounts, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(mounts), runDir+"/") {
		t.Errorf("mounts left under %s", runDir)
	}
	if _, err := os.Stat(runDir); !os.IsNotExist(err) {
		t.Errorf("run directory %s still there (%v)", runDir, err)
	}
}
