package report

import (
	"bytes"
	"context"
	"errors"
	"image/png"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"hastack/drill"
	"hastack/load"
)

// synthetic builds a plausible result: 100 req/s for 30 s around a fault at
// +0, the victim out for 2.4 s, a few errors when failing is set.
func synthetic(name, role string, fault drill.Fault, failing bool) *drill.Result {
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	victim := role + "-0"
	r := &drill.Result{
		Scenario: drill.Scenario{Name: name, Role: role, Fault: fault},
		Victim:   drill.Victim{Role: role, Name: victim, AllocID: "0123456789abcdef"},
		Start:    t0.Add(-8 * time.Second), Fault: t0, End: t0.Add(22 * time.Second),
	}
	for i := range 3000 {
		at := r.Start.Add(time.Duration(i) * 10 * time.Millisecond)
		off := at.Sub(t0)
		b, f := "backend-"+string(rune('0'+i%2)), "follower-"+string(rune('0'+(i/2)%2))
		lat := 2 * time.Millisecond
		if off > 0 && off < 2400*time.Millisecond {
			if role == "backend" {
				b = "backend-1"
			} else {
				f = "follower-1"
			}
			lat = 40 * time.Millisecond
		}
		q := load.Result{Seq: int64(i + 1), Start: at, Latency: lat, Method: "GET", Backend: b, Follower: f, ID: int64(i)}
		if i%20 == 0 {
			q.Method, q.Follower = "POST", ""
		}
		if failing && off > 0 && off < 300*time.Millisecond && i%3 == 0 {
			q.Kind, q.Status, q.Backend, q.Follower = load.StatusKind(502), 502, "", ""
		}
		r.Requests = append(r.Requests, q)
	}
	r.Observations = drill.Observations{
		Catalog: []drill.Snapshot{
			{At: t0.Add(-time.Second), Members: []string{victim, role + "-1"}},
			{At: t0.Add(100 * time.Millisecond), Members: []string{role + "-1"}},
			{At: t0.Add(2400 * time.Millisecond), Members: []string{victim, role + "-1"}},
		},
		Config: []drill.Snapshot{
			{At: t0.Add(-time.Second), Members: []string{victim, role + "-1"}},
			{At: t0.Add(200 * time.Millisecond), Members: []string{role + "-1"}},
			{At: t0.Add(2400 * time.Millisecond), Members: []string{victim, role + "-1"}},
		},
	}
	r.Writes = drill.WriteCheck{Acked: 150, Missing: map[string][]int64{}, Checked: []string{"primary", "follower-0", "follower-1"}}
	r.Analyze(time.Time{})
	return r
}

func render(t *testing.T, run drill.Run) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "report.html")
	var buf bytes.Buffer
	if err := Render(&buf, run, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestRenderSelfContained(t *testing.T) {
	run := drill.Run{Results: []*drill.Result{synthetic("follower-kill", "follower", drill.FaultKill, false)}}
	path := render(t, run)
	b, _ := os.ReadFile(path)
	html := string(b)
	for _, bad := range []string{"<script", "http://", "https://", "src=", "@import", "url("} {
		// The SVG namespace is an identifier, not a fetched asset.
		if strings.Contains(strings.ReplaceAll(html, `xmlns="http://www.w3.org/2000/svg"`, ""), bad) {
			t.Errorf("report refers to an external asset or script: %q", bad)
		}
	}
	if n := strings.Count(html, `<svg class="timeline"`); n != 1 {
		t.Errorf("%d timeline charts, want 1", n)
	}
	for _, m := range []string{"fault", "out of rotation", "replacement healthy", "back in rotation"} {
		if !strings.Contains(html, `data-marker="`+m+`"`) {
			t.Errorf("chart lacks the %q marker", m)
		}
	}
}

// TestReportInChromium renders a report of two synthetic scenarios in
// headless Chromium, checks the DOM it built has both charts with their
// series and markers and the summary figures, and that the screenshot is a
// real PNG of the window size.
func TestReportInChromium(t *testing.T) {
	if _, err := Chromium(); err != nil {
		t.Fatal(err) // says: run scripts/install.sh
	}
	ok := synthetic("follower-kill", "follower", drill.FaultKill, false)
	bad := synthetic("backend-kill", "backend", drill.FaultKill, true)
	path := render(t, drill.Run{Results: []*drill.Result{ok, bad}})
	ctx := context.Background()

	dom, err := DumpDOM(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	if n := len(regexp.MustCompile(`<svg class="timeline"`).FindAllString(dom, -1)); n != 2 {
		t.Fatalf("DOM has %d timeline charts, want 2", n)
	}
	if n := strings.Count(dom, `class="panel"`); n != 6 {
		t.Errorf("DOM has %d chart panels, want 6 (3 per scenario)", n)
	}
	for _, want := range []string{
		`data-scenario="follower-kill"`, `data-scenario="backend-kill"`,
		`data-series="backend-0"`, `data-series="follower-1"`, `data-series="errors"`, `data-series="p99"`,
		`data-marker="out of rotation"`, `id="summary"`,
		"<td>follower-kill</td>", "<td>3000</td>", // requests sent
		"<td>200ms</td>", // out of the LB config
		"<td>2.40s</td>", // replacement healthy
		"0/150",          // lost writes
		`class="PASS"`, `class="FAIL"`, "http_502",
	} {
		if !strings.Contains(dom, want) {
			t.Errorf("DOM lacks %q", want)
		}
	}

	shot := filepath.Join(t.TempDir(), "report.png")
	if err := Screenshot(ctx, path, shot, 1280, 2000); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(shot)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 1280 || b.Dy() != 2000 {
		t.Fatalf("screenshot is %v, want 1280x2000", b)
	}
	// Not a blank page: the charts put many distinct colours on it.
	colours := map[uint32]bool{}
	for y := 0; y < img.Bounds().Dy(); y += 7 {
		for x := 0; x < img.Bounds().Dx(); x += 7 {
			r, g, b, _ := img.At(x, y).RGBA()
			colours[r>>8<<16|g>>8<<8|b>>8] = true
		}
	}
	if len(colours) < 20 {
		t.Fatalf("screenshot has %d distinct colours: looks blank", len(colours))
	}
}

func TestChromiumMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Chromium(); !errors.Is(err, ErrNoChromium) || !strings.Contains(err.Error(), "run scripts/install.sh") {
		t.Fatalf("Chromium() without a browser = %v", err)
	}
}
