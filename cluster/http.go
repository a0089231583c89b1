package cluster

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"time"
)

// httpAttempt bounds one GET of HTTPOK: an address nobody holds yet must
// not stall the wait.
const httpAttempt = time.Second

// HTTPOK is a Poll condition: GET url answers 200.
func HTTPOK(url string) func(context.Context) error {
	return func(ctx context.Context) error {
		ctx, cancel := context.WithTimeout(ctx, httpAttempt)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return err
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", url, resp.Status)
		}
		return nil
	}
}
