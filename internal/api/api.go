// Package api is vipd's control interface: JSON over HTTP on a unix socket
// (mode 0600, so only root or the socket's owner may drive vipd). vipd serves
// it with Server; vipctl talks to it with Client.
//
// The types below are the wire format, documented field by field in
// docs/api.md as a stable interface: keys are snake_case, states and roles
// are words, durations are whole seconds, times RFC 3339. They are the
// API's own: the daemon translates its internal state into them, so a
// change inside vipd does not change what scripts read.
package api

import (
	"errors"
	"net/netip"
	"time"
)

// DefaultSocket is where vipd listens and vipctl connects unless told
// otherwise ([api] socket, vipctl --socket).
const DefaultSocket = "/run/vipd/vipd.sock"

// Status is the answer to GET /v1/status (and `vipctl status --json`).
type Status struct {
	Node string `json:"node"`
	// Phase is how far a node drain has gone: "active", "withdrawing",
	// "draining", "inactive" or "drained".
	Phase string `json:"phase"`
	// Stopping: a SIGTERM drain is in progress.
	Stopping bool `json:"stopping"`
	// Generation of the node-state document this node publishes.
	Generation uint64    `json:"generation"`
	Config     string    `json:"config"`
	Started    time.Time `json:"started"`
	// Routing is the routing mode: "bgp" or "bird-ospf".
	Routing string `json:"routing"`
	// NodeDrain is the operator's drain of the whole node (vipctl drain,
	// vipd --drained, [node] start_drained), absent when there is none.
	NodeDrain *Drain `json:"node_drain,omitempty"`
	// UnconfiguredDrains are drains of VIPs that are no longer in the
	// config: kept in the state directory, they apply again if the VIP
	// comes back (vipctl undrain --vip removes one).
	UnconfiguredDrains []VIPDrain `json:"unconfigured_drains"`
	// StateDir is where the drains and the announced routes are kept;
	// StateError says that a drain in effect could not be written there
	// (it would not survive a restart; vipd keeps trying).
	StateDir   string `json:"state_dir"`
	StateError string `json:"state_error,omitempty"`
	// PhaseSince is when the node drain phase last changed (or when
	// vipd started). PhaseEndsBy is when the current phase ends at the
	// latest by its timer (withdrawing: withdraw grace; draining: drain
	// timeout, sooner once idle; inactive: table grace), and DrainEndsBy
	// when the whole drain does if every phase left takes its full timer:
	// the drain's time left. Both are absent when the node is not
	// draining or is drained. A drain whose withdraw is not yet confirmed
	// by the routing daemon stays in withdrawing past PhaseEndsBy.
	PhaseSince  time.Time `json:"phase_since,omitzero"`
	PhaseEndsBy time.Time `json:"phase_ends_by,omitzero"`
	DrainEndsBy time.Time `json:"drain_ends_by,omitzero"`
	// ConfigLoaded is when the running config was loaded: the start, or
	// the last reload that applied. LastReload is the last SIGHUP's
	// outcome, absent before the first.
	ConfigLoaded time.Time `json:"config_loaded"`
	LastReload   *Reload   `json:"last_reload,omitempty"`
	// World is the routing daemon as vipd last read it back.
	World World `json:"world"`
	// LoError is why the last read of the addresses on lo failed (a VIP
	// removed from lo behind vipd's back goes unnoticed meanwhile).
	LoError   string      `json:"lo_error,omitempty"`
	VIPs      []VIPStatus `json:"vips"`
	Peers     []Peer      `json:"peers"`
	Members   []Member    `json:"members"`
	Cluster   *Cluster    `json:"cluster,omitempty"`
	Dataplane *Dataplane  `json:"dataplane,omitempty"`
	// Probes are the data-path probes (docs/cluster.md): absent from a
	// node that does not probe (no data path, as in tests on fakes).
	Probes *Probes `json:"probes,omitempty"`
}

