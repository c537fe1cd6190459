package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"
	"github.com/prometheus/client_golang/prometheus"
)

// PeerStatus is one neighbor's session as shown by `vipctl status` and the
// metrics.
type PeerStatus struct {
	Address netip.Addr `json:"address"`
	ASN     uint32     `json:"asn"`
	// State is the BGP FSM state in lower case: "idle", "connect",
	// "active", "opensent", "openconfirm", "established".
	State string `json:"state"`
	// Uptime is how long the session has been established (0 when not).
	Uptime time.Duration `json:"uptime"`
	// Advertised is the number of routes in the neighbor's adj-rib-out.
	Advertised uint64 `json:"routes_advertised"`
	// LastError is the last warning or error GoBGP logged about the peer
	// (notification sent or received, connection refused, hold timer
	// expired, ...), or the reason of the last session drop.
	LastError string `json:"last_error,omitempty"`
}

// Peers returns the status of every configured neighbor, sorted by address.
// It returns nil when the speaker is not running.
func (s *Speaker) Peers(ctx context.Context) ([]PeerStatus, error) {
	s.mu.Lock()
	running := s.started && !s.stopped
	s.mu.Unlock()
	if !running {
		return nil, ErrNotRunning
	}
	var out []PeerStatus
	err := s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Conf == nil || p.State == nil {
			return
		}
		addr, _ := netip.ParseAddr(p.Conf.NeighborAddress)
		st := PeerStatus{
			Address: addr,
			ASN:     p.Conf.PeerAsn,
			State:   strings.ToLower(strings.TrimPrefix(p.State.SessionState.String(), "PeerState_")),
		}
		if p.State.SessionState == api.PeerState_ESTABLISHED && p.Timers != nil && p.Timers.State != nil && p.Timers.State.Uptime != nil {
			st.Uptime = time.Since(p.Timers.State.Uptime.AsTime()).Truncate(time.Second)
		}
		s.errMu.Lock()
		st.LastError = s.lastErr[addr]
		s.errMu.Unlock()
		out = append(out, st)
	})
	if err != nil {
		return nil, fmt.Errorf("listing peers: %w", err)
	}
	for i := range out {
		if out[i].State != "established" {
			continue
		}
		n, err := s.advertised(ctx, out[i].Address)
		if err != nil {
			return nil, err
		}
		out[i].Advertised = n
	}
	slices.SortFunc(out, func(a, b PeerStatus) int { return a.Address.Compare(b.Address) })
	return out, nil
}

func (s *Speaker) setPeerErr(peer netip.Addr, msg string) {
	s.errMu.Lock()
	s.lastErr[peer] = msg
	s.errMu.Unlock()
}

var (
	descPeerUp = prometheus.NewDesc("vipd_bgp_peer_established",
		"1 if the BGP session with the peer is established, else 0.", []string{"peer", "state"}, nil)
	descPeerUptime = prometheus.NewDesc("vipd_bgp_peer_uptime_seconds",
		"How long the BGP session has been established.", []string{"peer"}, nil)
	descPeerAdvertised = prometheus.NewDesc("vipd_bgp_peer_routes_advertised",
		"Routes in the peer's adj-rib-out.", []string{"peer"}, nil)
	descAnnounced = prometheus.NewDesc("vipd_bgp_routes_announced",
		"VIP routes the speaker announces.", nil, nil)
)

// Describe implements prometheus.Collector.
func (s *Speaker) Describe(ch chan<- *prometheus.Desc) {
	ch <- descPeerUp
	ch <- descPeerUptime
	ch <- descPeerAdvertised
	ch <- descAnnounced
}

// Collect implements prometheus.Collector: peer session state, uptime and
// routes advertised, and the number of announced routes.
func (s *Speaker) Collect(ch chan<- prometheus.Metric) {
	s.mu.Lock()
	n := len(s.announced)
	s.mu.Unlock()
	ch <- prometheus.MustNewConstMetric(descAnnounced, prometheus.GaugeValue, float64(n))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	peers, err := s.Peers(ctx)
	if err != nil {
		return
	}
	for _, p := range peers {
		a := p.Address.String()
		up := 0.0
		if p.State == "established" {
			up = 1
		}
		ch <- prometheus.MustNewConstMetric(descPeerUp, prometheus.GaugeValue, up, a, p.State)
		ch <- prometheus.MustNewConstMetric(descPeerUptime, prometheus.GaugeValue, p.Uptime.Seconds(), a)
		ch <- prometheus.MustNewConstMetric(descPeerAdvertised, prometheus.GaugeValue, float64(p.Advertised), a)
	}
}

// advertised counts the routes in peer's adj-rib-out. GoBGP computes it from
// the RIB and the export policy; ListPeer's own "advertised" counter also
// counts End-of-RIB markers when graceful restart is negotiated.
func (s *Speaker) advertised(ctx context.Context, peer netip.Addr) (uint64, error) {
	var n uint64
	for _, fam := range []*api.Family{familyV4, familyV6} {
		err := s.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_ADJ_OUT, Name: peer.String(), Family: fam},
			func(*api.Destination) { n++ })
		if err != nil {
			return 0, fmt.Errorf("listing routes advertised to %s: %w", peer, err)
		}
	}
	return n, nil
}
