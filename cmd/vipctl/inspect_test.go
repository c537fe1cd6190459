package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
)

// views answers the read-only views for the fake daemons of these tests.
type views struct{}

var (
	addr    = netip.MustParseAddr
	vip10   = addr("198.51.100.10")
	evTime  = time.Date(2026, 12, 2, 10, 0, 1, 250e6, time.UTC)
	pfx10   = netip.MustParsePrefix("198.51.100.10/32")
	pfx53   = netip.MustParsePrefix("198.51.100.53/32")
	backend = func(name, a, role string, local bool) api.Backend {
		return api.Backend{Name: name, Address: addr(a), Role: role, Local: local}
	}
)

func (views) Routes(context.Context) (api.Routes, error) {
	return api.Routes{Routing: "bird-ospf", ClaimedKnown: true, ReadAt: evTime,
		Claimed: []api.Route{{Prefix: pfx10}, {Prefix: pfx53, Draining: true}},
		Sessions: []api.SessionRoutes{
			{Peer: api.Peer{Name: "ospf_v2 192.0.2.254", State: "full/ptp", Up: true},
				Routes: []api.Route{{Prefix: pfx10}, {Prefix: pfx53, Draining: true, Mismatch: "metric 20, want 1000"}}},
			{Peer: api.Peer{Name: "ospf_v2 192.0.2.253", State: "exstart/ptp"}, Routes: []api.Route{}},
		}}, nil
}

func (views) Table(_ context.Context, a netip.Addr) (api.Table, error) {
	if a != vip10 {
		return api.Table{}, fmt.Errorf("%s: %w", a, api.ErrUnknownVIP)
	}
	return api.Table{VIP: a, Rows: 65536, Members: []api.TableShare{
		{Backend: backend("n1", "192.0.2.11", "primary", true), PrimaryRows: 21845, SecondaryRows: 21846, Weight: 200, EffectiveWeight: 100},
		{Backend: backend("n2", "192.0.2.12", "primary", false), PrimaryRows: 43691, SecondaryRows: 21845, Weight: 200, EffectiveWeight: 200},
		{Backend: backend("n3", "192.0.2.13", "secondary", false), PrimaryRows: 0, SecondaryRows: 21845, Weight: 100, EffectiveWeight: 100},
	}}, nil
}

func (views) Lookup(_ context.Context, req api.LookupRequest) (api.Lookup, error) {
	port := req.Port
	if port == 0 {
		port = 80
	}
	return api.Lookup{VIP: req.VIP, Client: req.Client, Port: port, Protocol: "tcp", Row: 4242,
		Primary: backend("n2", "192.0.2.12", "primary", false), Secondary: backend("n1", "192.0.2.11", "primary", true)}, nil
}

func (views) Events(recent int) ([]api.Event, <-chan api.Event, func() bool) {
	ch := make(chan api.Event, 2)
	ch <- api.Event{Time: evTime, Subject: api.SubjectVIP, VIP: vip10, What: "advertised", From: "announced", To: "withdrawn", Reason: "draining"}
	ch <- api.Event{Time: evTime, Subject: api.SubjectMember, Member: "n3", What: "up", From: "true", To: "false", Reason: "its node state does not answer"}
	close(ch) // the stream ends: as if vipd stopped
	past := []api.Event{{Time: evTime, Subject: api.SubjectNode, What: "phase", From: "active", To: "withdrawing"}}
	return past[:min(recent, 1)], ch, func() bool { return false }
}

func (views) Config() (api.EffectiveConfig, error) {
	return api.EffectiveConfig{File: "/etc/vipd/vipd.toml", Loaded: evTime, TOML: "# /etc/vipd/vipd.toml as vipd runs it\n[node]\nname = \"n1\"\n"}, nil
}

