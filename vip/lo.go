package vip

import (
	"context"
	"net/netip"
	"slices"
	"time"
)

// The addresses on lo checked against the world. The bound facet is what
// Bind and Unbind reported; someone else (an operator's `ip addr del`, a
// network manager flushing lo) may change lo behind vipd's back. A VIP
// that left lo while it is in the bound set loops: the loop guard passes
// its decapsulated traffic up, the stack no longer takes it as local and,
// with forwarding on, routes it back out (field note 3). So the
// Controller's lo watcher reads lo again whenever Deps.LoChanges signals
// (the netlink address subscription) and every Config.LoCheckInterval (the
// subscription may overflow and lose events), and hands each read to the
// loop as an event (seeLo). The machine decides what follows:
//
//   - a VIP vipd bound that is missing is no longer on lo (the live facet
//     follows the world): bindLo adds it again at once if it must be
//     bound, counting a rebind; until it is back it is out of the bound
//     set (the loop guard drops its traffic: invariant 3), status shows it
//     unbound with the reason, and this node publishes itself unhealthy
//     for it so no director keeps it a primary;
//   - a VIP vipd did not bind that someone put on lo is left alone and
//     reported (VIPStatus.ForeignOnLo): it is the operator's address until
//     vipd binds that VIP itself (already present is success: from then
//     on vipd owns it, as it owns what it adopts at a restart);
//   - an address on lo that is no VIP of this node is never touched.

// loLostReason is the bound facet's reason while a VIP removed behind
// vipd's back is not back on lo.
const loLostReason = "removed from lo by someone else: binding it again"

// seeLo takes a read of the addresses on lo. seq is m.loOps when the read
// started: a VIP whose lo facet changed after that (a Bind or Unbind the
// read may not have seen) keeps its facet until a later read.
func (m *machine) seeLo(seq uint64, addrs []netip.Addr, err error) {
	if err != nil {
		if m.loErr == "" {
			m.log.Warn("reading the addresses on lo failed: a VIP removed from it goes unnoticed", "error", err)
		}
		m.loErr = err.Error()
		return
	}
	if m.loErr != "" {
		m.log.Info("reading the addresses on lo again")
		m.loErr = ""
	}
	m.loReads++
	for _, v := range m.sorted() {
		if seq < v.live.loSeq {
			continue // older than vipd's own last change of it
		}
		on := slices.Contains(addrs, v.addr)
		switch {
		case v.live.onLo && !on:
			m.log.Warn("vip removed from lo by someone else: binding it again if it must stay bound", "vip", v.addr)
			v.live.onLo, v.live.lost = false, true
			m.transition(v, "lo", true, false, "removed from lo by someone else")
		case !v.live.onLo && on:
			if want, _ := m.wantBound(v); want {
				break // bindLo takes it over: already present is success
			}
			if !v.live.foreign {
				m.log.Warn("vip put on lo by someone else: vipd does not bind it now and leaves it alone", "vip", v.addr)
			}
			v.live.foreign = true
		case !on:
			v.live.foreign = false
		}
	}
}

// healthy is v's health as published to the peers: its service check's,
// or false while its address is off lo (removed by someone else), so no
// director keeps this node a primary it cannot accept traffic for.
func (v *vipState) healthy() (bool, string) {
	if v.live.lost {
		return false, "not bound: removed from lo by someone else"
	}
	return v.in.healthy, v.in.healthReason
}

// DefaultLoCheckInterval is how often the daemon reads lo back when no
// address event came: the backstop for events lost to an overflow.
const DefaultLoCheckInterval = 10 * time.Second

// loWatcher reads lo whenever changes signals and every LoCheckInterval,
// and hands each read to the loop as an event. It never runs on the loop.
func (c *Controller) loWatcher(ctx context.Context, changes <-chan struct{}) {
	binder, clock := c.m.deps.Binder, c.m.clock
	var timerC <-chan time.Time
	var timer Timer
	rearm := func() {
		if timer != nil {
			timer.Stop()
		}
		c.mu.Lock()
		interval := c.cfg.LoCheckInterval
		c.mu.Unlock()
		timer, timerC = nil, nil
		if interval > 0 {
			timer = clock.NewTimer(interval)
			timerC = timer.C()
		}
	}
	rearm()
	for {
		select {
		case <-ctx.Done():
			if timer != nil {
				timer.Stop()
			}
			return
		case _, ok := <-changes:
			if !ok {
				changes = nil // the subscription is gone: the timer alone
			}
		case <-timerC:
		}
		seq := c.m.loOps.Load()
		rctx, cancel := context.WithTimeout(ctx, verifyTimeout)
		addrs, err := binder.Bound(rctx)
		cancel()
		if ctx.Err() != nil {
			return
		}
		c.send(func(m *machine) { m.seeLo(seq, addrs, err) })
		rearm()
	}
}
