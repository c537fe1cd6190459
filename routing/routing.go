// Package routing is the contract between a vipd node and the routing
// daemon that announces its VIPs to the routers: what the daemon needs of an
// advertiser over its whole life (set the announceable VIPs on every reload,
// set the announced routes on every state change, report the peers for
// status and metrics, close or abandon on exit). routing/bgp (an embedded
// GoBGP speaker) and routing/bird (a generated BIRD OSPF configuration)
// implement it; routing/routingtest records calls for unit tests.
//
// Advertisers announce exactly what they are told. Whether a draining VIP
// stays announced (with its drain attributes) or is withdrawn is the drain
// policy, decided once by the state machine in package vip: an advertiser
// never consults a policy of its own.
package routing

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Route is one VIP route the node asks its routers to send it traffic for.
type Route struct {
	// Prefix is the VIP as a host prefix (/32 or /128).
	Prefix netip.Prefix
	// Draining asks the advertiser to announce the route with its drain
	// attributes (worse MED, AS-path prepend, a community, a higher OSPF
	// metric) instead of the normal ones, so routers prefer other nodes.
	Draining bool
}

// VIP is a VIP an advertiser may announce, with its route attributes.
type VIP struct {
	// Prefix is the VIP as a host prefix (/32 or /128).
	Prefix netip.Prefix
	// Attrs are the route attributes of the advertiser's mode
	// (bgp.RouteAttrs, bird.RouteAttrs); nil means the mode's defaults. An
	// advertiser refuses attributes of another mode (ErrAttrs).
	Attrs any
}

// Peer is one routing session as status and metrics show it: a BGP
// neighbor, or an OSPF neighbor of BIRD. An advertiser that drives a daemon
// of its own (BIRD) also lists the daemon and its protocol instances, so
// that status says why no session is up (Kind).
type Peer struct {
	// Kind is PeerSession (the zero value) for a session routes flow over,
	// PeerDaemon or PeerInstance for the parts that carry them.
	Kind PeerKind
	// Name identifies the session for people and metric labels
	// ("192.0.2.1 AS65000", "ospf_v2 192.0.2.254").
	Name    string
	Address netip.Addr
	ASN     uint32 // 0 for OSPF
	// State is the session state in the daemon's own words, lower case
	// ("established", "active", "full/ptp", "exstart/dr").
	State string
	// Up is true when routes flow to the peer (BGP established, OSPF full).
	Up bool
	// Uptime is how long the session has been up (0 when not, or unknown).
	Uptime time.Duration
	// Advertised is the number of VIP routes the peer has been sent.
	Advertised int
	// LastError is the last problem the daemon reported about the peer.
	LastError string
}

// PeerKind says what a Peer is.
type PeerKind string

// Peer kinds.
const (
	// PeerSession is a session routes flow over (a BGP neighbor, an OSPF
	// adjacency); Exported.SessionsUp counts those that are up.
	PeerSession PeerKind = ""
	// PeerDaemon is the routing daemon itself (BIRD): up while it runs.
	PeerDaemon PeerKind = "daemon"
	// PeerInstance is one protocol instance of the daemon (an OSPF
	// protocol of BIRD): up while it runs with at least one session up.
	PeerInstance PeerKind = "instance"
)

// Exported is what the routing daemon really exports to its peers, read
// back from the daemon itself (BGP: each established neighbor's
// adj-RIB-out after export policy; BIRD: the routes `show route export`
// lists for vipd's protocols), never from the advertiser's own record of
// what it asked for. It is the ground truth a claim of "advertised" is
// checked against.
type Exported struct {
	// At is when it was read.
	At time.Time
	// SessionsUp counts the sessions routes flow over now (Peer.Up).
	SessionsUp int
	// SessionsUp4 and SessionsUp6 count the up sessions that carry IPv4
	// and IPv6 routes (an OSPFv2 adjacency carries only IPv4, an OSPFv3 one
	// only IPv6; a BGP session both). A route is expected on every up
	// session of its family. Both 0 (not filled in): every up session
	// carries both families.
	SessionsUp4, SessionsUp6 int
	// NoSession4 and NoSession6 say, in the daemon's words, why no session
	// of that family is up ("ospf_v2: neighbour 192.0.2.1 on eth0 in
	// ExStart/DR", "ospf_v3 is disabled in bird"); empty when one is, or
	// when the advertiser cannot tell.
	NoSession4, NoSession6 string
	// Routes holds every VIP prefix exported to at least one up session.
	Routes map[netip.Prefix]ExportedRoute
}