func TestRoutes(t *testing.T) {
	sock := serve(t, fakeDaemon{})
	out, _, err := vipctl(t, "--socket", sock, "routes")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"claimed (written to BIRD's config): 2: 198.51.100.10/32 198.51.100.53/32(drain)",
		"ospf_v2 192.0.2.254  full/ptp     2       198.51.100.10/32 198.51.100.53/32(drain)",
		"ospf_v2 192.0.2.253  exstart/ptp  0",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("routes lacks %q:\n%s", want, out)
		}
	}
	out, _, err = vipctl(t, "--socket", sock, "routes", "-o", "wide")
	if err != nil || !strings.Contains(out, "198.51.100.53/32  yes       metric 20, want 1000") {
		t.Errorf("routes -o wide: %v\n%s", err, out)
	}
	out, _, err = vipctl(t, "--socket", sock, "routes", "-o", "json")
	var rs api.Routes
	if err != nil || json.Unmarshal([]byte(out), &rs) != nil || len(rs.Sessions) != 2 {
		t.Errorf("routes -o json: %v\n%s", err, out)
	}
	if _, _, err := vipctl(t, "--socket", sock, "routes", "-o", "yaml"); err == nil || !strings.Contains(err.Error(), "want json or wide") {
		t.Errorf("routes -o yaml: %v", err)
	}
}

func TestTable(t *testing.T) {
	sock := serve(t, fakeDaemon{})
	out, _, err := vipctl(t, "--socket", sock, "table", "198.51.100.10")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"198.51.100.10: 65536 rows", "n1      primary    21845         33.3%  21846           33.3%",
		"n2      primary    43691         66.7%", "n3      secondary  0             0.0%"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	// Weights: each member's next to its share of the primaries' weight;
	// n1 is ramping up (slow start), n3 is a second hop only.
	for _, want := range []string{"SHARE  WEIGHT", "100/200 (slow start)  33.3%", "200                   66.7%", "100                   -"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	out, _, err = vipctl(t, "--socket", sock, "table", "198.51.100.10", "-o", "wide")
	if err != nil || !strings.Contains(out, "n1      192.0.2.11  primary    yes") {
		t.Errorf("table -o wide: %v\n%s", err, out)
	}
	if _, _, err := vipctl(t, "--socket", sock, "table", "198.51.100.99"); err == nil || !strings.Contains(err.Error(), "unknown vip") {
		t.Errorf("table of an unknown VIP: %v", err)
	}
	if _, _, err := vipctl(t, "--socket", sock, "table", "web"); err == nil || !strings.Contains(err.Error(), "not an IP address") {
		t.Errorf("table web: %v", err)
	}
}

func TestLookup(t *testing.T) {
	sock := serve(t, fakeDaemon{})
	out, _, err := vipctl(t, "--socket", sock, "lookup", "198.51.100.10", "203.0.113.9:40000")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"198.51.100.10 tcp/80 from 203.0.113.9:40000: row 4242",
		"primary    n2 (192.0.2.12)  new connections", "secondary  n1 (192.0.2.11), this node"} {
		if !strings.Contains(out, want) {
			t.Errorf("lookup lacks %q:\n%s", want, out)
		}
	}
	out, _, err = vipctl(t, "--socket", sock, "lookup", "198.51.100.10", "2001:db8::9", "--port", "443", "-o", "json")
	var l api.Lookup
	if err != nil || json.Unmarshal([]byte(out), &l) != nil || l.Port != 443 || l.Client != netip.MustParseAddrPort("[2001:db8::9]:0") {
		t.Errorf("lookup -o json: %v %+v\n%s", err, l, out)
	}
	for _, args := range [][]string{{"198.51.100.10", "nope"}, {"198.51.100.10", "203.0.113.9", "--protocol", "sctp"}} {
		if _, _, err := vipctl(t, append([]string{"--socket", sock, "lookup"}, args...)...); err == nil {
			t.Errorf("lookup %q: no error", args)
		}
	}
}

func TestEvents(t *testing.T) {
	sock := serve(t, fakeDaemon{})
	out, _, err := vipctl(t, "--socket", sock, "events", "--recent", "5", "-o", "wide")
	if err == nil || !strings.Contains(err.Error(), "ended the event stream") {
		t.Errorf("events after vipd ended the stream: %v", err)
	}
	for _, want := range []string{
		"2026-12-02T10:00:01.25Z node phase active -> withdrawing",
		"2026-12-02T10:00:01.25Z 198.51.100.10 advertised announced -> withdrawn: draining",
		"2026-12-02T10:00:01.25Z member n3 up true -> false: its node state does not answer",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("events lacks %q:\n%s", want, out)
		}
	}
	out, _, _ = vipctl(t, "--socket", sock, "events", "-o", "json")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var e api.Event
	if len(lines) != 2 || json.Unmarshal([]byte(lines[0]), &e) != nil || e.VIP != vip10 {
		t.Errorf("events -o json:\n%s", out)
	}
}