// Probes are the data-path probes' view of every member, this node
// included.
type Probes struct {
	// On: probes are sent ([cluster] probe_interval not 0).
	On bool `json:"on"`
	// IntervalSeconds between rounds while On.
	IntervalSeconds float64 `json:"interval_seconds,omitempty"`
	// Note is "probe failing to every member; not demoting" while the
	// probes fail open.
	Note    string        `json:"note,omitempty"`
	Members []MemberProbe `json:"members"`
}

// MemberProbe is the GUE path to one member as the probes see it.
type MemberProbe struct {
	Name string `json:"name"`
	// Self: this node (judged by its probes to the others).
	Self bool `json:"self,omitempty"`
	// State is "ok", "failing", "pending" (no verdict yet) or "off"
	// (probes off, or the member down by its state: the state decides).
	State string `json:"state"`
	// Since is when the probes started failing (state failing).
	Since time.Time `json:"since,omitzero"`
	// RTTSeconds is the last answered probe's round trip.
	RTTSeconds float64 `json:"rtt_seconds,omitempty"`
	// Failures counts unanswered probes since vipd started; LastError is
	// why the last one failed.
	Failures  uint64 `json:"failures"`
	LastError string `json:"last_error,omitempty"`
	// Demoted is why the member is not a primary in this node's tables
	// ("GUE path to n2 failing"), absent when it is not demoted.
	Demoted string `json:"demoted,omitempty"`
}

// Reload is the outcome of a config reload (SIGHUP, systemctl reload).
type Reload struct {
	At time.Time `json:"at"`
	// OK: the new config applied; otherwise Error says why it was refused
	// (the previous config keeps running).
	OK    bool   `json:"ok"`
	Error string `json:"error,omitempty"`
}

// Drain is an operator's drain, as the state directory keeps it.
type Drain struct {
	// Since is when it was asked for.
	Since time.Time `json:"since"`
	// By is who asked: "vipctl" (POST /v1/drain), "flag" (vipd
	// --drained), "config" ([node] start_drained) or "unreadable-state"
	// (the state directory's drains could not be read at start: the node
	// is drained to be safe).
	By string `json:"by"`
	// Restored: read back from the state directory at this vipd's start
	// (set before it started).
	Restored bool `json:"restored"`
}

// VIPDrain is a drain of a VIP that is not in the config.
type VIPDrain struct {
	Address netip.Addr `json:"address"`
	Drain
}

// World is what vipd last read back from the routing daemon.
type World struct {
	// ReadAt is when the last successful read started; absent before one.
	ReadAt time.Time `json:"read_at,omitzero"`
	// SessionsUp counts the sessions routes flowed over at that read.
	SessionsUp int `json:"sessions_up"`
	// Error is why the last read failed (the world is unknown meanwhile).
	Error string `json:"error,omitempty"`
	// Resyncs counts the resyncs vipd asked of the advertiser because the
	// world disagreed with its claims; ResyncError is why the last failed.
	Resyncs     uint64 `json:"resyncs"`
	ResyncError string `json:"resync_error,omitempty"`
	// Stray are addresses the routing daemon exports a route for that
	// are no VIP of this node.
	Stray []netip.Addr `json:"stray"`
}

