// Package hostcheck is the doctor: it turns every incident in the field notes
// (docs/field-notes.md) into a check of the host vipd runs on, each ending in
// PASS, WARN, FAIL or SKIP with a one-line finding that shows the observed
// values and the exact command that fixes it.
//
// Checks read the host only through the Host interface (files under /proc
// and /sys, ethtool, netlink, BPF probes, sockets), so tests point them at
// fixture trees in testdata/ or at a network namespace. `vipctl doctor`
// renders the Report as a table or JSON; vipd runs the same checks at start
// and uses StartError, SafeAttachMode and HoldIPv6 to act on them.
package hostcheck

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bird"
)

// Status is the outcome of one check.
type Status int

// Statuses, from best to worst. SKIP means the check does not apply to this
// node's configuration; it counts as a pass.
const (
	Pass Status = iota
	Skip
	Warn
	Fail
)

var statusNames = [...]string{Pass: "PASS", Skip: "SKIP", Warn: "WARN", Fail: "FAIL"}

// String returns PASS, SKIP, WARN or FAIL.
func (s Status) String() string {
	if int(s) < len(statusNames) {
		return statusNames[s]
	}
	return fmt.Sprintf("Status(%d)", int(s))
}

// MarshalText encodes the status as its name, for JSON.
func (s Status) MarshalText() ([]byte, error) { return []byte(s.String()), nil }

// UnmarshalText decodes a status name.
func (s *Status) UnmarshalText(b []byte) error {
	for i, n := range statusNames {
		if n == string(b) {
			*s = Status(i)
			return nil
		}
	}
	return fmt.Errorf("parsing status %q: unknown", b)
}

// Spec is what the checks need to know about this node's configuration. The
// caller fills it from the parsed vipd config; zero fields mean "not
// configured" and the checks that need them SKIP.
type Spec struct {
	// Interface is the uplink the XDP program attaches to.
	Interface string
	// Backend: this node decapsulates and serves VIP traffic.
	Backend bool
	// AllowIPForward is the operator's acknowledgement that forwarding is on
	// on a backend (the dataplane's loop guard still drops decapsulated
	// traffic for unbound VIPs).
	AllowIPForward bool
	// LocalGUE: a GUE packet may be delivered to this node from itself.
	LocalGUE bool
	// SwitchMTU is the MTU of the switch port facing Interface.
	SwitchMTU int
	// AttachMode is the configured attach mode (auto when unset).
	AttachMode dataplane.AttachMode
	// VIPs are all the configured VIPs.
	VIPs []netip.Addr
	// ClientPrefixes are where clients live; when set, a route to each one
	// is enough for IPv6 VIPs even without a default route.
	ClientPrefixes []netip.Prefix
	// RoutingMode is the routing mode ("" without a config: the routing
	// checks skip).
	RoutingMode routing.Mode
	// BirdSocket is BIRD's control socket (bird-ospf mode).
	BirdSocket string
	// BirdBinary is the bird executable, for the ignoremtu probe.
	BirdBinary string
	// IgnoreMTU: the OSPF config asks BIRD to ignore MTU mismatches.
	IgnoreMTU bool
	// BGPListen is the embedded BGP speaker's listen address, host:port
	// (bgp mode).
	BGPListen string
	// PeerStateURLs are the other nodes' state URLs.
	PeerStateURLs []string
	// Bird is the [routing.bird] section (bird-ospf mode), for asking the
	// running BIRD about its OSPF adjacencies.
	Bird *bird.Config
	// DiagnoseOSPF finds OSPF adjacencies stuck in ExStart; nil uses
	// routing/bird's Diagnose on Bird (tests swap it).
	DiagnoseOSPF func(ctx context.Context) ([]bird.Problem, error)
	// GUEPort is the GUE port (0 without a config); Members the number of
	// member underlay addresses and AllowedSources [dataplane]
	// allowed_sources: the trust boundary (checkGUETrust).
	GUEPort        uint16
	Members        int
	AllowedSources []netip.Prefix
	// ProbeIgnoreMTU reports whether birdBinary accepts the OSPF option
	// `ignoremtu`; nil asks the running BIRD of Bird, or else the binary
	// (routing/bird's ProbeIgnoreMTUFor; tests swap it).
	ProbeIgnoreMTU func(ctx context.Context, birdBinary string) (bool, error)
	// AskBird asks the running BIRD whether it supports ignoremtu and
	// reads vipd's file; nil uses routing/bird's AskRunning on Bird
	// (tests swap it).
	AskBird func(ctx context.Context) (bird.Facts, error)
	// StateDir is vipd's state directory ([node] state_dir), where a BIRD
	// guard holds its lock.
	StateDir string
}

// Result is the outcome of one check.
type Result struct {
	// ID is stable, for machines: "forwarding", "ixgbe-tx-queues", ...
	ID string `json:"id"`
	// Name is a short human title.
	Name   string `json:"name"`
	Status Status `json:"status"`
	// Finding is one line with the observed values.
	Finding string `json:"finding"`
	// Fix is the exact command (or config change) that fixes a WARN or
	// FAIL; empty when there is nothing to do.
	Fix string `json:"fix,omitempty"`
}

