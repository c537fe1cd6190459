package daemon

import (
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/vip"
)

// The watcher is the one reader of the controller's Updates. After every
// pass of the loop it takes the snapshot and
//   - counts the pass (the systemd watchdog is fed only when a pass
//     completes: a wedged loop starves it),
//   - notes since when the node drain phase holds (the drain's time left
//     in status, the status page and the STATUS= line systemd shows),
//   - turns what changed since the last snapshot into events (vipctl
//     events), keeping the last few for late readers,
//   - kicks follow, which persists the routes.
// Snapshots coalesce: a facet that changes and changes back within one
// pass of the loop shows as no event (its transitions counter still
// moved).

// recentEvents is how many past events a new reader of the stream may ask
// for.
const recentEvents = 256

// subscriberBuffer is how many events a slow reader may lag behind before
// it is cut off (it is told so, and may reconnect).
const subscriberBuffer = 1024

// watcher is safe for concurrent use.
type watcher struct {
	mu     sync.Mutex
	passes uint64
	passed chan struct{} // closed at the next pass, then replaced

	have       bool
	prev       vip.Status
	members    map[string]bool
	phaseSince time.Time

	recent []api.Event // oldest first, at most recentEvents
	subs   map[*subscriber]struct{}
}

type subscriber struct {
	ch   chan api.Event
	lost bool // cut off: the reader lagged subscriberBuffer events behind
}

func newWatcher() *watcher {
	return &watcher{passed: make(chan struct{}), subs: map[*subscriber]struct{}{}}
}

// nextPass returns a channel closed when the next pass of the loop has
// stored its snapshot.
func (w *watcher) nextPass() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.passed
}

// pass records one pass of the loop with its snapshot and the members as
// the poller sees them (name -> up).
func (w *watcher) pass(st vip.Status, members map[string]bool, now time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.passes++
	close(w.passed)
	w.passed = make(chan struct{})
	// The loop stamps the phase's since itself (vip.Status.PhaseSince);
	// now stands in for a snapshot without one.
	since := st.PhaseSince
	if since.IsZero() {
		since = now
	}
	if !w.have {
		w.have, w.prev, w.members, w.phaseSince = true, st, members, since
		return
	}
	evs := diffStatus(w.prev, st, now)
	evs = append(evs, diffMembers(w.members, members, now)...)
	if st.Phase != w.prev.Phase || !st.PhaseSince.IsZero() {
		w.phaseSince = since
	}
	w.prev, w.members = st, members
	for _, e := range evs {
		w.publishLocked(e)
	}
}

func (w *watcher) publishLocked(e api.Event) {
	if len(w.recent) == recentEvents {
		w.recent = append(w.recent[:0], w.recent[1:]...)
	}
	w.recent = append(w.recent, e)
	for s := range w.subs {
		select {
		case s.ch <- e:
		default:
			s.lost = true
			close(s.ch)
			delete(w.subs, s)
		}
	}
}

// phase returns the node drain phase of the last snapshot and since when it
// holds (zero before the first pass).
func (w *watcher) phase() (vip.Phase, time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.prev.Phase, w.phaseSince
}

// waitPhase waits until the last snapshot's phase is p, or for timeout.
func (w *watcher) waitPhase(p vip.Phase, timeout time.Duration) bool {
	deadline := time.After(timeout)
	for {
		w.mu.Lock()
		ok, next := w.have && w.prev.Phase == p, w.passed
		w.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-next:
		case <-deadline:
			return false
		}
	}
}

// subscribe returns the last n past events and a channel of the next ones.
// The channel is closed by unsubscribe, or when the reader lags too far
// behind (lost then reports true).
func (w *watcher) subscribe(n int) ([]api.Event, *subscriber) {
	w.mu.Lock()
	defer w.mu.Unlock()
	n = min(max(n, 0), len(w.recent))
	past := slices.Clone(w.recent[len(w.recent)-n:])
	s := &subscriber{ch: make(chan api.Event, subscriberBuffer)}
	w.subs[s] = struct{}{}
	return past, s
}

