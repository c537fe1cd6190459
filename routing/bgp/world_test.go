package bgp

import (
	"context"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	api "github.com/osrg/gobgp/v3/api"

	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/routingtest"
)

// worldRig is a speaker with two real neighbors, gobgpd and FRR, the
// second on another address of the same test pair.
type worldRig struct {
	s      *Speaker
	g      *gobgpPeer
	w      *peerWatch
	f      *frrPeer
	gName  string
	fName  string
	routes []routing.Route // what SetRoutes last reported announced
}

func newWorldRig(t *testing.T, vips ...VIPRoute) *worldRig {
	pr := newPair(t)
	fpr := pair{speaker: pr.speaker, peer: netip.AddrFrom4([4]byte{pr.peer.As4()[0], pr.peer.As4()[1], pr.peer.As4()[2], 3})}
	r := &worldRig{g: startGoBGP(t, pr), f: startFRR(t, fpr, "", nil)}
	r.w = watchPeer(t, r.g)
	cfg := testConfig(pr, r.g.port, vips...)
	fn := cfg.Neighbors[0]
	fn.Address, fn.Port = fpr.peer, r.f.port
	cfg.Neighbors = append(cfg.Neighbors, fn)
	cfg.DrainAttrs = drainAttrs
	r.s = startSpeaker(t, cfg, StartOptions{})
	r.gName, r.fName = peerName(pr.peer, peerASN), peerName(fpr.peer, peerASN)
	waitEstablished(t, r.s)
	return r
}

// set announces routes and checks Exported agrees (routingtest.CheckExported).
func (r *worldRig) set(t *testing.T, routes ...routing.Route) {
	t.Helper()
	routingtest.CheckExported(t, r.s, routes, 5*time.Second)
	got, err := r.s.SetRoutes(context.Background(), routes)
	if err != nil {
		t.Fatal(err)
	}
	r.routes = got
}

