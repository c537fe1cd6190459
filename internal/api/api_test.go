package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
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
	mu      sync.Mutex
	drains  []string
	lookups []LookupRequest
	// events feeds the event streams; subs counts the open ones.
	events chan Event
	subs   int
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
	if op == "restart" {
		f.drains = append(f.drains, op)
		return nil
	}
	if !req.Node && req.VIP == nil {
		s = op + " NOTHING" // the server must never pass this on
	}
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
	return startServerWith(t, Options{})
}

func startServerWith(t *testing.T, opts Options) (string, *fakeDaemon) {
	t.Helper()
	_, path, b := startServerHandle(t, opts)
	return path, b
}

func startServerHandle(t *testing.T, opts Options) (*Server, string, *fakeDaemon) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "run", "vipd.sock")
	b := &fakeDaemon{}
	s, err := Listen(hclog.NewNullLogger(), path, b, opts)
	if err != nil {
		t.Fatal(err)
	}
	go s.Serve()
	t.Cleanup(func() { s.Close(context.Background()) })
	return s, path, b
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
	if err := c.Drain(ctx, DrainRequest{Node: true}); err != nil {
		t.Fatal(err)
	}
	if err := c.Drain(ctx, DrainRequest{VIP: &a}); err != nil {
		t.Fatal(err)
	}
	if err := c.Undrain(ctx, DrainRequest{Node: true}); err != nil {
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
	_, err := Listen(hclog.NewNullLogger(), path, &fakeDaemon{}, Options{})
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
	s, err := Listen(hclog.NewNullLogger(), path, &fakeDaemon{}, Options{})
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
		NodeDrain: &Drain{Since: started.Add(-time.Hour), By: "vipctl", Restored: true},
		UnconfiguredDrains: []VIPDrain{{Address: netip.MustParseAddr("198.51.100.99"),
			Drain: Drain{Since: started.Add(-2 * time.Hour), By: "vipctl", Restored: true}}},
		StateDir:     "/var/lib/vipd",
		PhaseSince:   started.Add(time.Minute),
		PhaseEndsBy:  started.Add(2 * time.Minute),
		DrainEndsBy:  started.Add(130 * time.Second),
		ConfigLoaded: started,
		LastReload:   &Reload{At: started.Add(30 * time.Second), Error: "vipd.toml:3: node.name: required key is missing"},
		World: World{ReadAt: started.Add(2 * time.Minute), SessionsUp: 2, Resyncs: 1, ResyncError: "resyncing: boom",
			Stray: []netip.Addr{netip.MustParseAddr("198.51.100.77")}},
		VIPs: []VIPStatus{{
			Address: netip.MustParseAddr("198.51.100.10"), Configured: true, Programmed: true, Advertised: true,
			Depreferred: true, Bound: true, Healthy: true, Draining: true, Held: "no route back",
			ServeState: "draining", Reason: "serve: node draining",
			Reasons: FacetReasons{Programmed: "configured", Advertised: "draining (deprefer)", Bound: "serving", ServeState: "waiting for idle"},
			Since:   started.Add(time.Minute), LastError: "setting routes: boom",
			Backends:    []Backend{{Name: "n1", Address: netip.MustParseAddr("192.0.2.11"), Role: "secondary", Local: true}},
			Transitions: 7, Errors: 1,
			Drain: &Drain{Since: started.Add(time.Minute), By: "vipctl"},
			Route: "diverged", RouteReason: "announced, but no up session exports it",
			World:    VIPWorld{Read: true, Exported: false, Peers: []string{}},
			Diverged: true, DivergedSince: started.Add(90 * time.Second), Divergences: 3,
			Traffic: []Traffic{{Verdict: "encapsulated", Packets: 10, Bytes: 1500}},
		}},
		Peers:     []Peer{{Name: "192.0.2.1 AS65000", Address: netip.MustParseAddr("192.0.2.1"), ASN: 65000, State: "established", Up: true, UptimeSeconds: 90, RoutesAdvertised: 1}},
		Members:   []Member{{Name: "n2", Up: true, Generation: 9}, {Name: "n3"}},
		Dataplane: &Dataplane{Interface: "eth0", Attach: "auto", Counters: map[string]uint64{"xdp_tx": 5}, LoForwardingRestored: 2},
	}
	got, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	want := `{"node":"n1","phase":"draining","stopping":true,"generation":42,"config":"/etc/vipd/vipd.toml",` +
		`"started":"2026-12-01T10:00:00Z","routing":"bgp",` +
		`"node_drain":{"since":"2026-12-01T09:00:00Z","by":"vipctl","restored":true},` +
		`"unconfigured_drains":[{"address":"198.51.100.99","since":"2026-12-01T08:00:00Z","by":"vipctl","restored":true}],` +
		`"state_dir":"/var/lib/vipd","phase_since":"2026-12-01T10:01:00Z","phase_ends_by":"2026-12-01T10:02:00Z",` +
		`"drain_ends_by":"2026-12-01T10:02:10Z","config_loaded":"2026-12-01T10:00:00Z",` +
		`"last_reload":{"at":"2026-12-01T10:00:30Z","ok":false,"error":"vipd.toml:3: node.name: required key is missing"},` +
		`"world":{"read_at":"2026-12-01T10:02:00Z","sessions_up":2,"resyncs":1,` +
		`"resync_error":"resyncing: boom","stray":["198.51.100.77"]},` +
		`"vips":[{"address":"198.51.100.10","configured":true,` +
		`"programmed":true,"advertised":true,"depreferred":true,"bound":true,"rebinds":0,"healthy":true,"draining":true,` +
		`"held":"no route back","serve_state":"draining","reason":"serve: node draining","reasons":{"programmed":"configured",` +
		`"advertised":"draining (deprefer)","bound":"serving","serve_state":"waiting for idle"},"since":"2026-12-01T10:01:00Z",` +
		`"last_error":"setting routes: boom","backends":[{"name":"n1","address":"192.0.2.11","role":"secondary","local":true}],` +
		`"transitions":7,"errors":1,"drain":{"since":"2026-12-01T10:01:00Z","by":"vipctl","restored":false},` +
		`"route":"diverged","route_reason":"announced, but no up session exports it",` +
		`"world":{"read":true,"exported":false,"draining":false,"peers":[]},` +
		`"diverged":true,"diverged_since":"2026-12-01T10:01:30Z","divergences":3,` +
		`"traffic":[{"verdict":"encapsulated","packets":10,"bytes":1500}]}],` +
		`"peers":[{"name":"192.0.2.1 AS65000","address":"192.0.2.1","asn":65000,` +
		`"state":"established","up":true,"uptime_seconds":90,"routes_advertised":1}],"members":[{"name":"n2","up":true,` +
		`"generation":9},{"name":"n3","up":false}],"dataplane":{"interface":"eth0","attach":"auto","counters":{"xdp_tx":5},"lo_forwarding_restored":2}}`
	if d := cmp.Diff(want, string(got)); d != "" {
		t.Errorf("status JSON (-want +got):\n%s", d)
	}
	// Absent optional fields stay absent.
	got, err = json.Marshal(VIPStatus{Address: netip.MustParseAddr("198.51.100.10"), Backends: []Backend{}})
	if err != nil {
		t.Fatal(err)
	}
	for _, absent := range []string{`"since"`, `"held"`, `"last_error"`, `"drain"`, `"diverged_since"`, `"traffic"`} {
		if strings.Contains(string(got), absent) {
			t.Errorf("%s present in %s", absent, got)
		}
	}
	got, _ = json.Marshal(Status{})
	for _, absent := range []string{`"phase_since"`, `"phase_ends_by"`, `"drain_ends_by"`, `"last_reload"`} {
		if strings.Contains(string(got), absent) {
			t.Errorf("%s present in %s", absent, got)
		}
	}
	got, _ = json.Marshal(Peer{Name: "bgp", State: "unknown", LastError: "down"})
	if want := `{"name":"bgp","state":"unknown","up":false,"uptime_seconds":0,"routes_advertised":0,"last_error":"down"}`; string(got) != want {
		t.Errorf("peer JSON %s, want %s", got, want)
	}
}

