package vip

import (
	"context"
	"net/netip"
	"slices"
)

// bindLo adds to lo every VIP that must be bound (the first step of
// bring-up).
func (m *machine) bindLo(ctx context.Context) int {
	failed := 0
	for _, v := range m.sorted() {
		want, why := m.wantBound(v)
		v.why.reasons.Bound = why
		if want && v.live.lost {
			v.why.reasons.Bound = loLostReason // until Bind succeeds
		}
		if !want && v.live.lost && !v.live.inDP && !v.live.maybeDP {
			v.live.lost = false // it may leave: nothing to restore
		}
		if !want || v.live.onLo {
			continue
		}
		if err := m.deps.Binder.Bind(ctx, v.addr); err != nil {
			m.fail(v, "binding", err)
			failed++
			continue
		}
		m.succeeded(v, "binding")
		v.live.onLo, v.live.foreign = true, false
		v.live.loSeq = m.loOps.Add(1)
		v.why.reasons.Bound = why
		if v.live.lost {
			// lost stays until the VIP is back in the bound set.
			v.why.rebinds++
			why = "bound again after someone else removed it"
		}
		m.transition(v, "lo", false, true, why)
	}
	return failed
}

// syncBoundSet makes the dataplane's bound set the VIPs that are on lo and
// must stay bound. It is always a subset of lo (invariant 3).
func (m *machine) syncBoundSet(ctx context.Context) int {
	var target, cur []netip.Addr
	for _, v := range m.sorted() {
		if v.live.onLo && v.live.inDP {
			v.live.lost = false // back on lo, and never left the bound set
		}
		if want, _ := m.wantBound(v); want && v.live.onLo {
			target = append(target, v.addr)
		}
		if v.live.inDP {
			cur = append(cur, v.addr)
		}
	}
	uncertain := slices.ContainsFunc(m.sorted(), func(v *vipState) bool { return v.live.maybeDP != v.live.inDP })
	if !m.dpUnknown && !uncertain && slices.Equal(target, cur) {
		return 0
	}
	for _, a := range target {
		if !m.vips[a].live.onLo {
			m.refuse(m.vips[a], "setting bound set", "not on lo")
			return 1
		}
	}
	err := m.deps.Dataplane.SetBound(ctx, target)
	m.changes++
	for _, v := range m.sorted() {
		in := slices.Contains(target, v.addr)
		was := v.live.inDP
		if err != nil {
			// Either set may be in place now: claim only what both
			// have, and keep unbind waiting for what either has.
			v.live.inDP = v.live.inDP && in
			v.live.maybeDP = v.live.maybeDP || in
			if was != in {
				m.fail(v, "setting bound set", err)
			}
		} else {
			v.live.inDP, v.live.maybeDP = in, in
			m.succeeded(v, "setting bound set")
		}
		if v.live.inDP {
			v.live.lost = false // back on lo and in the bound set
		}
		if v.live.inDP != was {
			_, why := m.wantBound(v)
			m.transition(v, "bound", was, v.live.inDP, why)
		}
	}
	if err != nil {
		m.dpUnknown = true
		return 1
	}
	m.dpUnknown = false
	return 0
}

// unbindLo removes from lo the VIPs that may leave it and are surely out of
// the bound set (invariant 3: the bound set stays a subset of lo).
func (m *machine) unbindLo(ctx context.Context) int {
	failed := 0
	for _, v := range m.sorted() {
		want, why := m.wantBound(v)
		if want || !v.live.onLo {
			continue
		}
		if v.live.maybeDP {
			v.why.reasons.Bound = "waiting to leave the bound set"
			continue
		}
		if err := m.deps.Binder.Unbind(ctx, v.addr); err != nil {
			m.fail(v, "unbinding", err)
			failed++
			continue
		}
		m.succeeded(v, "unbinding")
		v.live.onLo = false
		v.live.loSeq = m.loOps.Add(1)
		m.transition(v, "lo", true, false, why)
	}
	return failed
}
