package api

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

var (
	vipWeb     = netip.MustParseAddr("198.51.100.10")
	vipUnknown = netip.MustParseAddr("192.0.2.99")
	vipNoDP    = netip.MustParseAddr("192.0.2.98")
)

func (f *fakeDaemon) Routes(context.Context) (Routes, error) {
	p := netip.MustParsePrefix("198.51.100.10/32")
	return Routes{Routing: "bgp", Claimed: []Route{{Prefix: p}}, ClaimedKnown: true,
		Sessions: []SessionRoutes{{Peer: Peer{Name: "192.0.2.1 AS65000", State: "established", Up: true}, Routes: []Route{{Prefix: p}}}}}, nil
}

func (f *fakeDaemon) Table(_ context.Context, a netip.Addr) (Table, error) {
	if a != vipWeb {
		return Table{}, fmt.Errorf("%s: %w", a, ErrUnknownVIP)
	}
	return Table{VIP: a, Rows: 65536, Members: []TableShare{{Backend: Backend{Name: "n1", Role: "primary"}, PrimaryRows: 65536, SecondaryRows: 65536}}}, nil
}

func (f *fakeDaemon) Lookup(_ context.Context, req LookupRequest) (Lookup, error) {
	f.mu.Lock()
	f.lookups = append(f.lookups, req)
	f.mu.Unlock()
	switch req.VIP {
	case vipUnknown:
		return Lookup{}, fmt.Errorf("%s: %w", req.VIP, ErrUnknownVIP)
	case vipNoDP:
		return Lookup{}, fmt.Errorf("looking up: %w", ErrNotSupported)
	}
	return Lookup{VIP: req.VIP, Client: req.Client, Port: 80, Protocol: "tcp", Row: 7,
		Primary: Backend{Name: "n2", Role: "primary"}, Secondary: Backend{Name: "n3", Role: "primary"}}, nil
}

func (f *fakeDaemon) Events(recent int) ([]Event, <-chan Event, func() bool) {
	f.mu.Lock()
	f.subs++
	ch := f.events
	f.mu.Unlock()
	past := []Event{{Subject: SubjectNode, What: "phase", From: "active", To: "withdrawing"}}
	return past[:min(recent, 1)], ch, func() bool {
		f.mu.Lock()
		f.subs--
		f.mu.Unlock()
		return false
	}
}

func (f *fakeDaemon) Config() (EffectiveConfig, error) {
	return EffectiveConfig{File: "/etc/vipd/vipd.toml", TOML: "[node]\nname = \"n1\"\n"}, nil
}

func TestInspectRoundTrip(t *testing.T) {
	path, f := startServer(t)
	c := NewClient(path)
	ctx := context.Background()
	rs, err := c.Routes(ctx)
	if err != nil || len(rs.Sessions) != 1 || len(rs.Sessions[0].Routes) != 1 || !rs.ClaimedKnown {
		t.Errorf("routes %+v, %v", rs, err)
	}
	tb, err := c.Table(ctx, vipWeb)
	if err != nil || tb.Rows != 65536 || len(tb.Members) != 1 || tb.Members[0].Name != "n1" {
		t.Errorf("table %+v, %v", tb, err)
	}
	if _, err := c.Table(ctx, vipUnknown); err == nil || !strings.Contains(err.Error(), "unknown vip") {
		t.Errorf("table of an unknown VIP: %v", err)
	}
	l, err := c.Lookup(ctx, LookupRequest{VIP: vipWeb, Client: netip.MustParseAddrPort("[2001:db8::7]:40000"), Protocol: "tcp"})
	if err != nil || l.Row != 7 || l.Primary.Name != "n2" {
		t.Errorf("lookup %+v, %v", l, err)
	}
	if _, err := c.Lookup(ctx, LookupRequest{VIP: vipNoDP, Client: netip.MustParseAddrPort("203.0.113.1:0")}); err == nil ||
		!strings.Contains(err.Error(), "not supported") {
		t.Errorf("lookup without dataplane support: %v", err)
	}
	want := []LookupRequest{
		{VIP: vipWeb, Client: netip.MustParseAddrPort("[2001:db8::7]:40000"), Protocol: "tcp"},
		{VIP: vipNoDP, Client: netip.MustParseAddrPort("203.0.113.1:0")},
	}
	if d := cmp.Diff(want, f.lookups, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
		cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); d != "" {
		t.Errorf("lookups reaching the daemon (-want +got):\n%s", d)
	}
	cfg, err := c.Config(ctx)
	if err != nil || !strings.Contains(cfg.TOML, `name = "n1"`) {
		t.Errorf("config %+v, %v", cfg, err)
	}
}

