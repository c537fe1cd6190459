package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/api"
)

func vipctl(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	cmd := newRoot()
	var out, errb bytes.Buffer
	cmd.SetOut(&out)
	cmd.SetErr(&errb)
	cmd.SetArgs(args)
	err = cmd.Execute()
	return out.String(), errb.String(), err
}

func TestConfigCheckExamples(t *testing.T) {
	files, _ := filepath.Glob("../../examples/*.toml")
	if len(files) < 7 {
		t.Fatalf("found %d example configs", len(files))
	}
	out, _, err := vipctl(t, append([]string{"config", "check"}, files...)...)
	if err != nil {
		t.Fatalf("config check examples: %v\n%s", err, out)
	}
	if got := strings.Count(out, ": ok ("); got != len(files) {
		t.Errorf("%d ok lines for %d files:\n%s", got, len(files), out)
	}
}

func TestConfigCheckNamesFileLineItem(t *testing.T) {
	data, err := os.ReadFile("../../examples/bgp-n1.toml")
	if err != nil {
		t.Fatal(err)
	}
	bad := strings.Replace(string(data), "\n[node]\n", "\n[node]\nnmae = \"typo\"\n", 1)
	file := filepath.Join(t.TempDir(), "bad.toml")
	os.WriteFile(file, []byte(bad), 0o644)
	_, stderr, err := vipctl(t, "config", "check", file)
	if err == nil {
		t.Fatal("config check of a bad file succeeded")
	}
	if !strings.Contains(stderr, file+":") || !strings.Contains(stderr, "node.nmae") {
		t.Errorf("error does not name file:line and item:\n%s", stderr)
	}
}

type fakeDaemon struct{ views }

func (fakeDaemon) Status(context.Context) (api.Status, error) {
	return api.Status{Node: "n1", Phase: "active", Routing: "bgp", VIPs: []api.VIPStatus{{
		Address: netip.MustParseAddr("198.51.100.10"), Programmed: true, Advertised: true, Bound: true, Healthy: true,
		ServeState: "active", Reason: "advertised: serving", Since: time.Now().Add(-time.Minute),
		Backends: []api.Backend{{Name: "n1", Role: "primary", Local: true}, {Name: "n2", Role: "secondary"}},
	}}, Peers: []api.Peer{{Name: "192.0.2.1 AS65000", State: "established", Up: true, UptimeSeconds: 90, RoutesAdvertised: 1}}}, nil
}
func (fakeDaemon) VIPs() []api.VIP                { return nil }
func (fakeDaemon) Drain(api.DrainRequest) error   { return nil }
func (fakeDaemon) Undrain(api.DrainRequest) error { return nil }
func (fakeDaemon) Restart() error                 { return nil }

func TestStatusTable(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "vipd.sock")
	s, err := api.Listen(hclog.NewNullLogger(), sock, fakeDaemon{}, api.Options{})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	defer s.Close(context.Background())
	out, _, err := vipctl(t, "--socket", sock, "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"node n1  phase active", "198.51.100.10  yes", "advertised: serving", "1m0s ago", "n1:primary,local n2:secondary",
		"192.0.2.1 AS65000  established  1m30s   1"} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	if _, _, err := vipctl(t, "--socket", filepath.Join(t.TempDir(), "none.sock"), "status"); err == nil ||
		!strings.Contains(err.Error(), "vipd is not running") {
		t.Errorf("status without vipd: %v", err)
	}
}

func TestDoctorWithoutConfigRuns(t *testing.T) {
	out, _, err := vipctl(t, "doctor", "-c", filepath.Join(t.TempDir(), "missing.toml"))
	// An explicitly named missing config is an error; the default one is not.
	if err == nil {
		t.Fatalf("doctor with a missing -c file succeeded:\n%s", out)
	}
	out, _, err = vipctl(t, "doctor", "--json")
	var ec exitCode
	if err != nil && !asExit(err, &ec) {
		t.Fatalf("doctor: %v", err)
	}
	if !strings.Contains(out, `"checks"`) {
		t.Errorf("doctor --json printed:\n%s", out)
	}
}

// scripted is a vipd whose status moves through a list, one entry per
// Status call (the last one stays), and records drain requests.
type scripted struct {
	views
	mu     sync.Mutex
	states []api.Status
	reqs   []api.DrainRequest
}

func (s *scripted) Status(context.Context) (api.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	st := s.states[0]
	if len(s.states) > 1 {
		s.states = s.states[1:]
	}
	return st, nil
}
func (s *scripted) VIPs() []api.VIP { return nil }
func (s *scripted) Drain(r api.DrainRequest) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.reqs = append(s.reqs, r)
	return nil
}
func (s *scripted) Undrain(api.DrainRequest) error { return nil }
func (s *scripted) Restart() error                 { return nil }

func serve(t *testing.T, d api.Daemon) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "vipd.sock")
	s, err := api.Listen(hclog.NewNullLogger(), sock, d, api.Options{})
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close(context.Background()) })
	return sock
}

