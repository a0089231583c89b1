package drill

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	nomad "github.com/hashicorp/nomad/api"

	"hastack/cluster"
)

// Victim is the instance a drill hits.
type Victim struct {
	Role      string     `json:"role"`
	AllocID   string     `json:"alloc_id"`
	AllocName string     `json:"alloc_name"` // e.g. postgres.follower[0]
	Index     int        `json:"index"`
	Name      string     `json:"name"` // follower-0, backend-1, postgres-primary, ...
	Job       string     `json:"job"`
	Group     string     `json:"group"`
	Task      string     `json:"task"`
	Service   string     `json:"service"`
	Procs     []ProcInfo `json:"procs,omitempty"` // what kill/freeze signalled
	Node      string     `json:"node,omitempty"`  // the Nomad node it runs on
}

// AllocIndex parses the index out of an allocation name like
// "postgres.follower[1]".
func AllocIndex(allocName string) (int, error) {
	i := strings.LastIndexByte(allocName, '[')
	if i < 0 || !strings.HasSuffix(allocName, "]") {
		return 0, fmt.Errorf("alloc name %q has no [index]", allocName)
	}
	return strconv.Atoi(allocName[i+1 : len(allocName)-1])
}

// runningAllocs lists the running allocations of a job's group, lowest
// index first.
func runningAllocs(ctx context.Context, c *cluster.Clients, job, group string) ([]*nomad.AllocationListStub, error) {
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	allocs, _, err := c.Nomad.Jobs().Allocations(job, false, q)
	if err != nil {
		return nil, fmt.Errorf("allocations of job %s: %w", job, err)
	}
	var out []*nomad.AllocationListStub
	for _, a := range allocs {
		if a.TaskGroup == group && a.ClientStatus == nomad.AllocClientStatusRunning && a.DesiredStatus == nomad.AllocDesiredStatusRun {
			out = append(out, a)
		}
	}
	slices.SortFunc(out, func(a, b *nomad.AllocationListStub) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

// ResolveVictim picks the instance to hit: allocID when given (it must be a
// running allocation of the role's group), else the running allocation with
// the lowest index, so reruns hit the same instance.
func ResolveVictim(ctx context.Context, c *cluster.Clients, role Role, allocID string) (Victim, error) {
	allocs, err := runningAllocs(ctx, c, role.Job, role.Group)
	if err != nil {
		return Victim{}, err
	}
	if role.ByService {
		if allocs, err = playing(ctx, c, role.Service, allocs); err != nil {
			return Victim{}, err
		}
	}
	if len(allocs) == 0 {
		return Victim{}, fmt.Errorf("no running allocation of %s.%s passing %s", role.Job, role.Group, role.Service)
	}
	pick := allocs[0]
	if allocID != "" {
		pick = nil
		for _, a := range allocs {
			if a.ID == allocID || (len(allocID) >= 8 && strings.HasPrefix(a.ID, allocID)) {
				pick = a
				break
			}
		}
		if pick == nil {
			return Victim{}, fmt.Errorf("alloc %s is not a running allocation of %s.%s (the %s role)", allocID, role.Job, role.Group, role.Name)
		}
	}
	idx, err := AllocIndex(pick.Name)
	if err != nil {
		return Victim{}, err
	}
	return Victim{
		Role: role.Name, AllocID: pick.ID, AllocName: pick.Name, Index: idx,
		Name: role.InstanceName(idx), Job: role.Job, Group: role.Group, Task: role.Task, Service: role.Service,
	}, nil
}

// playing keeps the allocations that have a passing instance of service in
// Consul. Nomad names a service instance after its allocation
// (_nomad-task-<alloc ID>-<task>-<service>-<port>).
func playing(ctx context.Context, c *cluster.Clients, service string, allocs []*nomad.AllocationListStub) ([]*nomad.AllocationListStub, error) {
	insts, err := c.Passing(ctx, service)
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(allocs, func(a *nomad.AllocationListStub) bool {
		return !slices.ContainsFunc(insts, func(i cluster.Instance) bool { return strings.Contains(i.ID, a.ID) })
	}), nil
}

// Injector applies faults to a victim. Procfs finds the task's processes
// for kill and freeze.
type Injector struct {
	Clients *cluster.Clients
	Procfs  Procfs
}

// Stop is a planned stop: nomad alloc stop. Nomad places a replacement.
func (in Injector) Stop(ctx context.Context, v *Victim) error {
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	alloc, _, err := in.Clients.Nomad.Allocations().Info(v.AllocID, q)
	if err != nil {
		return fmt.Errorf("alloc %s: %w", v.AllocID, err)
	}
	if _, err := in.Clients.Nomad.Allocations().Stop(alloc, q); err != nil {
		return fmt.Errorf("stop alloc %s: %w", v.AllocID, err)
	}
	return nil
}

// nomadPIDs returns the pids Nomad's client reports for the victim's task
// (the executor's view, from the allocation's resource stats).
func (in Injector) nomadPIDs(ctx context.Context, v *Victim) []int {
	// Raw, not Allocations().Stats, which dials a new client per call.
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	var stats nomad.AllocResourceUsage
	if _, err := in.Clients.Nomad.Raw().Query("/v1/client/allocation/"+v.AllocID+"/stats", &stats, q); err != nil || stats.Tasks[v.Task] == nil {
		return nil
	}
	var pids []int
	for k := range stats.Tasks[v.Task].Pids {
		if pid, err := strconv.Atoi(k); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids
}

// TaskPIDs finds the processes of the victim's task on this machine.
func (in Injector) TaskPIDs(ctx context.Context, v *Victim) ([]int, error) {
	return in.Procfs.TaskPIDs(v.AllocID, v.Task, in.nomadPIDs(ctx, v))
}

// stopDeadline bounds the wait for SIGSTOPped processes to show as stopped.
const stopDeadline = 2 * time.Second

// maxSignalPasses bounds signalTask's scans; each one after the first only
// finds a child forked between a scan and its parent's signal.
const maxSignalPasses = 5

// signalTask sends sig to every process of the victim's task. It scans and
// signals until a scan finds no process it has not signalled yet: a process
// forked between a scan and its parent's signal shows up in the next scan,
// and once every process found was signalled before the scan, none is left
// that could have forked unseen. It returns the processes signalled.
func (in Injector) signalTask(ctx context.Context, v *Victim, sig syscall.Signal) ([]int, error) {
	// Ask Nomad once, before the fault: the pids it knows do not change
	// between the passes, and a frozen task may not answer stats quickly.
	seeds := in.nomadPIDs(ctx, v)
	var all []int
	for pass := range maxSignalPasses {
		pids, err := in.Procfs.TaskPIDs(v.AllocID, v.Task, seeds)
		if err != nil {
			return all, err
		}
		if pass == 0 && len(pids) == 0 {
			return nil, fmt.Errorf("no process of task %s in alloc %s on this machine", v.Task, v.AllocID)
		}
		var fresh []int
		for _, pid := range pids {
			if !slices.Contains(all, pid) {
				fresh = append(fresh, pid)
			}
		}
		if pass == 0 {
			// Before the signal: a killed process may be gone by the time
			// its name is read.
			v.Procs = in.Procfs.Describe(fresh)
		}
		for _, pid := range fresh {
			// ESRCH: it exited meanwhile, which is fine.
			if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
				return all, fmt.Errorf("signal %v to pid %d: %w", sig, pid, err)
			}
		}
		if len(fresh) == 0 {
			break
		}
		all = append(all, fresh...)
	}
	slices.Sort(all)
	return all, nil
}

// Kill sends SIGKILL to every process of the task: a crash.
func (in Injector) Kill(ctx context.Context, v *Victim) error {
	_, err := in.signalTask(ctx, v, syscall.SIGKILL)
	return err
}

// Freeze sends SIGSTOP to every process of the task and returns a resume
// function that sends SIGCONT to all of them (and to any process of the task
// found then). Resume is safe to call more than once; callers defer it so a
// frozen instance is always resumed, even on error or interrupt.
func (in Injector) Freeze(ctx context.Context, v *Victim) (resume func() error, err error) {
	stopped, err := in.signalTask(ctx, v, syscall.SIGSTOP)
	if err == nil {
		// A freeze that did not freeze would pass for a harmless one.
		err = in.Procfs.WaitStopped(ctx, stopped, stopDeadline)
	}
	done := false
	resume = func() error {
		if done {
			return nil
		}
		done = true
		pids := stopped
		if more, err := in.Procfs.TaskPIDs(v.AllocID, v.Task, stopped); err == nil {
			pids = append(pids, more...)
		}
		var errs []error
		for _, pid := range pids {
			if err := syscall.Kill(pid, syscall.SIGCONT); err != nil && !errors.Is(err, syscall.ESRCH) {
				errs = append(errs, fmt.Errorf("SIGCONT pid %d: %w", pid, err))
			}
		}
		return errors.Join(errs...)
	}
	if err != nil {
		return resume, errors.Join(err, resume())
	}
	return resume, nil
}
