// Package vip owns the per-VIP state machine of a vipd node: the three facets
// of a VIP (Programmed, Advertised, Bound), drain mode and local service
// health, driven by one event loop through the small interfaces below.
//
// This file is the contract between the state machine and the packages that
// implement its side effects (routing/bgp, routing/bird, vip/netlink,
// dataplane). Implementations must be idempotent: calling a setter again with
// the same value does nothing and succeeds.
//
// # Glossary
//
// Each word below means one thing in this package.
//
//   - Facet: one of the three things a VIP is on this node, each tracked as
//     really reached (liveFacets), never as hoped for. Programmed: the
//     director maps hold the VIP and its table. Advertised: a route for it
//     is announced (possibly depreferred). Bound: it is on lo and in the
//     dataplane's bound set.
//   - Program (verb): install a VIP and its forwarding table in the
//     director maps (Dataplane.Program). ProgramSpec is what is installed;
//     syncTables is the reconcile step that programs and unprograms.
//   - Table: a VIP's forwarding table, a list of backends. The desired
//     table (desiredTable, built by tableFor from every member's document)
//     is what the programmed table (liveFacets.table) should become.
//   - Backend: a cluster member in a VIP's table (type Backend), with its
//     BackendRole: primary (takes new flows) or secondary (second hop only).
//     Every node is both a director (it forwards) and, for the VIPs it
//     serves, a backend.
//   - Serve state: what this node tells its peers about a VIP
//     (cluster.ServeState: active, draining, inactive); stepServe moves it
//     one step per pass.
//   - Publish: make the node-state document (cluster.NodeState: every VIP's
//     serve state and health, with a generation) available to the peers'
//     pollers. Only publishNodeState publishes; docEntry is one VIP's entry.
//   - Status: the snapshot of the machine for vipctl and metrics (Status,
//     VIPStatus), stored by Controller.snapshot after every pass.
//   - Announce and withdraw: what the advertiser does with a route.
//     planRoutes decides the routes of a pass (with a reason per VIP),
//     advertise makes the call, recordRoutes keeps what was reported.
//   - Drain: a per-VIP drain withdraws that VIP's route and keeps serving
//     it; a node drain goes through the phases of Phase. The DrainPolicy
//     (withdraw or deprefer) decides, here and only here, whether a
//     draining VIP stays announced with its drain attributes. A VIP
//     removed by a reload is drained the same way (RemoveTimeout). The
//     operator's drains are kept by address (SetDrains).
//   - Want, claim and world: what the decisions ask of a route (want),
//     what the advertiser reported (claim: the advertised facet) and what
//     the routing daemon exports, read back with Exported (world). A
//     RouteCheck compares them; a disagreement seen twice is a divergence,
//     fixed by a Resync when the world is the odd one out.
//   - Hold: a veto on announcing a VIP (no IPv6 route back to the clients).
package vip

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/vipd/vipd/routing"
)

// Advertiser is the part of routing.Advertiser the state machine uses: it
// sets the announced routes (see routing.Advertiser.SetRoutes for the
// contract), and reads back what the routing daemon really exports to check
// those claims, resyncing when the two disagree. A draining VIP is passed
// with Route.Draining set under the deprefer drain policy and left out under
// withdraw: the policy is decided here, never by the advertiser.
type Advertiser interface {
	SetRoutes(ctx context.Context, routes []routing.Route) ([]routing.Route, error)
	// Exported reads back what the routing daemon exports now
	// (routing.Advertiser.Exported). It is called from a goroutine of the
	// Controller, never from its loop.
	Exported(ctx context.Context) (routing.Exported, error)
	// Resync sends every announced route again (routing.Advertiser.Resync).
	Resync(ctx context.Context) error
}

// Binder puts VIP addresses on the node's loopback so decapsulated traffic
// for them is accepted by the local stack (vip/netlink).
type Binder interface {
	// Bind adds addr to lo. Already present is success.
	Bind(ctx context.Context, addr netip.Addr) error
	// Unbind removes addr from lo. Not present is success.
	Unbind(ctx context.Context, addr netip.Addr) error
	// Bound lists the VIP addresses bound now: used to adopt state on
	// restart, and to check lo against the bound facet (lo.go). It is
	// called from a goroutine of the Controller as well as from its loop,
	// so it must be safe for concurrent use with Bind and Unbind.
	Bound(ctx context.Context) ([]netip.Addr, error)
}

// Service is one (protocol, port) of a VIP, written "tcp/80" or "udp/*".
// Port 0 means any port.
type Service struct {
	Proto uint8 // 6 = TCP, 17 = UDP
	Port  uint16
}

// IP protocol numbers of the services a VIP may forward.
const (
	ProtoTCP uint8 = 6
	ProtoUDP uint8 = 17
)

