//go:build !linux

package dataplane

import (
	"context"
	"net/netip"

	"github.com/hashicorp/go-hclog"
	"github.com/vipd/vipd/vip"
)

// Dataplane is the node's XDP program and its maps; XDP exists only on
// Linux, so here every method fails with ErrNotSupported.
type Dataplane struct{}

// Open fails with ErrNotSupported outside Linux.
func Open(hclog.Logger, Options) (*Dataplane, error) { return nil, ErrNotSupported }

// Program fails with ErrNotSupported.
func (*Dataplane) Program(context.Context, vip.ProgramSpec) error { return ErrNotSupported }

// Unprogram fails with ErrNotSupported.
func (*Dataplane) Unprogram(context.Context, netip.Addr) error { return ErrNotSupported }

// SetBound fails with ErrNotSupported.
func (*Dataplane) SetBound(context.Context, []netip.Addr) error { return ErrNotSupported }

// Programmed fails with ErrNotSupported.
func (*Dataplane) Programmed(context.Context) ([]netip.Addr, error) { return nil, ErrNotSupported }

// SetTrust fails with ErrNotSupported.
func (*Dataplane) SetTrust(context.Context, Trust) error { return ErrNotSupported }

// VIPStats fails with ErrNotSupported.
func (*Dataplane) VIPStats(context.Context) (map[netip.Addr]VIPCounters, error) {
	return nil, ErrNotSupported
}

// Memory fails with ErrNotSupported.
func (*Dataplane) Memory() (Memory, error) { return Memory{}, ErrNotSupported }

// Stats fails with ErrNotSupported.
func (*Dataplane) Stats() (map[string]uint64, error) { return nil, ErrNotSupported }

// EnsureLookupForwarding fails with ErrNotSupported.
func (*Dataplane) EnsureLookupForwarding() (bool, error) { return false, ErrNotSupported }

// Close does nothing.
func (*Dataplane) Close() error { return nil }

// Uninstall fails with ErrNotSupported.
func (*Dataplane) Uninstall() error { return ErrNotSupported }

// ReadPinned fails with ErrNotSupported.
func ReadPinned(string) (Pinned, error) { return Pinned{}, ErrNotSupported }

// RemovePinned fails with ErrNotSupported.
func RemovePinned(string) error { return ErrNotSupported }

// LookupFlow fails with ErrNotSupported.
func (*Dataplane) LookupFlow(context.Context, netip.Addr, netip.AddrPort, uint8, uint16) (uint32, netip.Addr, netip.Addr, error) {
	return 0, netip.Addr{}, netip.Addr{}, ErrNotSupported
}
