package drill

import (
	"os"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"hastack/load"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func at(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }

func snap(ms int, members ...string) Snapshot { return Snapshot{At: at(ms), Members: members} }

func TestFirstAbsentAndPresent(t *testing.T) {
	states := []Snapshot{
		snap(-200, "follower-0", "follower-1"),
		snap(0, "follower-0", "follower-1"),
		snap(100, "follower-0", "follower-1"),
		{At: at(200), Err: "connection refused"}, // says nothing
		snap(300, "follower-1"),
		snap(400, "follower-1"),
		snap(2400, "follower-0", "follower-1"),
	}
	left, ok := FirstAbsent(states, "follower-0", at(0))
	if !ok || !left.Equal(at(300)) {
		t.Fatalf("FirstAbsent = %v %v, want %v", left, ok, at(300))
	}
	back, ok := FirstPresent(states, "follower-0", left)
	if !ok || !back.Equal(at(2400)) {
		t.Fatalf("FirstPresent = %v %v, want %v", back, ok, at(2400))
	}
	if _, ok := FirstAbsent(states, "follower-1", at(0)); ok {
		t.Fatal("follower-1 never left, but FirstAbsent found an absence")
	}
	// An absence before since does not count.
	early := append([]Snapshot{snap(-500, "follower-1")}, states...)
	if left, _ := FirstAbsent(early, "follower-0", at(0)); !left.Equal(at(300)) {
		t.Fatalf("FirstAbsent counted an absence before since: %v", left)
	}
	o, ok := FindOutage(states, "follower-0", at(0))
	if !ok || !o.Left.Equal(at(300)) || !o.Back.Equal(at(2400)) {
		t.Fatalf("FindOutage = %+v %v", o, ok)
	}
	o, ok = FindOutage(states[:6], "follower-0", at(0))
	if !ok || !o.Back.IsZero() {
		t.Fatalf("FindOutage without return = %+v %v, want Back zero", o, ok)
	}
	// An empty set (all gone) is an absence; a failed poll is not.
	if left, ok := FirstAbsent([]Snapshot{{At: at(1), Err: "x"}, snap(2)}, "a", at(0)); !ok || !left.Equal(at(2)) {
		t.Fatalf("empty set: %v %v", left, ok)
	}
}

func TestHAProxyServers(t *testing.T) {
	cfg := `backend followers
    balance leastconn
    option pgsql-check user haproxy_check
    server follower-0_127.0.0.1:24586 127.0.0.1:24586 check
    server follower-1_127.0.0.1:29911 127.0.0.1:29911 check

frontend stats
    mode http
`
	if got, want := HAProxyServers(cfg), []string{"follower-0", "follower-1"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("HAProxyServers = %v, want %v", got, want)
	}
	if got := HAProxyServers("backend followers\n    # No passing follower\n"); len(got) != 0 {
		t.Fatalf("empty pool: %v", got)
	}
}

func TestNginxServers(t *testing.T) {
	cfg := `http {
    upstream backend {
        # backend-0
        server 127.0.0.1:29533 max_fails=1 fail_timeout=5s;
        # backend-1
        server 127.0.0.1:20111 max_fails=1 fail_timeout=5s;
        server 127.0.0.1:20999;
        keepalive 64;
    }
    server {
        listen 127.0.0.1:8080 reuseport;
    }
}`
	want := []string{"backend-0", "backend-1", "127.0.0.1:20999"}
	if got := NginxServers(cfg); !reflect.DeepEqual(got, want) {
		t.Fatalf("NginxServers = %v, want %v", got, want)
	}
	if got := NginxServers("http {\n server {\n return 503;\n }\n}"); len(got) != 0 {
		t.Fatalf("no upstream: %v", got)
	}
}

func TestFirstRestarted(t *testing.T) {
	v := Victim{AllocID: "a1", AllocName: "postgres.follower[0]"}
	running := func(ms int, id string, started int) NomadSnapshot {
		return NomadSnapshot{At: at(ms), Allocs: []AllocState{{ID: id, Name: "postgres.follower[0]", ClientStatus: "running", TaskState: "running", StartedAt: at(started)}}}
	}
	// Killed at 0: the same alloc is restarted at 1400, seen by the poll at
	// 1500: the task's start time counts, not the poll's.
	states := []NomadSnapshot{running(-100, "a1", -60000), running(200, "a1", -60000), running(1500, "a1", 1400)}
	if got, ok := FirstRestarted(states, v, at(0)); !ok || !got.Equal(at(1400)) {
		t.Fatalf("restart in place: %v %v, want 1400 ms", got, ok)
	}
	// Stopped: a replacement alloc with the same name.
	states = []NomadSnapshot{running(200, "a1", -60000), running(3000, "a2", 2900)}
	if got, ok := FirstRestarted(states, v, at(0)); !ok || !got.Equal(at(2900)) {
		t.Fatalf("replacement: %v %v, want 2900 ms", got, ok)
	}
	// A replacement whose StartedAt is not after the fault (clock skew
	// between machines): the poll's time.
	states = []NomadSnapshot{running(3000, "a2", -5)}
	if got, ok := FirstRestarted(states, v, at(0)); !ok || !got.Equal(at(3000)) {
		t.Fatalf("replacement with an earlier start time: %v %v, want 3000 ms", got, ok)
	}
	if _, ok := FirstRestarted(states[:0], v, at(0)); ok {
		t.Fatal("no restart, but one found")
	}
	if _, ok := FirstRestarted([]NomadSnapshot{running(200, "a1", -60000)}, v, at(0)); ok {
		t.Fatal("no restart, but one found")
	}
}

func req(ms int, latMS int, method, backend, follower string, kind load.ErrorKind) load.Result {
	return load.Result{Start: at(ms), Latency: time.Duration(latMS) * time.Millisecond, Method: method,
		Backend: backend, Follower: follower, Kind: kind}
}

func TestBuildTimeline(t *testing.T) {
	res := []load.Result{
		req(-1500, 2, "GET", "backend-0", "follower-0", ""),
		req(-10, 3, "GET", "backend-1", "follower-1", ""),
		req(0, 4, "GET", "backend-1", "follower-1", ""),
		req(999, 900, "GET", "", "", load.KindTimeout),
		// nothing in [1s, 2s): an empty bucket must still be there
		req(2500, 5, "POST", "backend-0", "", ""),
	}
	tl := BuildTimeline(res, t0, time.Second)
	if len(tl.Buckets) != 5 {
		t.Fatalf("%d buckets, want 5 (-2s..+2s)", len(tl.Buckets))
	}
	wantOffsets := []float64{-2, -1, 0, 1, 2}
	for i, b := range tl.Buckets {
		if b.Offset != wantOffsets[i] {
			t.Errorf("bucket %d offset %v, want %v", i, b.Offset, wantOffsets[i])
		}
	}
	b := tl.Buckets
	if b[0].Requests != 1 || b[0].PerBackend["backend-0"] != 1 || b[0].PerFollower["follower-0"] != 1 {
		t.Errorf("bucket -2s: %+v", b[0])
	}
	if b[1].Requests != 1 || b[1].PerBackend["backend-1"] != 1 {
		t.Errorf("bucket -1s (a request 10ms before the fault): %+v", b[1])
	}
	if b[2].Requests != 2 || b[2].Errors != 1 || b[2].PerBackend["backend-1"] != 1 || b[2].P99MS != 900 {
		t.Errorf("bucket 0s: %+v", b[2])
	}
	if b[3].Requests != 0 || b[3].P99MS != 0 {
		t.Errorf("bucket 1s should be empty: %+v", b[3])
	}
	if b[4].PerBackend["backend-0"] != 1 || len(b[4].PerFollower) != 0 {
		t.Errorf("bucket 2s: %+v", b[4])
	}
	if !reflect.DeepEqual(tl.Backends, []string{"backend-0", "backend-1"}) || !reflect.DeepEqual(tl.Followers, []string{"follower-0", "follower-1"}) {
		t.Errorf("instances: %v %v", tl.Backends, tl.Followers)
	}
	if got := BuildTimeline(nil, t0, time.Second); len(got.Buckets) != 0 {
		t.Errorf("empty input: %+v", got)
	}
}

func TestPhaseOfPercentilesAndShares(t *testing.T) {
	var res []load.Result
	// 100 requests at 1..100 ms latency, alternating backends; one failure.
	for i := 1; i <= 100; i++ {
		be := "backend-" + strconv.Itoa(i%2)
		kind := load.ErrorKind("")
		if i == 100 {
			be, kind = "", load.StatusKind(502)
		}
		res = append(res, req(i*10, i, "GET", be, "follower-0", kind))
	}
	p := PhaseOf(res, at(0), at(2000))
	if p.Requests != 100 || p.Failed != 1 || p.Errors["http_502"] != 1 {
		t.Fatalf("counts: %+v", p)
	}
	if p.P50MS != 50 || p.P99MS != 99 || p.MaxMS != 100 {
		t.Fatalf("latency p50 %v p99 %v max %v, want 50 99 100", p.P50MS, p.P99MS, p.MaxMS)
	}
	if b0, b1 := p.BackendShare["backend-0"], p.BackendShare["backend-1"]; b0+b1 < 0.999 || b0 < 0.49 || b1 < 0.49 {
		t.Fatalf("shares %v", p.BackendShare)
	}
	// Windows are half-open: [from, to).
	if n := len(Window(res, at(10), at(30))); n != 2 {
		t.Fatalf("window [10ms,30ms) has %d results, want 2", n)
	}
}

func TestLatencyPair(t *testing.T) {
	for _, c := range []struct {
		p    Phase
		want string
	}{
		{Phase{}, "—"},
		// The nginx-kill drill's window of refused connections: a p99
		// under 1 ms must not print as 0 beside its p50.
		{Phase{Requests: 40, P50MS: 0.21, P99MS: 0.44}, "0.2 / 0.4"},
		{Phase{Requests: 900, P50MS: 0.96, P99MS: 3002.4}, "1.0 / 3002"},
		{Phase{Requests: 900, P50MS: 3.63, P99MS: 27.8}, "3.6 / 28"},
	} {
		if got := LatencyPair(c.p); got != c.want {
			t.Errorf("LatencyPair(%+v) = %q, want %q", c.p, got, c.want)
		}
	}
}

func TestServedAndSharedAgain(t *testing.T) {
	var res []load.Result
	// follower-0 is out from 0 to 3s, then gets a few, then half from 6s.
	for ms := -2000; ms < 12000; ms += 100 {
		f := "follower-1"
		switch {
		case ms < 0 && ms%200 == 0:
			f = "follower-0"
		case ms >= 3000 && ms < 6000 && ms%1000 == 0:
			f = "follower-0"
		case ms >= 6000 && ms%200 == 0:
			f = "follower-0"
		}
		res = append(res, req(ms, 1, "GET", "backend-0", f, ""))
	}
	served, ok := FirstServed(res, Needs("follower", "follower-0"), at(0))
	if !ok || !served.Equal(at(3000)) {
		t.Fatalf("FirstServed = %v %v, want +3s", served, ok)
	}
	shared, ok := SharedAgain(res, "follower", "follower-0", 2, served, 2*time.Second, 500*time.Millisecond)
	// Windows of 2s from 3s: [5s,7s) has 1 + 5 of 20 = 30% >= 25%.
	if !ok || !shared.Equal(at(5000)) {
		t.Fatalf("SharedAgain = %v %v, want +5s", shared, ok)
	}
	// Single points: any successful request of the kind that goes through
	// it counts (the primary: writes only; the reads do not need it).
	res = append(res, req(500, 1, "POST", "backend-1", "", load.StatusKind(503)), req(700, 1, "POST", "backend-1", "", ""))
	if got, ok := FirstServed(res, Needs("primary", "postgres-primary"), at(0)); !ok || !got.Equal(at(700)) {
		t.Fatalf("primary served again %v %v, want +0.7s", got, ok)
	}
	// HAProxy: reads that went around it (straight to a follower while it
	// was down) do not count as it serving again.
	around := req(100, 1, "GET", "backend-0", "follower-1", "")
	around.Direct = true
	via := []load.Result{around, req(900, 1, "GET", "backend-1", "follower-0", "")}
	if got, ok := FirstServed(via, Needs("haproxy", "haproxy"), at(0)); !ok || !got.Equal(at(900)) {
		t.Fatalf("haproxy served again %v %v, want +0.9s (the read at +0.1s went around it)", got, ok)
	}
	first, last, n := ErrorWindow(res, at(0))
	if n != 1 || !first.Equal(at(500)) || !last.Equal(at(501)) {
		t.Fatalf("ErrorWindow = %v %v %d", first, last, n)
	}
}

func TestAckedWrites(t *testing.T) {
	res := []load.Result{
		{Method: "POST", ID: 12},
		{Method: "POST", ID: 10},
		{Method: "POST", ID: 11, Kind: load.StatusKind(503)},
		{Method: "GET", ID: 99},
	}
	if got := AckedWrites(res); !reflect.DeepEqual(got, []int64{10, 12}) {
		t.Fatalf("AckedWrites = %v", got)
	}
}

func f(v float64) *float64 { return &v }

func TestEvaluate(t *testing.T) {
	r := &Result{Scenario: Scenario{"follower-kill", "follower", FaultKill}}
	r.Targets = TargetsFor(r.Scenario)
	r.Events = Events{OutOfRotationMS: f(300), BackInRotationMS: f(2400), SharedAgainMS: f(30000)}
	if m, s := Evaluate(r); len(m)+len(s) != 0 {
		t.Fatalf("all met, got misses %v slow %v", m, s)
	}
	r.Total.Failed, r.Total.Errors = 2, map[load.ErrorKind]int{"http_502": 2}
	r.Events.OutOfRotationMS = f(1500)
	r.Writes.Missing = map[string][]int64{"follower-1": {7}}
	m, s := Evaluate(r)
	if len(m) != 2 || !strings.Contains(m[0], "2 failed") || !strings.Contains(m[1], "missing") {
		t.Fatalf("misses %v", m)
	}
	if len(s) != 1 || !strings.Contains(s[0], "out of rotation after 1500 ms") {
		t.Fatalf("slow %v", s)
	}

	p := &Result{Scenario: Scenario{"primary-kill", "primary", FaultKill}}
	p.Targets = TargetsFor(p.Scenario)
	p.Requests = []load.Result{req(0, 5, "POST", "backend-0", "", load.StatusKind(503))}
	if m, _ := Evaluate(p); len(m) != 0 {
		t.Fatalf("a clean 503 on a write is allowed: %v", m)
	}
	p.Requests = append(p.Requests, req(0, 5, "POST", "", "", load.KindConnReset))
	p.FailedReads = 1
	if m, _ := Evaluate(p); len(m) != 2 {
		t.Fatalf("want a failed-read miss and a non-503 write miss, got %v", m)
	}
}

func TestSinglePointTargets(t *testing.T) {
	h := &Result{Scenario: Scenario{"haproxy-kill", "haproxy", FaultKill}}
	h.Targets = TargetsFor(h.Scenario)
	h.Total.Failed, h.Total.Errors = 1, map[load.ErrorKind]int{"http_503": 1}
	if m, _ := Evaluate(h); len(m) != 1 || !strings.Contains(m[0], "1 failed") {
		t.Fatalf("reads go around a dead HAProxy: a failed request is a miss, got %v", m)
	}
	n := &Result{Scenario: Scenario{"nginx-kill", "nginx", FaultKill}}
	n.Targets = TargetsFor(n.Scenario)
	n.Total.Failed, n.Total.Errors = 120, map[load.ErrorKind]int{"conn_refused": 120}
	if m, s := Evaluate(n); len(m)+len(s) != 0 {
		t.Fatalf("nginx is measured, not held to a target: misses %v slow %v", m, s)
	}
	n.Misses, n.Slow = Evaluate(n)
	h.Misses, h.Slow = Evaluate(h)
	if v := Verdict(n); v != "MEASURED" {
		t.Fatalf("nginx-kill verdict %q, want MEASURED (it failed requests: not a PASS)", v)
	}
	if v := Verdict(h); v != "FAIL" {
		t.Fatalf("haproxy-kill with a failed request: verdict %q, want FAIL", v)
	}
}

func TestEvaluateNeverBack(t *testing.T) {
	r := &Result{Scenario: Scenario{"backend-kill", "backend", FaultKill}}
	r.Targets = TargetsFor(r.Scenario)
	r.Events = Events{OutOfRotationMS: f(150)}
	m, s := Evaluate(r)
	if len(m) != 0 || len(s) != 1 || !strings.Contains(s[0], "back in rotation: not seen") {
		t.Fatalf("a victim that never came back: misses %v slow %v, want one slow 'back in rotation: not seen'", m, s)
	}
	r.Misses, r.Slow = m, s
	if v := Verdict(r); v != "SLOW" {
		t.Fatalf("verdict %q, want SLOW", v)
	}
}

func TestParseScenarios(t *testing.T) {
	got, err := ParseScenarios([]string{"follower-kill, backend-kill", "follower-kill"})
	if err != nil || len(got) != 2 || got[0].Name != "follower-kill" || got[1].Role != "backend" {
		t.Fatalf("ParseScenarios = %v %v", got, err)
	}
	if _, err := ParseScenarios([]string{"follower-melt"}); err == nil || !strings.Contains(err.Error(), "known:") {
		t.Fatalf("unknown scenario: %v", err)
	}
	for _, s := range Scenarios {
		if _, ok := Roles[s.Role]; !ok {
			t.Errorf("scenario %s: unknown role %s", s.Name, s.Role)
		}
	}
}

func TestOptionsValidate(t *testing.T) {
	o := DefaultOptions()
	if err := o.Validate(); err != nil {
		t.Fatal(err)
	}
	for _, u := range []string{"http://10.0.0.1:8080/data", "http://example.com/data", "ftp://127.0.0.1/"} {
		o.URL = u
		if err := o.Validate(); err == nil {
			t.Errorf("url %s accepted; drills are loopback only", u)
		}
	}
	o = DefaultOptions()
	o.Rate = MaxRate + 1
	if err := o.Validate(); err == nil {
		t.Error("rate above MaxRate accepted")
	}
}

func TestAllocIndex(t *testing.T) {
	if i, err := AllocIndex("postgres.follower[12]"); err != nil || i != 12 {
		t.Fatalf("%d %v", i, err)
	}
	if _, err := AllocIndex("postgres.follower"); err == nil {
		t.Fatal("no index accepted")
	}
}

func TestCgroupDirs(t *testing.T) {
	v1 := "9:name=systemd:/\n6:freezer:/nomad/557c6c5e\n4:memory:/nomad/x\n0::/\n"
	if got := CgroupDirs(v1, "/sys/fs/cgroup"); !reflect.DeepEqual(got, []string{"/sys/fs/cgroup/freezer/nomad/557c6c5e"}) {
		t.Fatalf("v1: %v", got)
	}
	v2 := "0::/nomad.slice/share.slice/abc.backend.scope\n"
	if got := CgroupDirs(v2, "/sys/fs/cgroup"); !reflect.DeepEqual(got, []string{"/sys/fs/cgroup/nomad.slice/share.slice/abc.backend.scope"}) {
		t.Fatalf("v2: %v", got)
	}
	if got := CgroupDirs("6:freezer:/\n0::/\n", "/sys/fs/cgroup"); len(got) != 0 {
		t.Fatalf("root cgroups must be ignored: %v", got)
	}
}

// fakeProc builds a /proc and cgroup tree: pid -> (ppid, environ, cgroup).
func fakeProc(t *testing.T, procs map[int][3]string, groups map[string][]int) Procfs {
	t.Helper()
	root := t.TempDir()
	p := Procfs{Root: filepath.Join(root, "proc"), CgroupRoot: filepath.Join(root, "cg")}
	write := func(path, data string) {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for pid, v := range procs {
		dir := filepath.Join(p.Root, strconv.Itoa(pid))
		write(filepath.Join(dir, "stat"), strconv.Itoa(pid)+" (x y) S "+v[0]+" 1 1")
		write(filepath.Join(dir, "environ"), strings.ReplaceAll(v[1], " ", "\x00"))
		write(filepath.Join(dir, "cgroup"), v[2])
		write(filepath.Join(dir, "comm"), "proc"+strconv.Itoa(pid))
	}
	for g, pids := range groups {
		var s []string
		for _, pid := range pids {
			s = append(s, strconv.Itoa(pid))
		}
		write(filepath.Join(p.CgroupRoot, "freezer", g, "cgroup.procs"), strings.Join(s, "\n")+"\n")
	}
	return p
}

func TestTaskPIDs(t *testing.T) {
	env := "PATH=/bin NOMAD_ALLOC_ID=alloc-1 NOMAD_TASK_NAME=postgres"
	cg := "6:freezer:/nomad/u1\n0::/\n"
	p := fakeProc(t, map[int][3]string{
		100: {"1", "", "6:freezer:/\n"},                                                       // the Nomad agent
		200: {"100", "", cg},                                                                  // the executor: in the cgroup, no task env
		201: {"200", env, cg},                                                                 // postmaster
		202: {"201", env, cg},                                                                 // a connection backend
		203: {"201", "CLOBBERED", cg},                                                         // a child that rewrote its environment
		300: {"100", "NOMAD_ALLOC_ID=alloc-1 NOMAD_TASK_NAME=other", "6:freezer:/nomad/u2\n"}, // another task of the alloc
		400: {"1", "NOMAD_ALLOC_ID=alloc-10 NOMAD_TASK_NAME=postgres", "6:freezer:/nomad/u3\n"},
	}, map[string][]int{"nomad/u1": {200, 201, 202, 203}, "nomad/u2": {300}, "nomad/u3": {400}})
	got, err := p.TaskPIDs("alloc-1", "postgres", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{201, 202, 203}; !reflect.DeepEqual(got, want) {
		t.Fatalf("TaskPIDs = %v, want %v (executor 200, other task 300, other alloc 400 excluded)", got, want)
	}
	// A task whose processes all rewrote their environment (nginx) is found
	// from the pids Nomad reports, still without its executor.
	got, err = p.TaskPIDs("alloc-2", "nginx", []int{200, 203})
	if err != nil {
		t.Fatal(err)
	}
	if want := []int{201, 202, 203}; !reflect.DeepEqual(got, want) {
		t.Fatalf("seeded TaskPIDs = %v, want %v", got, want)
	}
	if d := p.Describe([]int{201, 999}); d[0].Comm != "proc201" || d[1].Comm != "?" {
		t.Fatalf("Describe = %v", d)
	}
}

// A stopped backend drains: it answers requests between the fault and its
// exit, which is not "served again". Served again counts from the
// replacement passing its checks.
func TestAnalyzeStopDrainIsNotAReturn(t *testing.T) {
	r := &Result{
		Scenario: Scenario{"backend-stop", "backend", FaultStop},
		Victim:   Victim{Name: "backend-0", AllocID: "a1", AllocName: "backend.backend[0]"},
		Start:    at(-5000), Fault: at(0), End: at(20000),
	}
	for ms := -5000; ms < 20000; ms += 50 {
		b := "backend-" + strconv.Itoa((ms/50)%2)
		if ms > 300 && ms < 3000 {
			b = "backend-1" // out of rotation
		}
		if ms == 100 {
			b = "backend-0" // still draining
		}
		r.Requests = append(r.Requests, req(ms, 1, "GET", b, "follower-0", ""))
	}
	both := func(ms int) Snapshot { return snap(ms, "backend-0", "backend-1") }
	r.Observations.Catalog = []Snapshot{both(-100), snap(100, "backend-1"), both(2600)}
	r.Observations.Config = []Snapshot{both(-100), snap(200, "backend-1"), both(2700)}
	r.Analyze(time.Time{})
	e := r.Events
	check := func(what string, got *float64, want float64) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %s, want %.0fms", what, FormatMS(got), want)
		}
	}
	check("out of Consul", e.OutOfCatalogMS, 100)
	check("out of rotation", e.OutOfRotationMS, 200)
	check("healthy", e.HealthyMS, 2600)
	check("back in rotation", e.BackInRotationMS, 2700)
	check("served again", e.ServedAgainMS, 3000)
	if len(r.Misses) != 0 || len(r.Slow) != 0 {
		t.Errorf("misses %v slow %v", r.Misses, r.Slow)
	}
	if r.Before.Requests != 100 || r.Before.BackendShare["backend-0"] != 0.5 {
		t.Errorf("before: %d requests, shares %v", r.Before.Requests, r.Before.BackendShare)
	}
}

func TestWaitStopped(t *testing.T) {
	root := t.TempDir()
	stat := func(pid int, line string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "stat"), []byte(line), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A command name with a space and a parenthesis must not fool the parse.
	stat(10, "10 (postgres: app (x) ) T 1 10 10 0 -1")
	stat(11, "11 (nginx) T 10 10 10 0 -1")
	stat(12, "12 (haproxy) S 1 12 12 0 -1")
	p := Procfs{Root: root}
	// 13 has no /proc entry: it is gone, which counts as stopped.
	if err := p.WaitStopped(t.Context(), []int{10, 11, 13}, time.Second); err != nil {
		t.Fatalf("all stopped or gone: %v", err)
	}
	err := p.WaitStopped(t.Context(), []int{10, 12}, 50*time.Millisecond)
	if err == nil || !strings.Contains(err.Error(), "processes 12 not stopped") {
		t.Fatalf("a running process: got %v, want an error naming 12", err)
	}
}
