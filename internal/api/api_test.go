package api

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
)

type fakeDaemon struct {
	mu     sync.Mutex
	drains []string
}

func (f *fakeDaemon) Status(context.Context) (Status, error) {
	return Status{Node: "n1", Phase: "active", VIPs: []VIPStatus{{
		Address: netip.MustParseAddr("198.51.100.10"), Programmed: true, Advertised: true, Bound: true, Reason: "serving",
	}}}, nil
}

func (f *fakeDaemon) VIPs() []VIP {
	return []VIP{{Name: "web", Address: netip.MustParseAddr("198.51.100.10"), Services: []string{"tcp/80"}}}
}

func (f *fakeDaemon) record(op string, req DrainRequest) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	s := op + " node"
	if req.VIP != nil {
		if req.VIP.String() == "192.0.2.99" {
			return errors.New("unknown vip 192.0.2.99")
		}
		s = op + " " + req.VIP.String()
	}
	f.drains = append(f.drains, s)
	return nil
}

func (f *fakeDaemon) Drain(r DrainRequest) error   { return f.record("drain", r) }
func (f *fakeDaemon) Undrain(r DrainRequest) error { return f.record("undrain", r) }
func (f *fakeDaemon) Restart() error               { return f.record("restart", DrainRequest{}) }

func startServer(t *testing.T) (string, *fakeDaemon) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "vipd.sock")
	b := &fakeDaemon{}
	s, err := Listen(hclog.NewNullLogger(), path, b)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close(context.Background()) })
	return path, b
}

func TestRoundTrip(t *testing.T) {
	path, b := startServer(t)
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("socket mode %v, want 0600", fi.Mode().Perm())
	}
	c := NewClient(path)
	ctx := context.Background()
	st, err := c.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Node != "n1" || len(st.VIPs) != 1 || !st.VIPs[0].Advertised {
		t.Errorf("status = %+v", st)
	}
	vips, err := c.VIPs(ctx)
	if err != nil || len(vips) != 1 || vips[0].Name != "web" {
		t.Errorf("vips = %+v, %v", vips, err)
	}
	a := netip.MustParseAddr("198.51.100.10")
	if err := c.Drain(ctx, DrainRequest{}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx, DrainRequest{VIP: &a}); err != nil {
		t.Fatal(err)
	}
	if err := c.Undrain(ctx, DrainRequest{}); err != nil {
		t.Fatal(err)
	}
	bad := netip.MustParseAddr("192.0.2.99")
	err = c.Drain(ctx, DrainRequest{VIP: &bad})
	if err == nil || !strings.Contains(err.Error(), "unknown vip 192.0.2.99") {
		t.Errorf("drain of unknown vip: %v", err)
	}
	want := []string{"drain node", "drain 198.51.100.10", "undrain node"}
	if d := cmp.Diff(want, b.drains); d != "" {
		t.Errorf("daemon calls (-want +got):\n%s", d)
	}
}

func TestSecondServerRefused(t *testing.T) {
	path, _ := startServer(t)
	_, err := Listen(hclog.NewNullLogger(), path, &fakeDaemon{})
	if !errors.Is(err, ErrAlreadyRunning) {
		t.Fatalf("second Listen: %v, want ErrAlreadyRunning", err)
	}
	// The first server still answers.
	if _, err := NewClient(path).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}

func TestStaleSocketReplaced(t *testing.T) {
	path := filepath.Join(t.TempDir(), "vipd.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close() // the file stays, nobody listens: a crashed vipd
	s, err := Listen(hclog.NewNullLogger(), path, &fakeDaemon{})
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	s.Close(context.Background())
}

func TestClientErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := NewClient(filepath.Join(dir, "none.sock")).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "vipd is not running: no socket at") {
		t.Errorf("missing socket: %v", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	_, err = NewClient(stale).Status(context.Background())
	if err == nil || !strings.Contains(err.Error(), "stale socket") {
		t.Errorf("stale socket: %v", err)
	}
}

// TestStatusJSON pins the wire format docs/api.md documents: a change here
// is a change of a stable interface.
func TestStatusJSON(t *testing.T) {
	started := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	st := Status{
		Node: "n1", Phase: "draining", Stopping: true, Generation: 42, Config: "/etc/vipd/vipd.toml",
		Started: started, Routing: "bgp",
		VIPs: []VIPStatus{{
			Address: netip.MustParseAddr("198.51.100.10"), Configured: true, Programmed: true, Advertised: true,
			Depreferred: true, Bound: true, Healthy: true, Draining: true, Held: "no route back",
			ServeState: "draining", Reason: "serve: node draining",
			Reasons: FacetReasons{Programmed: "configured", Advertised: "draining (deprefer)", Bound: "serving", ServeState: "waiting for idle"},
			Since:   started.Add(time.Minute), LastError: "setting routes: boom",
			Backends:    []Backend{{Name: "n1", Address: netip.MustParseAddr("192.0.2.11"), Role: "secondary", Local: true}},
			Transitions: 7, Errors: 1,
		}},
		Peers:     []Peer{{Name: "192.0.2.1 AS65000", Address: netip.MustParseAddr("192.0.2.1"), ASN: 65000, State: "established", Up: true, UptimeSeconds: 90, RoutesAdvertised: 1}},
		Members:   []Member{{Name: "n2", Up: true, Generation: 9}, {Name: "n3"}},
		Dataplane: &Dataplane{Interface: "eth0", Attach: "auto", Counters: map[string]uint64{"xdp_tx": 5}},
	}
	got, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"node":"n1","phase":"draining","stopping":true,"generation":42,"config":"/etc/vipd/vipd.toml",` +
		`"started":"2026-12-01T10:00:00Z","routing":"bgp","vips":[{"address":"198.51.100.10","configured":true,` +
		`"programmed":true,"advertised":true,"depreferred":true,"bound":true,"healthy":true,"draining":true,` +
		`"held":"no route back","serve_state":"draining","reason":"serve: node draining","reasons":{"programmed":"configured",` +
		`"advertised":"draining (deprefer)","bound":"serving","serve_state":"waiting for idle"},"since":"2026-12-01T10:01:00Z",` +
		`"last_error":"setting routes: boom","backends":[{"name":"n1","address":"192.0.2.11","role":"secondary","local":true}],` +
		`"transitions":7,"errors":1}],"peers":[{"name":"192.0.2.1 AS65000","address":"192.0.2.1","asn":65000,` +
		`"state":"established","up":true,"uptime_seconds":90,"routes_advertised":1}],"members":[{"name":"n2","up":true,` +
		`"generation":9},{"name":"n3","up":false}],"dataplane":{"interface":"eth0","attach":"auto","counters":{"xdp_tx":5}}}`
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("status JSON (-want +got):\n%s", d)
	}
	// Absent optional fields stay absent.
	got, err = json.Marshal(VIPStatus{Address: netip.MustParseAddr("198.51.100.10"), Backends: []Backend{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{`"since"`, `"held"`, `"last_error"`} {
		if strings.Contains(string(got), absent) {
			t.Errorf("%s present in %s", absent, got)
		}
	}
	got, _ = json.Marshal(Peer{Name: "bgp", State: "unknown", LastError: "down"})
	if want := `{"name":"bgp","state":"unknown","up":false,"uptime_seconds":0,"routes_advertised":0,"last_error":"down"}`; string(got) != want {
		t.Errorf("peer JSON %s, want %s", got, want)
	}
}
