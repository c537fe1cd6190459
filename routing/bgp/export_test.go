package bgp

import (
	"context"
	"net/netip"
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

// setVIPsReplacing is SetVIPs as main had it before issue 10: it replaced
// the export prefix sets (AddDefinedSet with Replace), which leaves the
// export statements on the old set objects, so an added VIP is rejected by
// the export policy while SetRoutes reports it announced (defect 2). Tests
// use it to check that Exported catches such a divergence and Resync
// repairs it.
func (s *Speaker) setVIPsReplacing(t testing.TB, vips []VIPRoute) {
	t.Helper()
	next := map[netip.Prefix]RouteAttrs{}
	for _, v := range vips {
		next[v.Prefix] = v.Attrs
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sets := prefixSets(next)
	for i, name := range setNames(s.exportGen) {
		if err := s.srv.AddDefinedSet(context.Background(), &api.AddDefinedSetRequest{Replace: true, DefinedSet: &api.DefinedSet{
			DefinedType: api.DefinedType_PREFIX, Name: name, Prefixes: sets[i],
		}}); err != nil {
			t.Fatal(err)
		}
	}
	s.vips = next
}

// deleteBehindBack removes p's path from the speaker's RIB without the
// speaker knowing: a route the daemon lost.
func (s *Speaker) deleteBehindBack(t testing.TB, p netip.Prefix) {
	t.Helper()
	w, err := s.spec.withdraw(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.srv.DeletePath(context.Background(), &api.DeletePathRequest{TableType: api.TableType_GLOBAL, Family: w.Family, Path: w}); err != nil {
		t.Fatal(err)
	}
}

// addBehindBack announces p with attrs without the speaker knowing: a path
// with attributes the speaker did not ask for.
func (s *Speaker) addBehindBack(t testing.TB, p netip.Prefix, attrs RouteAttrs) {
	t.Helper()
	path, err := s.spec.announce(p, attrs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.srv.AddPath(context.Background(), &api.AddPathRequest{TableType: api.TableType_GLOBAL, Path: path}); err != nil {
		t.Fatal(err)
	}
}

// exportState lists the speaker's export policies and prefix sets, sorted:
// a Resync must leave exactly one generation behind.
func (s *Speaker) exportState(t testing.TB) (policies, sets []string) {
	t.Helper()
	ctx := context.Background()
	if err := s.srv.ListPolicy(ctx, &api.ListPolicyRequest{}, func(p *api.Policy) {
		if p.Name != policyImport {
			policies = append(policies, p.Name)
		}
	}); err != nil {
		t.Fatal(err)
	}
	if err := s.srv.ListDefinedSet(ctx, &api.ListDefinedSetRequest{DefinedType: api.DefinedType_PREFIX}, func(d *api.DefinedSet) {
		sets = append(sets, d.Name)
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(policies)
	sort.Strings(sets)
	return policies, sets
}
