package dataplane

import (
	"errors"
	"fmt"

	"github.com/vipd/vipd/vip"
)

// The dataplane's limits, the sizes of the XDP program's maps (bpf/vipd.h,
// enum limits). They are constants on every platform so `vipctl config
// check` can apply them anywhere; maps_linux.go fails to compile unless each
// equals the program's own number.
const (
	// MaxVIPs is the most VIP addresses the dataplane can program and bind
	// at once.
	MaxVIPs = 16384
	// MaxVIPKeys is the most VIP map entries (`vips4` and `vips6`
	// together, though each map could hold this many): one per service of
	// every VIP, plus one per (VIP, protocol) that later fragments match
	// (VIPKeys).
	MaxVIPKeys = 131072
	// MaxTables is the most forwarding tables stored at once. VIPs with
	// the same backends and roles share one, and a VIP uses one table, so
	// MaxVIPs programmed VIPs always fit.
	MaxTables = 16384
	// MaxBackends is the most distinct backend underlay addresses in the
	// programmed tables (one per member and family in a symmetric
	// cluster).
	MaxBackends = 16384
	// MaxMembers is the most member underlay addresses the trust boundary
	// knows (Trust.Members).
	MaxMembers = 16384
	// MaxDirectorPrefixes is the most extra GUE source prefixes
	// (Trust.Directors).
	MaxDirectorPrefixes = 1024
	// MaxHopsAccepted is the most alternates a received GUE header may be
	// allowed to list (Options.MaxHops): GLB's director hashing twice
	// writes 3.
	MaxHopsAccepted = 3
	// TableBytes is the memory of one stored forwarding table: TableRows
	// rows of two 16-bit backend slots.
	TableBytes = TableRows * 4
)

// ErrOverLimit: a configuration needs more than one of the dataplane's
// limits; the error names the limit.
var ErrOverLimit = errors.New("over the dataplane's limits")

// VIPKeys is the number of `vips` entries a VIP with these services takes:
// one per service and one per protocol (the entry later fragments match).
func VIPKeys(services []vip.Service) int {
	protos := map[uint8]bool{}
	n := 0
	seen := map[vip.Service]bool{}
	for _, s := range services {
		if seen[s] {
			continue
		}
		seen[s] = true
		n++
		protos[s.Proto] = true
	}
	return n + len(protos)
}

// Scale is the size of a configuration as the dataplane counts it.
type Scale struct {
	// VIPs is the number of VIP addresses.
	VIPs int
	// VIPKeys is the sum of VIPKeys over the VIPs' services.
	VIPKeys int
	// Backends is the number of distinct member underlay addresses (both
	// families counted).
	Backends int
	// DirectorPrefixes is the number of extra allowed GUE source prefixes.
	DirectorPrefixes int
	// MaxHops is the configured Options.MaxHops (0 = 1).
	MaxHops int
}

// Check returns an error wrapping ErrOverLimit that names every limit s
// exceeds, or nil.
func (s Scale) Check() error {
	var errs []error
	over := func(what string, n int, name string, limit int) {
		if n > limit {
			errs = append(errs, fmt.Errorf("%d %s: %w (%s = %d)", n, what, ErrOverLimit, name, limit))
		}
	}
	over("VIPs", s.VIPs, "MaxVIPs", MaxVIPs)
	over("VIP services and fragment entries", s.VIPKeys, "MaxVIPKeys", MaxVIPKeys)
	over("backend underlay addresses", s.Backends, "MaxBackends", MaxBackends)
	over("backend underlay addresses", s.Backends, "MaxMembers", MaxMembers)
	over("director prefixes", s.DirectorPrefixes, "MaxDirectorPrefixes", MaxDirectorPrefixes)
	over("hops", s.MaxHops, "MaxHopsAccepted", MaxHopsAccepted)
	if s.MaxHops < 0 {
		errs = append(errs, fmt.Errorf("max hops %d is negative", s.MaxHops))
	}
	return errors.Join(errs...)
}