// VIPStatus is one VIP of this node: its facets, what the node publishes
// for it, why, and its forwarding table.
type VIPStatus struct {
	Address netip.Addr `json:"address"`
	// Configured is false for a VIP removed by a reload, on its way out.
	Configured bool `json:"configured"`
	Programmed bool `json:"programmed"`
	Advertised bool `json:"advertised"`
	// Depreferred: advertised with the drain attributes.
	Depreferred bool `json:"depreferred"`
	// Bound: on lo and in the dataplane's bound set.
	Bound bool `json:"bound"`
	// Rebinds counts the binds of the VIP again after someone else
	// removed it from lo, since vipd started.
	Rebinds uint64 `json:"rebinds"`
	// ForeignOnLo: someone else put the VIP on lo while vipd does not bind
	// it; vipd leaves the address alone.
	ForeignOnLo bool `json:"foreign_on_lo,omitempty"`
	Healthy     bool `json:"healthy"`
	// Draining: a drain of this VIP or of the node is in effect.
	Draining bool `json:"draining"`
	// Held is why announcing the VIP is vetoed (no IPv6 route back to the
	// clients), or empty.
	Held string `json:"held,omitempty"`
	// ServeState is what this node publishes to its peers for the VIP:
	// "active", "draining" or "inactive".
	ServeState string `json:"serve_state"`
	// Reason is the reason of the last change or refusal; Reasons explain
	// each facet's current value.
	Reason  string       `json:"reason"`
	Reasons FacetReasons `json:"reasons"`
	// Since is the time of the last change (absent before any).
	Since     time.Time `json:"since,omitzero"`
	LastError string    `json:"last_error,omitempty"`
	// Backends is the programmed forwarding table.
	Backends []Backend `json:"backends"`
	// Transitions and Errors count facet changes and failed calls since
	// vipd started.
	Transitions uint64 `json:"transitions"`
	Errors      uint64 `json:"errors"`
	// Drain is the operator's drain of this VIP itself (vipctl drain
	// --vip), absent when there is none; a node drain is in NodeDrain.
	Drain *Drain `json:"drain,omitempty"`
	// Route is the route checked against the world: "announced"
	// (Advertised, and the routing daemon exports it to at least one up
	// session), "withdrawn" (not advertised, and exported to none),
	// "pending" (changed within the settle time, not read since, or a
	// disagreement waiting for a second read), "no-session" (advertised,
	// no session up), "diverged" (want, claim and world disagree: see
	// RouteReason) or "unknown" (the world cannot be read: see
	// RouteReason).
	Route       string `json:"route"`
	RouteReason string `json:"route_reason"`
	// World is what the routing daemon exported for the VIP at the last
	// read.
	World VIPWorld `json:"world"`
	// Diverged: a confirmed divergence, until a read agrees again;
	// DivergedSince is when it was confirmed; Divergences counts them
	// since vipd started.
	Diverged      bool      `json:"diverged"`
	DivergedSince time.Time `json:"diverged_since,omitzero"`
	Divergences   uint64    `json:"divergences"`
	// Traffic is the dataplane's per-VIP packet and byte counters, by
	// verdict; absent while the dataplane keeps no per-VIP counters.
	Traffic []Traffic `json:"traffic,omitempty"`
}

// Traffic is one VIP's packets and bytes for one verdict of the XDP
// program, summed over CPUs.
type Traffic struct {
	// Verdict: "encapsulated" (sent to a backend), "local" (delivered to
	// this node's stack), "second_chance" (sent on to the secondary),
	// "loop_guard" (dropped: not bound here).
	Verdict string `json:"verdict"`
	Packets uint64 `json:"packets"`
	// Bytes of the VIP packets as the client sent them (inner IP packet).
	Bytes uint64 `json:"bytes"`
}

// VIPWorld is one VIP's route as the routing daemon exported it.
type VIPWorld struct {
	// Read: the routing daemon was read since vipd started (otherwise
	// the other fields are false and empty).
	Read bool `json:"read"`
	// Exported: to at least one up session; Draining: with the drain
	// attributes.
	Exported bool `json:"exported"`
	Draining bool `json:"draining"`
	// Peers are the sessions that have the route.
	Peers []string `json:"peers"`
}

// FacetReasons explain each facet's current value, or why it does not
// change yet.
type FacetReasons struct {
	Programmed string `json:"programmed"`
	Advertised string `json:"advertised"`
	Bound      string `json:"bound"`
	ServeState string `json:"serve_state"`
}

// Backend is one cluster member in a VIP's forwarding table.
type Backend struct {
	Name string `json:"name"`
	// Address is the member's underlay address: the GUE destination.
	Address netip.Addr `json:"address"`
	// Role is "primary" (takes new flows) or "secondary" (second hop only).
	Role string `json:"role"`
	// Local: this node itself.
	Local bool `json:"local"`
}

