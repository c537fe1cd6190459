package api

import (
	"net/netip"
	"time"
)

// The read-only views behind vipctl routes, table, lookup, events and
// config show (docs/api.md).

// Routes is the answer to GET /v1/routes: what this node asks its routing
// daemon to announce, and what the daemon really exports to each session.
type Routes struct {
	// Routing is the routing mode: "bgp" (the routes are GoBGP paths) or
	// "bird-ospf" (they are written to BIRD's config file).
	Routing string `json:"routing"`
	// Claimed are the routes the advertiser last reported announced (or
	// written for BIRD), in address order; ClaimedKnown is false until
	// the first report since vipd started.
	Claimed      []Route `json:"claimed"`
	ClaimedKnown bool    `json:"claimed_known"`
	// ReadAt is when the routing daemon was read back for Sessions; Error
	// is why it could not be (Sessions then lists no routes).
	ReadAt time.Time `json:"read_at,omitzero"`
	Error  string    `json:"error,omitempty"`
	// Sessions are every routing session with the routes the daemon
	// exports to it, in the order the daemon lists them.
	Sessions []SessionRoutes `json:"sessions"`
}

// Route is one VIP route.
type Route struct {
	Prefix netip.Prefix `json:"prefix"`
	// Draining: with the drain attributes (worse MED, prepend,
	// community; a higher OSPF metric).
	Draining bool `json:"draining"`
	// Mismatch (exported routes only) says how the exported attributes
	// differ from what vipd would announce; empty when they agree.
	Mismatch string `json:"mismatch,omitempty"`
}

// SessionRoutes is one routing session and what it is sent.
type SessionRoutes struct {
	Peer   Peer    `json:"peer"`
	Routes []Route `json:"routes"`
}

// Table is the answer to GET /v1/table?vip=V: how the VIP's forwarding
// table divides its rows between the cluster members.
type Table struct {
	VIP netip.Addr `json:"vip"`
	// Rows is the number of rows (65536); a flow's hash picks one.
	Rows int `json:"rows"`
	// Members are the members in the table, in name order.
	Members []TableShare `json:"members"`
}

// TableShare is one member's part of a forwarding table.
type TableShare struct {
	Backend
	// PrimaryRows are the rows whose new flows go to the member;
	// SecondaryRows those where it is the second hop (second chance).
	PrimaryRows   int `json:"primary_rows"`
	SecondaryRows int `json:"secondary_rows"`
	// Weight is the member's configured weight; EffectiveWeight the one
	// the table was built with, less than Weight while slow start ramps
	// the member up. Rows go to the primaries in proportion to their
	// effective weights. Zero: not reported (an older vipd).
	Weight          int `json:"weight,omitempty"`
	EffectiveWeight int `json:"effective_weight,omitempty"`
}

// Lookup is the answer to GET /v1/lookup: where the XDP program on this
// node sends one flow to a VIP.
type Lookup struct {
	VIP netip.Addr `json:"vip"`
	// Client is the flow's source; Port its destination port and
	// Protocol "tcp" or "udp".
	Client   netip.AddrPort `json:"client"`
	Port     uint16         `json:"port"`
	Protocol string         `json:"protocol"`
	// Row is the table row the program's flow hash picks.
	Row uint32 `json:"row"`
	// Primary gets the flow's new connections; Secondary is the second
	// hop a packet of a flow the primary has no socket for is sent on to.
	Primary   Backend `json:"primary"`
	Secondary Backend `json:"secondary"`
}

// Subjects of an Event.
const (
	SubjectNode   = "node"
	SubjectVIP    = "vip"
	SubjectMember = "member"
	// SubjectStream is the stream's own last line, What "lost", when vipd
	// cut the reader off for falling too far behind: reconnect to go on.
	SubjectStream = "stream"
)

// Event is one line of GET /v1/events: a transition with its reason.
type Event struct {
	Time time.Time `json:"time"`
	// Subject is what changed: "node", "vip" or "member" (or "stream").
	Subject string `json:"subject"`
	// VIP (subject vip) or Member (subject member) names it.
	VIP    netip.Addr `json:"vip,omitzero"`
	Member string     `json:"member,omitempty"`
	// What changed. Node: "phase", "stopping". VIP: "added", "removed",
	// "configured", "programmed", "advertised", "bound", "healthy",
	// "draining", "held", "serve_state", "route". Member: "up".
	What string `json:"what"`
	// From and To are the values before and after: "true"/"false" for
	// yes-or-no facts, the words of Status otherwise (advertised:
	// "withdrawn", "announced", "depreferred").
	From string `json:"from"`
	To   string `json:"to"`
	// Reason is the controller's reason for the new value.
	Reason string `json:"reason,omitempty"`
}

// EffectiveConfig is the answer to GET /v1/config: the configuration vipd
// runs, every default filled in, as TOML. Secrets (BGP passwords) are
// replaced with "<redacted>".
type EffectiveConfig struct {
	// File is the path it was read from; Loaded when (start or the last
	// reload that applied).
	File   string    `json:"file"`
	Loaded time.Time `json:"loaded"`
	TOML   string    `json:"toml"`
}
