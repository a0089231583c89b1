package report

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"image"
	"image/png"
	"math"
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
// +0; the victim out of the catalog from +0.1 s to +2.4 s, out of the LB
// config from +0.2 s to +2.7 s and serving again from +3 s (distinct
// moments, so each marker has its own place on the chart); a few errors
// when failing is set.
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
		if off > 0 && off < 3000*time.Millisecond {
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
			{At: t0.Add(2700 * time.Millisecond), Members: []string{victim, role + "-1"}},
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

// probeJS runs in a copy of the report (the report itself has no scripts)
// and writes, as JSON into a hidden <pre id="probe">, what the browser laid
// out and would paint: each chart's box, each panel's plot frame and, for
// every series and marker line, its computed stroke colour and points
// sampled every 2 px along the geometry the browser built, in window
// coordinates, each with what the browser hit-tests as topmost there (1:
// the line itself, 2: another series or marker drawn over it, 0: anything
// else), plus the summary table's cells as rendered (text and box).
const probeJS = `(function () {
  var box = function (r) { return {x: r.left, y: r.top, w: r.width, h: r.height}; };
  var out = {w: innerWidth, h: innerHeight, dpr: devicePixelRatio,
    docH: document.documentElement.scrollHeight, charts: [], summary: [], verdicts: []};
  document.querySelectorAll('svg.timeline').forEach(function (svg) {
    var c = {scenario: svg.dataset.scenario, box: box(svg.getBoundingClientRect()), panels: []};
    svg.querySelectorAll('g.panel').forEach(function (g) {
      var p = {frame: box(g.querySelector('rect').getBoundingClientRect()), lines: []};
      g.querySelectorAll('.series, .marker').forEach(function (el) {
        var len = el.getTotalLength(), m = el.getScreenCTM();
        var l = {name: el.dataset.series || el.dataset.marker, marker: el.classList.contains('marker'),
          stroke: getComputedStyle(el).stroke, len: len, samples: []};
        var n = Math.min(2000, Math.floor(len / 2));
        for (var i = 0; n > 0 && i <= n; i++) {
          var pt = el.getPointAtLength(len * i / n).matrixTransform(m);
          var top = document.elementFromPoint(pt.x, pt.y);
          l.samples.push([pt.x, pt.y, top === el ? 1 : top && top.matches('.series, .marker') ? 2 : 0]);
        }
        p.lines.push(l);
      });
      c.panels.push(p);
    });
    out.charts.push(c);
  });
  document.querySelectorAll('#summary tr').forEach(function (tr) {
    var row = [];
    tr.querySelectorAll('th, td').forEach(function (td) {
      row.push({text: td.innerText, box: box(td.getBoundingClientRect())});
    });
    out.summary.push(row);
  });
  document.querySelectorAll('section.scenario h2 span').forEach(function (v) {
    out.verdicts.push({text: v.innerText, box: box(v.getBoundingClientRect())});
  });
  var pre = document.createElement('pre');
  pre.id = 'probe';
  pre.hidden = true;
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();`

type probeBox struct{ X, Y, W, H float64 }

type probeLine struct {
	Name    string
	Marker  bool
	Stroke  string
	Len     float64
	Samples [][3]float64 // x, y, topmost (see probeJS)
}

type probePanel struct {
	Frame probeBox
	Lines []probeLine
}

type probeChart struct {
	Scenario string
	Box      probeBox
	Panels   []probePanel
}

type probeCell struct {
	Text string
	Box  probeBox
}

type probe struct {
	W, H, DPR, DocH float64
	Charts          []probeChart
	Summary         [][]probeCell
	Verdicts        []probeCell // each scenario's heading verdict
}

// measure renders a copy of the report at path with probeJS added, in a
// window of the given size, and returns what the script measured.
func measure(t *testing.T, ctx context.Context, path string, width, height int) probe {
	t.Helper()
	page, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	withProbe := strings.Replace(string(page), "</body>", "<script>"+probeJS+"</script>\n</body>", 1)
	if withProbe == string(page) {
		t.Fatal("report has no </body>")
	}
	probed := filepath.Join(t.TempDir(), "probed.html")
	if err := os.WriteFile(probed, []byte(withProbe), 0o644); err != nil {
		t.Fatal(err)
	}
	dom, err := DumpDOM(ctx, probed, width, height)
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)<pre id="probe" hidden="">(.*?)</pre>`).FindStringSubmatch(dom)
	if m == nil {
		t.Fatalf("the probe script wrote nothing; DOM tail:\n%s", tail([]byte(dom), 2000))
	}
	var p probe
	if err := json.Unmarshal([]byte(html.UnescapeString(m[1])), &p); err != nil {
		t.Fatalf("probe output: %v", err)
	}
	return p
}

// shot is a screenshot with the window's CSS pixels mapped onto its pixels.
type shot struct {
	img   image.Image
	scale float64
}

func (s shot) rgb(x, y int) [3]int {
	r, g, b, _ := s.img.At(x, y).RGBA()
	return [3]int{int(r >> 8), int(g >> 8), int(b >> 8)}
}

// near reports whether a pixel within radius (CSS px) of (x, y) has colour
// c, give or take tol per channel (anti-aliasing blends a thin line's
// edge into the white around it).
func (s shot) near(x, y, radius float64, c [3]int, tol int) bool {
	cx, cy, r := int(x*s.scale), int(y*s.scale), int(math.Ceil(radius*s.scale))
	for py := cy - r; py <= cy+r; py++ {
		for px := cx - r; px <= cx+r; px++ {
			if alike(s.rgb(px, py), c, tol) {
				return true
			}
		}
	}
	return false
}

// count is how many pixels inside b (CSS px) satisfy ok.
func (s shot) count(b probeBox, ok func([3]int) bool) (n, all int) {
	for py := int(b.Y * s.scale); py < int((b.Y+b.H)*s.scale); py++ {
		for px := int(b.X * s.scale); px < int((b.X+b.W)*s.scale); px++ {
			all++
			if ok(s.rgb(px, py)) {
				n++
			}
		}
	}
	return n, all
}

func alike(a, b [3]int, tol int) bool {
	for i := range a {
		if d := a[i] - b[i]; d > tol || d < -tol {
			return false
		}
	}
	return true
}

// parseRGB reads a computed colour, "rgb(31, 119, 180)".
func parseRGB(css string) ([3]int, bool) {
	var c [3]int
	_, err := fmt.Sscanf(css, "rgb(%d, %d, %d)", &c[0], &c[1], &c[2])
	return c, err == nil
}

func inside(b probeBox, x, y, slack float64) bool {
	return x >= b.X-slack && x <= b.X+b.W+slack && y >= b.Y-slack && y <= b.Y+b.H+slack
}

// Colour tolerance: a 1.8 px line's pixels are its colour blended with at
// most a little white; the palette's colours are further apart than this.
const colourTol = 40

// TestReportInChromium renders a report of two synthetic scenarios in
// headless Chromium and checks, in the browser's own layout and in the
// screenshot's pixels, that every chart was drawn: each series and marker
// line has geometry inside its panel, spans it, and wherever the browser
// says it is on top its colour is in the screenshot; the plot areas are not
// blank; the outage shows between its markers; the summary table's figures
// and the verdicts are rendered text on the page.
func TestReportInChromium(t *testing.T) {
	if _, err := Chromium(); err != nil {
		t.Fatal(err) // says: run scripts/install.sh
	}
	ok := synthetic("follower-kill", "follower", drill.FaultKill, false)
	bad := synthetic("backend-kill", "backend", drill.FaultKill, true)
	path := render(t, drill.Run{Results: []*drill.Result{ok, bad}})
	ctx := context.Background()

	// The page's layout depends on the window's width only: the same width
	// for both runs gives the probe the screenshot's layout. Both windows
	// are taller than the page, so every point of it is hit-testable in the
	// probe and on the screenshot. (Headless Chromium's viewport is a little
	// shorter than the window it is given.)
	const width, height = 1280, 3000
	p := measure(t, ctx, path, width, height)
	if p.W != width || p.DPR <= 0 {
		t.Fatalf("viewport is %gx%g at %gx, want %d wide", p.W, p.H, p.DPR, width)
	}
	if p.DocH > p.H {
		t.Fatalf("page is %g px tall, more than the %g px viewport: raise the window", p.DocH, p.H)
	}
	pngPath := filepath.Join(t.TempDir(), "report.png")
	if err := Screenshot(ctx, path, pngPath, width, height); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(pngPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatalf("screenshot is not a PNG: %v", err)
	}
	sc := shot{img: img, scale: p.DPR}
	if b := img.Bounds(); b.Dx() != int(width*p.DPR) || b.Dy() != int(height*p.DPR) {
		t.Fatalf("screenshot is %v, want %gx%g", b, width*p.DPR, height*p.DPR)
	}
	window := probeBox{0, 0, p.W, p.H}

	if len(p.Charts) != 2 || p.Charts[0].Scenario != "follower-kill" || p.Charts[1].Scenario != "backend-kill" {
		t.Fatalf("charts laid out: %d, want follower-kill and backend-kill", len(p.Charts))
	}
	for _, c := range p.Charts {
		checkChart(t, sc, window, c)
	}
	checkSummary(t, sc, window, p.Summary, p.Verdicts)
}

// checkChart checks one scenario's chart in the probe and the screenshot.
func checkChart(t *testing.T, sc shot, window probeBox, c probeChart) {
	t.Helper()
	b := c.Box
	if b.W < 600 || b.H < 400 || !inside(window, b.X, b.Y, 0) || !inside(window, b.X+b.W, b.Y+b.H, 0) {
		t.Errorf("%s: chart box %+v: not a visible chart of a useful size", c.Scenario, b)
		return
	}
	if len(c.Panels) != 3 {
		t.Errorf("%s: %d panels, want 3", c.Scenario, len(c.Panels))
	}
	want := map[string]bool{
		"backend-0": false, "backend-1": false, "follower-0": false, "follower-1": false, "errors": false, "p99": false,
		"fault": false, "out of rotation": false, "replacement healthy": false, "back in rotation": false, "served again": false,
	}
	for i, p := range c.Panels {
		where := fmt.Sprintf("%s panel %d", c.Scenario, i+1)
		fr := p.Frame
		if fr.W < 400 || fr.H < 80 || !inside(b, fr.X, fr.Y, 1) || !inside(b, fr.X+fr.W, fr.Y+fr.H, 1) {
			t.Errorf("%s: plot frame %+v is not inside the chart %+v", where, fr, b)
			continue
		}
		// The screenshot's layout is the probe's: the frame's left edge
		// is drawn where the probe found it.
		var edge, onEdge int
		for y := fr.Y + 2; y < fr.Y+fr.H-2; y += 3 {
			edge++
			if sc.near(fr.X, y, 1, [3]int{0xbb, 0xbb, 0xbb}, 50) {
				onEdge++
			}
		}
		if onEdge < edge*9/10 {
			t.Errorf("%s: the plot frame's left edge is drawn at %d of %d points where the browser laid it out", where, onEdge, edge)
		}
		// Not blank: the series and markers colour a share of the plot.
		inner := probeBox{fr.X + 3, fr.Y + 3, fr.W - 6, fr.H - 6}
		coloured, all := sc.count(inner, func(c [3]int) bool {
			return max(c[0], c[1], c[2])-min(c[0], c[1], c[2]) > 40 || max(c[0], c[1], c[2]) < 140
		})
		if coloured*400 < all {
			t.Errorf("%s: %d of %d plot pixels are coloured: the plot looks blank", where, coloured, all)
		}
		for _, l := range p.Lines {
			want[l.Name] = true
			checkLine(t, sc, where, fr, l)
		}
	}
	for name, seen := range want {
		if !seen {
			t.Errorf("%s: no %q line on the chart", c.Scenario, name)
		}
	}
	if len(c.Panels) == 3 {
		checkOutage(t, c)
	}
}

// checkOutage checks the chart shows the synthetic outage where it
// happened on the time axis: the victim's series is at zero, and p99 at its
// peak, only between the fault and served-again markers.
func checkOutage(t *testing.T, c probeChart) {
	t.Helper()
	find := func(p probePanel, name string) (probeLine, bool) {
		for _, l := range p.Lines {
			if l.Name == name && len(l.Samples) > 0 {
				return l, true
			}
		}
		return probeLine{}, false
	}
	victimPanel := c.Panels[0] // backends
	if strings.HasPrefix(c.Scenario, "follower") {
		victimPanel = c.Panels[1]
	}
	victimName := strings.SplitN(c.Scenario, "-", 2)[0] + "-0"
	victim, ok1 := find(victimPanel, victimName)
	p99, ok2 := find(c.Panels[2], "p99")
	fault, ok3 := find(c.Panels[0], "fault")
	served, ok4 := find(c.Panels[0], "served again")
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return // checkLine said what is missing
	}
	from, to := fault.Samples[0][0]-2, served.Samples[0][0]+2
	within := func(what string, l probeLine, pick func(y float64) bool) {
		n := 0
		for _, s := range l.Samples {
			if !pick(s[1]) {
				continue
			}
			n++
			if s[0] < from || s[0] > to {
				t.Errorf("%s: %s at x=%.1f, outside the outage [%.1f, %.1f] between the fault and served-again markers", c.Scenario, what, s[0], from, to)
				return
			}
		}
		if n == 0 {
			t.Errorf("%s: no %s on the chart", c.Scenario, what)
		}
	}
	bottom := victimPanel.Frame.Y + victimPanel.Frame.H
	within(victimName+" at zero", victim, func(y float64) bool { return y >= bottom-1 })
	top := math.Inf(1)
	for _, s := range p99.Samples {
		top = min(top, s[1])
	}
	within("p99 at its peak", p99, func(y float64) bool { return y <= top+1 })
}

// checkLine checks one series or marker line: it has geometry, inside its
// panel, across it, and where the browser hit-tests it as topmost the
// screenshot has its colour; a line that is nowhere on top must be under
// other lines (an equal series drawn later), not missing.
func checkLine(t *testing.T, sc shot, panel string, fr probeBox, l probeLine) {
	t.Helper()
	where := fmt.Sprintf("%s %q", panel, l.Name)
	if l.Len <= 0 || len(l.Samples) < 10 {
		t.Errorf("%s: not drawn: the browser built %g px of line", where, l.Len)
		return
	}
	colour, ok := parseRGB(l.Stroke)
	if !ok {
		t.Errorf("%s: not painted: its stroke is %q", where, l.Stroke)
		return
	}
	x0, x1, y0, y1 := math.Inf(1), math.Inf(-1), math.Inf(1), math.Inf(-1)
	var self, covered, painted int
	for _, s := range l.Samples {
		x, y, top := s[0], s[1], s[2]
		if !inside(fr, x, y, 3) {
			t.Errorf("%s: drawn outside its plot %+v, at (%.1f, %.1f)", where, fr, x, y)
			return
		}
		x0, x1, y0, y1 = min(x0, x), max(x1, x), min(y0, y), max(y1, y)
		switch top {
		case 1:
			self++
			if sc.near(x, y, 2, colour, colourTol) {
				painted++
			}
		case 2:
			covered++
		}
	}
	if l.Marker {
		if y1-y0 < 0.9*fr.H {
			t.Errorf("%s: marker spans %.0f of the plot's %.0f px height", where, y1-y0, fr.H)
		}
	} else if x1-x0 < 0.9*fr.W {
		t.Errorf("%s: series spans %.0f of the plot's %.0f px width", where, x1-x0, fr.W)
	}
	n := len(l.Samples)
	switch {
	case self >= 20:
	case covered >= n*8/10:
		return // under lines drawn later: nothing of its own to see
	default:
		t.Errorf("%s: on top at %d of %d points and under other lines at %d: the browser does not paint it", where, self, n, covered)
		return
	}
	if painted < self*8/10 {
		t.Errorf("%s: the screenshot has its colour %v at %d of the %d points where it is on top", where, colour, painted, self)
	}
}

// checkSummary checks the summary table's figures, and each scenario's
// verdict in its heading, are rendered text on the screenshot: the text the
// browser laid out, in a visible box that has ink (the verdicts: in their
// colours, so the stylesheet applied).
func checkSummary(t *testing.T, sc shot, window probeBox, rows [][]probeCell, verdicts []probeCell) {
	t.Helper()
	if len(rows) != 3 {
		t.Fatalf("summary table has %d rows, want a heading and 2", len(rows))
	}
	col := map[string]int{}
	for i, c := range rows[0] {
		col[c.Text] = i
	}
	for i, name := range drill.TableColumns {
		if j, ok := col[name]; !ok || j != i {
			t.Fatalf("summary heading %q is not rendered as column %d", name, i)
		}
	}
	dark := func(p [3]int) bool { return max(p[0], p[1], p[2]) < 128 }
	wants := map[string][][2]string{ // column, text
		"follower-kill": {
			{"sent", "3000"}, {"failed", "0"}, {"out of LB config", "200ms"},
			{"replacement healthy", "2.40s"}, {"back in rotation", "2.70s"}, {"lost writes", "0/150"}, {"verdict", "PASS"},
		},
		"backend-kill": {{"sent", "3000"}, {"failed", "10 (http_502 10)"}, {"verdict", "FAIL"}},
	}
	for _, r := range rows[1:] {
		name := r[0].Text
		figs, ok := wants[name]
		if !ok {
			t.Errorf("summary row %q", name)
			continue
		}
		delete(wants, name)
		for _, w := range figs {
			checkText(t, sc, window, name+" "+w[0], r[col[w[0]]], w[1], dark)
		}
	}
	for name := range wants {
		t.Errorf("summary has no %s row", name)
	}
	if len(verdicts) != 2 {
		t.Fatalf("%d scenario headings with a verdict, want 2", len(verdicts))
	}
	for i, w := range []struct {
		text   string
		colour [3]int // .PASS, .FAIL in the stylesheet
	}{{"PASS", [3]int{0x1a, 0x7f, 0x37}}, {"FAIL", [3]int{0xcf, 0x22, 0x2e}}} {
		checkText(t, sc, window, fmt.Sprintf("scenario %d heading", i+1), verdicts[i], w.text, func(p [3]int) bool { return alike(p, w.colour, colourTol) })
	}
}

// checkText checks a rendered text: its content, a visible box, and at
// least a few pixels of ink in it.
func checkText(t *testing.T, sc shot, window probeBox, where string, c probeCell, want string, ink func([3]int) bool) {
	t.Helper()
	if c.Text != want {
		t.Errorf("%s: rendered %q, want %q", where, c.Text, want)
		return
	}
	b := c.Box
	if b.W < 10 || b.H < 8 || !inside(window, b.X, b.Y, 0) || !inside(window, b.X+b.W, b.Y+b.H, 0) {
		t.Errorf("%s: %q laid out at %+v, not visibly", where, want, b)
		return
	}
	if n, _ := sc.count(b, ink); n < 10 {
		t.Errorf("%s: %d pixels of ink in %+v: %q is not on the screenshot", where, n, b, want)
	}
}

func TestChromiumMissing(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	if _, err := Chromium(); !errors.Is(err, ErrNoChromium) || !strings.Contains(err.Error(), "run scripts/install.sh") {
		t.Fatalf("Chromium() without a browser = %v", err)
	}
}

// A scenario with every moment (a freeze: resumed too) has no more markers
// than the chart has label rows, so no two labels share a row's place.
func TestMarkersFitTheirLabelRows(t *testing.T) {
	v := func(ms float64) *float64 { return &ms }
	r := &drill.Result{Events: drill.Events{
		ResumedMS: v(10000), OutOfRotationMS: v(1000), HealthyMS: v(10500),
		BackInRotationMS: v(10600), ServedAgainMS: v(10700),
	}}
	if n := len(Markers(r)); n != markerRows {
		t.Fatalf("%d markers for a scenario with every moment, %d label rows", n, markerRows)
	}
}