// Peer is one routing session: a BGP neighbor, or an OSPF neighbour of BIRD.
type Peer struct {
	Name    string     `json:"name"`
	Address netip.Addr `json:"address,omitzero"`
	ASN     uint32     `json:"asn,omitempty"`
	// State is the session state in the routing daemon's words, lower
	// case ("established", "active", "full/ptp"), or "unknown" when the
	// sessions could not be listed (LastError says why).
	State string `json:"state"`
	// Up: routes flow to the peer (BGP established, OSPF full).
	Up               bool   `json:"up"`
	UptimeSeconds    int64  `json:"uptime_seconds"`
	RoutesAdvertised int    `json:"routes_advertised"`
	LastError        string `json:"last_error,omitempty"`
}

// Uptime returns UptimeSeconds as a duration.
func (p Peer) Uptime() time.Duration { return time.Duration(p.UptimeSeconds) * time.Second }

// Member is a cluster member as this node sees it (docs/cluster.md).
type Member struct {
	Name string `json:"name"`
	// Up: its node state answers (after rise good polls).
	Up bool `json:"up"`
	// Generation of its last document while up.
	Generation uint64 `json:"generation,omitempty"`
	// RestartUntil is set while its last document says its vipd is
	// restarting for an upgrade: it is kept up, as that document has it,
	// until then or until the next vipd answers.
	RestartUntil time.Time `json:"restart_until,omitzero"`
	// Signature is the signature status of its last document: "ok",
	// "unsigned" (accepted without one: no key here, or allow_unsigned),
	// or the reason the last one was refused ("forged", "wrong-key",
	// "replayed", "stale", ...). Empty before any document.
	Signature string `json:"signature,omitempty"`
	// KeyID names the key that signed its last accepted document.
	KeyID string `json:"key_id,omitempty"`
	// Rejected counts its refused documents by reason since vipd started.
	Rejected map[string]uint64 `json:"rejected,omitempty"`
	// Misses counts polls that got no document (timeout, refused
	// connection, bad status); LastError is why the last one failed.
	Misses    uint64 `json:"misses,omitempty"`
	LastError string `json:"last_error,omitempty"`
	// SignedAt is when it signed its last accepted document (its clock);
	// LastSeen when this node accepted it; LagSeconds how long ago.
	SignedAt   time.Time `json:"signed_at,omitzero"`
	LastSeen   time.Time `json:"last_seen,omitzero"`
	LagSeconds float64   `json:"lag_seconds,omitempty"`
	// Revision is the etcd revision of its document (etcd backend).
	Revision int64 `json:"revision,omitempty"`
	// Digests are the digests it publishes (absent from an older vipd).
	Digests *Digests `json:"digests,omitempty"`
	// Differs names what differs from this node's digests ("seed", "vips
	// 198.51.100.10 services", "vips 198.51.100.10 table", ...); empty
	// when they agree. ConfigDiffers: the cluster configuration differs
	// (what vipd_cluster_config_digest_mismatch reports).
	Differs       []string `json:"differs,omitempty"`
	ConfigDiffers bool     `json:"config_differs,omitempty"`
}

// Digests are a node's configuration and table digests (hex, truncated
// SHA-256).
type Digests struct {
	// Config covers members, seed, table parameters and VIPs with their
	// services.
	Config string `json:"config"`
	// Tables has the digest of each VIP's programmed table.
	Tables map[netip.Addr]string `json:"tables,omitempty"`
	// TablesAt is the etcd revision the tables were built from (0: poll).
	TablesAt int64 `json:"tables_at,omitempty"`
}

