// Package report renders drill results as one self-contained HTML page: a
// summary table and, per scenario, a timeline chart drawn as inline SVG
// (requests per second per backend and per follower, errors, latency p99,
// with markers at the fault and the recovery moments). No scripts, fonts or
// other external assets, so the file can be mailed or archived as is.
package report

import (
	"fmt"
	"html/template"
	"io"
	"math"
	"slices"
	"strings"
	"time"

	"hastack/drill"
)

// Render writes the report page for run.
func Render(w io.Writer, run drill.Run, generated time.Time) error {
	data := page{Generated: generated.UTC().Format(time.RFC3339), Columns: drill.TableColumns}
	for _, r := range run.Results {
		data.Rows = append(data.Rows, row{Cells: drill.TableRow(r), Verdict: drill.Verdict(r)})
		data.Scenarios = append(data.Scenarios, scenarioView(r))
	}
	return pageTmpl.Execute(w, data)
}

type page struct {
	Generated string
	Columns   []string
	Rows      []row
	Scenarios []scenario
}

type row struct {
	Cells   []string
	Verdict string
}

type scenario struct {
	Name, Verdict, Victim, Fault string
	Chart                        template.HTML
	Facts                        [][2]string
	Notes                        []string
}

func scenarioView(r *drill.Result) scenario {
	e := r.Events
	s := scenario{
		Name: r.Scenario.Name, Verdict: drill.Verdict(r), Fault: string(r.Scenario.Fault),
		Victim: fmt.Sprintf("%s (alloc %s)", r.Victim.Name, short(r.Victim.AllocID)),
		Chart:  template.HTML(Chart(r)),
	}
	s.Facts = [][2]string{
		{"requests sent", fmt.Sprint(r.Total.Total)},
		{"failed", drill.FailedText(r)},
		{"failed reads / writes", fmt.Sprintf("%d / %d", r.FailedReads, r.FailedWrites)},
		{"latency p50 / p99 ms before", drill.LatencyPair(r.Before)},
		{"latency p50 / p99 ms during", drill.LatencyPair(r.During)},
		{"latency p50 / p99 ms after", drill.LatencyPair(r.After)},
		{"out of Consul's passing set", drill.FormatMS(e.OutOfCatalogMS)},
		{"out of the rendered LB config", drill.FormatMS(e.OutOfConfigMS)},
		{"task running again (Nomad)", drill.FormatMS(e.RestartedMS)},
		{"replacement passed its checks", drill.FormatMS(e.HealthyMS)},
		{"back in the rendered LB config", drill.FormatMS(e.BackInConfigMS)},
		{"served traffic again", drill.FormatMS(e.ServedAgainMS)},
		{"traffic shared again", drill.FormatMS(e.SharedAgainMS)},
		{"backend share before / after", drill.ShareText(r.Before.BackendShare) + " / " + drill.ShareText(r.After.BackendShare)},
		{"follower share before / after", drill.ShareText(r.Before.FollowerShare) + " / " + drill.ShareText(r.After.FollowerShare)},
		{"acknowledged writes lost", fmt.Sprintf("%d of %d (checked on %s)", r.Writes.Lost(), r.Writes.Acked, strings.Join(r.Writes.Checked, ", "))},
	}
	if r.Total.Direct > 0 {
		s.Facts = append(s.Facts, [2]string{"reads that went around HAProxy", fmt.Sprint(r.Total.Direct)})
	}
	if e.ResumedMS != nil {
		label := "resumed (SIGCONT)"
		switch r.Scenario.Fault {
		case drill.FaultNodeKill:
			label = "node started again"
		case drill.FaultNodeIsolate:
			label = "node healed"
		case drill.FaultConsulRestart, drill.FaultNomadRestart:
			label = "agent restarted"
		}
		s.Facts = append(s.Facts, [2]string{label, drill.FormatMS(e.ResumedMS)})
	}
	if r.Scenario.Fault.NodeFault() {
		s.Facts = append(s.Facts,
			[2]string{"node", r.Victim.Node},
			[2]string{"failed at the entry (refused, reset, timed out)", fmt.Sprint(r.EntryErrors)},
			[2]string{"writes unavailable (longest without an ack)", fmt.Sprintf("%.0fms", r.WriteGapMS)},
			[2]string{"back to full strength", drill.FormatMS(e.FullStrengthMS)})
	}
	if e.ErrorsFirstMS != nil {
		s.Facts = append(s.Facts, [2]string{"clients saw errors", drill.FormatMS(e.ErrorsFirstMS) + " to " + drill.FormatMS(e.ErrorsLastMS)})
	}
	if r.FailedWrites > 0 {
		s.Facts = append(s.Facts, [2]string{"failed writes took (p99)", fmt.Sprintf("%.0fms", r.FailedWriteP99MS)})
	}
	for _, m := range r.Misses {
		s.Notes = append(s.Notes, "FAIL: "+m)
	}
	for _, m := range r.Slow {
		s.Notes = append(s.Notes, "SLOW: "+m)
	}
	if r.Err != "" {
		s.Notes = append(s.Notes, "ERROR: "+r.Err)
	}
	return s
}

