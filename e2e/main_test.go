//go:build e2e

// Package e2e tests the real hastack: each top-level test brings the whole
// stack up from the repository with scripts/up.sh in its layout (TestStack:
// one machine; TestCluster: three nodes), the tests talk to it only through
// its public entry points and the Nomad and Consul APIs, and
// scripts/down.sh tears it down at the end.
//
//	go test -tags e2e -count=1 -timeout 60m ./e2e/
//	go test -tags e2e -count=1 -timeout 60m -run TestCluster ./e2e/
//
// HASTACK_E2E_REUSE=1 tests an already running stack of the test's layout;
// HASTACK_E2E_KEEP=1 leaves the last one running afterwards.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

// root is the repository root.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}()

func script(name string, args ...string) error {
	return scriptEnv(nil, name, args...)
}

// scriptEnv runs a script with env added to the test's environment.
func scriptEnv(env []string, name string, args ...string) error {
	cmd := exec.Command(filepath.Join(root, "scripts", name), args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/%s: %w", name, err)
	}
	return nil
}

func TestMain(m *testing.M) {
	os.Setenv("PATH", filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	code := m.Run()
	if os.Getenv("HASTACK_E2E_KEEP") != "1" {
		if err := script("down.sh", "--purge"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// TestStack runs the checks in a fixed order: the first ones expect the
// stack as up.sh leaves it (a fair share for every instance); the benchmark
// loads it and the drills break it (they end by waiting until reads spread
// over every instance again).
func TestStack(t *testing.T) {
	up(t, 1)
	for _, c := range []struct {
		name string
		test func(*testing.T)
	}{
		{"JobFilesAreFormattedAndValid", testJobFilesAreFormattedAndValid},
		{"CatalogListsEveryService", testCatalogListsEveryService},
		{"LoadSpreadsOverBothBackendsAndFollowers", testLoadSpreadsOverBothBackendsAndFollowers},
		{"WrittenRowIsReadableThroughTheFollowers", testWrittenRowIsReadableThroughTheFollowers},
		{"FollowersHoldThePrimarysRows", testFollowersHoldThePrimarysRows},
		{"BenchmarkSmoke", testBenchmarkSmoke},
		{"RestartsDuringOutages", testRestartsDuringOutages},
		{"Drills", testDrills},
	} {
		t.Run(c.name, c.test)
	}
}

// up brings the stack up from scratch in the layout of nodes nodes (1 or 3)
// unless HASTACK_E2E_REUSE=1, and points the API clients and dataURL at it
// with the exports of scripts/env.sh, as an operator's shell would be.
func up(t *testing.T, nodes int) {
	t.Helper()
	layout := []string{"HASTACK_NODES=" + strconv.Itoa(nodes)}
	// Addresses of the layout before, if any: env.sh says the new ones.
	for _, k := range []string{"NOMAD_ADDR", "CONSUL_HTTP_ADDR", "HASTACK_URL", "HASTACK_NET"} {
		os.Unsetenv(k)
	}
	if os.Getenv("HASTACK_E2E_REUSE") != "1" {
		if err := script("down.sh", "--purge"); err != nil {
			t.Fatal(err)
		}
		if err := scriptEnv(layout, "up.sh", "--skip-install"); err != nil {
			_ = script("down.sh")
			t.Fatal(err)
		}
	}
	cmd := exec.Command(filepath.Join(root, "scripts", "env.sh"))
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("scripts/env.sh: %v", err)
	}
	for line := range strings.Lines(string(out)) {
		k, v, ok := strings.Cut(strings.TrimPrefix(strings.TrimSpace(line), "export "), "=")
		if !ok || k == "PATH" {
			continue
		}
		if u, err := strconv.Unquote(v); err == nil {
			v = u
		}
		os.Setenv(k, v)
	}
	dataURL = os.Getenv("HASTACK_URL") + "/data"
}
