package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	api "github.com/osrg/gobgp/v3/api"

	"github.com/vipd/vipd/routing"
)

// Peers returns the session of every configured neighbor, sorted by
// address (see routing.Advertiser). State is the BGP FSM state in lower
// case ("idle", "connect", "active", "opensent", "openconfirm",
// "established"); Advertised counts the routes in the neighbor's
// adj-rib-out; LastError is the last warning or error GoBGP logged about
// the peer (notification sent or received, connection refused, hold timer
// expired, ...), or the reason of the last session drop.
func (s *Speaker) Peers(ctx context.Context) ([]routing.Peer, error) {
	s.mu.Lock()
	err := s.runningLocked()
	s.mu.Unlock()
	if err != nil {
		return nil, err
	}
	var out []routing.Peer
	err = s.srv.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
		if p.Conf == nil || p.State == nil {
			return
		}
		addr, _ := netip.ParseAddr(p.Conf.NeighborAddress)
		st := routing.Peer{
			Name:    peerName(addr, p.Conf.PeerAsn),
			Address: addr,
			ASN:     p.Conf.PeerAsn,
			State:   strings.ToLower(strings.TrimPrefix(p.State.SessionState.String(), "PeerState_")),
			Up:      p.State.SessionState == api.PeerState_ESTABLISHED,
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
		if !out[i].Up {
			continue
		}
		n, err := s.advertised(ctx, out[i].Address)
		if err != nil {
			return nil, err
		}
		out[i].Advertised = int(n)
	}
	slices.SortFunc(out, func(a, b routing.Peer) int { return a.Address.Compare(b.Address) })
	return out, nil
}

func (s *Speaker) setPeerErr(peer netip.Addr, msg string) {
	s.errMu.Lock()
	s.lastErr[peer] = msg
	s.errMu.Unlock()
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
