//go:build e2e

package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"hastack/cluster"
	"hastack/load"
)

// dataURL is /data at the running stack's entry point (see up).
var dataURL = "http://127.0.0.1:8080/data"

func clients(t *testing.T) *cluster.Clients {
	t.Helper()
	c, err := cluster.NewClients()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// nomadCLI runs bin/nomad from the repository root, as a user would (file()
// in the jobs resolves from there), and returns what it printed.
func nomadCLI(args ...string) ([]byte, error) {
	cmd := exec.Command(filepath.Join(root, "bin", "nomad"), args...)
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("nomad %v: %w\n%s", args, err, out)
	}
	return out, nil
}

// runLoad sends cfg's requests and returns every outcome.
func runLoad(ctx context.Context, cfg load.Config) ([]load.Result, error) {
	var res []load.Result
	err := load.Run(ctx, cfg, nil, func(r load.Result) { res = append(res, r) })
	return res, err
}

func testJobFilesAreFormattedAndValid(t *testing.T) {
	run := func(args ...string) {
		t.Helper()
		if _, err := nomadCLI(args...); err != nil {
			t.Error(err)
		}
	}
	run("fmt", "-check", "-recursive", "jobs/")
	for _, job := range []string{"postgres", "haproxy", "backend", "nginx", "entry"} {
		// Both layouts: one machine, and the cluster's three nodes.
		for _, nodes := range []string{"1", "3"} {
			args := []string{"job", "validate", "-var-file=jobs/hastack.vars.hcl", "-var", "nodes=" + nodes}
			switch job {
			case "backend":
				args = append(args, "-var", "bin_dir="+filepath.Join(root, "bin"))
			case "entry":
				args = []string{"job", "validate", "-var-file=jobs/hastack.vars.hcl", "-var", "entry_address=10.0.0.10/24"}
			}
			run(append(args, "jobs/"+job+".nomad.hcl")...)
		}
	}
}

func testCatalogListsEveryService(t *testing.T) {
	c := clients(t)
	services, _, err := c.Consul.Catalog().Services(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{"backend": 2, "postgres-primary": 1, "postgres-follower": 2, "haproxy": 1, "nginx": 1}
	for name, n := range want {
		if _, ok := services[name]; !ok {
			t.Errorf("consul catalog has no %s service (has %v)", name, services)
			continue
		}
		got, err := c.Passing(context.Background(), name)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != n {
			t.Errorf("%s: %d passing instances, want %d", name, len(got), n)
		}
	}
}

func testLoadSpreadsOverBothBackendsAndFollowers(t *testing.T) {
	cfg := load.Config{URL: dataURL, Requests: 600, Duration: 2 * time.Minute, Concurrency: 8, Timeout: 5 * time.Second}
	results, err := runLoad(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	s := load.Summarize(results)
	var text bytes.Buffer
	_ = s.WriteText(&text)
	t.Logf("load through nginx:\n%s", text.String())
	if s.Total != cfg.Requests || s.Failed != 0 {
		t.Fatalf("sent %d, failed %d (errors %v): want %d sent and zero errors", s.Total, s.Failed, s.Errors, cfg.Requests)
	}
	// Two instances each: a fair share is half; accept anything from 30%.
	fair := func(what string, per map[string]int, names ...string) {
		for _, n := range names {
			if share := float64(per[n]) / float64(s.Total); share < 0.30 {
				t.Errorf("%s %s served %d of %d requests (%.0f%%), want a fair share (>= 30%%); all: %v", what, n, per[n], s.Total, 100*share, per)
			}
		}
		if len(per) != len(names) {
			t.Errorf("%s: served by %v, want exactly %v", what, per, names)
		}
	}
	fair("backend", s.PerBackend, "backend-0", "backend-1")
	fair("follower", s.PerFollower, followerNames(t)...)
}

type dataAnswer struct {
	ID        int64  `json:"id"`
	BackendID string `json:"backend_id"`
	Follower  struct {
		Name string `json:"name"`
	} `json:"follower"`
	Row struct {
		ID      int64  `json:"id"`
		Payload string `json:"payload"`
	} `json:"row"`
}

func testWrittenRowIsReadableThroughTheFollowers(t *testing.T) {
	payload := fmt.Sprintf("e2e-%d", time.Now().UnixNano())
	body, _ := json.Marshal(map[string]string{"payload": payload})
	resp, err := http.Post(dataURL, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var created dataAnswer
	err = json.NewDecoder(resp.Body).Decode(&created)
	resp.Body.Close()
	if err != nil || resp.StatusCode != http.StatusCreated || created.ID == 0 {
		t.Fatalf("POST /data: status %d, id %d, err %v", resp.StatusCode, created.ID, err)
	}

	// Read it back by id through Nginx until both followers have served it.
	followers := followerNames(t)
	seen := map[string]bool{}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	err = cluster.Poll(ctx, "the new row from both followers", func(ctx context.Context) error {
		for range 10 {
			r, err := http.Get(dataURL + "?id=" + strconv.FormatInt(created.ID, 10))
			if err != nil {
				return err
			}
			var got dataAnswer
			err = json.NewDecoder(r.Body).Decode(&got)
			r.Body.Close()
			if err == nil && r.StatusCode == http.StatusOK && got.Row.Payload == payload {
				seen[got.Follower.Name] = true
			}
		}
		for _, f := range followers {
			if !seen[f] {
				return fmt.Errorf("served by %v so far, want %v", seen, followers)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func connect(t *testing.T, c *cluster.Clients, addr string) *pgx.Conn {
	t.Helper()
	conn, err := c.Connect(context.Background(), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

func testFollowersHoldThePrimarysRows(t *testing.T) {
	c := clients(t)
	ctx := context.Background()
	primaries, err := c.Passing(ctx, "postgres-primary")
	if err != nil || len(primaries) != 1 {
		t.Fatalf("passing primaries: %v, %v", primaries, err)
	}
	followers, err := c.Passing(ctx, "postgres-follower")
	if err != nil || len(followers) != 2 {
		t.Fatalf("passing followers: %v, %v", followers, err)
	}
	primary := connect(t, c, primaries[0].Addr)
	var want int64
	if err := primary.QueryRow(ctx, "SELECT count(*) FROM items").Scan(&want); err != nil {
		t.Fatal(err)
	}
	lsn, err := cluster.PrimaryLSN(ctx, primary)
	if err != nil {
		t.Fatal(err)
	}
	if want < 10000 {
		t.Errorf("primary holds %d rows, want the 10000 seed rows at least", want)
	}
	for _, f := range followers {
		conn := connect(t, c, f.Addr)
		wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := cluster.Poll(wctx, f.Meta["name"]+" to replay the primary's WAL", cluster.ReplayedTo(conn, lsn))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		var got int64
		var name string
		if err := conn.QueryRow(ctx, "SELECT count(*), current_setting('hastack.member') FROM items").Scan(&got, &name); err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("%s holds %d rows, primary %d", name, got, want)
		}
		if name != f.Meta["name"] {
			t.Errorf("follower at %s calls itself %q, Consul %q", f.Addr, name, f.Meta["name"])
		}
	}
}

// followerNames are the Patroni members that pass as followers now, by the
// name their answers carry.
func followerNames(t *testing.T) []string {
	t.Helper()
	insts, err := clients(t).Passing(context.Background(), "postgres-follower")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, in := range insts {
		names = append(names, in.Meta["name"])
	}
	if len(names) != 2 {
		t.Fatalf("passing followers %v, want 2", names)
	}
	return names
}