// ExportedRoute is one prefix in Exported.
type ExportedRoute struct {
	// Peers are the sessions (Peer.Name) that have the route, sorted.
	Peers []string
	// Draining is true when the route carries the drain attributes (a
	// worse MED, prepend or community; a higher OSPF metric). When the
	// drain attributes equal the normal ones it cannot be told apart and
	// is reported as false.
	Draining bool
	// Mismatch is empty when the exported attributes are the VIP's normal
	// or drain ones as the advertiser would announce them now; otherwise it
	// says what was exported instead (a reload whose new attributes did not
	// reach the daemon, a route that is not a configured VIP, sessions that
	// disagree). A claim check treats a route with a Mismatch as wrong.
	Mismatch string
}

// Advertiser announces VIP routes to the routers. Implementations are safe
// for concurrent use and idempotent: setting the same VIPs or routes again
// does nothing and succeeds.
//
// A prefix not given to SetVIPs is never announced. SetRoutes refuses each
// such prefix (the error wraps ErrUnknownPrefix and names every one) and
// still applies the other routes: one stale route cannot hold up the rest.
// After Close or Abandon every method returns ErrClosed.
type Advertiser interface {
	// SetVIPs replaces the VIPs that may be announced, with their
	// attributes (a config reload). Announced routes whose attributes
	// changed are announced again with the new ones; an announced route
	// whose VIP is no longer listed is withdrawn at once (pass the union of
	// the old and new VIPs to leave that to the state machine, which
	// withdraws before it unprograms).
	SetVIPs(ctx context.Context, vips []VIP) error
	// SetRoutes makes the announced routes exactly routes, in one go. It
	// returns the routes announced when it returns. On error the returned
	// slice is the advertiser's best knowledge, and a route whose state is
	// uncertain is included (the caller then assumes it still attracts
	// traffic). It does not block on a peer that is down; it may block for
	// the time a local daemon takes to reconfigure.
	SetRoutes(ctx context.Context, routes []Route) ([]Route, error)
	// Peers lists the routing sessions, for status and metrics.
	Peers(ctx context.Context) ([]Peer, error)
	// Exported reads back what the routing daemon exports now (see
	// Exported). It is cheap enough to call every few seconds with 10k
	// VIPs.
	Exported(ctx context.Context) (Exported, error)
	// Resync sends every announced route again from scratch: the caller
	// found that Exported disagrees with what SetRoutes reported (a route
	// the daemon lost, or one it still exports after a withdraw). BGP
	// re-installs its export policy and paths and refreshes each peer's
	// adj-RIB-out; BIRD rewrites its file and reconfigures.
	Resync(ctx context.Context) error
	// Close withdraws every route, waits (bounded by ctx) until the peers
	// were told, and stops: a shutdown.
	Close(ctx context.Context) error
	// Abandon stops without withdrawing anything: an upgrade exit, where
	// graceful restart (BGP) or the running BIRD keeps the routes until the
	// next vipd takes over.
	Abandon() error
}

// Errors shared by every advertiser.
var (
	// ErrUnknownPrefix: a route was asked for a prefix not given to SetVIPs.
	ErrUnknownPrefix = errors.New("prefix is not a configured VIP")
	// ErrClosed: the advertiser was closed or abandoned.
	ErrClosed = errors.New("advertiser closed")
	// ErrAttrs: a VIP's attributes are not of the advertiser's mode.
	ErrAttrs = errors.New("route attributes of another routing mode")
)