// post sends body to path over the socket and returns the status and the
// error text.
func post(t *testing.T, sock, path, body string) (int, string) {
	t.Helper()
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Post("http://vipd"+path, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e Error
	json.NewDecoder(resp.Body).Decode(&e)
	return resp.StatusCode, e.Error
}

// Issue 10, defect 5: a node drain must be asked for explicitly. On main an
// empty POST /v1/drain drained the whole node; now it is a 400 naming what
// is missing, and so are {}, both at once, unknown keys and a bad address.
func TestDrainRequestExplicit(t *testing.T) {
	sock, d := startServer(t)
	for _, tc := range []struct {
		body     string
		code     int
		contains string
	}{
		{``, 400, `missing "node": true`},
		{"  \n", 400, `missing "node": true`},
		{`{}`, 400, `missing "node": true (the whole node) or "vip": "ADDRESS" (one VIP)`},
		{`{"node": false}`, 400, `missing "node": true`},
		{`{"node": true, "vip": "198.51.100.10"}`, 400, `"node" and "vip" both given`},
		{`{"vpi": "198.51.100.10"}`, 400, `unknown field "vpi"`},
		{`{"vip": "198.51.100"}`, 400, `decoding request`},
		{`{"node": true} {"node": true}`, 400, `more than one JSON value`},
		{`{"vip": "192.0.2.99"}`, 409, `unknown vip 192.0.2.99`},
		{`{"node": true}`, 204, ``},
		{`{"vip": "198.51.100.10"}`, 204, ``},
	} {
		for _, path := range []string{"/v1/drain", "/v1/undrain"} {
			code, msg := post(t, sock, path, tc.body)
			if code != tc.code || !strings.Contains(msg, tc.contains) {
				t.Errorf("POST %s %q: %d %q, want %d %q", path, tc.body, code, msg, tc.code, tc.contains)
			}
		}
	}
	want := []string{"drain node", "undrain node", "drain 198.51.100.10", "undrain 198.51.100.10"}
	if diff := cmp.Diff(want, d.drains); diff != "" {
		t.Errorf("daemon calls (-want +got):\n%s", diff)
	}
	// The size limit stays.
	code, msg := post(t, sock, "/v1/drain", `{"vip": "`+strings.Repeat(" ", 70<<10)+`"}`)
	if code != http.StatusRequestEntityTooLarge || !strings.Contains(msg, "over 65536 bytes") {
		t.Errorf("a 70 KiB body: %d %q", code, msg)
	}
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("counting fds: %v", err)
	}
	return len(ents)
}

