package cli

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"testing"
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