func short(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}

// Marker is a vertical line on a chart.
type Marker struct {
	Label string
	AtS   float64 // seconds after the fault
	Color string
}

// Markers are the moments drawn on a scenario's chart: the fault, out of
// rotation, replacement healthy, back in rotation (and resumed, for a freeze).
func Markers(r *drill.Result) []Marker {
	ms := []Marker{{"fault", 0, "#d62728"}}
	add := func(label string, v *float64, color string) {
		if v != nil {
			ms = append(ms, Marker{label, *v / 1000, color})
		}
	}
	add("resumed", r.Events.ResumedMS, "#8c564b")
	add("out of rotation", r.Events.OutOfRotationMS, "#ff7f0e")
	add("replacement healthy", r.Events.HealthyMS, "#2ca02c")
	add("back in rotation", r.Events.BackInRotationMS, "#1f77b4")
	add("served again", r.Events.ServedAgainMS, "#17becf")
	return ms
}

var palette = []string{"#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#bcbd22", "#e377c2", "#7f7f7f"}

// Chart geometry.
const (
	chartW   = 1160.0
	padL     = 64.0
	padR     = 150.0 // legend
	panelH   = 150.0
	panelGap = 46.0
	// One row of marker labels per marker a scenario can have (Markers:
	// the fault and five moments), 11 px each, above the first panel.
	markerRows = 6
	topPad     = 18.0 + markerRows*11
)

type series struct {
	Name   string
	Color  string
	Values []float64
	Dashed bool
}

