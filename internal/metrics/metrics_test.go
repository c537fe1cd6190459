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
	"github.com/vipd/vipd/routing"
)

func scrape(t *testing.T, status func(context.Context) (api.Status, error), peers func(context.Context) ([]routing.Peer, error)) string {
	t.Helper()
	srv := httptest.NewServer(Handler(NewCollector(status, peers)))
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return string(body)
}

func TestCollector(t *testing.T) {
	st := api.Status{
		Phase: "draining",
		VIPs: []api.VIPStatus{{
			Address: netip.MustParseAddr("198.51.100.10"), Programmed: true, Bound: true, Healthy: true,
			Transitions: 7, Errors: 2,
			Route: "diverged", Diverged: true, Divergences: 4,
		}},
		World:      api.World{Resyncs: 3, Error: "birdc: connection refused"},
		StateError: "drains in effect but not saved: disk full",
		Members:    []api.Member{{Name: "n2", Up: true}, {Name: "n3"}},
		Dataplane:  &api.Dataplane{Counters: map[string]uint64{"drop_loop_guard": 3}},
	}
	peers := []routing.Peer{
		{Name: "192.0.2.1 AS65000", State: "established", Up: true, Uptime: 90 * time.Second, Advertised: 1},
		{Name: "192.0.2.2 AS65000", State: "active"},
	}
	out := scrape(t, func(context.Context) (api.Status, error) { return st, nil },
		func(context.Context) ([]routing.Peer, error) { return peers, nil })
	for _, want := range []string{
		`vipd_scrape_error 0`,
		`vipd_node_draining 1`,
		`vipd_vip_facet{facet="programmed",vip="198.51.100.10"} 1`,
		`vipd_vip_facet{facet="advertised",vip="198.51.100.10"} 0`,
		`vipd_vip_facet{facet="bound",vip="198.51.100.10"} 1`,
		`vipd_vip_transitions_total{vip="198.51.100.10"} 7`,
		`vipd_vip_errors_total{vip="198.51.100.10"} 2`,
		`vipd_vip_route{state="diverged",vip="198.51.100.10"} 1`,
		`vipd_vip_diverged{vip="198.51.100.10"} 1`,
		`vipd_vip_divergences_total{vip="198.51.100.10"} 4`,
		`vipd_routing_world_error 1`,
		`vipd_routing_resyncs_total 3`,
		`vipd_state_unsaved 1`,
		`vipd_routing_peer_up{peer="192.0.2.1 AS65000"} 1`,
		`vipd_routing_peer_routes_advertised{peer="192.0.2.1 AS65000"} 1`,
		`vipd_routing_peer_uptime_seconds{peer="192.0.2.1 AS65000"} 90`,
		`vipd_routing_peer_up{peer="192.0.2.2 AS65000"} 0`,
		`vipd_routing_peers_error 0`,
		`vipd_cluster_member_up{member="n2"} 1`,
		`vipd_cluster_member_up{member="n3"} 0`,
		`vipd_dataplane_packets_total{counter="drop_loop_guard"} 3`,
		`go_goroutines`,
	} {
		if !strings.Contains(out, want+"\n") && !strings.Contains(out, want+" ") {
			t.Errorf("scrape lacks %q", want)
		}
	}
}

func TestCollectorStatusError(t *testing.T) {
	out := scrape(t, func(context.Context) (api.Status, error) { return api.Status{}, errors.New("down") },
		func(context.Context) ([]routing.Peer, error) { return nil, errors.New("bird down") })
	if !strings.Contains(out, "vipd_scrape_error 1\n") || !strings.Contains(out, "vipd_routing_peers_error 1\n") {
		t.Errorf("scrape after a status error:\n%s", out)
	}
}