// Cluster is how this node exchanges state with its members.
type Cluster struct {
	// Backend is "poll" or "etcd".
	Backend string `json:"backend"`
	// Connected: the etcd watch is live (always true for poll). Frozen:
	// the etcd quorum is lost or unreachable and the member states are the
	// last snapshot, kept until it is back. Error says why.
	Connected bool      `json:"connected"`
	Frozen    bool      `json:"frozen"`
	Revision  int64     `json:"revision,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Error     string    `json:"error,omitempty"`
	// KeyIDs are this node's cluster keys, the signing key first (none:
	// it publishes unsigned documents). AllowUnsigned: members' unsigned
	// documents are accepted (the rollout step).
	KeyIDs        []string `json:"key_ids"`
	AllowUnsigned bool     `json:"allow_unsigned,omitempty"`
	// Digests are the digests this node publishes.
	Digests *Digests `json:"digests,omitempty"`
}

// Dataplane is the XDP side of the status.
type Dataplane struct {
	Interface string `json:"interface"`
	// Attach is the configured attach mode: "native", "generic" or "auto".
	Attach   string            `json:"attach"`
	Counters map[string]uint64 `json:"counters,omitempty"`
	Error    string            `json:"error,omitempty"`
	// LoForwardingRestored counts the times vipd found forwarding on lo
	// (which the program's route lookups need) turned off and turned it
	// on again since it started.
	LoForwardingRestored uint64 `json:"lo_forwarding_restored"`
	// Memory is what the dataplane's maps take in the kernel; absent when
	// the dataplane does not say.
	Memory *DataplaneMemory `json:"memory,omitempty"`
}

// DataplaneMemory is the dataplane's kernel memory and its use of each
// limit (the sizes of the XDP program's maps).
type DataplaneMemory struct {
	// TotalBytes is the maps' and the forwarding tables' memory together;
	// TableBytes the tables' alone.
	TotalBytes uint64 `json:"total_bytes"`
	TableBytes uint64 `json:"table_bytes"`
	// Tables, VIPs, VIPKeys and Backends are in use, of MaxTables,
	// MaxVIPs, MaxVIPKeys and MaxBackends.
	Tables      int `json:"tables"`
	MaxTables   int `json:"max_tables"`
	VIPs        int `json:"vips"`
	MaxVIPs     int `json:"max_vips"`
	VIPKeys     int `json:"vip_keys"`
	MaxVIPKeys  int `json:"max_vip_keys"`
	Backends    int `json:"backends"`
	MaxBackends int `json:"max_backends"`
}

// DrainRequest is the body of POST /v1/drain and /v1/undrain. It names
// exactly one of the whole node (Node) or one VIP: an empty request is
// refused, never taken for the node.
type DrainRequest struct {
	Node bool        `json:"node,omitempty"`
	VIP  *netip.Addr `json:"vip,omitempty"`
}

// Validate reports what is wrong with the request, naming what is missing.
func (r DrainRequest) Validate() error {
	switch {
	case r.Node && r.VIP != nil:
		return errors.New(`"node" and "vip" both given: name the node or one VIP`)
	case !r.Node && r.VIP == nil:
		return errors.New(`missing "node": true (the whole node) or "vip": "ADDRESS" (one VIP)`)
	case r.VIP != nil && !r.VIP.IsValid():
		return errors.New(`"vip" is not an address`)
	}
	return nil
}

// VIP is one configured VIP (GET /v1/vips).
type VIP struct {
	Name    string     `json:"name,omitempty"`
	Address netip.Addr `json:"address"`
	// Services are written "tcp/80", "udp/53", "tcp/*" (any port).
	Services []string `json:"services"`
	// Check describes the local service check ("tcp 127.0.0.1:80",
	// "http http://...", "command [...]", "none").
	Check string `json:"check,omitempty"`
}

// Errors the daemon returns to the server, which map them to status codes.
var (
	// ErrUnknownVIP: the request names a VIP that is not configured (409).
	ErrUnknownVIP = errors.New("unknown vip")
	// ErrNotSaved: the change is in effect, but could not be written to
	// the state directory, so a restart would lose it (500).
	ErrNotSaved = errors.New("in effect but not saved to the state directory: it will not survive a restart")
	// ErrNotSupported: this vipd cannot answer the request (501).
	ErrNotSupported = errors.New("not supported")
)

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}
