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
}

// Errors of the dataplane.
var (
	// ErrNotSupported is returned by Open where XDP does not exist.
	ErrNotSupported = errors.New("xdp dataplane not supported on this platform")
	// ErrNoService: a VIP needs at least one (protocol, port) to be
	// programmed.
	ErrNoService = errors.New("vip has no service")
	// ErrTooManyVIPs: every slot of the tables map is taken.
	ErrTooManyVIPs = errors.New("too many vips")
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
	return nil
}

// guePort is GUEPort with its default.
func (o Options) guePort() uint16 {
	if o.GUEPort == 0 {
		return DefaultGUEPort
	}
	return o.GUEPort
}
