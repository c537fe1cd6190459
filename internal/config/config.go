// Package config owns vipd.toml: it parses one node's configuration,
// validates all of it at once and returns a typed Config whose addresses,
// durations and modes are already parsed (no raw strings past this
// package). Every error names the file, the line and the item
// ("vipd.toml:42: vip[2].address: ...").
//
// The routing sections decode into the routing packages' own Config types
// (routing/bgp, routing/bird), except their drain key, the state machine's
// vip.DrainPolicy; the service checks decode into health.CheckConfig. Their
// Validate methods are called here and their errors mapped to lines.
// config.Diff alone decides what a reload may apply in place.
// examples/vipd.reference.toml documents every key.
package config

import (
	"net/netip"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/health"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/bird"
	"github.com/vipd/vipd/vip"
)

// Config is one node's validated configuration.
type Config struct {
	// File is the path the configuration was read from.
	File      string
	Node      Node
	Cluster   Cluster
	VIPs      []VIP
	Routing   Routing
	Dataplane Dataplane
	Timers    Timers
	API       API
}

// Node is this node's identity ([node]).
type Node struct {
	// Name is this node's cluster member name; it must be listed in
	// [[cluster.member]].
	Name string
	// RouterID is the BGP/OSPF router id (IPv4). Default: UnderlayV4.
	RouterID netip.Addr
	// UnderlayV4 and UnderlayV6 are this node's GUE addresses. Default: the
	// addresses of its [[cluster.member]] entry.
	UnderlayV4 netip.Addr
	UnderlayV6 netip.Addr
	// AllowIPForward acknowledges running a backend with ip_forward on
	// (docs/field-notes.md, note 3); the host check fails otherwise.
	AllowIPForward bool
	// ClientPrefixes are where clients live: before an IPv6 VIP is
	// advertised there must be a route back to them (docs/field-notes.md, note 4).
	ClientPrefixes []netip.Prefix
	// StateDir is where vipd keeps what must outlive it: the operator's
	// drains and the announced routes (package statedir). Default
	// statedir.DefaultPath.
	StateDir string
	// StartDrained starts the node in maintenance: a node drain is
	// recorded at start unless one is already.
	StartDrained bool
}

// Cluster is the cluster membership and peer polling ([cluster]).
type Cluster struct {
	// Seed seeds rendezvous hashing; it must be the same on every node.
	Seed         uint64
	PollInterval time.Duration
	PollTimeout  time.Duration
	// Rise/Fall: consecutive successful/failed polls before a peer counts
	// as up/failed.
	Rise, Fall int
	// Backend is how member states travel: BackendPoll (every director
	// polls every member's state_url) or BackendEtcd.
	Backend string
	// KeyFile is the cluster key file (docs/cluster.md): this node signs
	// its document with its first key and accepts documents signed with
	// any. Empty only with AllowUnsigned: the node then publishes plain
	// documents and reads its peers' unverified.
	KeyFile string
	// AllowUnsigned accepts members' unsigned documents: the rollout step
	// that turns signing on in a running cluster without a flap.
	AllowUnsigned bool
	// MaxClockSkew is how far a member's signing clock may be from this
	// node's (default cluster.DefaultMaxSkew).
	MaxClockSkew time.Duration
	// SlowStart is how long a member that joins or undrains takes to ramp
	// its weight up to the configured one (vip.Config.SlowStart); zero:
	// off.
	SlowStart time.Duration
	// RestartGrace is how long the peers keep this node as it was while
	// its vipd restarts for an upgrade (vipctl restart): they neither fail
	// it for missed polls nor change its rows until the next vipd answers
	// or the grace runs out (cluster.NodeState.RestartUntil).
	RestartGrace time.Duration
	// ProbeInterval is the time between data-path probe rounds (0: probes
	// off); ProbeTimeout bounds each probe (shorter than the interval);
	// ProbeFailures unanswered probes in a row demote a member,
	// ProbeSuccesses answered ones restore it (docs/cluster.md).
	ProbeInterval, ProbeTimeout   time.Duration
	ProbeFailures, ProbeSuccesses int
	// Etcd configures backend etcd ([cluster.etcd]); nil when absent.
	Etcd    *Etcd
	Members []Member
}