// Chart draws a scenario's timeline as an SVG: three panels sharing the
// time axis (seconds from the fault).
func Chart(r *drill.Result) string {
	tl := r.Timeline
	var xs []float64
	for _, b := range tl.Buckets {
		xs = append(xs, b.Offset)
	}
	errs := make([]float64, len(tl.Buckets))
	p99 := make([]float64, len(tl.Buckets))
	for i, b := range tl.Buckets {
		errs[i] = float64(b.Errors) / tl.StepS
		p99[i] = b.P99MS
	}
	per := func(names []string, get func(drill.Bucket) map[string]int, offset int) []series {
		var out []series
		for j, n := range names {
			v := make([]float64, len(tl.Buckets))
			for i, b := range tl.Buckets {
				v[i] = float64(get(b)[n]) / tl.StepS
			}
			out = append(out, series{Name: n, Color: palette[(j+offset)%len(palette)], Values: v})
		}
		return append(out, series{Name: "errors", Color: "#d62728", Values: errs, Dashed: true})
	}
	panels := []struct {
		title string
		s     []series
		log   bool
	}{
		{"requests/s per backend (successful) and errors/s", per(tl.Backends, func(b drill.Bucket) map[string]int { return b.PerBackend }, 0), false},
		{"reads/s per follower (successful) and errors/s", per(tl.Followers, func(b drill.Bucket) map[string]int { return b.PerFollower }, 2), false},
		{"latency p99 per second (ms, log scale)", []series{{Name: "p99", Color: "#444", Values: p99}}, true},
	}
	h := topPad + float64(len(panels))*(panelH+panelGap)
	var b strings.Builder
	fmt.Fprintf(&b, `<svg class="timeline" data-scenario="%s" xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" viewBox="0 0 %.0f %.0f" role="img" aria-label="timeline of %s">`,
		template.HTMLEscapeString(r.Scenario.Name), chartW, h, chartW, h, template.HTMLEscapeString(r.Scenario.Name))
	b.WriteString(`<rect width="100%" height="100%" fill="#fff"/>`)
	if len(xs) == 0 {
		b.WriteString(`<text x="20" y="40">no requests recorded</text></svg>`)
		return b.String()
	}
	x0, x1 := xs[0], xs[len(xs)-1]+tl.StepS
	plotW := chartW - padL - padR
	xpos := func(s float64) float64 { return padL + (s-x0)/(x1-x0)*plotW }
	markers := Markers(r)
	for pi, p := range panels {
		top := topPad + float64(pi)*(panelH+panelGap)
		ymax := 1.0
		for _, s := range p.s {
			for _, v := range s.Values {
				ymax = math.Max(ymax, v)
			}
		}
		ymin := 0.0
		if p.log {
			ymax = math.Ceil(math.Log10(math.Max(ymax, 10)))
		} else {
			// Headroom: a series at its maximum stays off the frame.
			ymax = niceCeil(ymax * 1.05)
		}
		ypos := func(v float64) float64 {
			if p.log {
				v = math.Log10(math.Max(v, 1))
			}
			return top + panelH - (v-ymin)/(ymax-ymin)*panelH
		}
		fmt.Fprintf(&b, `<g class="panel"><text x="%.0f" y="%.0f" font-size="13" font-weight="bold" fill="#222">%s</text>`, padL, top-8, p.title)
		fmt.Fprintf(&b, `<rect x="%.0f" y="%.0f" width="%.0f" height="%.0f" fill="none" stroke="#bbb"/>`, padL, top, plotW, panelH)
		// y grid and labels: quarters, or each decade on a log scale
		var ticks []float64
		if p.log {
			for d := 0.0; d <= ymax; d++ {
				ticks = append(ticks, math.Pow(10, d))
			}
		} else {
			for i := 0; i <= 4; i++ {
				ticks = append(ticks, ymax*float64(i)/4)
			}
		}
		for _, v := range ticks {
			y := ypos(v)
			fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.1f" y2="%.1f" stroke="#eee"/><text x="%.0f" y="%.1f" font-size="11" text-anchor="end" fill="#555">%g</text>`,
				padL, padL+plotW, y, y, padL-6, y+4, v)
		}
		// x ticks every 5 s
		for t := math.Ceil(x0/5) * 5; t <= x1; t += 5 {
			x := xpos(t)
			fmt.Fprintf(&b, `<line x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="#ccc"/><text x="%.1f" y="%.0f" font-size="11" text-anchor="middle" fill="#555">%+.0fs</text>`,
				x, x, top+panelH, top+panelH+4, x, top+panelH+16, t)
		}
		for si, s := range p.s {
			var pts []string
			for i, v := range s.Values {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xpos(xs[i]+tl.StepS/2), ypos(v)))
			}
			dash := ""
			if s.Dashed {
				dash = ` stroke-dasharray="4 3"`
			}
			// The first series of a panel is drawn wider, under the others:
			// two instances with the same traffic draw the same line, and
			// the first must still show around the second.
			width := 1.8
			if si == 0 && len(p.s) > 1 {
				width = 4
			}
			fmt.Fprintf(&b, `<polyline class="series" data-series="%s" fill="none" stroke="%s" stroke-width="%.1f"%s points="%s"/>`,
				template.HTMLEscapeString(s.Name), s.Color, width, dash, strings.Join(pts, " "))
		}
		// legend
		for i, s := range p.s {
			y := top + 14 + float64(i)*16
			fmt.Fprintf(&b, `<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="3"/><text x="%.0f" y="%.0f" font-size="12" fill="#222">%s</text>`,
				padL+plotW+10, padL+plotW+28, y, y, s.Color, padL+plotW+33, y+4, template.HTMLEscapeString(s.Name))
		}
		// markers
		for _, m := range markers {
			if m.AtS < x0 || m.AtS > x1 {
				continue
			}
			x := xpos(m.AtS)
			fmt.Fprintf(&b, `<line class="marker" data-marker="%s" x1="%.1f" x2="%.1f" y1="%.0f" y2="%.0f" stroke="%s" stroke-width="1.5" stroke-dasharray="6 3"/>`,
				m.Label, x, x, top, top+panelH, m.Color)
		}
		b.WriteString(`</g>`)
	}
	// Marker labels once, above the first panel: each in the first row
	// where it does not overlap the previous label; a row per marker, so
	// labels never overlap.
	slices.SortStableFunc(markers, func(a, b Marker) int { return cmpFloat(a.AtS, b.AtS) })
	var rowEnd [markerRows]float64
	for _, m := range markers {
		x := xpos(m.AtS)
		text := m.Label + " " + fmtS(m.AtS)
		row := 0
		for row < len(rowEnd)-1 && rowEnd[row] > x {
			row++
		}
		rowEnd[row] = x + 3 + 6.2*float64(len(text))
		fmt.Fprintf(&b, `<text x="%.1f" y="%.0f" font-size="11" fill="%s">%s</text>`, x+3, 11+float64(row)*11, m.Color, text)
	}
	b.WriteString(`</svg>`)
	return b.String()
}

