package drill

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"hastack/load"
)

// Run is one invocation of the drill command: its scenarios' results.
type Run struct {
	Results []*Result `json:"results"`
}

// WriteFiles writes result.json (everything but the requests) and one
// requests-<scenario>.jsonl per scenario (every request's outcome, one JSON
// object a line) into dir.
func (run Run) WriteFiles(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(run, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "result.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	for _, r := range run.Results {
		if err := writeRequests(filepath.Join(dir, "requests-"+r.Scenario.Name+".jsonl"), r); err != nil {
			return err
		}
	}
	return nil
}

func writeRequests(path string, r *Result) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	bw := bufio.NewWriter(f)
	enc := json.NewEncoder(bw)
	for _, q := range r.Requests {
		if err := enc.Encode(q); err != nil {
			f.Close()
			return err
		}
	}
	if err := bw.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadFiles reads back what WriteFiles wrote, requests included.
func ReadFiles(dir string) (Run, error) {
	var run Run
	b, err := os.ReadFile(filepath.Join(dir, "result.json"))
	if err != nil {
		return run, err
	}
	if err := json.Unmarshal(b, &run); err != nil {
		return run, fmt.Errorf("result.json: %w", err)
	}
	for _, r := range run.Results {
		f, err := os.Open(filepath.Join(dir, "requests-"+r.Scenario.Name+".jsonl"))
		if err != nil {
			return run, err
		}
		dec := json.NewDecoder(bufio.NewReader(f))
		for dec.More() {
			var q load.Result
			if err := dec.Decode(&q); err != nil {
				f.Close()
				return run, fmt.Errorf("requests of %s: %w", r.Scenario.Name, err)
			}
			r.Requests = append(r.Requests, q)
		}
		f.Close()
	}
	return run, nil
}

// Reanalyze recomputes every result's figures from its recorded requests
// and observations (after a change to the measurement code, say).
func (run Run) Reanalyze() {
	for _, r := range run.Results {
		if r.Fault.IsZero() {
			continue
		}
		var resumed time.Time
		if r.Events.ResumedMS != nil {
			resumed = r.Fault.Add(time.Duration(*r.Events.ResumedMS * float64(time.Millisecond)))
		}
		errText := r.Err
		r.Analyze(resumed)
		r.Err = errText
	}
}

// FormatMS renders an optional duration in milliseconds: "—" when not seen,
// "0.42s" from a second up.
func FormatMS(v *float64) string {
	switch {
	case v == nil:
		return "—"
	case *v >= 1000 || *v <= -1000:
		return fmt.Sprintf("%.2fs", *v/1000)
	default:
		return fmt.Sprintf("%.0fms", *v)
	}
}

// LatencyPair renders "p50 / p99" of a phase, in milliseconds.
func LatencyPair(p Phase) string {
	if p.Requests == 0 {
		return "—"
	}
	return msText(p.P50MS) + " / " + msText(p.P99MS)
}

