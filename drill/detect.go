package drill

import (
	"bufio"
	"slices"
	"strings"
	"time"
)

// Snapshot is one observation of a set of instance names: the passing
// instances of a service in Consul, or the servers a rendered load-balancer
// config names. A failed observation has Err set and says nothing about
// membership.
type Snapshot struct {
	At      time.Time `json:"at"`
	Members []string  `json:"members"`
	Err     string    `json:"err,omitempty"`
}

// Has reports whether the snapshot names the instance.
func (s Snapshot) Has(name string) bool { return slices.Contains(s.Members, name) }

// FirstAbsent returns the time of the first successful snapshot at or after
// since that does not name victim: when it left the set. ok is false when it
// never left.
func FirstAbsent(states []Snapshot, victim string, since time.Time) (at time.Time, ok bool) {
	for _, s := range states {
		if s.Err != "" || s.At.Before(since) {
			continue
		}
		if !s.Has(victim) {
			return s.At, true
		}
	}
	return time.Time{}, false
}

// FirstPresent returns the time of the first successful snapshot at or after
// since that names victim: when it (or its replacement, which keeps the name)
// was back. ok is false when it never came back.
func FirstPresent(states []Snapshot, victim string, since time.Time) (at time.Time, ok bool) {
	for _, s := range states {
		if s.Err != "" || s.At.Before(since) {
			continue
		}
		if s.Has(victim) {
			return s.At, true
		}
	}
	return time.Time{}, false
}

// Outage is when the victim left a set and when it came back; Back is zero
// when it did not come back during the observations.
type Outage struct {
	Left time.Time
	Back time.Time
}

// FindOutage looks for the victim's first absence after since and its
// return after that. ok is false when it never left.
func FindOutage(states []Snapshot, victim string, since time.Time) (o Outage, ok bool) {
	left, ok := FirstAbsent(states, victim, since)
	if !ok {
		return Outage{}, false
	}
	o.Left = left
	o.Back, _ = FirstPresent(states, victim, left)
	return o, true
}

// HAProxyServers returns the instance names in a rendered haproxy.cfg: the
// part before "_" of each "server NAME_ADDR ADDR ..." line, in order.
func HAProxyServers(cfg string) []string {
	var names []string
	sc := bufio.NewScanner(strings.NewReader(cfg))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 3 || f[0] != "server" {
			continue
		}
		name, _, _ := strings.Cut(f[1], "_")
		names = append(names, name)
	}
	return names
}

// NginxServers returns the instance names in a rendered nginx.conf: inside
// an upstream block, each "server ADDR ...;" line is preceded by a
// "# NAME" comment. A server without such a comment is named by its address.
func NginxServers(cfg string) []string {
	var names []string
	inUpstream := false
	comment := ""
	sc := bufio.NewScanner(strings.NewReader(cfg))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "upstream ") && strings.HasSuffix(line, "{"):
			inUpstream, comment = true, ""
		case !inUpstream:
		case line == "}":
			inUpstream = false
		case strings.HasPrefix(line, "#"):
			comment = strings.TrimSpace(strings.TrimPrefix(line, "#"))
		case strings.HasPrefix(line, "server "):
			f := strings.Fields(strings.TrimSuffix(line, ";"))
			name := comment
			if name == "" && len(f) > 1 {
				name = f[1]
			}
			names = append(names, name)
			comment = ""
		}
	}
	return names
}
