package bgp

import (
	"context"
	"sort"
	"testing"

	api "github.com/osrg/gobgp/v3/api"
)

// received counts the paths the speaker received from its peers (its
// adj-rib-in, before the import policy).
func (s *Speaker) received(t testing.TB) uint64 {
	var n uint64
	err := s.srv.ListPeer(context.Background(), &api.ListPeerRequest{}, func(p *api.Peer) {
		for _, af := range p.AfiSafis {
			if af.State != nil {
				n += af.State.Received
			}
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// globalRIB lists the paths in the speaker's global RIB by prefix, both
// families, sorted.
func (s *Speaker) globalRIB(t testing.TB) []string {
	var out []string
	for _, fam := range []*api.Family{familyV4, familyV6} {
		err := s.srv.ListPath(context.Background(), &api.ListPathRequest{TableType: api.TableType_GLOBAL, Family: fam}, func(d *api.Destination) {
			// Every path is listed: a VIP learned back from a peer would
			// show up as a second path for the prefix.
			for range d.Paths {
				out = append(out, d.Prefix)
			}
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(out)
	return out
}
