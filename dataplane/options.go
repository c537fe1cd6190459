package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
)

// DefaultGUEPort is the UDP destination port of GUE, as GitHub's GLB uses
// it.
const DefaultGUEPort = 19523

// AttachMode says how the XDP program is attached to the uplink.
type AttachMode uint8

// Attach modes.
const (
	// AttachAuto is native unless the host check found native XDP unsafe
	// on this NIC (Options.AutoGeneric, docs/field-notes.md, note 1), then generic. It is
	// the zero value.
	AttachAuto AttachMode = iota
	// AttachNative runs the program in the driver (XDP_FLAGS_DRV_MODE).
	AttachNative
	// AttachGeneric runs the program on the skb path (XDP_FLAGS_SKB_MODE):
	// slower, but works with every driver.
	AttachGeneric
)

var attachModeWords = [...]string{AttachAuto: "auto", AttachNative: "native", AttachGeneric: "generic"}

// ParseAttachMode parses "native", "generic" or "auto" ("" is auto).
func ParseAttachMode(s string) (AttachMode, error) {
	if s == "" {
		return AttachAuto, nil
	}
	for m, w := range attachModeWords {
		if s == w {
			return AttachMode(m), nil
		}
	}
	return AttachAuto, fmt.Errorf("attach mode %q: want native, generic or auto", s)
}

// String returns the mode's word.
func (m AttachMode) String() string {
	if int(m) < len(attachModeWords) {
		return attachModeWords[m]
	}
	return "AttachMode(" + strconv.Itoa(int(m)) + ")"
}

func (m AttachMode) valid() bool { return int(m) < len(attachModeWords) }

// MarshalText implements encoding.TextMarshaler.
func (m AttachMode) MarshalText() ([]byte, error) {
	if !m.valid() {
		return nil, fmt.Errorf("marshaling %s: not an attach mode", m)
	}
	return []byte(m.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (m *AttachMode) UnmarshalText(b []byte) error {
	v, err := ParseAttachMode(string(b))
	if err != nil {
		return err
	}
	*m = v
	return nil
}

// effective resolves auto.
func (m AttachMode) effective(autoGeneric bool) AttachMode {
	if m == AttachAuto {
		if autoGeneric {
			return AttachGeneric
		}
		return AttachNative
	}
	return m
}

// Options configure Open.
type Options struct {
	// Interface is the uplink the program is attached to.
	Interface string
	// Attach is the attach mode (default auto).
	Attach AttachMode
	// AutoGeneric is set by the host check when native XDP is unsafe on
	// Interface; it turns auto into generic.
	AutoGeneric bool
	// GUEPort is the UDP port of GUE (0 = DefaultGUEPort).
	GUEPort uint16
	// PinPath is the bpffs directory holding the pinned maps and link,
	// e.g. /sys/fs/bpf/vipd-<node>. It is created if missing.
	PinPath string
	// Local4 and Local6 are this node's underlay addresses (GUE
	// endpoints); either may be invalid (unset).
	Local4, Local6 netip.Addr
	// Seed is the cluster-wide hash seed: forwarding tables and the flow
	// hash of the XDP program both use it, so every director maps a flow
	// to the same backend.
	Seed uint64
	// Trust is the GUE trust boundary at start; SetTrust changes it. With
	// no members the boundary is off: GUE is accepted from anyone (logged
	// as a warning), which only suits tests and a node that does not know
	// its cluster yet.
	Trust Trust
	// MaxHops is the most alternates a received GUE header may list,
	// 1 to MaxHopsAccepted; 0 means 1, what vipd's directors write. 3
	// accepts GitHub GLB's director when it hashes twice.
	MaxHops int
	// ICMPRate is the most "too big" answers per second per CPU (path MTU
	// discovery for clients); 0 means the program's default, 1000.
	ICMPRate int
}

// Trust is who may send this node GUE and whom it may forward to: the
// trust boundary of the backend path.
type Trust struct {
	// Members are the underlay addresses of every cluster member, this
	// node included. GUE is accepted from them, and the hops of a GUE
	// header may name only them.
	Members []netip.Addr
	// Directors are extra prefixes GUE is accepted from (directors that
	// are not members, like a separate GLB director tier). They may not
	// be named as hops, and may not send a preset next_hop.
	Directors []netip.Prefix
}

// Errors of the dataplane.
var (
	// ErrNotSupported is returned by Open where XDP does not exist.
	ErrNotSupported = errors.New("xdp dataplane not supported on this platform")
	// ErrNoService: a VIP needs at least one (protocol, port) to be
	// programmed.
	ErrNoService = errors.New("vip has no service")
	// ErrTooManyVIPs: MaxVIPs addresses are programmed or bound already.
	ErrTooManyVIPs = errors.New("too many vips")
	// ErrTooManyVIPKeys: the VIP's services would take the `vips` map
	// over MaxVIPKeys entries.
	ErrTooManyVIPKeys = errors.New("too many vip services")
	// ErrTooManyTables: MaxTables distinct tables are stored already.
	ErrTooManyTables = errors.New("too many tables")
	// ErrTooManyBackends: every slot of the backends map is taken.
	ErrTooManyBackends = errors.New("too many backends")
	// ErrNotBPFFS: Options.PinPath is not on a bpffs mount (mount one with
	// `mount -t bpf bpf /sys/fs/bpf`), so nothing could outlive vipd.
	ErrNotBPFFS = errors.New("not on a bpf filesystem")
	// ErrClosed: the Dataplane was closed.
	ErrClosed = errors.New("dataplane closed")
)

func (o Options) validate() error {
	if o.Interface == "" {
		return errors.New("no interface")
	}
	if o.PinPath == "" {
		return errors.New("no pin path")
	}
	if o.Local4.IsValid() && !o.Local4.Is4() {
		return fmt.Errorf("local4 %s is not IPv4", o.Local4)
	}
	if o.Local6.IsValid() && (!o.Local6.Is6() || o.Local6.Is4In6()) {
		return fmt.Errorf("local6 %s is not IPv6", o.Local6)
	}
	if !o.Attach.valid() {
		return fmt.Errorf("unknown %s", o.Attach)
	}
	if o.MaxHops < 0 || o.MaxHops > MaxHopsAccepted {
		return fmt.Errorf("max hops %d is outside 0-%d", o.MaxHops, MaxHopsAccepted)
	}
	if o.ICMPRate < 0 {
		return fmt.Errorf("icmp rate %d is negative", o.ICMPRate)
	}
	return o.Trust.validate()
}

func (t Trust) validate() error {
	if len(t.Members) > MaxMembers {
		return fmt.Errorf("%d members: %w (MaxMembers = %d)", len(t.Members), ErrOverLimit, MaxMembers)
	}
	if len(t.Directors) > MaxDirectorPrefixes {
		return fmt.Errorf("%d director prefixes: %w (MaxDirectorPrefixes = %d)", len(t.Directors), ErrOverLimit, MaxDirectorPrefixes)
	}
	for _, m := range t.Members {
		if !m.IsValid() || m.Unmap().IsUnspecified() {
			return fmt.Errorf("member address %s is not an address", m)
		}
	}
	for _, p := range t.Directors {
		if !p.IsValid() {
			return fmt.Errorf("director prefix %s is not a prefix", p)
		}
	}
	return nil
}

// guePort is GUEPort with its default.
func (o Options) guePort() uint16 {
	if o.GUEPort == 0 {
		return DefaultGUEPort
	}
	return o.GUEPort
}
