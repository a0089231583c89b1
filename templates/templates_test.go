// Package templates holds the consul-template sources of the load balancers'
// configs. The tests render them with the real consul-template against a real
// Consul agent, and check the output with haproxy -c and nginx -t.
package templates

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"hastack/cluster"

	consul "github.com/hashicorp/consul/api"
)

// repoBin is bin/ at the repository root, where scripts/install.sh puts the
// pinned consul and consul-template.
func repoBin(t *testing.T, name string) string {
	t.Helper()
	_, file, _, _ := runtime.Caller(0)
	p := filepath.Join(filepath.Dir(file), "..", "bin", name)
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("%s not found at %s: run scripts/install.sh first", name, p)
	}
	return p
}

func lookPath(t *testing.T, name string) string {
	t.Helper()
	for _, p := range []string{"/usr/sbin/" + name, "/usr/bin/" + name} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not installed: run scripts/install.sh first", name)
	}
	return p
}

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// startConsul runs a throwaway dev agent on free loopback ports.
func startConsul(t *testing.T) (*consul.Client, string) {
	t.Helper()
	httpPort := freePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(httpPort)
	hcl := fmt.Sprintf(`ports { http = %d, dns = -1, grpc = -1, grpc_tls = -1, serf_lan = %d, serf_wan = %d, server = %d }`,
		httpPort, freePort(t), freePort(t), freePort(t))
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, repoBin(t, "consul"), "agent", "-dev", "-bind", "127.0.0.1", "-client", "127.0.0.1",
		"-node", "templates-test", "-hcl", hcl, "-data-dir", t.TempDir())
	logf, err := os.Create(filepath.Join(t.TempDir(), "consul.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start consul: %v", err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait(); logf.Close() })

	cfg := consul.DefaultConfig()
	cfg.Address = addr
	c, err := consul.NewClient(cfg)
	if err != nil {
		t.Fatal(err)
	}
	wctx, wcancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer wcancel()
	if err := cluster.Poll(wctx, "the consul dev agent's leader", (&cluster.Clients{Consul: c}).ConsulReady); err != nil {
		log, _ := os.ReadFile(logf.Name())
		t.Fatalf("%v\n%s", err, log)
	}
	return c, addr
}

type instance struct {
	service, id, name string
	port              int
	passing           bool
}

func register(t *testing.T, c *consul.Client, in instance) {
	t.Helper()
	status := consul.HealthCritical
	if in.passing {
		status = consul.HealthPassing
	}
	err := c.Agent().ServiceRegister(&consul.AgentServiceRegistration{
		ID: in.id, Name: in.service, Address: "127.0.0.1", Port: in.port,
		Meta:  map[string]string{"name": in.name},
		Check: &consul.AgentServiceCheck{CheckID: in.id + "-check", TTL: "10m", Status: status},
	})
	if err != nil {
		t.Fatalf("register %s: %v", in.id, err)
	}
}

// render runs consul-template once over tmpl with a Nomad-like environment.
func render(t *testing.T, consulAddr, tmpl string, env map[string]string) string {
	t.Helper()
	out := filepath.Join(env["NOMAD_TASK_DIR"], strings.TrimSuffix(tmpl, ".ctmpl")+".conf")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, repoBin(t, "consul-template"), "-once", "-consul-addr", consulAddr,
		"-template", tmpl+":"+out)
	cmd.Env = os.Environ()
	for k, v := range env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("consul-template %s: %v\n%s", tmpl, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func taskEnv(t *testing.T) map[string]string {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "tmp"), 0o755); err != nil {
		t.Fatal(err)
	}
	port := strconv.Itoa(freePort(t))
	return map[string]string{
		"NOMAD_TASK_DIR":   dir,
		"NOMAD_ALLOC_ID":   "0b5c2b8e-7d7c-4a0e-9f43-3f1c6f1f0a11",
		"NOMAD_ADDR_pg":    "127.0.0.1:" + port,
		"NOMAD_PORT_stats": strconv.Itoa(freePort(t)),
		"NOMAD_ADDR_http":  "127.0.0.1:" + strconv.Itoa(freePort(t)),
	}
}

func haproxyCheck(t *testing.T, cfg string) {
	t.Helper()
	if b, err := exec.Command(lookPath(t, "haproxy"), "-c", "-f", cfg).CombinedOutput(); err != nil {
		t.Fatalf("haproxy -c rejects the rendered config: %v\n%s", err, b)
	}
}

func nginxCheck(t *testing.T, dir, cfg string) {
	t.Helper()
	if b, err := exec.Command(lookPath(t, "nginx"), "-t", "-e", "stderr", "-p", dir, "-c", cfg).CombinedOutput(); err != nil {
		t.Fatalf("nginx -t rejects the rendered config: %v\n%s", err, b)
	}
}

func lines(s, prefix string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.HasPrefix(strings.TrimSpace(l), prefix) {
			out = append(out, strings.TrimSpace(l))
		}
	}
	return out
}

