package drill

import (
	"strings"
	"testing"
	"time"

	"hastack/load"
)

func TestNodeIndex(t *testing.T) {
	for name, want := range map[string]int{"hastack-1": 1, "hastack-3": 3} {
		if n, err := NodeIndex(name); err != nil || n != want {
			t.Errorf("NodeIndex(%q) = %d, %v; want %d", name, n, err, want)
		}
	}
	for _, name := range []string{"hastack", "hastack-0", "hastack-x", "node-1", ""} {
		if _, err := NodeIndex(name); err == nil {
			t.Errorf("NodeIndex(%q): want an error (not a cluster node)", name)
		}
	}
}

// The load goes to loopback, or to the cluster's own private network when
// one is named; never anywhere else.
func TestOptionsAllowed(t *testing.T) {
	o := Options{Net: "10.211.0.0/24"}
	for host, want := range map[string]bool{
		"127.0.0.1": true, "localhost": true, "::1": true,
		"10.211.0.10": true, "10.211.1.10": false, "192.0.2.1": false, "8.8.8.8": false, "example.com": false,
	} {
		if got := o.Allowed(host); got != want {
			t.Errorf("Allowed(%q) with net %s = %v, want %v", host, o.Net, got, want)
		}
	}
	if (Options{}).Allowed("10.211.0.10") {
		t.Error("without a cluster network only loopback is allowed")
	}
	if (Options{Net: "8.8.8.0/24"}).Allowed("8.8.8.8") {
		t.Error("a public network is never allowed, whatever -net says")
	}
}

// Writes are unavailable from the fault until the next acknowledged write
// ends; a write that hangs counts for as long as it hangs.
func TestWriteGap(t *testing.T) {
	fault, end := at(0), at(20000)
	res := []load.Result{
		req(-500, 10, "POST", "backend-0", "", ""),                  // before the fault: ignored
		req(100, 20, "POST", "backend-0", "", ""),                   // acked at 120
		req(300, 2000, "POST", "", "", load.StatusKind(503)),        // failed: no ack
		req(500, 6500, "POST", "backend-1", "", ""),                 // held by the commit, acked at 7000
		req(7100, 10, "POST", "backend-1", "", ""),                  // acked at 7110
		req(7200, 5, "GET", "backend-1", "pg-0", ""),                // a read: not a write
		req(19000, 10, "POST", "backend-0", "", load.KindConnReset), // failed
	}
	if got, want := WriteGap(res, fault, end), 20000*time.Millisecond-7110*time.Millisecond; got != want {
		t.Errorf("WriteGap = %s, want %s (from the last ack to the end)", got, want)
	}
	if got, want := WriteGap(res[:5], fault, time.Time{}), 6880*time.Millisecond; got != want {
		t.Errorf("WriteGap = %s, want %s (120 ms to 7000 ms)", got, want)
	}
}

func TestNodeTargets(t *testing.T) {
	r := &Result{Scenario: Scenario{"node-primary-kill", "primary", FaultNodeKill}}
	r.Targets = TargetsFor(r.Scenario)
	r.Requests = []load.Result{
		req(100, 3000, "GET", "", "", load.KindTimeout),      // the entry moved
		req(200, 1, "GET", "", "", load.KindConnRefused),     // the entry moved
		req(300, 1500, "POST", "", "", load.StatusKind(503)), // a clean 503 while the leader changes
		req(9000, 5, "POST", "backend-0", "", ""),
	}
	r.Total = load.Summarize(r.Requests)
	r.FailedReads, r.FailedWrites = 2, 1
	r.WriteGapMS = 9005
	// A write in flight on a connection to the lost node's Nginx: no
	// answer, counted at the entry like the reads.
	r.Requests = append(r.Requests, req(150, 10000, "POST", "", "", load.KindTimeout))
	r.Total = load.Summarize(r.Requests)
	r.FailedWrites = 2
	if m, s := Evaluate(r); len(m)+len(s) != 0 {
		t.Fatalf("entry errors and clean 503s within the write bound are allowed: misses %v slow %v", m, s)
	}
	r.WriteGapMS = 10500
	if _, s := Evaluate(r); len(s) != 1 || !strings.Contains(s[0], "writes acknowledged again") {
		t.Errorf("a write gap over 10 s is slow: %v", s)
	}
	r.Requests = append(r.Requests, req(400, 5, "GET", "backend-1", "", load.StatusKind(503)))
	r.Total = load.Summarize(r.Requests)
	r.FailedReads = 3
	if m, _ := Evaluate(r); len(m) != 1 || !strings.Contains(m[0], "1 failed reads") {
		t.Errorf("a read answered 503 is a failed read, not the entry's: %v", m)
	}

	f := &Result{Scenario: Scenario{"node-follower-kill", "follower", FaultNodeKill}}
	f.Targets = TargetsFor(f.Scenario)
	f.Requests = []load.Result{req(100, 2000, "POST", "", "", load.StatusKind(503))}
	f.Total = load.Summarize(f.Requests)
	f.WriteGapMS = 4000
	if m, s := Evaluate(f); len(m)+len(s) != 0 {
		t.Errorf("the synchronous standby's node may hold writes, answered 503, within the bound: misses %v slow %v", m, s)
	}
	f.Requests = append(f.Requests, req(200, 2, "GET", "backend-0", "", load.StatusKind(503)))
	f.Total, f.FailedReads = load.Summarize(f.Requests), 1
	if m, _ := Evaluate(f); len(m) != 1 {
		t.Errorf("a read may not fail when a follower's node is lost: %v", m)
	}
}
