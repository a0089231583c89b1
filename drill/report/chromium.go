package report

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// ErrNoChromium means no headless browser is installed.
var ErrNoChromium = errors.New("chromium not found: run scripts/install.sh (installs Debian's chromium)")

// Chromium finds the browser binary.
func Chromium() (string, error) {
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p, nil
		}
	}
	return "", ErrNoChromium
}

// headless runs chromium on the file with extra flags, in a throwaway
// profile, offline (no background networking, updates or sync).
func headless(ctx context.Context, htmlPath string, extra ...string) ([]byte, error) {
	bin, err := Chromium()
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(htmlPath)
	if err != nil {
		return nil, err
	}
	profile, err := os.MkdirTemp("", "drill-chromium-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(profile)
	ctx, cancel := context.WithTimeout(ctx, 90*time.Second)
	defer cancel()
	args := []string{
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--disable-dev-shm-usage", "--hide-scrollbars",
		"--user-data-dir=" + profile,
	}
	args = append(args, extra...)
	args = append(args, "file://"+abs)
	cmd := exec.CommandContext(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cmd.Env = append(os.Environ(), "HOME="+profile)
	if err := cmd.Run(); err != nil {
		return nil, fmt.Errorf("%s: %w\n%s", bin, err, tail(stderr.Bytes(), 2000))
	}
	return stdout.Bytes(), nil
}

// Screenshot renders htmlPath in headless Chromium into a PNG of the given
// window size.
func Screenshot(ctx context.Context, htmlPath, pngPath string, width, height int) error {
	abs, err := filepath.Abs(pngPath)
	if err != nil {
		return err
	}
	_ = os.Remove(abs)
	if _, err := headless(ctx, htmlPath, "--screenshot="+abs, fmt.Sprintf("--window-size=%d,%d", width, height)); err != nil {
		return err
	}
	if _, err := os.Stat(abs); err != nil {
		return fmt.Errorf("chromium wrote no screenshot: %w", err)
	}
	return nil
}

// DumpDOM returns the DOM of htmlPath as Chromium built it in a window of
// the given size, after the page's scripts ran: the same size as a
// Screenshot gives the same layout, so a script can measure where things
// were drawn.
func DumpDOM(ctx context.Context, htmlPath string, width, height int) (string, error) {
	out, err := headless(ctx, htmlPath, "--dump-dom", fmt.Sprintf("--window-size=%d,%d", width, height))
	return string(out), err
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}