// msText keeps a tenth of a millisecond below 10 ms, so a sub-millisecond
// p99 does not print as 0 next to a p50 of 0.2.
func msText(v float64) string {
	if v < 10 {
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.0f", v)
}

// FailedText renders failures by kind, e.g. "3 (http_502 2, timeout 1)".
func FailedText(r *Result) string {
	if r.Total.Failed == 0 {
		return "0"
	}
	return fmt.Sprintf("%d (%s)", r.Total.Failed, kinds(r.Total.Errors))
}

// ShareText renders shares like "backend-0 49% backend-1 51%".
func ShareText(m map[string]float64) string {
	if len(m) == 0 {
		return "—"
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(m)) {
		parts = append(parts, fmt.Sprintf("%s %.0f%%", k, 100*m[k]))
	}
	return strings.Join(parts, " ")
}

// Verdict is PASS, SLOW (hard targets met, a time target missed) or FAIL.
func Verdict(r *Result) string {
	switch {
	case !r.Passed():
		return "FAIL"
	case len(r.Slow) > 0:
		return "SLOW"
	case r.Targets.None():
		// Only the lost-writes check applies (nginx, the single point):
		// its failures are measured, not judged.
		return "MEASURED"
	}
	return "PASS"
}

// TableColumns are the summary table's headings.
var TableColumns = []string{
	"scenario", "victim", "sent", "failed", "p50/p99 ms before", "during", "after",
	"out of Consul", "out of LB config", "replacement healthy", "back in rotation", "served again", "shared again",
	"lost writes", "verdict",
}

// TableRow is one scenario's cells, in TableColumns order.
func TableRow(r *Result) []string {
	lost := fmt.Sprintf("%d/%d", r.Writes.Lost(), r.Writes.Acked)
	if r.Writes.Err != "" {
		lost += " (unverified)"
	}
	return []string{
		r.Scenario.Name, r.Victim.Name, fmt.Sprint(r.Total.Total), FailedText(r),
		LatencyPair(r.Before), LatencyPair(r.During), LatencyPair(r.After),
		FormatMS(r.Events.OutOfCatalogMS), FormatMS(r.Events.OutOfConfigMS), FormatMS(r.Events.HealthyMS),
		FormatMS(r.Events.BackInRotationMS), FormatMS(r.Events.ServedAgainMS), FormatMS(r.Events.SharedAgainMS), lost, Verdict(r),
	}
}

// NodeTableColumns are the headings of the node scenarios' table: what a
// lost machine cost clients.
var NodeTableColumns = []string{
	"scenario", "node", "sent", "reads failed", "of them at the entry", "writes failed",
	"acknowledged writes lost", "writes unavailable", "back to full strength", "verdict",
}

// NodeTableRow is a node scenario's cells, in NodeTableColumns order.
// Writes unavailable is the longest time without an acknowledged write
// from the fault on; reads failed at the entry are the refused, reset or
// timed out connections while the entry address moved.
func NodeTableRow(r *Result) []string {
	lost := fmt.Sprintf("%d of %d", r.Writes.Lost(), r.Writes.Acked)
	if r.Writes.Err != "" {
		lost += " (unverified)"
	}
	entryReads := 0
	for _, q := range r.Requests {
		if !q.OK() && EntryError(q) && q.Method == http.MethodGet {
			entryReads++
		}
	}
	gap := r.WriteGapMS
	return []string{
		r.Scenario.Name, r.Victim.Node + " (" + r.Victim.Name + ")", fmt.Sprint(r.Total.Total),
		fmt.Sprint(r.FailedReads), fmt.Sprint(entryReads), fmt.Sprint(r.FailedWrites), lost,
		FormatMS(&gap), FormatMS(r.Events.FullStrengthMS), Verdict(r),
	}
}

// markdownTable writes a Markdown table.
func markdownTable(b *strings.Builder, cols []string, rows [][]string) {
	b.WriteString("| " + strings.Join(cols, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(cols)) + "\n")
	for _, row := range rows {
		b.WriteString("| " + strings.Join(row, " | ") + " |\n")
	}
}

// WriteTable writes the summary as Markdown tables (readable in a terminal,
// pasteable into the README): every scenario, then the node scenarios'
// figures; then one line per missed target.
func WriteTable(w io.Writer, results []*Result) error {
	var b strings.Builder
	var rows, nodeRows [][]string
	for _, r := range results {
		rows = append(rows, TableRow(r))
		if r.Scenario.Fault.NodeFault() {
			nodeRows = append(nodeRows, NodeTableRow(r))
		}
	}
	markdownTable(&b, TableColumns, rows)
	if len(nodeRows) > 0 {
		b.WriteString("\n")
		markdownTable(&b, NodeTableColumns, nodeRows)
	}
	for _, r := range results {
		for _, m := range r.Misses {
			fmt.Fprintf(&b, "FAIL %s: %s\n", r.Scenario.Name, m)
		}
		for _, s := range r.Slow {
			fmt.Fprintf(&b, "SLOW %s: %s\n", r.Scenario.Name, s)
		}
		if r.Err != "" {
			fmt.Fprintf(&b, "ERROR %s: %s\n", r.Scenario.Name, r.Err)
		}
		if r.Events.ErrorsFirstMS != nil {
			fmt.Fprintf(&b, "note %s: clients saw errors from %s to %s after the fault\n",
				r.Scenario.Name, FormatMS(r.Events.ErrorsFirstMS), FormatMS(r.Events.ErrorsLastMS))
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}