func TestTemplatesAgainstRealConsul(t *testing.T) {
	c, addr := startConsul(t)
	catalog := []instance{
		{"postgres-follower", "f0", "follower-0", 21001, true},
		{"postgres-follower", "f1", "follower-1", 21002, true},
		// Failing its check (e.g. not in recovery): must never take reads.
		{"postgres-follower", "f2", "follower-2", 21003, false},
		{"postgres-primary", "p0", "primary", 23001, true},
		{"backend", "b0", "backend-0", 22001, true},
		{"backend", "b1", "backend-1", 22002, true},
		{"backend", "b2", "backend-2", 22003, false},
	}
	for _, in := range catalog {
		register(t, c, in)
	}

	t.Run("haproxy with followers", func(t *testing.T) {
		env := taskEnv(t)
		out := render(t, addr, "haproxy.ctmpl", env)
		servers := lines(out, "server ")
		want := []string{
			"server follower-0_127.0.0.1:21001 127.0.0.1:21001 check",
			"server follower-1_127.0.0.1:21002 127.0.0.1:21002 check",
			// Reads go to the primary only while no follower is up.
			"server primary_127.0.0.1:23001 127.0.0.1:23001 check backup",
		}
		if strings.Join(servers, "\n") != strings.Join(want, "\n") {
			t.Fatalf("servers:\n%s\nwant:\n%s", strings.Join(servers, "\n"), strings.Join(want, "\n"))
		}
		if !strings.Contains(out, "bind "+env["NOMAD_ADDR_pg"]) {
			t.Errorf("frontend does not bind NOMAD_ADDR_pg:\n%s", out)
		}
		haproxyCheck(t, filepath.Join(env["NOMAD_TASK_DIR"], "haproxy.conf"))
	})

	t.Run("nginx with backends", func(t *testing.T) {
		env := taskEnv(t)
		out := render(t, addr, "nginx.ctmpl", env)
		servers := lines(out, "server 127.0.0.1")
		if len(servers) != 2 || !strings.Contains(servers[0], ":22001") || !strings.Contains(servers[1], ":22002") {
			t.Fatalf("upstream servers = %q, want the two passing backends", servers)
		}
		if !strings.Contains(out, "proxy_pass http://backend;") || strings.Contains(out, "return 503") {
			t.Errorf("with backends the config must proxy, not answer 503:\n%s", out)
		}
		nginxCheck(t, env["NOMAD_TASK_DIR"], filepath.Join(env["NOMAD_TASK_DIR"], "nginx.conf"))
		if !strings.Contains(out, "listen "+env["NOMAD_ADDR_http"]+" reuseport;") {
			t.Errorf("on one machine nginx listens on its node's address only:\n%s", lines(out, "listen"))
		}
	})

	t.Run("nginx on the cluster", func(t *testing.T) {
		// Every address of its node, so the entry address keepalived
		// moves there is served too.
		env := taskEnv(t)
		env["NGINX_LISTEN_ALL"] = "true"
		_, port, _ := strings.Cut(env["NOMAD_ADDR_http"], ":")
		env["NOMAD_PORT_http"] = port
		out := render(t, addr, "nginx.ctmpl", env)
		if !strings.Contains(out, "listen "+port+" reuseport;") {
			t.Errorf("want nginx to listen on port %s of every address:\n%s", port, lines(out, "listen"))
		}
		nginxCheck(t, env["NOMAD_TASK_DIR"], filepath.Join(env["NOMAD_TASK_DIR"], "nginx.conf"))
	})

	gone := map[string]bool{}
	deregister := func(service string) {
		t.Helper()
		for _, in := range catalog {
			if gone[in.id] || (service != "" && in.service != service) {
				continue
			}
			gone[in.id] = true
			if err := c.Agent().ServiceDeregister(in.id); err != nil {
				t.Fatalf("deregister %s: %v", in.id, err)
			}
		}
	}

	deregister("postgres-follower")
	t.Run("haproxy without followers falls back on the primary", func(t *testing.T) {
		env := taskEnv(t)
		out := render(t, addr, "haproxy.ctmpl", env)
		want := "server primary_127.0.0.1:23001 127.0.0.1:23001 check backup"
		if s := lines(out, "server "); len(s) != 1 || s[0] != want {
			t.Fatalf("servers = %q, want only %q", s, want)
		}
		haproxyCheck(t, filepath.Join(env["NOMAD_TASK_DIR"], "haproxy.conf"))
	})

	deregister("")

	t.Run("haproxy with an empty catalog", func(t *testing.T) {
		env := taskEnv(t)
		out := render(t, addr, "haproxy.ctmpl", env)
		if s := lines(out, "server "); len(s) != 0 {
			t.Fatalf("empty catalog rendered servers: %q", s)
		}
		haproxyCheck(t, filepath.Join(env["NOMAD_TASK_DIR"], "haproxy.conf"))
	})

	t.Run("nginx with an empty catalog answers 503", func(t *testing.T) {
		env := taskEnv(t)
		out := render(t, addr, "nginx.ctmpl", env)
		if strings.Contains(out, "upstream backend") || !strings.Contains(out, "return 503") {
			t.Fatalf("empty catalog must render the 503 fallback:\n%s", out)
		}
		nginxCheck(t, env["NOMAD_TASK_DIR"], filepath.Join(env["NOMAD_TASK_DIR"], "nginx.conf"))
	})
}