// Backends of [cluster] backend.
const (
	BackendPoll = "poll"
	BackendEtcd = "etcd"
)

// Etcd is the etcd backend's section ([cluster.etcd]).
type Etcd struct {
	// Endpoints are the etcd client URLs (http or https).
	Endpoints []string
	// Prefix is where the node states live, Prefix + member name; it
	// starts and ends with "/".
	Prefix string
	// LeaseTTL: a node whose vipd died is dropped by its peers this long
	// after its last keepalive (whole seconds, at least 2s).
	LeaseTTL time.Duration
	// DialTimeout and RequestTimeout bound connecting and each request.
	DialTimeout, RequestTimeout time.Duration
	// CAFile verifies the etcd servers (TLS); CertFile and KeyFile are
	// this node's client certificate (both or neither). Absolute paths.
	CAFile, CertFile, KeyFile string
	// Username and Password authenticate to etcd (optional).
	Username, Password string
}

// TLS reports whether the etcd connection uses TLS.
func (e *Etcd) TLS() bool {
	return e.CAFile != "" || e.CertFile != "" || slices.ContainsFunc(e.Endpoints, func(s string) bool {
		return strings.HasPrefix(s, "https://")
	})
}

// Member is one node of the cluster ([[cluster.member]]).
type Member struct {
	Name       string
	UnderlayV4 netip.Addr
	UnderlayV6 netip.Addr
	// StateURL is where the member serves its node state (http or https).
	StateURL url.URL
	// Weight is the member's share of the table rows relative to the
	// others' (MinWeight..MaxWeight, default DefaultWeight): a member with
	// twice the weight gets twice the new flows.
	Weight int
}

// Underlay returns the member's underlay address in the family of a (the
// GUE destination for a VIP of that family), or the zero Addr.
func (m Member) Underlay(a netip.Addr) netip.Addr {
	if a.Is4() {
		return m.UnderlayV4
	}
	return m.UnderlayV6
}

// VIP is one virtual IP served by the cluster ([[vip]]).
type VIP struct {
	// Name is an optional label for logs and vipctl.
	Name string
	Addr netip.Addr
	// Services are the (protocol, port) pairs forwarded; port 0 is any.
	Services []vip.Service
	// Check decides whether this node offers itself as a backend. It is
	// required; type "none" means always healthy.
	Check health.CheckConfig
	// BGP and OSPF are the route attributes for the active routing mode.
	BGP  bgp.RouteAttrs
	OSPF bird.RouteAttrs
}

// Prefix is the VIP as a host prefix (/32 or /128).
func (v VIP) Prefix() netip.Prefix {
	return netip.PrefixFrom(v.Addr, v.Addr.BitLen())
}

// Routing is the [routing] section: the mode and exactly the matching
// section (the other pointer is nil). The section's VIPs are filled from
// the [[vip]] sections, and its router id and next hops default from [node].
type Routing struct {
	Mode routing.Mode
	// Drain is the drain policy, the mode section's drain key: the state
	// machine applies it, the advertisers never see it.
	Drain vip.DrainPolicy
	BGP   *bgp.Config
	Bird  *bird.Config
}

// AdvertisedVIPs lists every VIP as the advertiser of the routing mode
// takes it: its host prefix and the mode's route attributes.
func (c *Config) AdvertisedVIPs() []routing.VIP {
	out := make([]routing.VIP, 0, len(c.VIPs))
	for _, v := range c.VIPs {
		rv := routing.VIP{Prefix: v.Prefix()}
		switch c.Routing.Mode {
		case routing.ModeBGP:
			rv.Attrs = v.BGP
		case routing.ModeBirdOSPF:
			rv.Attrs = v.OSPF
		}
		out = append(out, rv)
	}
	return out
}

