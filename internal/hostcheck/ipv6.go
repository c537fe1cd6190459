package hostcheck

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// checkIPv6Route verifies that a node with IPv6 VIPs can send replies: it
// needs an IPv6 default route, or routes covering every configured client
// prefix (docs/field-notes.md, note 4: a host that never initialised IPv6 accepted VIP
// traffic and dropped every reply). A FAIL makes HoldIPv6 withhold the IPv6
// VIPs.
func checkIPv6Route(_ context.Context, h Host, s Spec) Result {
	r := Result{ID: IDIPv6Route, Name: "IPv6 route back to clients"}
	var v6 []string
	for _, a := range s.VIPs {
		if a.Is6() && !a.Is4In6() {
			v6 = append(v6, a.String())
		}
	}
	if len(v6) == 0 {
		r.Status, r.Finding = Skip, "no IPv6 VIP configured"
		return r
	}
	routes, err := h.Routes(true)
	if err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("listing IPv6 routes: %v", err)
		return r
	}
	for _, rt := range routes {
		if rt.Bits() == 0 {
			r.Status, r.Finding = Pass, fmt.Sprintf("IPv6 VIPs %s; default route present", strings.Join(v6, ", "))
			return r
		}
	}
	var missing []string
	for _, p := range s.ClientPrefixes {
		if p.Addr().Is6() && !covered(routes, p) {
			missing = append(missing, p.String())
		}
	}
	if len(s.ClientPrefixes) > 0 && len(missing) == 0 {
		r.Status, r.Finding = Pass, fmt.Sprintf("IPv6 VIPs %s; no default route but routes to every client prefix", strings.Join(v6, ", "))
		return r
	}
	r.Status = Fail
	r.Finding = fmt.Sprintf("IPv6 VIPs %s but no IPv6 default route", strings.Join(v6, ", "))
	if len(missing) > 0 {
		r.Finding += " and no route to " + strings.Join(missing, ", ")
	}
	r.Finding += fmt.Sprintf(" (%d IPv6 routes): replies have nowhere to go; IPv6 VIPs withheld (%s)", len(routes), ReasonNoIPv6Route)
	iface := s.Interface
	if iface == "" {
		iface = "IFACE"
	}
	r.Fix = fmt.Sprintf("ip -6 route add default via GATEWAY dev %s  (enable IPv6 on %s: sysctl -w net.ipv6.conf.%s.disable_ipv6=0)", iface, iface, iface)
	return r
}

// covered reports whether some route contains all of p.
func covered(routes []netip.Prefix, p netip.Prefix) bool {
	for _, rt := range routes {
		if rt.Bits() <= p.Bits() && rt.Contains(p.Addr()) {
			return true
		}
	}
	return false
}
