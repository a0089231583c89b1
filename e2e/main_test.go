//go:build e2e

// Package e2e tests the real hastack: TestMain brings the whole stack up from
// the repository with scripts/up.sh (install step included), the tests talk
// to it only through its public entry points and the Nomad and Consul APIs,
// and scripts/down.sh tears it down at the end.
//
//	go test -tags e2e -count=1 -timeout 60m ./e2e/
//
// HASTACK_E2E_REUSE=1 tests an already running stack; HASTACK_E2E_KEEP=1
// leaves it running afterwards.
package e2e

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// root is the repository root.
var root = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}()

func script(name string, args ...string) error {
	cmd := exec.Command(filepath.Join(root, "scripts", name), args...)
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("scripts/%s: %w", name, err)
	}
	return nil
}

func TestMain(m *testing.M) {
	os.Setenv("PATH", filepath.Join(root, "bin")+string(os.PathListSeparator)+os.Getenv("PATH"))
	if os.Getenv("HASTACK_E2E_REUSE") != "1" {
		if err := script("down.sh", "--purge"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			os.Exit(1)
		}
		if err := script("up.sh"); err != nil {
			fmt.Fprintln(os.Stderr, "e2e:", err)
			_ = script("down.sh")
			os.Exit(1)
		}
	}
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