// Issue 10, defect 5: a slow client must not hold a file descriptor. 200
// clients send the headers of a drain and then stall in the body, or
// never finish their headers, or idle after a request; the server cuts
// each off after its timeout. On main (no read or idle timeout) the 200
// stalled bodies held 200 fds for as long as the clients wanted.
func TestSlowClientsReleased(t *testing.T) {
	sock, _ := startServerWith(t, Options{
		ReadHeaderTimeout: 200 * time.Millisecond, ReadTimeout: 300 * time.Millisecond,
		WriteTimeout: 300 * time.Millisecond, IdleTimeout: 300 * time.Millisecond,
	})
	base := openFDs(t)
	const n = 200
	var conns []net.Conn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	for i := range n {
		c, err := net.Dial("unix", sock)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		switch i % 3 {
		case 0: // headers, then a body that never comes
			fmt.Fprintf(c, "POST /v1/drain HTTP/1.1\r\nHost: vipd\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"no")
		case 1: // headers that never end
			fmt.Fprintf(c, "GET /v1/status HTTP/1.1\r\nHost: vi")
		case 2: // a request, then idle on the kept-alive connection
			fmt.Fprintf(c, "GET /v1/vips HTTP/1.1\r\nHost: vipd\r\n\r\n")
		}
	}
	// Server side, each client holds an fd until its timeout: n on
	// the client side plus up to n on the server side.
	time.Sleep(100 * time.Millisecond)
	held := openFDs(t) - base
	deadline := time.Now().Add(5 * time.Second)
	for {
		left := openFDs(t) - base - n // the clients' own sockets stay open
		if left <= 5 {
			t.Logf("%d slow clients: %d fds over the base while they stall, %d server fds left after the timeouts", n, held, left)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d server fds still held by %d slow clients 5s after 0.3s timeouts", left, n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The server still answers.
	if _, err := NewClient(sock).Status(context.Background()); err != nil {
		t.Fatal(err)
	}
}
