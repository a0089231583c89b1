package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"

	nomad "github.com/hashicorp/nomad/api"
)

// SecretsPath is the Nomad variable holding the database passwords. Every job
// in the namespace may read "nomad/jobs", so all jobs' templates see it.
const SecretsPath = "nomad/jobs"

// SecretKeys are the items of the secrets variable.
var SecretKeys = []string{"app_password", "replication_password", "superuser_password"}

// EnsureSecrets creates the database passwords in Nomad's variable store unless
// they exist, so no password ever lives in a job file or in the repository.
func (c *Clients) EnsureSecrets(ctx context.Context) (created bool, err error) {
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	v, _, err := c.Nomad.Variables().Read(SecretsPath, q)
	if err != nil && !errors.Is(err, nomad.ErrVariablePathNotFound) {
		return false, fmt.Errorf("read variable %s: %w", SecretsPath, err)
	}
	if v == nil {
		v = nomad.NewVariable(SecretsPath)
	}
	for _, k := range SecretKeys {
		if v.Items[k] != "" {
			continue
		}
		buf := make([]byte, 18)
		if _, err := rand.Read(buf); err != nil {
			return false, fmt.Errorf("random password: %w", err)
		}
		v.Items[k] = hex.EncodeToString(buf)
		created = true
	}
	if !created {
		return false, nil
	}
	w := (&nomad.WriteOptions{}).WithContext(ctx)
	if _, _, err := c.Nomad.Variables().CheckedUpdate(v, w); err != nil {
		return false, fmt.Errorf("write variable %s: %w", SecretsPath, err)
	}
	return true, nil
}

// Secret reads one item of the secrets variable.
func (c *Clients) Secret(ctx context.Context, key string) (string, error) {
	q := (&nomad.QueryOptions{}).WithContext(ctx)
	items, _, err := c.Nomad.Variables().GetItems(SecretsPath, q)
	if err != nil {
		return "", fmt.Errorf("read variable %s: %w", SecretsPath, err)
	}
	s, ok := (*items)[key]
	if !ok || s == "" {
		return "", fmt.Errorf("variable %s has no %s (run scripts/up.sh)", SecretsPath, key)
	}
	return s, nil
}