func TestConfigShow(t *testing.T) {
	sock := serve(t, fakeDaemon{})
	out, _, err := vipctl(t, "--socket", sock, "config", "show")
	if err != nil || !strings.HasPrefix(out, "# /etc/vipd/vipd.toml as vipd runs it\n[node]") {
		t.Errorf("config show: %v\n%s", err, out)
	}
	// Offline, from a file: the default filled in, no vipd needed.
	out, _, err = vipctl(t, "--socket", filepath.Join(t.TempDir(), "none.sock"), "config", "show", "-c", "../../examples/bgp-n1.toml")
	if err != nil || !strings.Contains(out, `poll_interval = "1s"`) || !strings.Contains(out, "[[routing.bgp.neighbor]]") {
		t.Errorf("config show -c: %v\n%s", err, out)
	}
}

// TestOutputEverywhere: every listing takes -o json and -o wide.
func TestOutputEverywhere(t *testing.T) {
	sock := serve(t, fakeDaemon{})
	for _, args := range [][]string{{"status"}, {"vips"}, {"routes"}, {"table", "198.51.100.10"},
		{"lookup", "198.51.100.10", "203.0.113.1"}, {"config", "show"}} {
		for _, o := range []string{"json", "wide"} {
			out, _, err := vipctl(t, append([]string{"--socket", sock}, append(args, "-o", o)...)...)
			if err != nil {
				t.Errorf("%v -o %s: %v", args, o, err)
				continue
			}
			if o == "json" && !json.Valid([]byte(out)) {
				t.Errorf("%v -o json is not JSON:\n%s", args, out)
			}
		}
	}
	out, _, err := vipctl(t, "doctor", "-o", "json")
	var ec exitCode
	if (err != nil && !asExit(err, &ec)) || !json.Valid([]byte(out)) {
		t.Errorf("doctor -o json: %v\n%s", err, out)
	}
}

// TestCompletion: VIP arguments and flags complete from vipd.
func TestCompletion(t *testing.T) {
	sock := serve(t, vipsDaemon{})
	for _, args := range [][]string{{"table", ""}, {"lookup", ""}, {"drain", "--vip", ""}} {
		out, _, err := vipctl(t, append([]string{"--socket", sock, "__complete"}, args...)...)
		if err != nil || !strings.Contains(out, "198.51.100.10\tweb") {
			t.Errorf("completing %q: %v\n%s", args, err, out)
		}
	}
	out, _, _ := vipctl(t, "--socket", sock, "__complete", "routes", "-o", "")
	if !strings.Contains(out, "json") || !strings.Contains(out, "wide") {
		t.Errorf("completing -o:\n%s", out)
	}
	out, _, _ = vipctl(t, "__complete", "completion", "")
	if !strings.Contains(out, "bash") || !strings.Contains(out, "zsh") {
		t.Errorf("completing completion:\n%s", out)
	}
}

// vipsDaemon lists one VIP.
type vipsDaemon struct{ fakeDaemon }

func (vipsDaemon) VIPs() []api.VIP {
	return []api.VIP{{Name: "web", Address: vip10, Services: []string{"tcp/80"}}}
}

// TestStatusTimeLeftAndReload: status says how long a node drain has left
// at most, and that the last reload was refused.
func TestStatusTimeLeftAndReload(t *testing.T) {
	now := time.Now()
	st := api.Status{Node: "n1", Phase: "draining", Routing: "bgp",
		PhaseSince: now.Add(-12 * time.Second), PhaseEndsBy: now.Add(48 * time.Second), DrainEndsBy: now.Add(58 * time.Second),
		LastReload: &api.Reload{At: evTime, Error: "vipd.toml:3: node.name: required key is missing"}}
	out, _, err := vipctl(t, "--socket", serve(t, &scripted{states: []api.Status{st}}), "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"drain: phase draining for 12s, this step ends within 48s, the drain within 58s (by ",
		"LAST RELOAD REFUSED at 2026-12-02T10:00:01Z (the previous config keeps running): vipd.toml:3: node.name: required key is missing"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}
