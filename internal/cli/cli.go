// Package cli holds what the hastack commands share: how main runs them
// (a context cancelled by SIGINT, which Nomad and Ctrl-C send, or SIGTERM)
// and the exit-status convention: 0 when they succeed (or print -h), 2 for
// bad flags or environment values, 1 for any other failure.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// Main runs a command's run function with a context that SIGINT and SIGTERM
// cancel, reports its error on stderr and exits with the conventional status.
func Main(name string, run func(ctx context.Context) error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx)
	stop()
	os.Exit(ExitCode(name, err, os.Stderr))
}

// UsageError is a bad flag, argument or environment value.
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Usage marks err as a usage error (exit status 2).
func Usage(err error) error { return UsageError{err} }

// ExitCode reports err on stderr, prefixed by the command's name, and
// returns the exit status for it.
func ExitCode(name string, err error, stderr io.Writer) int {
	var usage UsageError
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.As(err, &usage):
		fmt.Fprintf(stderr, "%s: %v (see -h)\n", name, err)
		return 2
	default:
		fmt.Fprintf(stderr, "%s: %v\n", name, err)
		return 1
	}
}

// Parse parses args into fs, a command's flags, which take no positional
// arguments. It returns flag.ErrHelp as is after -h, and a usage error for a
// bad flag or a stray argument.
func Parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return Usage(err)
	}
	if fs.NArg() > 0 {
		return Usage(fmt.Errorf("unexpected arguments: %q", fs.Args()))
	}
	return nil
}

// EnvValue is a flag's default from the environment: parse of the variable
// name when it is set, else def. A value that does not parse is an error
// naming the variable and the value, and def is returned with it.
func EnvValue[T any](getenv func(string) string, name string, def T, parse func(string) (T, error)) (T, error) {
	s := getenv(name)
	if s == "" {
		return def, nil
	}
	v, err := parse(s)
	if err != nil {
		return def, fmt.Errorf("%s=%q: %w", name, s, err)
	}
	return v, nil
}

// Env gives flags their defaults from the environment (Getenv) and keeps
// the values that do not parse in Errs, so a command reports every mistake
// at once.
type Env struct {
	Getenv func(string) string
	Errs   []error
}

// EnvOr is EnvValue that keeps a parse error in e.Errs and returns def.
func EnvOr[T any](e *Env, name string, def T, parse func(string) (T, error)) T {
	v, err := EnvValue(e.Getenv, name, def, parse)
	if err != nil {
		e.Errs = append(e.Errs, err)
	}
	return v
}
