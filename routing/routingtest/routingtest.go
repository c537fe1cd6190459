// Package routingtest helps test code that drives a routing.Advertiser: a
// Recorder that records every call in order and checks the contract as it
// goes, and checks that hold for every implementation.
package routingtest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vipd/vipd/routing"
)

// Call is one call a Recorder received.
type Call struct {
	// Op is the method: "SetVIPs", "SetRoutes", "Peers", "Exported",
	// "Resync", "Close" or "Abandon".
	Op string
	// VIPs are SetVIPs' argument.
	VIPs []routing.VIP
	// Routes are SetRoutes' argument.
	Routes []routing.Route
}

// String prints the call compactly: SetRoutes[192.0.2.1/32 d:192.0.2.2/32]
// (d: draining), SetVIPs[192.0.2.1/32], Close.
func (c Call) String() string {
	var parts []string
	switch c.Op {
	case "SetVIPs":
		for _, v := range c.VIPs {
			parts = append(parts, v.Prefix.String())
		}
	case "SetRoutes":
		for _, r := range c.Routes {
			p := r.Prefix.String()
			if r.Draining {
				p = "d:" + p
			}
			parts = append(parts, p)
		}
	default:
		return c.Op
	}
	return c.Op + "[" + strings.Join(parts, " ") + "]"
}

// Recorder is a routing.Advertiser that announces nothing: it records every
// call and answers as a real advertiser that never fails would. It fails
// the test (tb.Errorf) when the caller breaks the contract: a route for a
// prefix not given to SetVIPs (or New), or any call after Close or Abandon.
// It is safe for concurrent use.
type Recorder struct {
	tb testing.TB

	mu        sync.Mutex
	calls     []Call
	vips      map[netip.Prefix]routing.VIP
	announced []routing.Route
	closed    string // "Close" or "Abandon" once called
	peers     []routing.Peer
	fail      map[string]error
	// lost are prefixes the simulated daemon does not export although they
	// are announced (or exports although they are not), until Resync.
	lost map[netip.Prefix]bool
	// mismatch are prefixes the simulated daemon exports with attributes
	// other than asked (routing.ExportedRoute.Mismatch), until Resync.
	mismatch map[netip.Prefix]string
}

var _ routing.Advertiser = (*Recorder)(nil)

// New returns a Recorder that may announce vips, as an advertiser built
// from a configuration listing them would.
func New(tb testing.TB, vips ...routing.VIP) *Recorder {
	r := &Recorder{tb: tb, vips: map[netip.Prefix]routing.VIP{}, fail: map[string]error{}, lost: map[netip.Prefix]bool{},
		mismatch: map[netip.Prefix]string{}}
	for _, v := range vips {
		r.vips[v.Prefix] = v
	}
	return r
}

// Calls returns the calls so far, in order.
func (r *Recorder) Calls() []Call {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.calls)
}

// Ops returns the calls so far as strings (Call.String), in order; Peers
// and Exported calls are left out (status, metrics and the claim checks
// poll them at any time).
func (r *Recorder) Ops() []string {
	var out []string
	for _, c := range r.Calls() {
		if c.Op != "Peers" && c.Op != "Exported" {
			out = append(out, c.String())
		}
	}
	return out
}

// Announced returns the routes announced now.
func (r *Recorder) Announced() []routing.Route {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.announced)
}

// VIPs returns the prefixes that may be announced now, sorted.
func (r *Recorder) VIPs() []netip.Prefix {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]netip.Prefix, 0, len(r.vips))
	for p := range r.vips {
		out = append(out, p)
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

// SetPeers sets what Peers returns.
func (r *Recorder) SetPeers(peers []routing.Peer) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.peers = slices.Clone(peers)
}

// Diverge makes the simulated daemon disagree with the advertiser about
// prefix until the next Resync: an announced route is missing from
// Exported, a withdrawn one is still in it.
func (r *Recorder) Diverge(prefix netip.Prefix) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lost[prefix] = true
}