// peersAgree waits until Exported and each peer's own RIB hold the same
// prefixes, and a route is draining in Exported exactly when the peer has
// it with the drain MED; it returns the last Exported.
func (r *worldRig) peersAgree(t *testing.T, what string) routing.Exported {
	t.Helper()
	var ex routing.Exported
	var diff string
	deadline := time.Now().Add(10 * time.Second)
	for {
		var err error
		ex, err = r.s.Exported(context.Background())
		if err != nil {
			t.Fatalf("%s: Exported: %v", what, err)
		}
		diff = ""
		for _, pv := range []struct {
			name  string
			table map[string]seen
		}{{r.gName, r.g.table(t)}, {r.fName, r.f.table(t)}} {
			fromEx := map[string]bool{}
			for p, er := range ex.Routes {
				if slices.Contains(er.Peers, pv.name) {
					fromEx[p.String()] = er.Draining
				}
			}
			fromPeer := map[string]bool{}
			for p, sn := range pv.table {
				fromPeer[p] = sn.MED == int(*drainAttrs.MED)
			}
			if d := cmp.Diff(fromPeer, fromEx); d != "" {
				diff += pv.name + " (-peer's RIB +Exported, prefix -> draining):\n" + d
			}
		}
		if diff == "" || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if diff != "" {
		t.Fatalf("%s: Exported disagrees with the peers' own RIBs:\n%s", what, diff)
	}
	return ex
}

// noWithdraws checks gobgpd saw no withdraw of prefixes since before.
func (r *worldRig) noWithdraws(t *testing.T, what string, before map[string]int, prefixes ...netip.Prefix) {
	t.Helper()
	time.Sleep(300 * time.Millisecond) // long enough for a stray UPDATE to arrive
	for _, p := range prefixes {
		if _, w := r.w.counts(p.String()); w != before[p.String()] {
			t.Errorf("%s: %s was withdrawn at the peer %d times, want never", what, p, w-before[p.String()])
		}
	}
}

func (r *worldRig) withdrawCounts(prefixes ...netip.Prefix) map[string]int {
	out := map[string]int{}
	for _, p := range prefixes {
		_, out[p.String()] = r.w.counts(p.String())
	}
	return out
}

// TestExportedAndResync: Exported reports what two real peers (gobgpd and
// FRR) really hold, through announce, withdraw, drain, a reload the export
// policy did not take (main's defect 2), a path lost or changed behind the
// speaker's back, and sessions going down; Resync repairs each divergence
// without withdrawing anything that was right.
func TestExportedAndResync(t *testing.T) {
	r := newWorldRig(t, VIPRoute{vip4, attrsFull}, VIPRoute{vip4b, RouteAttrs{}}, VIPRoute{vip6, attrsFull})
	ctx := context.Background()

	r.set(t, routing.Route{Prefix: vip4}, routing.Route{Prefix: vip4b}, routing.Route{Prefix: vip6, Draining: true})
	ex := r.peersAgree(t, "announce")
	if ex.SessionsUp != 2 || len(ex.Routes) != 3 {
		t.Errorf("announce: Exported = %+v, want 3 routes on 2 sessions", ex)
	}
	r.set(t, routing.Route{Prefix: vip4}, routing.Route{Prefix: vip6, Draining: true})
	r.peersAgree(t, "withdraw")
	r.set(t, routing.Route{Prefix: vip4, Draining: true}, routing.Route{Prefix: vip6, Draining: true})
	r.peersAgree(t, "drain (deprefer)")

	t.Run("reload the policy did not take", func(t *testing.T) {
		// Main's SetVIPs: the added VIP is rejected by the export policy
		// while SetRoutes reports it announced. Exported must say so.
		vips := []VIPRoute{{vip4, attrsFull}, {vip4b, RouteAttrs{}}, {vip6, attrsFull}, {vip4c, RouteAttrs{MED: u32(10)}}}
		r.s.setVIPsReplacing(t, vips)
		want := []routing.Route{{Prefix: vip4, Draining: true}, {Prefix: vip6, Draining: true}, {Prefix: vip4c}}
		got, err := r.s.SetRoutes(ctx, want)
		if err != nil || len(got) != 3 {
			t.Fatalf("SetRoutes = %v, %v; want all three reported announced", got, err)
		}
		ex := r.peersAgree(t, "after the broken reload")
		if div := ex.Divergences(got); !slices.Equal(div, []string{vip4c.String() + ": announced but not exported"}) {
			t.Errorf("Divergences = %q, want %s announced but not exported", div, vip4c)
		}
		before := r.withdrawCounts(vip4, vip6)
		if err := r.s.Resync(ctx); err != nil {
			t.Fatalf("Resync: %v", err)
		}
		ex = r.peersAgree(t, "after Resync")
		if div := ex.Divergences(got); div != nil {
			t.Errorf("after Resync: %q", div)
		}
		r.noWithdraws(t, "Resync", before, vip4, vip6)
		// The repaired policy keeps following reloads.
		if err := r.s.SetVIPs(ctx, reloadVIPs(vips[:3])); err != nil {
			t.Fatal(err)
		}
		r.set(t, routing.Route{Prefix: vip4, Draining: true}, routing.Route{Prefix: vip6, Draining: true}, routing.Route{Prefix: vip4b})
		r.peersAgree(t, "reload after Resync")
	})

	t.Run("route lost behind the speaker's back", func(t *testing.T) {
		r.s.deleteBehindBack(t, vip6)
		ex := r.peersAgree(t, "after the loss")
		if div := ex.Divergences(r.routes); !slices.Equal(div, []string{vip6.String() + ": announced but not exported"}) {
			t.Errorf("Divergences = %q, want %s announced but not exported", div, vip6)
		}
		before := r.withdrawCounts(vip4, vip4b)
		if err := r.s.Resync(ctx); err != nil {
			t.Fatalf("Resync: %v", err)
		}
		if div := r.peersAgree(t, "after Resync").Divergences(r.routes); div != nil {
			t.Errorf("after Resync: %q", div)
		}
		r.noWithdraws(t, "Resync", before, vip4, vip4b)
	})

	t.Run("attributes changed behind the speaker's back", func(t *testing.T) {
		r.s.addBehindBack(t, vip4b, RouteAttrs{MED: u32(7)})
		var ex routing.Exported
		eventually(t, 5*time.Second, "the mismatch in Exported", func() bool {
			var err error
			ex, err = r.s.Exported(ctx)
			return err == nil && ex.Routes[vip4b].Mismatch != ""
		})
		t.Logf("mismatch reported: %s", ex.Routes[vip4b].Mismatch)
		if err := r.s.Resync(ctx); err != nil {
			t.Fatalf("Resync: %v", err)
		}
		ex = r.peersAgree(t, "after Resync")
		if div := ex.Divergences(r.routes); div != nil {
			t.Errorf("after Resync: %q", div)
		}
		if m := r.g.table(t)[vip4b.String()].MED; m != 0 {
			t.Errorf("gobgpd has %s with MED %d after Resync, want none", vip4b, m)
		}
	})

	t.Run("one policy generation left", func(t *testing.T) {
		pols, sets := r.s.exportState(t)
		gen := r.s.exportGen
		if gen < 3 {
			t.Errorf("export policy generation %d after three Resyncs, want 3", gen)
		}
		wantSets := setNames(gen)
		if !slices.Equal(pols, []string{exportPolicyName(gen)}) || !slices.Equal(sets, wantSets[:]) {
			t.Errorf("after the Resyncs the speaker holds policies %q and sets %q, want only generation %d's", pols, sets, gen)
		}
	})

	t.Run("sessions down", func(t *testing.T) {
		for _, n := range r.s.cfg.Neighbors {
			if err := r.s.srv.DisablePeer(ctx, &api.DisablePeerRequest{Address: n.Address.String()}); err != nil {
				t.Fatal(err)
			}
		}
		var ex routing.Exported
		eventually(t, 5*time.Second, "no session up", func() bool {
			var err error
			ex, err = r.s.Exported(ctx)
			return err == nil && ex.SessionsUp == 0
		})
		if len(ex.Routes) != 0 {
			t.Errorf("Exported with no session up = %+v, want no route", ex.Routes)
		}
		if div := ex.Divergences(r.routes); len(div) != 1 || !strings.Contains(div[0], "no routing session up") {
			t.Errorf("Divergences with no session up = %q", div)
		}
	})
}
