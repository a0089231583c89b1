package bench

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// Groups are the process groups whose CPU the benchmark accounts for.
// "platform" is what runs the stack rather than serves it: the Nomad and
// Consul agents, Nomad's executors and log collectors, the Postgres health
// checks; its CPU is taken from the same cores the requests need.
var Groups = []string{"nginx", "backend", "haproxy", "postgres", "loadgen", "platform"}

// clockTicks is USER_HZ, the unit of CPU times in /proc/<pid>/stat; it is
// 100 on every Linux architecture Go supports.
const clockTicks = 100

// underNomad tells a task of Nomad's from anything else on the machine (a
// system nginx or Postgres): Nomad puts each task in a cgroup of its own
// under "nomad" (v1) or "nomad.slice" (v2), and sets NOMAD_ALLOC_ID in the
// task's environment. Both are checked, since Postgres and nginx overwrite
// their environment to set their process titles.
func underNomad(environ, cgroup []byte) bool {
	return bytes.Contains(environ, []byte("NOMAD_ALLOC_ID=")) ||
		bytes.Contains(cgroup, []byte(":/nomad/")) || bytes.Contains(cgroup, []byte("/nomad.slice/"))
}

// groupOf maps a process to its group by command name; stack processes
// must run under Nomad.
func groupOf(comm string, nomad bool) string {
	switch comm {
	case "wrk", "pgbench":
		return "loadgen"
	case "nomad", "consul": // the agents are not Nomad tasks
		return "platform"
	}
	if !nomad {
		return ""
	}
	switch {
	case strings.HasPrefix(comm, "nginx"):
		return "nginx"
	case comm == "backend":
		return "backend"
	case comm == "haproxy":
		return "haproxy"
	case comm == "postgres":
		return "postgres"
	case comm == "patroni": // Postgres' failover manager
		return "platform"
	}
	return ""
}

// CPUSample is the CPU time each group had used at one moment, in seconds:
// user+system of its live processes plus the reaped children they waited
// for (so short-lived Postgres connection processes are not lost).
type CPUSample map[string]float64

// groupProcs calls fn with the /proc directory and group of every process
// that belongs to a group.
func groupProcs(fn func(dir, group string) error) error {
	dirs, err := filepath.Glob("/proc/[0-9]*")
	if err != nil {
		return err
	}
	for _, d := range dirs {
		comm, err := os.ReadFile(d + "/comm")
		if err != nil {
			continue // exited meanwhile
		}
		if g := groupOf(strings.TrimSpace(string(comm)), procUnderNomad(d)); g != "" {
			if err := fn(d, g); err != nil {
				return err
			}
		}
	}
	return nil
}

// SampleCPU reads /proc once.
func SampleCPU() (CPUSample, error) {
	s := CPUSample{}
	err := groupProcs(func(d, g string) error {
		stat, err := os.ReadFile(d + "/stat")
		if err != nil {
			return nil // exited meanwhile
		}
		ticks, err := statTicks(stat)
		if err != nil {
			return fmt.Errorf("%s/stat: %w", d, err)
		}
		s[g] += float64(ticks) / clockTicks
		return nil
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// statTicks sums utime, stime, cutime and cstime (fields 14-17) of a
// /proc/<pid>/stat line. The command name (field 2) may contain spaces, so
// fields are counted from the closing parenthesis.
func statTicks(stat []byte) (int64, error) {
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("malformed stat")
	}
	f := strings.Fields(string(stat[i+1:]))
	// f[0] is field 3 (state); fields 14..17 are f[11..14].
	if len(f) < 15 {
		return 0, fmt.Errorf("short stat")
	}
	var sum int64
	for _, x := range f[11:15] {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, err
		}
		sum += n
	}
	return sum, nil
}

// Sub is the CPU each group used between two samples.
func (s CPUSample) Sub(before CPUSample) CPUSample {
	d := CPUSample{}
	for _, g := range Groups {
		d[g] = max(s[g]-before[g], 0)
	}
	return d
}

// MaxRSS returns the largest resident set (bytes) of any process of group.
func MaxRSS(group string) (int64, error) {
	var best int64
	err := groupProcs(func(d, g string) error {
		if g != group {
			return nil
		}
		status, err := os.ReadFile(d + "/status")
		if err != nil {
			return nil // exited meanwhile
		}
		for _, line := range strings.Split(string(status), "\n") {
			if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
				kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
				best = max(best, kb*1024)
			}
		}
		return nil
	})
	return best, err
}

// watchMaxRSS samples MaxRSS(group) every interval until the returned
// stop is called; stop returns the largest it saw.
func watchMaxRSS(group string, every time.Duration) (stop func() int64) {
	var peak int64
	quit, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if r, err := MaxRSS(group); err == nil {
				peak = max(peak, r)
			}
			select {
			case <-quit:
				return
			case <-tick.C:
			}
		}
	}()
	return func() int64 {
		close(quit)
		<-done
		return peak
	}
}

func procUnderNomad(dir string) bool {
	env, _ := os.ReadFile(dir + "/environ")
	cg, _ := os.ReadFile(dir + "/cgroup")
	return underNomad(env, cg)
}

// SchedAutogroup says whether the kernel groups each session's processes for
// the CPU scheduler (kernel.sched_autogroup_enabled): "on", "off", or
// "unknown" when the kernel has no such setting. It changes the latency tail,
// so a run records it.
func SchedAutogroup() string {
	b, err := os.ReadFile("/proc/sys/kernel/sched_autogroup_enabled")
	if err != nil {
		return "unknown"
	}
	if strings.TrimSpace(string(b)) == "0" {
		return "off"
	}
	return "on"
}

// OnlineCPUs is how many cores the machine has online, from
// /sys/devices/system/cpu/online: the cores the "cpu" line of /proc/stat
// (MachineCPU) sums over. runtime.NumCPU counts only the cores this process
// may run on (its affinity mask), which can be fewer; it is the fallback
// when the file cannot be read.
func OnlineCPUs() int {
	b, err := os.ReadFile("/sys/devices/system/cpu/online")
	if err != nil {
		return runtime.NumCPU()
	}
	n, err := parseCPUList(string(b))
	if err != nil || n < 1 {
		return runtime.NumCPU()
	}
	return n
}

// parseCPUList counts the CPUs in a kernel CPU list such as "0-3,6,8-9".
func parseCPUList(s string) (int, error) {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(s), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("cpu list %q: %w", s, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("cpu list %q: bad range %q", s, part)
			}
		}
		n += b - a + 1
	}
	return n, nil
}

// MachineCPU reads the busy CPU time of the whole machine (all cores, in
// seconds) from /proc/stat: everything but idle and iowait.
func MachineCPU() (busy float64, err error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	return parseMachineCPU(b)
}

func parseMachineCPU(stat []byte) (busy float64, err error) {
	line, _, _ := bytes.Cut(stat, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) < 6 || f[0] != "cpu" {
		return 0, fmt.Errorf("/proc/stat: no cpu line")
	}
	var idle int64
	var sum int64
	// user nice system idle iowait irq softirq steal (guest time is
	// already in user and nice).
	for i, x := range f[1:min(len(f), 9)] {
		n, err := strconv.ParseInt(x, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %w", err)
		}
		sum += n
		if i == 3 || i == 4 {
			idle += n
		}
	}
	return float64(sum-idle) / clockTicks, nil
}