// DivergeAttrs makes the simulated daemon export prefix, while it is
// announced, with attributes other than asked until the next Resync:
// Exported reports it with Mismatch set to why (a reload whose new
// attributes did not apply).
func (r *Recorder) DivergeAttrs(prefix netip.Prefix, why string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.mismatch[prefix] = why
}

// Fail makes every later call of op return err (nil: succeed again). A
// failed SetVIPs changes nothing; a failed SetRoutes applies the routes
// anyway and reports err, as a daemon that timed out but took the change.
func (r *Recorder) Fail(op string, err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.fail[op] = err
}

// record appends the call; it returns routing.ErrClosed (after reporting a
// contract violation) if the Recorder was closed or abandoned.
func (r *Recorder) record(c Call) error {
	r.calls = append(r.calls, c)
	if r.closed != "" {
		r.tb.Errorf("routingtest: %s after %s", c, r.closed)
		return routing.ErrClosed
	}
	return nil
}

// SetVIPs implements routing.Advertiser.
func (r *Recorder) SetVIPs(_ context.Context, vips []routing.VIP) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "SetVIPs", VIPs: slices.Clone(vips)}); err != nil {
		return err
	}
	if err := r.fail["SetVIPs"]; err != nil {
		return err
	}
	r.vips = make(map[netip.Prefix]routing.VIP, len(vips))
	for _, v := range vips {
		r.vips[v.Prefix] = v
	}
	// A route whose VIP is no longer listed is withdrawn at once.
	r.announced = slices.DeleteFunc(r.announced, func(rt routing.Route) bool {
		_, ok := r.vips[rt.Prefix]
		return !ok
	})
	return nil
}

// SetRoutes implements routing.Advertiser: it refuses (and reports) every
// prefix not given to SetVIPs and announces the others.
func (r *Recorder) SetRoutes(_ context.Context, routes []routing.Route) ([]routing.Route, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "SetRoutes", Routes: slices.Clone(routes)}); err != nil {
		return slices.Clone(r.announced), err
	}
	var errs []error
	var next []routing.Route
	for _, rt := range routes {
		if _, ok := r.vips[rt.Prefix]; !ok {
			r.tb.Errorf("routingtest: SetRoutes asks for %s, which is not a VIP given to SetVIPs", rt.Prefix)
			errs = append(errs, fmt.Errorf("refusing to announce %s: %w", rt.Prefix, routing.ErrUnknownPrefix))
			continue
		}
		next = append(next, rt)
	}
	slices.SortFunc(next, func(a, b routing.Route) int { return comparePrefix(a.Prefix, b.Prefix) })
	r.announced = slices.CompactFunc(next, func(a, b routing.Route) bool { return a.Prefix == b.Prefix })
	errs = append(errs, r.fail["SetRoutes"])
	return slices.Clone(r.announced), errors.Join(errs...)
}

// Peers implements routing.Advertiser.
func (r *Recorder) Peers(context.Context) ([]routing.Peer, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "Peers"}); err != nil {
		return nil, err
	}
	if err := r.fail["Peers"]; err != nil {
		return nil, err
	}
	return slices.Clone(r.peers), nil
}

// Exported implements routing.Advertiser: every announced route is
// exported to every up peer (SetPeers), except where Diverge or
// DivergeAttrs say otherwise.
func (r *Recorder) Exported(context.Context) (routing.Exported, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "Exported"}); err != nil {
		return routing.Exported{}, err
	}
	if err := r.fail["Exported"]; err != nil {
		return routing.Exported{}, err
	}
	var up []string
	for _, p := range r.peers {
		if p.Up {
			up = append(up, p.Name)
		}
	}
	slices.Sort(up)
	ex := routing.Exported{At: time.Now(), SessionsUp: len(up), Routes: map[netip.Prefix]routing.ExportedRoute{}}
	if len(up) == 0 {
		return ex, nil
	}
	announced := map[netip.Prefix]routing.Route{}
	for _, rt := range r.announced {
		announced[rt.Prefix] = rt
	}
	for p := range r.vips {
		rt, on := announced[p]
		if on == r.lost[p] {
			continue
		}
		ex.Routes[p] = routing.ExportedRoute{Peers: slices.Clone(up), Draining: rt.Draining, Mismatch: r.mismatch[p]}
	}
	return ex, nil
}