// Mode is how a node announces its VIPs.
type Mode string

// Routing modes.
const (
	ModeBGP      Mode = "bgp"       // embedded GoBGP (routing/bgp)
	ModeBirdOSPF Mode = "bird-ospf" // generated BIRD config (routing/bird)
)

// ParseMode parses "bgp" or "bird-ospf".
func ParseMode(s string) (Mode, error) {
	switch m := Mode(s); m {
	case ModeBGP, ModeBirdOSPF:
		return m, nil
	}
	return "", fmt.Errorf("routing mode %q: want bgp or bird-ospf", s)
}

// String returns the mode's word ("" for the zero Mode).
func (m Mode) String() string { return string(m) }

// MarshalText implements encoding.TextMarshaler.
func (m Mode) MarshalText() ([]byte, error) {
	if _, err := ParseMode(string(m)); err != nil {
		return nil, err
	}
	return []byte(m), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *Mode) UnmarshalText(b []byte) error {
	p, err := ParseMode(string(b))
	if err != nil {
		return err
	}
	*m = p
	return nil
}

// HostPrefix returns addr as a host route (/32 or /128).
func HostPrefix(addr netip.Addr) netip.Prefix {
	return netip.PrefixFrom(addr, addr.BitLen())
}

// NoSessionFor says why no session of p's family is up ("" if unknown).
func (e Exported) NoSessionFor(p netip.Prefix) string {
	if p.Addr().Is4() {
		return e.NoSession4
	}
	return e.NoSession6
}

// SessionsFor is the number of up sessions that should carry p.
func (e Exported) SessionsFor(p netip.Prefix) int {
	if e.SessionsUp4 == 0 && e.SessionsUp6 == 0 {
		return e.SessionsUp
	}
	if p.Addr().Is4() {
		return e.SessionsUp4
	}
	return e.SessionsUp6
}

// Divergences compares what an advertiser reported announced (want, as
// SetRoutes returned it) with what its daemon exports, and describes each
// difference in one line, sorted by prefix: a route announced but not
// exported (or with no session of its family up), exported but not
// announced, exported to only some of the up sessions of its family, with
// the other drain state, or with a Mismatch. With no session up nothing
// reaches a router: that is one line for all the routes. No lines means
// the claim holds.
func (e Exported) Divergences(want []Route) []string {
	if e.SessionsUp == 0 {
		if len(want) == 0 {
			return nil
		}
		return []string{fmt.Sprintf("no routing session up: none of the %d announced routes reaches a router", len(want))}
	}
	type line struct {
		p   netip.Prefix
		msg string
	}
	var out []line
	wanted := make(map[netip.Prefix]Route, len(want))
	for _, r := range want {
		wanted[r.Prefix] = r
		ex, ok := e.Routes[r.Prefix]
		n := e.SessionsFor(r.Prefix)
		switch {
		case !ok && n == 0:
			out = append(out, line{r.Prefix, "announced, but no session of its address family is up"})
		case !ok:
			out = append(out, line{r.Prefix, "announced but not exported"})
		case ex.Mismatch != "":
			out = append(out, line{r.Prefix, ex.Mismatch})
		case ex.Draining != r.Draining:
			out = append(out, line{r.Prefix, fmt.Sprintf("exported with draining=%v, announced with draining=%v", ex.Draining, r.Draining)})
		case len(ex.Peers) < n:
			out = append(out, line{r.Prefix, fmt.Sprintf("exported to %d of %d up sessions (%s)", len(ex.Peers), n, strings.Join(ex.Peers, ", "))})
		}
	}
	for p := range e.Routes {
		if _, ok := wanted[p]; !ok {
			out = append(out, line{p, "exported but not announced"})
		}
	}
	slices.SortFunc(out, func(a, b line) int {
		if c := a.p.Addr().Compare(b.p.Addr()); c != 0 {
			return c
		}
		return strings.Compare(a.msg, b.msg)
	})
	var res []string
	for _, l := range out {
		res = append(res, l.p.String()+": "+l.msg)
	}
	return res
}