// Dataplane is the XDP dataplane section ([dataplane]).
type Dataplane struct {
	// Interface is the uplink the XDP program is attached to.
	Interface string
	Attach    dataplane.AttachMode
	// GUEPort is the UDP destination port of GUE packets (default
	// dataplane.DefaultGUEPort).
	GUEPort uint16
	// PinPath is the bpffs directory for state that outlives vipd.
	PinPath string
	// SwitchMTU, if set, is the switch port's MTU, compared with the
	// interface MTU by the host check (docs/field-notes.md, note 5).
	SwitchMTU int
	// AllowedSources are prefixes GUE is accepted from besides the
	// members' underlay addresses: directors that are not members (a
	// separate GLB director tier). They are never forwarded to.
	AllowedSources []netip.Prefix
	// MaxHops is the most alternates a received GUE header may list
	// (1-dataplane.MaxHopsAccepted; default 1, what vipd's directors
	// write; 3 accepts GLB's director hashing twice).
	MaxHops int
}

// Timers are the grace periods of the state machine ([timers]).
type Timers struct {
	// WithdrawGrace: time between withdrawing a route and unprogramming the
	// VIP (routers converge meanwhile; invariant 4).
	WithdrawGrace time.Duration
	// TableGrace: time out of every peer's table before unbinding
	// (invariant 2).
	TableGrace time.Duration
	// DrainTimeout: longest a drain waits for established flows.
	DrainTimeout time.Duration
	// RemoveTimeout: longest a VIP removed by a reload waits for its
	// established flows (it is drained like any other). Default:
	// DrainTimeout.
	RemoveTimeout time.Duration
	// VerifyInterval: how often the routing daemon is read back to check
	// that what vipd claims announced is what it exports.
	VerifyInterval time.Duration
	// VerifySettle: how long after a route changes the daemon is given
	// before a disagreement counts.
	VerifySettle time.Duration
}

// API is where vipd listens ([api]).
type API struct {
	// Socket is the vipctl unix socket (absolute path, mode 0600).
	Socket string
	// StateListen is where the node state is served to peers. Default: the
	// host and port of this node's member state_url.
	StateListen netip.AddrPort
	// MetricsListen is the Prometheus listener; the zero value means off.
	MetricsListen netip.AddrPort
}

// DefaultPath is where vipd and vipctl look for the node's configuration.
const DefaultPath = "/etc/vipd/vipd.toml"

// Defaults for optional keys. (The GUE port defaults to
// dataplane.DefaultGUEPort, the API socket to api.DefaultSocket.)
const (
	DefaultPinPath        = "/sys/fs/bpf/vipd"
	DefaultPollInterval   = time.Second
	DefaultPollTimeout    = 500 * time.Millisecond
	DefaultRise           = 2
	DefaultFall           = 3
	DefaultWithdrawGrace  = 3 * time.Second
	DefaultTableGrace     = 10 * time.Second
	DefaultDrainTimeout   = 60 * time.Second
	DefaultVerifyInterval = 2 * time.Second
	DefaultVerifySettle   = 3 * time.Second
	DefaultMaxClockSkew   = 10 * time.Second // cluster.DefaultMaxSkew
	DefaultEtcdPrefix     = "/vipd/nodes/"   // etcd.DefaultPrefix
	DefaultEtcdLeaseTTL   = 5 * time.Second
	DefaultEtcdDial       = 5 * time.Second
	DefaultEtcdRequest    = 3 * time.Second
	DefaultWeight         = 100 // vip.DefaultWeight
	MinWeight             = 1   // 0 would be a drain, which has its own verb
	MaxWeight             = 10000
	MaxSlowStart          = time.Hour
	DefaultRestartGrace   = 30 * time.Second
	MinRestartGrace       = time.Second
	MaxRestartGrace       = 10 * time.Minute // cluster.MaxRestartHold
	MinSlowStart          = time.Second
)

// Member returns the member named name.
func (c *Config) Member(name string) (Member, bool) {
	for _, m := range c.Cluster.Members {
		if m.Name == name {
			return m, true
		}
	}
	return Member{}, false
}