func (w *watcher) unsubscribe(s *subscriber) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if _, ok := w.subs[s]; ok {
		delete(w.subs, s)
		close(s.ch)
	}
}

func (w *watcher) lost(s *subscriber) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	return s.lost
}

// diffStatus lists what changed from prev to cur: the node's phase and
// stopping, VIPs added and removed, and each VIP's facets, serve state,
// hold and checked route, each with the reason the controller gives.
func diffStatus(prev, cur vip.Status, now time.Time) []api.Event {
	var out []api.Event
	node := func(what, from, to, reason string) {
		out = append(out, api.Event{Time: now, Subject: api.SubjectNode, What: what, From: from, To: to, Reason: reason})
	}
	if prev.Phase != cur.Phase {
		node("phase", prev.Phase.String(), cur.Phase.String(), "")
	}
	if prev.Stopping != cur.Stopping {
		node("stopping", strconv.FormatBool(prev.Stopping), strconv.FormatBool(cur.Stopping), "SIGTERM: drain and exit")
	}
	before := make(map[netip.Addr]vip.VIPStatus, len(prev.VIPs))
	for _, v := range prev.VIPs {
		before[v.Addr] = v
	}
	for _, v := range cur.VIPs {
		ev := func(what, from, to, reason string) {
			out = append(out, api.Event{Time: now, Subject: api.SubjectVIP, VIP: v.Addr, What: what, From: from, To: to, Reason: reason})
		}
		p, ok := before[v.Addr]
		delete(before, v.Addr)
		if !ok {
			ev("added", "", "true", v.Reason)
			continue
		}
		b := strconv.FormatBool
		if p.Configured != v.Configured {
			ev("configured", b(p.Configured), b(v.Configured), v.Reason)
		}
		if p.Programmed != v.Programmed {
			ev("programmed", b(p.Programmed), b(v.Programmed), v.Reasons.Programmed)
		}
		if adv, was := advertisedWord(v), advertisedWord(p); adv != was {
			ev("advertised", was, adv, v.Reasons.Advertised)
		}
		if p.Bound != v.Bound {
			ev("bound", b(p.Bound), b(v.Bound), v.Reasons.Bound)
		}
		if p.Healthy != v.Healthy {
			ev("healthy", b(p.Healthy), b(v.Healthy), v.Reason)
		}
		if p.Draining != v.Draining {
			ev("draining", b(p.Draining), b(v.Draining), v.Reason)
		}
		if p.Held != v.Held {
			ev("held", b(p.Held != ""), b(v.Held != ""), v.Held)
		}
		if p.Serve != v.Serve {
			ev("serve_state", string(p.Serve), string(v.Serve), v.Reasons.Serve)
		}
		if p.Route != v.Route {
			ev("route", string(p.Route), string(v.Route), v.RouteReason)
		}
	}
	for _, p := range prev.VIPs { // in address order
		if _, gone := before[p.Addr]; gone {
			out = append(out, api.Event{Time: now, Subject: api.SubjectVIP, VIP: p.Addr, What: "removed", From: "true", To: "",
				Reason: "forgotten: withdrawn, unprogrammed and unbound after a reload removed it"})
		}
	}
	return out
}

// advertisedWord: "withdrawn", "announced" or "depreferred" (announced with
// the drain attributes).
func advertisedWord(v vip.VIPStatus) string {
	switch {
	case v.Depreferred:
		return "depreferred"
	case v.Advertised:
		return "announced"
	}
	return "withdrawn"
}

// diffMembers lists the members that came up or went down.
func diffMembers(prev, cur map[string]bool, now time.Time) []api.Event {
	var names []string
	for n := range cur {
		names = append(names, n)
	}
	slices.Sort(names)
	var out []api.Event
	for _, n := range names {
		was, known := prev[n]
		if up := cur[n]; !known && up || known && was != up {
			reason := "its node state answers"
			if !up {
				reason = "its node state does not answer (fall polls missed)"
			}
			out = append(out, api.Event{Time: now, Subject: api.SubjectMember, Member: n, What: "up",
				From: strconv.FormatBool(was), To: strconv.FormatBool(up), Reason: reason})
		}
	}
	return out
}
