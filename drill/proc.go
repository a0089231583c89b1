package drill

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Procfs locates the processes of a Nomad task on this machine. Root and
// CgroupRoot are /proc and /sys/fs/cgroup outside tests.
type Procfs struct {
	Root       string
	CgroupRoot string
}

// HostProcfs is the real /proc and cgroup filesystem.
var HostProcfs = Procfs{Root: "/proc", CgroupRoot: "/sys/fs/cgroup"}

// TaskPIDs returns every process of a task: those whose environment names
// the allocation and the task (children inherit it, though a Postgres
// backend's long process title can overwrite it), the seeds (the pids
// Nomad reports for the task), plus every other member of their cgroups, so
// a child that rewrote its environment (nginx, Postgres) is not missed. Processes are never matched by
// name. It never returns its own process, and ignores a cgroup that it is
// in itself (a task without its own cgroup must not drag the host along).
//
// Nomad's executor, which supervises the task, sits in the task's cgroup
// (and in Nomad's pid list) but is Nomad's, not the task's: it is left out.
// It is recognized as a process without the task's environment whose parent
// is outside the set (the root of the tree, under the Nomad agent).
func (p Procfs) TaskPIDs(allocID, task string, seeds []int) ([]int, error) {
	if allocID == "" || task == "" {
		return nil, errors.New("task pids: empty alloc id or task")
	}
	entries, err := os.ReadDir(p.Root)
	if err != nil {
		return nil, fmt.Errorf("task pids: %w", err)
	}
	self := os.Getpid()
	ownGroups := map[string]bool{}
	if gs, err := p.cgroups(self); err == nil {
		for _, g := range gs {
			ownGroups[g] = true
		}
	}
	wantAlloc := []byte("NOMAD_ALLOC_ID=" + allocID)
	wantTask := []byte("NOMAD_TASK_NAME=" + task)
	found := map[int]bool{}
	hasTaskEnv := map[int]bool{}
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join(p.Root, e.Name(), "environ"))
		if err != nil {
			continue // gone, or a kernel thread
		}
		if hasEnv(env, wantAlloc) && hasEnv(env, wantTask) {
			found[pid], hasTaskEnv[pid] = true, true
		}
	}
	for _, pid := range seeds {
		if pid != self && pid > 0 {
			found[pid] = true
		}
	}
	groups := map[string]bool{}
	for pid := range found {
		gs, err := p.cgroups(pid)
		if err != nil {
			continue
		}
		for _, g := range gs {
			if !ownGroups[g] {
				groups[g] = true
			}
		}
	}
	for g := range groups {
		data, err := os.ReadFile(filepath.Join(g, "cgroup.procs"))
		if err != nil {
			continue
		}
		for f := range strings.FieldsSeq(string(data)) {
			if pid, err := strconv.Atoi(f); err == nil && pid != self {
				found[pid] = true
			}
		}
	}
	pids := make([]int, 0, len(found))
	for pid := range found {
		if !hasTaskEnv[pid] && !found[p.ppid(pid)] {
			continue // the executor
		}
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	return pids, nil
}

// ppid returns the parent of pid, 0 when unknown.
func (p Procfs) ppid(pid int) int {
	b, err := os.ReadFile(filepath.Join(p.Root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return 0
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0
	}
	n, _ := strconv.Atoi(f[1])
	return n
}

// hasEnv reports whether a NUL-separated environment holds the exact entry.
func hasEnv(environ, entry []byte) bool {
	for v := range bytes.SplitSeq(environ, []byte{0}) {
		if bytes.Equal(v, entry) {
			return true
		}
	}
	return false
}

// cgroups returns the cgroup directories of pid whose membership identifies
// a task: the v1 freezer hierarchy (where Nomad puts raw_exec tasks) and
// the v2 unified one. The root cgroup is never returned.
func (p Procfs) cgroups(pid int) ([]string, error) {
	data, err := os.ReadFile(filepath.Join(p.Root, strconv.Itoa(pid), "cgroup"))
	if err != nil {
		return nil, err
	}
	return CgroupDirs(string(data), p.CgroupRoot), nil
}

// CgroupDirs parses /proc/<pid>/cgroup: "ID:controllers:path" lines. It
// returns the freezer (v1) and unified "0::" (v2) directories under root,
// skipping the root cgroup itself.
func CgroupDirs(procCgroup, root string) []string {
	var dirs []string
	sc := bufio.NewScanner(strings.NewReader(procCgroup))
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) != 3 || parts[2] == "/" || parts[2] == "" {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			dirs = append(dirs, filepath.Join(root, parts[2]))
		case slices.Contains(strings.Split(parts[1], ","), "freezer"):
			dirs = append(dirs, filepath.Join(root, "freezer", parts[2]))
		}
	}
	return dirs
}

// ProcInfo is a process as seen when the fault was injected, for the record.
type ProcInfo struct {
	PID  int    `json:"pid"`
	Comm string `json:"comm"`
}

// WaitStopped waits until every process in pids is stopped (state T in
// /proc/PID/stat) or gone, and reports the ones that are not after within.
func (p Procfs) WaitStopped(ctx context.Context, pids []int, within time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		var running []string
		for _, pid := range pids {
			b, err := os.ReadFile(filepath.Join(p.Root, strconv.Itoa(pid), "stat"))
			if err != nil {
				continue // gone
			}
			// "PID (comm) STATE ...": comm may hold spaces and parentheses.
			i := bytes.LastIndexByte(b, ')')
			if i < 0 || i+2 >= len(b) || b[i+2] != 'T' {
				running = append(running, strconv.Itoa(pid))
			}
		}
		if len(running) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("processes %s not stopped %s after SIGSTOP", strings.Join(running, ", "), within)
		case <-tick.C:
		}
	}
}

// Describe reads the command names of pids (a gone process gets "?").
func (p Procfs) Describe(pids []int) []ProcInfo {
	out := make([]ProcInfo, 0, len(pids))
	for _, pid := range pids {
		comm := "?"
		if b, err := os.ReadFile(filepath.Join(p.Root, strconv.Itoa(pid), "comm")); err == nil {
			comm = strings.TrimSpace(string(b))
		}
		out = append(out, ProcInfo{PID: pid, Comm: comm})
	}
	return out
}