// The status table says ADVERTISED yes only when the claim and the
// routing daemon agree, and otherwise the word and the reason; it shows
// the drains with since when and whether they were restored at start.
func TestStatusDrainsAndWorld(t *testing.T) {
	since := time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	a := netip.MustParseAddr
	st := api.Status{Node: "n1", Phase: "drained", Routing: "bgp",
		NodeDrain:          &api.Drain{Since: since, By: "vipctl", Restored: true},
		UnconfiguredDrains: []api.VIPDrain{{Address: a("198.51.100.99"), Drain: api.Drain{Since: since, By: "vipctl"}}},
		World:              api.World{ReadAt: time.Now().Add(-time.Second), SessionsUp: 1, Resyncs: 2},
		VIPs: []api.VIPStatus{
			{Address: a("198.51.100.10"), Advertised: true, Route: "announced", RouteReason: "exported to r1", Reason: "advertised: serving"},
			{Address: a("198.51.100.20"), Advertised: true, Route: "diverged", RouteReason: "announced, but no up session exports it", Reason: "advertised: serving"},
			{Address: a("198.51.100.30"), Advertised: true, Route: "no-session", RouteReason: "no session up", Reason: "advertised: serving"},
			{Address: a("198.51.100.40"), Route: "withdrawn", RouteReason: "exported to no session", Reason: "advertised: draining",
				Drain: &api.Drain{Since: since, By: "vipctl"}},
		}}
	out, _, err := vipctl(t, "--socket", serve(t, &scripted{states: []api.Status{st}}), "status")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"node drained since 2026-12-02T10:00:00Z (restored at start)",
		"drain of 198.51.100.99 kept (not in the config; applies if it comes back) since 2026-12-02T10:00:00Z",
		"routing daemon: read 1s ago, 1 sessions up, 2 resyncs",
		"198.51.100.10  -           yes ",
		"198.51.100.20  -           diverged ",
		"[route diverged: announced, but no up session exports it]",
		"198.51.100.30  -           no-session ",
		"[route no-session: no session up]",
		"198.51.100.40  -           -  ",
		"advertised: draining (drained since 2026-12-02T10:00:00Z)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
}

// drain --wait prints each step with the time left and exits 0 once
// drained, 1 on timeout, 2 on an error.
func TestDrainWait(t *testing.T) {
	phases := func(ps ...string) []api.Status {
		var out []api.Status
		for _, p := range ps {
			out = append(out, api.Status{Node: "n1", Phase: p})
		}
		return out
	}
	d := &scripted{states: phases("active", "withdrawing", "withdrawing", "draining", "inactive", "drained")}
	out, _, err := vipctl(t, "--socket", serve(t, d), "drain", "--wait", "--timeout", "1m")
	if err != nil {
		t.Fatalf("drain --wait: %v\n%s", err, out)
	}
	for _, want := range []string{"drain of the node started", "withdrawing: routes going away, withdraw grace (1m0s left)",
		"draining: published draining", "inactive: published inactive", "drained: nothing left", "drained after"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "withdrawing:") != 1 {
		t.Errorf("a step printed more than once:\n%s", out)
	}
	if len(d.reqs) != 1 || !d.reqs[0].Node {
		t.Errorf("requests %+v, want one node drain", d.reqs)
	}

	var ec exitCode
	stuck := &scripted{states: phases("draining")}
	out, _, err = vipctl(t, "--socket", serve(t, stuck), "drain", "--wait", "--timeout", "300ms")
	if !asExit(err, &ec) || ec != 1 || !strings.Contains(out, "timed out after 300ms, still: draining") {
		t.Errorf("a drain that does not finish: %v\n%s", err, out)
	}
	_, stderr, err := vipctl(t, "--socket", filepath.Join(t.TempDir(), "none.sock"), "drain", "--wait")
	if !asExit(err, &ec) || ec != 2 || !strings.Contains(stderr, "vipd is not running") {
		t.Errorf("no vipd: %v %q", err, stderr)
	}

	// --vip: done when the route is withdrawn in the routing daemon, not
	// when the claim says so.
	a := netip.MustParseAddr("198.51.100.10")
	vipSt := func(adv bool, route, why string) api.Status {
		return api.Status{Node: "n1", Phase: "active", VIPs: []api.VIPStatus{{Address: a, Advertised: adv, Route: route, RouteReason: why}}}
	}
	v := &scripted{states: []api.Status{
		vipSt(true, "announced", "exported to r1"),
		vipSt(false, "pending", "changed: checking against the routing daemon"),
		vipSt(false, "diverged", "withdrawn, but still exported to r1"),
		vipSt(false, "withdrawn", "exported to no session"),
	}}
	out, _, err = vipctl(t, "--socket", serve(t, v), "drain", "--vip", a.String(), "--wait")
	if err != nil {
		t.Fatalf("drain --vip --wait: %v\n%s", err, out)
	}
	for _, want := range []string{"route pending (claim: withdrawn)", "route diverged (claim: withdrawn): withdrawn, but still exported to r1",
		"route withdrawn in the routing daemon: exported to no session"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if len(v.reqs) != 1 || v.reqs[0].VIP == nil || *v.reqs[0].VIP != a {
		t.Errorf("requests %+v", v.reqs)
	}
}
