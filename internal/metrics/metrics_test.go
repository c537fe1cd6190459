package metrics

import (
	"context"
	"errors"
	"io"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/buildinfo"
	"github.com/vipd/vipd/routing"
)

func scrapeWith(t *testing.T, src Sources, checks *Checks) string {
	t.Helper()
	h := Handler(NewCollector(src))
	if checks != nil {
		h = Handler(NewCollector(src), checks)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func has(t *testing.T, out string, want ...string) {
	t.Helper()
	for _, w := range want {
		if !strings.Contains(out, w+"\n") && !strings.Contains(out, w+" ") {
			t.Errorf("scrape lacks %q", w)
		}
	}
}

func TestCollector(t *testing.T) {
	loaded := time.Unix(1764583200, 500e6)
	st := api.Status{
		Phase: "draining", Stopping: true, ConfigLoaded: loaded,
		LastReload: &api.Reload{At: loaded.Add(time.Minute), Error: "refused"},
		VIPs: []api.VIPStatus{{
			Address: netip.MustParseAddr("198.51.100.10"), Configured: true, Programmed: true, Bound: true, Healthy: true,
			Draining: true, Held: "no route back", ServeState: "draining",
			Backends:    []api.Backend{{Name: "n1", Role: "secondary"}, {Name: "n2", Role: "primary"}, {Name: "n3", Role: "primary"}},
			Transitions: 7, Errors: 2,
			Route: "diverged", Diverged: true, Divergences: 4, Rebinds: 5,
			Traffic: []api.Traffic{{Verdict: "encapsulated", Packets: 10, Bytes: 1500}},
		}},
		World:      api.World{Resyncs: 3, Error: "birdc: connection refused"},
		StateError: "drains in effect but not saved: disk full",
		Members:    []api.Member{{Name: "n2", Up: true}, {Name: "n3"}},
		Dataplane: &api.Dataplane{LoForwardingRestored: 2, Counters: map[string]uint64{
			"drop_loop_guard": 3, "director_tx": 100, "director_icmp": 5, "director_local_second_chance": 6,
		}},
	}
	peers := []routing.Peer{
		{Name: "192.0.2.1 AS65000", State: "established", Up: true, Uptime: 90 * time.Second, Advertised: 1},
		{Name: "192.0.2.2 AS65000", State: "active"},
	}
	out := scrapeWith(t, Sources{
		Status:   func(context.Context) (api.Status, error) { return st, nil },
		Peers:    func(context.Context) ([]routing.Peer, error) { return peers, nil },
		Protocol: ProtocolOf(routing.ModeBGP),
	}, nil)
	bi := buildinfo.Get()
	has(t, out,
		`vipd_build_info{goversion="`+bi.GoVersion+`",revision="`+bi.Revision+`",version="`+bi.Version+`"} 1`,
		`vipd_status_error 0`,
		`vipd_config_last_reload_successful 0`,
		`vipd_config_last_reload_success_timestamp_seconds 1.7645832005e+09`,
		`vipd_node_drain_phase{phase="draining"} 1`,
		`vipd_node_drain_phase{phase="active"} 0`,
		`vipd_node_drain_phase{phase="drained"} 0`,
		`vipd_node_stopping 1`,
		`vipd_vip_configured{vip="198.51.100.10"} 1`,
		`vipd_vip_programmed{vip="198.51.100.10"} 1`,
		`vipd_vip_advertised{vip="198.51.100.10"} 0`,
		`vipd_vip_bound{vip="198.51.100.10"} 1`,
		`vipd_vip_healthy{vip="198.51.100.10"} 1`,
		`vipd_vip_draining{vip="198.51.100.10"} 1`,
		`vipd_vip_held{vip="198.51.100.10"} 1`,
		`vipd_vip_serve_state{state="draining",vip="198.51.100.10"} 1`,
		`vipd_vip_serve_state{state="active",vip="198.51.100.10"} 0`,
		`vipd_vip_backends{role="primary",vip="198.51.100.10"} 2`,
		`vipd_vip_backends{role="secondary",vip="198.51.100.10"} 1`,
		`vipd_vip_transitions_total{vip="198.51.100.10"} 7`,
		`vipd_vip_errors_total{vip="198.51.100.10"} 2`,
		`vipd_vip_route{state="diverged",vip="198.51.100.10"} 1`,
		`vipd_vip_diverged{vip="198.51.100.10"} 1`,
		`vipd_vip_divergences_total{vip="198.51.100.10"} 4`,
		`vipd_vip_rebinds_total{vip="198.51.100.10"} 5`,
		`vipd_vip_packets_total{verdict="encapsulated",vip="198.51.100.10"} 10`,
		`vipd_vip_bytes_total{verdict="encapsulated",vip="198.51.100.10"} 1500`,
		`vipd_routing_world_error 1`,
		`vipd_routing_resyncs_total 3`,
		`vipd_state_unsaved 1`,
		`vipd_routing_session_up{peer="192.0.2.1 AS65000",protocol="bgp"} 1`,
		`vipd_routing_session_routes_advertised{peer="192.0.2.1 AS65000",protocol="bgp"} 1`,
		`vipd_routing_session_uptime_seconds{peer="192.0.2.1 AS65000",protocol="bgp"} 90`,
		`vipd_routing_session_up{peer="192.0.2.2 AS65000",protocol="bgp"} 0`,
		`vipd_routing_sessions_error 0`,
		`vipd_cluster_member_up{member="n2"} 1`,
		`vipd_cluster_member_up{member="n3"} 0`,
		`vipd_dataplane_drops_total{reason="loop_guard"} 3`,
		`vipd_dataplane_packets_total{verdict="director_tx"} 100`,
		`vipd_dataplane_icmp_steered_total 5`,
		`vipd_dataplane_local_second_chance_total 6`,
		`vipd_dataplane_lo_forwarding_restored_total 2`,
		`vipd_dataplane_counters_error 0`,
		`go_goroutines`,
	)
	// One family per fact: drops, the steered ICMP and the local second
	// chance are not verdicts too.
	for _, bad := range []string{`verdict="drop_`, `verdict="director_icmp"`, `verdict="director_local_second_chance"`,
		`vipd_vip_facet`, `vipd_routing_peer_`, `vipd_scrape_error`, `vipd_node_draining`} {
		if strings.Contains(out, bad) {
			t.Errorf("scrape has %q", bad)
		}
	}
}

func TestCollectorErrors(t *testing.T) {
	out := scrapeWith(t, Sources{
		Status: func(context.Context) (api.Status, error) { return api.Status{}, errors.New("down") },
		Peers:  func(context.Context) ([]routing.Peer, error) { return nil, errors.New("bird down") },
	}, nil)
	has(t, out, "vipd_status_error 1", "vipd_routing_sessions_error 1")
	if !strings.Contains(out, "\nvipd_build_info{") {
		t.Error("no vipd_build_info when the status fails")
	}
	out = scrapeWith(t, Sources{
		Status: func(context.Context) (api.Status, error) {
			return api.Status{Dataplane: &api.Dataplane{Error: "closed"}}, nil
		},
		Peers: func(context.Context) ([]routing.Peer, error) { return nil, nil },
	}, nil)
	has(t, out, "vipd_dataplane_counters_error 1", "vipd_config_last_reload_successful 1")
}

func TestProtocolOf(t *testing.T) {
	if ProtocolOf(routing.ModeBGP) != "bgp" || ProtocolOf(routing.ModeBirdOSPF) != "ospf" {
		t.Errorf("ProtocolOf: %q %q", ProtocolOf(routing.ModeBGP), ProtocolOf(routing.ModeBirdOSPF))
	}
}

// TestChecks: every check counts under its result and its duration lands
// in the histogram; both results exist from the first check on; a VIP a
// reload removed loses its series, and a late check of it brings none back.
func TestChecks(t *testing.T) {
	c := NewChecks()
	a, b := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("198.51.100.20")
	c.Retain(map[netip.Addr]bool{a: true, b: true})
	c.Observe(a, true, 2*time.Millisecond)
	c.Observe(a, true, 3*time.Millisecond)
	c.Observe(a, false, time.Second)
	c.Observe(b, true, time.Millisecond)
	src := Sources{
		Status: func(context.Context) (api.Status, error) { return api.Status{}, nil },
		Peers:  func(context.Context) ([]routing.Peer, error) { return nil, nil },
	}
	out := scrapeWith(t, src, c)
	has(t, out,
		`vipd_health_checks_total{result="success",vip="198.51.100.10"} 2`,
		`vipd_health_checks_total{result="failure",vip="198.51.100.10"} 1`,
		`vipd_health_checks_total{result="failure",vip="198.51.100.20"} 0`,
		`vipd_health_check_duration_seconds_count{vip="198.51.100.10"} 3`,
		`vipd_health_check_duration_seconds_bucket{vip="198.51.100.10",le="0.0025"} 1`,
		`vipd_health_check_duration_seconds_bucket{vip="198.51.100.10",le="1"} 3`,
	)
	c.Retain(map[netip.Addr]bool{a: true})
	c.Observe(b, false, time.Millisecond) // a probe that finished after the reload
	out = scrapeWith(t, src, c)
	if strings.Contains(out, "198.51.100.20") {
		t.Errorf("a removed VIP's check series remain:\n%s", out)
	}
	has(t, out, `vipd_health_checks_total{result="success",vip="198.51.100.10"} 2`)
}