// ParseService parses "tcp/80", "udp/53", "tcp/*" (any port).
func ParseService(s string) (Service, error) {
	proto, port, ok := strings.Cut(s, "/")
	if !ok {
		return Service{}, fmt.Errorf("%q is not protocol/port (like \"tcp/80\" or \"udp/*\")", s)
	}
	var svc Service
	switch proto {
	case "tcp":
		svc.Proto = ProtoTCP
	case "udp":
		svc.Proto = ProtoUDP
	default:
		return Service{}, fmt.Errorf("%q: protocol %q is not tcp or udp", s, proto)
	}
	if port == "*" {
		return svc, nil
	}
	n, err := strconv.Atoi(port)
	if err != nil {
		return Service{}, fmt.Errorf("%q: port %q is not a number or *", s, port)
	}
	if n < 1 || n > 65535 {
		return Service{}, fmt.Errorf("%q: port %d is out of range 1-65535", s, n)
	}
	svc.Port = uint16(n)
	return svc, nil
}

// String writes the service as ParseService reads it; a protocol other
// than TCP or UDP is written as its number.
func (s Service) String() string {
	p := strconv.Itoa(int(s.Proto))
	switch s.Proto {
	case ProtoTCP:
		p = "tcp"
	case ProtoUDP:
		p = "udp"
	}
	if s.Port == 0 {
		return p + "/*"
	}
	return p + "/" + strconv.Itoa(int(s.Port))
}

// MarshalText implements encoding.TextMarshaler.
func (s Service) MarshalText() ([]byte, error) {
	if s.Proto != ProtoTCP && s.Proto != ProtoUDP {
		return nil, fmt.Errorf("marshaling service %s: protocol is not tcp or udp", s)
	}
	return []byte(s.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (s *Service) UnmarshalText(b []byte) error {
	v, err := ParseService(string(b))
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// BackendRole says how a backend may appear in a VIP's forwarding table.
type BackendRole uint8

const (
	// RolePrimary backends take new flows (first hop) and may be second hop.
	RolePrimary BackendRole = iota
	// RoleSecondary backends only appear as second hop: they are draining
	// (or failed but still reachable) and keep their established flows
	// through second chance.
	RoleSecondary
)

var roleWords = [...]string{RolePrimary: "primary", RoleSecondary: "secondary"}

// ParseBackendRole parses "primary" or "secondary".
func ParseBackendRole(s string) (BackendRole, error) {
	for r, w := range roleWords {
		if s == w {
			return BackendRole(r), nil
		}
	}
	return 0, fmt.Errorf("backend role %q: want primary or secondary", s)
}

// String returns the role's word.
func (r BackendRole) String() string {
	if int(r) < len(roleWords) {
		return roleWords[r]
	}
	return "BackendRole(" + strconv.Itoa(int(r)) + ")"
}

// MarshalText implements encoding.TextMarshaler.
func (r BackendRole) MarshalText() ([]byte, error) {
	if int(r) >= len(roleWords) {
		return nil, fmt.Errorf("marshaling %s: not a backend role", r)
	}
	return []byte(r.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (r *BackendRole) UnmarshalText(b []byte) error {
	v, err := ParseBackendRole(string(b))
	if err != nil {
		return err
	}
	*r = v
	return nil
}

// Backend is one node that serves a VIP, as seen by a director.
type Backend struct {
	// Name is the cluster member name; it seeds rendezvous hashing, so the
	// same name gives the same rows on every director.
	Name string
	// Addr is the node's underlay address in the VIP's family: the outer
	// GUE destination.
	Addr netip.Addr
	Role BackendRole
	// Local is true for this node itself (deliver without encapsulation).
	Local bool
	// Weight is the backend's weight in the table build now: its configured
	// weight, or less while slow start ramps it up. A backend takes a share
	// of the rows it is primary-eligible for in proportion to its weight
	// among the primary-role backends. Zero means DefaultWeight, so
	// backends built without weights are equal.
	Weight uint32
}

// DefaultWeight is a member's weight when the config gives none: equal
// weights build the unweighted rendezvous table.
const DefaultWeight = 100

// EffectiveWeight is b.Weight, DefaultWeight for zero.
func (b Backend) EffectiveWeight() uint32 {
	if b.Weight == 0 {
		return DefaultWeight
	}
	return b.Weight
}

// ProgramSpec is what Dataplane.Program installs for one VIP on a
// director: its services and its forwarding table.
type ProgramSpec struct {
	Addr     netip.Addr
	Services []Service
	// Backends build the forwarding table. It must hold at least one
	// RolePrimary backend for the VIP to be announced (invariant 1).
	Backends []Backend
}

// Dataplane drives the XDP program's maps (dataplane package).
type Dataplane interface {
	// Program installs or replaces the VIP and its forwarding table,
	// atomically: no packet sees half a table.
	Program(ctx context.Context, p ProgramSpec) error
	// Unprogram removes the VIP from the director maps. Absent is success.
	Unprogram(ctx context.Context, addr netip.Addr) error
	// SetBound makes the dataplane's bound set (the VIPs this node accepts
	// decapsulated traffic for) exactly addrs.
	SetBound(ctx context.Context, addrs []netip.Addr) error
	// Programmed lists the VIPs programmed now (used to adopt pinned state
	// on restart).
	Programmed(ctx context.Context) ([]netip.Addr, error)
}
