// Package netlink implements vip.Binder over rtnetlink: it puts VIP host
// addresses (IPv4 /32, IPv6 /128 without duplicate address detection) on the
// node's loopback so the local stack accepts decapsulated traffic for them.
//
// Advertisement never follows from these addresses (docs/design.md): binding only
// makes the node accept traffic, routes are announced by routing/.
package netlink

import (
	"net/netip"

	"github.com/vishvananda/netns"
)

// DefaultLink is the interface VIPs are bound to unless Options.Link says
// otherwise.
const DefaultLink = "lo"

// Options configure a Binder.
type Options struct {
	// Link is the interface the VIPs go on (default DefaultLink).
	Link string
	// NetNS, when open (> 0), is the network namespace the binder works in;
	// otherwise the binder works in the namespace of the thread that calls
	// New. Tests pass a private namespace here. The binder does not take
	// ownership of the handle.
	NetNS netns.NsHandle
}

// isVIPAddr reports whether a, found on the link, counts as a bound VIP:
// the loopback's own addresses (127/8, ::1) and link-local ones do not.
func isVIPAddr(a netip.Addr) bool {
	return a.IsValid() && !a.IsLoopback() && !a.IsLinkLocalUnicast() && !a.IsUnspecified()
}