func fmtS(s float64) string { return fmt.Sprintf("%+.2fs", s) }

func cmpFloat(a, b float64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

var pageTmpl = template.Must(template.New("page").Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>hastack drill report</title>
<style>
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1200px; }
h1 { font-size: 22px; } h2 { font-size: 18px; margin-top: 32px; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border: 1px solid #ccc; padding: 3px 6px; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
.PASS { color: #1a7f37; font-weight: bold; } .FAIL { color: #cf222e; font-weight: bold; } .SLOW { color: #9a6700; font-weight: bold; } .MEASURED { color: #555; font-weight: bold; }
.notes li { font-size: 13px; }
section.scenario { border-top: 2px solid #ddd; }
</style>
</head>
<body>
<h1>hastack failure drills</h1>
<p>Generated {{.Generated}}. Times are measured from the fault. Targets: zero failed requests when one follower or backend is stopped, killed or frozen, or HAProxy is killed; zero failed reads when the primary is, and failed writes are quick 503s; out of rotation within 1 s of a crash (3 s for a freeze); after a stop or a crash, back in rotation within 10 s and traffic shared again within 60 s of that; no acknowledged write lost in any scenario. Nginx, the single entry point of one machine, has no target beyond that: its figures are MEASURED. Node scenarios (the three-node cluster): no failed read but at the entry address while it moves, failed writes only quick 503s, writes acknowledged again within 10 s (12 s for a partition); a server agent's restart, no failed request. A missed time target is SLOW, any other FAIL.</p>
<table id="summary">
<thead><tr>{{range .Columns}}<th>{{.}}</th>{{end}}</tr></thead>
<tbody>
{{range .Rows}}<tr>{{range .Cells}}<td>{{.}}</td>{{end}}</tr>
{{end}}</tbody>
</table>
{{range .Scenarios}}
<section class="scenario" id="{{.Name}}">
<h2>{{.Name}} <span class="{{.Verdict}}">{{.Verdict}}</span></h2>
<p>Fault <b>{{.Fault}}</b> on {{.Victim}}.</p>
{{.Chart}}
<table class="facts">
{{range .Facts}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{end}}</table>
{{if .Notes}}<ul class="notes">{{range .Notes}}<li>{{.}}</li>{{end}}</ul>{{end}}
</section>
{{end}}
</body>
</html>
`))
