package vip

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/routing"
)

// The checkers are not vacuous: each broken state is caught, by the
// machine's check and by the world's.
func TestInvariantCheckersCatch(t *testing.T) {
	tests := []struct {
		name    string
		breakIt func(v *vipState)
		want    string
	}{
		{"announced unprogrammed", func(v *vipState) { v.live.programmed = false }, "invariant 1"},
		{"announced without primary", func(v *vipState) { v.live.table = []Backend{{Name: "b", Role: RoleSecondary}} }, "invariant 1"},
		{"active unbound", func(v *vipState) { v.live.inDP = false }, "invariant 2"},
		{"in own table unbound", func(v *vipState) { v.live.serve, v.live.inDP, v.live.maybeDP = cluster.StateInactive, false, false }, "invariant 2"},
		{"bound set not on lo", func(v *vipState) { v.live.onLo = false }, "invariant 3"},
		{"no reason", func(v *vipState) { v.why.reasons.Bound = "" }, "invariant 5"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRig(t, oneVIP(testConfig()))
			r.step()
			v := r.vip(vip4)
			if errs := r.m.checkInvariants(); len(errs) != 0 || describe(v.live.table) != "[a/p]" {
				t.Fatalf("bad start: %v %s", errs, describe(v.live.table))
			}
			tt.breakIt(v)
			got := fmt.Sprint(r.m.checkInvariants())
			if !strings.Contains(got, tt.want) {
				t.Errorf("checkInvariants = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestWorldCatches(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name string
		do   func(w *world)
		want string
	}{
		{"announce unprogrammed", func(w *world) { w.SetRoutes(ctx, []routing.Route{{Prefix: vip4Prefix}}) }, "invariant 1"},
		{"bound set before lo", func(w *world) { w.SetBound(ctx, []netip.Addr{vip4}) }, "invariant 3"},
		{"local in table unbound", func(w *world) {
			w.Program(ctx, ProgramSpec{Addr: vip4, Backends: []Backend{{Name: "a", Local: true}}})
		}, "invariant 2"},
		{"unprogram announced", func(w *world) {
			w.Program(ctx, ProgramSpec{Addr: vip4, Backends: []Backend{{Name: "b"}}})
			w.SetRoutes(ctx, []routing.Route{{Prefix: vip4Prefix}})
			w.Unprogram(ctx, vip4)
		}, "invariant 4"},
		{"unprogram within withdraw grace", func(w *world) {
			w.Program(ctx, ProgramSpec{Addr: vip4, Backends: []Backend{{Name: "b"}}})
			w.SetRoutes(ctx, []routing.Route{{Prefix: vip4Prefix}})
			w.SetRoutes(ctx, nil)
			w.Unprogram(ctx, vip4)
		}, "invariant 4"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWorld(newFakeClock(), time.Second)
			tt.do(w)
			if len(w.violations) == 0 || !strings.Contains(strings.Join(w.violations, "\n"), tt.want) {
				t.Errorf("violations = %q, want %s", w.violations, tt.want)
			}
		})
	}
}

var vip4Prefix = netip.PrefixFrom(vip4, 32)
