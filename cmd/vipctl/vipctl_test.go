package main

import (
	"bytes"
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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

type fakeDaemon struct{}

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
