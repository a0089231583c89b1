package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

func TestExitCode(t *testing.T) {
	for _, c := range []struct {
		err  error
		code int
		out  string
	}{
		{nil, 0, ""},
		{flag.ErrHelp, 0, ""},
		{Usage(errors.New("-c must be positive")), 2, "tool: -c must be positive (see -h)\n"},
		{fmt.Errorf("parse: %w", Usage(errors.New("bad"))), 2, "tool: parse: bad (see -h)\n"},
		{errors.New("3 requests failed"), 1, "tool: 3 requests failed\n"},
	} {
		var stderr bytes.Buffer
		if code := ExitCode("tool", c.err, &stderr); code != c.code || stderr.String() != c.out {
			t.Errorf("ExitCode(%v) = %d, %q; want %d, %q", c.err, code, stderr.String(), c.code, c.out)
		}
	}
}

func TestParse(t *testing.T) {
	newFS := func() *flag.FlagSet {
		fs := flag.NewFlagSet("tool", flag.ContinueOnError)
		fs.SetOutput(io.Discard)
		fs.Int("n", 1, "")
		return fs
	}
	if err := Parse(newFS(), []string{"-n", "3"}); err != nil {
		t.Errorf("good flags: %v", err)
	}
	if err := Parse(newFS(), []string{"-h"}); err != flag.ErrHelp {
		t.Errorf("-h: %v, want flag.ErrHelp as is", err)
	}
	for _, args := range [][]string{{"-n", "x"}, {"-m"}, {"-n", "3", "extra"}} {
		var usage UsageError
		if err := Parse(newFS(), args); !errors.As(err, &usage) {
			t.Errorf("%q: %v, want a usage error", args, err)
		}
	}
	if err := Parse(newFS(), []string{"extra"}); err == nil || err.Error() != `unexpected arguments: ["extra"]` {
		t.Errorf("stray argument: %v", err)
	}
}

func TestEnvValue(t *testing.T) {
	env := map[string]string{"GOOD": "3s", "BAD": "soon"}
	getenv := func(k string) string { return env[k] }
	if v, err := EnvValue(getenv, "GOOD", time.Second, time.ParseDuration); err != nil || v != 3*time.Second {
		t.Errorf("GOOD: %v, %v; want 3s", v, err)
	}
	if v, err := EnvValue(getenv, "UNSET", time.Second, time.ParseDuration); err != nil || v != time.Second {
		t.Errorf("UNSET: %v, %v; want the default 1s", v, err)
	}
	v, err := EnvValue(getenv, "BAD", time.Second, time.ParseDuration)
	if err == nil || !strings.HasPrefix(err.Error(), `BAD="soon": `) || v != time.Second {
		t.Errorf("BAD: %v, %v; want the default and an error naming BAD and its value", v, err)
	}
}

func TestEnvOr(t *testing.T) {
	env := map[string]string{"GOOD": "3", "BAD": "x", "WORSE": "y"}
	e := &Env{Getenv: func(k string) string { return env[k] }}
	good, unset := EnvOr(e, "GOOD", 1, strconv.Atoi), EnvOr(e, "UNSET", 1, strconv.Atoi)
	bad, worse := EnvOr(e, "BAD", 1, strconv.Atoi), EnvOr(e, "WORSE", 2, strconv.Atoi)
	if good != 3 || unset != 1 || bad != 1 || worse != 2 {
		t.Errorf("values %d %d %d %d, want 3 1 1 2 (the defaults for the bad ones)", good, unset, bad, worse)
	}
	if len(e.Errs) != 2 || !strings.HasPrefix(e.Errs[0].Error(), `BAD="x": `) || !strings.HasPrefix(e.Errs[1].Error(), `WORSE="y": `) {
		t.Errorf("errs %v, want one for BAD and one for WORSE, in order", e.Errs)
	}
}