// Report is the outcome of all checks, in a fixed order.
type Report struct {
	Checks []Result `json:"checks"`
}

// Check IDs that callers act on.
const (
	IDForwarding = "forwarding"
	IDIPv6Route  = "ipv6-route"
	IDIxgbe      = "ixgbe-tx-queues"
	IDI40eXDP    = "i40e-x722"
	IDMTU        = "mtu"
	IDXDPMTU     = "xdp-mtu"
	IDOSPF       = "ospf-adjacency"
)

// Worst returns the worst status in the report (Pass for an empty one).
func (r Report) Worst() Status {
	w := Pass
	for _, c := range r.Checks {
		if c.Status > w {
			w = c.Status
		}
	}
	return w
}

// ExitCode is the doctor's exit code: 0 when every check passed or was
// skipped, 1 when any warned, 2 when any failed.
func (r Report) ExitCode() int {
	switch r.Worst() {
	case Fail:
		return 2
	case Warn:
		return 1
	}
	return 0
}

// Get returns the result with the given ID.
func (r Report) Get(id string) (Result, bool) {
	for _, c := range r.Checks {
		if c.ID == id {
			return c, true
		}
	}
	return Result{}, false
}

// ErrForwarding is returned by StartError when forwarding is on on a backend
// and the operator has not acknowledged it.
var ErrForwarding = errors.New("ip forwarding is on on a backend node (set allow_ip_forward to acknowledge)")

// StartError is the error vipd refuses to start with, or nil. Only the
// forwarding check blocks start (docs/field-notes.md, note 3): other failures are logged
// and acted on (SafeAttachMode, HoldIPv6) instead.
func StartError(r Report) error {
	if c, ok := r.Get(IDForwarding); ok && c.Status == Fail {
		return fmt.Errorf("%w: %s; fix: %s", ErrForwarding, c.Finding, c.Fix)
	}
	return nil
}

// SafeAttachMode tells attach mode "auto" whether native XDP is unsafe or
// impossible on this host (ixgbe Tx hang, docs/field-notes.md, note 1; i40e X722 crash on
// XDP load, docs/field-notes.md, note 2; MTU above the driver's native limit,
// docs/field-notes.md, note 5) and generic XDP must be used, with the reason.
func SafeAttachMode(r Report) (generic bool, reason string) {
	var reasons []string
	for _, id := range []string{IDIxgbe, IDI40eXDP, IDXDPMTU} {
		if c, ok := r.Get(id); ok && c.Status == Fail {
			reasons = append(reasons, c.Finding)
		}
	}
	if len(reasons) == 0 {
		return false, "native XDP is safe on this host"
	}
	return true, "native XDP unsafe: " + strings.Join(reasons, "; ")
}

// ReasonNoIPv6Route is the reason IPv6 VIPs are not announced when the node
// has no IPv6 route back to clients (docs/field-notes.md, note 4).
const ReasonNoIPv6Route = "no IPv6 route back to clients"

// HoldIPv6 reports whether IPv6 VIPs must be withheld from announcement, with
// ReasonNoIPv6Route as the reason.
func HoldIPv6(r Report) (hold bool, reason string) {
	if c, ok := r.Get(IDIPv6Route); ok && c.Status == Fail {
		return true, ReasonNoIPv6Route
	}
	return false, ""
}

// checkFunc is one check.
type checkFunc func(context.Context, Host, Spec) Result

// checks lists every check by ID, in report order.
var checks = []struct {
	id string
	fn checkFunc
}{
	{IDForwarding, checkForwarding},
	{"accept-local", checkAcceptLocal},
	{"rp-filter", checkRPFilter},
	{"rx-vlan", checkRxVLAN},
	{IDMTU, checkMTU},
	{IDXDPMTU, checkXDPMTU},
	{IDIPv6Route, checkIPv6Route},
	{IDIxgbe, checkIxgbe},
	{IDI40eXDP, checkI40eXDP},
	{"i40e-depmod", checkI40eDepmod},
	{"bpffs", checkBPFFS},
	{"btf", checkBTF},
	{"bpf-privileges", checkBPFPrivileges},
	{"bpf-features", checkBPFFeatures},
	{"bird", checkBird},
	{IDOSPF, checkOSPFAdjacency},
	{"bird-guard", checkBirdGuard},
	{"bgp-listen", checkBGPListen},
	{"peers", checkPeers},
	{IDGUETrust, checkGUETrust},
}

// Run runs every check against host for spec, in a fixed order. It never
// fails as a whole: a check that cannot read what it needs reports WARN with
// the error. Network state is read in the calling thread's namespace.
func Run(ctx context.Context, host Host, spec Spec) Report {
	var r Report
	for _, c := range checks {
		r.Checks = append(r.Checks, c.fn(ctx, host, spec))
	}
	return r
}

// RunOne runs the check with the given ID, e.g. IDIPv6Route again when
// routes change, so IPv6 VIPs are released once a route back exists.
func RunOne(ctx context.Context, host Host, spec Spec, id string) (Result, error) {
	for _, c := range checks {
		if c.id == id {
			return c.fn(ctx, host, spec), nil
		}
	}
	return Result{}, fmt.Errorf("running host check %q: no such check", id)
}
