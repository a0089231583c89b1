package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"
	"time"
)

func ms(d time.Duration) string { return fmt.Sprintf("%.2fms", float64(d)/float64(time.Millisecond)) }

// WriteTable prints the report as an aligned table.
func (r *Report) WriteTable(w io.Writer) error {
	fmt.Fprintf(w, "machine: %s, %d cores, scheduler autogroup %s; %s per level after %s warm-up; %s\n", r.Host, r.Cores, r.Autogroup, r.Duration, r.Warmup, r.Started.Format(time.RFC3339))
	if i := r.Idle; i != nil {
		fmt.Fprintf(w, "idle (%.0fs, no load): the machine used %.2f of %d cores; platform (Nomad, Consul, checks) %.3f, postgres %.3f, backend %.3f, haproxy %.3f, nginx %.3f\n",
			i.Seconds, i.MachineCores, r.Cores, i.GroupCores["platform"], i.GroupCores["postgres"], i.GroupCores["backend"], i.GroupCores["haproxy"], i.GroupCores["nginx"])
	}
	if r.DBLimit > 0 {
		fmt.Fprintf(w, "database limit (best pgbench rate of this run): %.0f req/s; \"of DB via HAProxy\" compares with pgbench through HAProxy at the same connections\n\n", r.DBLimit)
	} else {
		fmt.Fprint(w, "database limit: not measured in this run (-paths without db-haproxy and db-direct)\n\n")
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	viaHAProxy := map[int]float64{}
	for _, row := range r.Rows {
		if row.Path == "db-haproxy" {
			viaHAProxy[row.Conns] = row.Measure.RPS
		}
	}
	fmt.Fprintln(tw, "path\tconns\treq/s\tp50\tp99\terrors\tof DB limit\tof DB via HAProxy\tCPU s/1k req: nginx\tbackend\thaproxy\tpostgres\tloadgen\tplatform\tloadgen cores\tbackend RSS\t")
	for _, row := range r.Rows {
		m := row.Measure
		rss := "-"
		if row.BackendRSS > 0 {
			rss = fmt.Sprintf("%.1f MiB", float64(row.BackendRSS)/(1<<20))
		}
		c := row.CPUPer1k
		ofDB, ofHAProxy := "-", "-"
		if r.DBLimit > 0 {
			ofDB = fmt.Sprintf("%.0f%%", 100*row.RatioToDB)
		}
		if v := viaHAProxy[row.Conns]; v > 0 {
			ofHAProxy = fmt.Sprintf("%.0f%%", 100*m.RPS/v)
		}
		fmt.Fprintf(tw, "%s\t%d\t%.0f\t%s\t%s\t%d\t%s\t%s\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.3f\t%.2f/%d\t%s\t\n",
			row.Path, row.Conns, m.RPS, ms(m.P50), ms(m.P99), m.Errors, ofDB, ofHAProxy,
			c["nginx"], c["backend"], c["haproxy"], c["postgres"], c["loadgen"], c["platform"],
			row.LoadgenCores, loadgenUsable(row.LoadgenThreads, r.Cores), rss)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	r.writeLoadgen(w)
	r.writeErrors(w)
	return r.writeInside(w)
}

// writeLoadgen says whether the load generator limited any row (see
// loadgenBound): a warning naming those rows, or the busiest row otherwise.
func (r *Report) writeLoadgen(w io.Writer) {
	fmt.Fprintf(w, "\nloadgen cores: the load generator's CPU seconds per second of its run / the cores its threads can use (its threads, at most the machine's %d)\n", r.Cores)
	var bound []string
	var busiest *Row
	for i, row := range r.Rows {
		if row.LoadgenBound {
			bound = append(bound, fmt.Sprintf("%s at %d (%.2f of %d cores)", row.Path, row.Conns, row.LoadgenCores, loadgenUsable(row.LoadgenThreads, r.Cores)))
		}
		if busiest == nil || row.LoadgenCores > busiest.LoadgenCores {
			busiest = &r.Rows[i]
		}
	}
	switch {
	case len(bound) > 0:
		fmt.Fprintf(w, "WARNING: the load generator was at its own limit (over %.0f%% of the cores its threads can use) in %s: those rates are the generator's limit, not the path's\n",
			100*loadgenBoundShare, strings.Join(bound, ", "))
	case busiest != nil:
		fmt.Fprintf(w, "the load generator stayed under %.0f%% of the cores its threads can use in every row (busiest: %s at %d, %.2f of %d cores)\n",
			100*loadgenBoundShare, busiest.Path, busiest.Conns, busiest.LoadgenCores, loadgenUsable(busiest.LoadgenThreads, r.Cores))
	}
}

// writeErrors names the rows that had errors: each misses the zero-error
// target, whatever its rate.
func (r *Report) writeErrors(w io.Writer) {
	for _, row := range r.Rows {
		m := row.Measure
		if m.Errors == 0 {
			continue
		}
		aborted := ""
		if m.AbortedClients > 0 {
			aborted = fmt.Sprintf(", %d of them pgbench clients that aborted (the rest ran on)", m.AbortedClients)
		}
		fmt.Fprintf(w, "ERRORS: %s at %d: %d errors%s; this row misses the zero-error target\n", row.Path, row.Conns, m.Errors, aborted)
	}
}

// Errors is how many errors every row had in all.
func (r *Report) Errors() int64 {
	var n int64
	for _, row := range r.Rows {
		n += row.Measure.Errors
	}
	return n
}

// writeInside prints where the time went inside the backends, for the rows
// that measured it.
func (r *Report) writeInside(w io.Writer) error {
	var rows []Row
	for _, row := range r.Rows {
		if row.Inside != nil {
			rows = append(rows, row)
		}
	}
	if len(rows) == 0 {
		return nil
	}
	fmt.Fprint(w, "\ninside the backends (their histograms over each measurement, both backends; percentiles within buckets): GET /data from handler to answer, and per read query the oldest read's wait in the queue and the query's round trip; read retries and error answers are what a retry hid from the client (a read retried on another connection; an answer not 2xx, which Nginx retries on the other backend; not counting 499, a client that went away first, as wrk does with the requests in flight when its time is up)\n\n")
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "path\tconns\tclient p99\trequests\tp50\tp99\tunder 10ms\tqueries\treads/query\tqueue wait p99\tquery p99\tread retries\terror answers\t")
	for _, row := range rows {
		in := row.Inside
		fmt.Fprintf(tw, "%s\t%d\t%s\t%d\t%s\t%s\t%.2f%%\t%d\t%.1f\t%s\t%s\t%d\t%d\t\n",
			row.Path, row.Conns, ms(row.Measure.P99), in.Requests, ms(in.RequestP50), ms(in.RequestP99), 100*in.Under10ms,
			in.Batches, in.MeanBatch, ms(in.WaitP99), ms(in.QueryP99), in.ReadRetries, in.Not2xx)
	}
	return tw.Flush()
}

// WriteJSON stores the report as dir/bench-<UTC time>.json and returns the path.
func (r *Report) WriteJSON(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	p := filepath.Join(dir, "bench-"+r.Started.Format("20060102T150405Z")+".json")
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", err
	}
	return p, os.WriteFile(p, append(b, '\n'), 0o644)
}