// Resync implements routing.Advertiser: the simulated daemon agrees with
// the advertiser again.
func (r *Recorder) Resync(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "Resync"}); err != nil {
		return err
	}
	if err := r.fail["Resync"]; err != nil {
		return err
	}
	clear(r.lost)
	clear(r.mismatch)
	return nil
}

// Close implements routing.Advertiser: everything is withdrawn.
func (r *Recorder) Close(context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "Close"}); err != nil {
		return err
	}
	r.announced, r.closed = nil, "Close"
	return r.fail["Close"]
}

// Abandon implements routing.Advertiser: the routes stay announced.
func (r *Recorder) Abandon() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if err := r.record(Call{Op: "Abandon"}); err != nil {
		return err
	}
	r.closed = "Abandon"
	return r.fail["Abandon"]
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// CheckUnknownPrefix checks the one behaviour every advertiser shares for a
// prefix it was not given: SetRoutes(unknown + known) refuses unknown with
// an error that wraps routing.ErrUnknownPrefix and names it, announces the
// known routes, and returns exactly them. a must be able to announce known
// and must not know unknown.
func CheckUnknownPrefix(tb testing.TB, a routing.Advertiser, known []routing.Route, unknown netip.Prefix) {
	tb.Helper()
	ask := append([]routing.Route{{Prefix: unknown}}, known...)
	got, err := a.SetRoutes(context.Background(), ask)
	if !errors.Is(err, routing.ErrUnknownPrefix) || !strings.Contains(err.Error(), unknown.String()) {
		tb.Errorf("SetRoutes(%v) error = %v, want routing.ErrUnknownPrefix naming %s", ask, err, unknown)
	}
	want := slices.Clone(known)
	slices.SortFunc(want, func(x, y routing.Route) int { return comparePrefix(x.Prefix, y.Prefix) })
	got = slices.Clone(got)
	slices.SortFunc(got, func(x, y routing.Route) int { return comparePrefix(x.Prefix, y.Prefix) })
	if !slices.Equal(want, got) {
		tb.Errorf("SetRoutes(%v) announced %v, want the known routes %v", ask, got, want)
	}
}

// CheckExported checks the claim every advertiser must back with its
// daemon: after SetRoutes announced routes, Exported reports, within
// timeout, exactly those routes, each exported to every up session with
// its drain state and no Mismatch (routing.Exported.Divergences is empty),
// and SessionsUp counts the up sessions Peers lists. a must have at least
// one session up and be able to announce routes. It returns the last
// Exported read.
func CheckExported(tb testing.TB, a routing.Advertiser, routes []routing.Route, timeout time.Duration) routing.Exported {
	tb.Helper()
	ctx := context.Background()
	got, err := a.SetRoutes(ctx, routes)
	if err != nil {
		tb.Errorf("SetRoutes(%v): %v", routes, err)
		return routing.Exported{}
	}
	var ex routing.Exported
	var div []string
	deadline := time.Now().Add(timeout)
	for {
		ex, err = a.Exported(ctx)
		if err != nil {
			tb.Errorf("Exported: %v", err)
			return ex
		}
		div = ex.Divergences(got)
		if len(div) == 0 && ex.SessionsUp > 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if ex.SessionsUp == 0 {
		tb.Errorf("Exported: no session up; CheckExported needs one")
	}
	if len(div) > 0 {
		tb.Errorf("Exported disagrees with the %d routes SetRoutes announced, after %s:\n%s", len(got), timeout, strings.Join(div, "\n"))
	}
	peers, err := a.Peers(ctx)
	if err != nil {
		tb.Errorf("Peers: %v", err)
		return ex
	}
	up := 0
	for _, p := range peers {
		if p.Up && p.Kind == routing.PeerSession {
			up++
		}
	}
	if up != ex.SessionsUp {
		tb.Errorf("Exported.SessionsUp = %d, Peers lists %d up", ex.SessionsUp, up)
	}
	return ex
}