// getCode sends a GET over the socket and returns the status code.
func getCode(t *testing.T, sock, path string) int {
	t.Helper()
	hc := http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	resp, err := hc.Get("http://vipd" + path)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestInspectBadRequests: malformed queries are 400 and never reach the
// daemon; unknown VIPs 404; a lookup the dataplane cannot answer 501;
// the views are read-only (POST is 405).
func TestInspectBadRequests(t *testing.T) {
	path, f := startServer(t)
	for _, tc := range []struct {
		path string
		code int
	}{
		{"/v1/table", 400},
		{"/v1/table?vip=nope", 400},
		{"/v1/table?vip=192.0.2.99", 404},
		{"/v1/lookup?vip=198.51.100.10", 400},
		{"/v1/lookup?vip=198.51.100.10&client=nope", 400},
		{"/v1/lookup?vip=198.51.100.10&client=203.0.113.1&port=0", 400},
		{"/v1/lookup?vip=198.51.100.10&client=203.0.113.1&port=70000", 400},
		{"/v1/lookup?vip=198.51.100.10&client=203.0.113.1&protocol=sctp", 400},
		{"/v1/lookup?vip=192.0.2.99&client=203.0.113.1", 404},
		{"/v1/lookup?vip=192.0.2.98&client=203.0.113.1", 501},
		{"/v1/lookup?vip=198.51.100.10&client=203.0.113.1:5&port=443&protocol=udp", 200},
		{"/v1/events?recent=x", 400},
		{"/v1/routes", 200},
		{"/v1/config", 200},
	} {
		if got := getCode(t, path, tc.path); got != tc.code {
			t.Errorf("GET %s = %d, want %d", tc.path, got, tc.code)
		}
	}
	if n := len(f.lookups); n != 3 {
		t.Errorf("%d lookups reached the daemon, want the 3 well-formed ones", n)
	}
	for _, p := range []string{"/v1/routes", "/v1/table?vip=198.51.100.10", "/v1/events", "/v1/config"} {
		if code, _ := post(t, path, p, "{}"); code != http.StatusMethodNotAllowed {
			t.Errorf("POST %s = %d, want 405", p, code)
		}
	}
}

// TestEventStream: the stream replays what it is asked for, delivers each
// event as it happens, outlives the server's read and write timeouts, and
// ends when the server closes (a stream must not hold up vipd's exit).
func TestEventStream(t *testing.T) {
	path, f := startServerWith(t, Options{ReadTimeout: 200 * time.Millisecond, WriteTimeout: 200 * time.Millisecond,
		ReadHeaderTimeout: 200 * time.Millisecond})
	f.events = make(chan Event, 4)
	c := NewClient(path)
	got := make(chan Event, 8)
	done := make(chan error, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		done <- c.Events(ctx, 5, func(e Event) error { got <- e; return nil })
	}()
	first := <-got
	if first.What != "phase" || first.To != "withdrawing" {
		t.Errorf("replayed %+v", first)
	}
	time.Sleep(500 * time.Millisecond) // past both timeouts
	f.events <- Event{Subject: SubjectVIP, VIP: vipWeb, What: "advertised", From: "announced", To: "withdrawn", Reason: "draining"}
	select {
	case e := <-got:
		if e.VIP != vipWeb || e.To != "withdrawn" {
			t.Errorf("streamed %+v", e)
		}
	case err := <-done:
		t.Fatalf("stream ended before the event: %v", err)
	case <-time.After(5 * time.Second):
		t.Fatal("event not delivered")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("stream ended by the reader: %v", err)
	}
	waitSubs := func(n int) {
		deadline := time.Now().Add(5 * time.Second)
		for {
			f.mu.Lock()
			subs := f.subs
			f.mu.Unlock()
			if subs == n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d subscriptions open, want %d", subs, n)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	waitSubs(0)

	// A server that closes ends its streams (Close would hang otherwise).
	s2, path2, f2 := startServerHandle(t, Options{})
	f2.events = make(chan Event)
	srvDone := make(chan error, 1)
	go func() {
		srvDone <- NewClient(path2).Events(context.Background(), 0, func(Event) error { return nil })
	}()
	f = f2
	waitSubs(1)
	closed := make(chan error, 1)
	go func() { closed <- s2.Close(context.Background()) }()
	select {
	case <-closed:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs on an open event stream")
	}
	if err := <-srvDone; err == nil || !strings.Contains(err.Error(), "ended the event stream") {
		t.Errorf("client after the server closed: %v", err)
	}
}
