package dataplane

import (
	"net/netip"

	"github.com/vipd/vipd/vip"
)

// Pinned is the dataplane state pinned under a pin path, as the XDP program
// sees it: read by ReadPinned straight from the maps, whatever any vipd
// says about it.
type Pinned struct {
	// VIPs are the programmed VIPs, by address.
	VIPs []PinnedVIP
	// Tables are the stored forwarding tables by their index in `tables`:
	// TableRows rows of backend slots (keys of Backends).
	Tables map[uint32][]Row
	// Backends are the non-empty backend slots.
	Backends map[uint32]PinnedBackend
	// Bound is the bound set (the loop guard), sorted.
	Bound []netip.Addr
}

// PinnedVIP is one programmed VIP.
type PinnedVIP struct {
	Addr netip.Addr
	// Services are its services, sorted (its fragment entries left out).
	Services []vip.Service
	// Table is the index of its table; HasTable is false when `tables`
	// holds none there (the program drops its packets, drop_no_table).
	Table    uint32
	HasTable bool
}

// PinnedBackend is one backend slot: an underlay address, and whether it is
// this node.
type PinnedBackend struct {
	Addr  netip.Addr
	Local bool
}
