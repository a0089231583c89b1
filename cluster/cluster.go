// Package cluster asks Nomad and Consul about the running hastack: whether the
// agents are ready, which services pass their checks, where the databases are.
// Every wait here polls a real condition against a deadline taken from ctx.
package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	consul "github.com/hashicorp/consul/api"
	nomad "github.com/hashicorp/nomad/api"
)

// Clients bundles the Nomad and Consul API clients, configured from the
// standard environment (NOMAD_ADDR, CONSUL_HTTP_ADDR, ...).
type Clients struct {
	Nomad  *nomad.Client
	Consul *consul.Client
}

// NewClients builds API clients from the environment, like the CLIs do.
func NewClients() (*Clients, error) {
	n, err := nomad.NewClient(nomad.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("nomad client: %w", err)
	}
	c, err := consul.NewClient(consul.DefaultConfig())
	if err != nil {
		return nil, fmt.Errorf("consul client: %w", err)
	}
	return &Clients{Nomad: n, Consul: c}, nil
}

// PollInterval is how often waits re-check their condition.
const PollInterval = 250 * time.Millisecond

// ErrNotYet is returned by a condition that does not hold yet; any other error
// is reported as the reason when the deadline passes.
var ErrNotYet = errors.New("not yet")

// Poll calls cond until it returns nil or ctx ends. what names the condition
// in the error, which carries the last reason the condition gave before the
// deadline: a call that the deadline itself cut short says nothing about it.
func Poll(ctx context.Context, what string, cond func(context.Context) error) error {
	t := time.NewTicker(PollInterval)
	defer t.Stop()
	var last error
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		if ctx.Err() == nil || last == nil {
			last = err
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("timed out waiting for %s: %w", what, last)
		case <-t.C:
		}
	}
}
