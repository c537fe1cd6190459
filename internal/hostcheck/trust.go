package hostcheck

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
)

// IDGUETrust is the trust boundary's check: what vipd's XDP program
// filters itself, and what the network must still filter.
const IDGUETrust = "gue-trust"

// checkGUETrust states the GUE trust boundary of the configuration and what
// it leaves to the network (docs/design.md, "Dataplane: what the network
// still does"). Nothing on the host can show the network's filters, so it
// passes with the reminder in the finding; it warns when allowed_sources
// opens the boundary to a whole address family.
func checkGUETrust(_ context.Context, _ Host, s Spec) Result {
	r := Result{ID: IDGUETrust, Name: "GUE trust boundary"}
	if s.GUEPort == 0 {
		r.Status, r.Finding = Skip, "no config: the trust boundary is the cluster's members and [dataplane] allowed_sources"
		return r
	}
	network := fmt.Sprintf("the network must still drop udp/%d from outside the cluster at its edge and stop the members' underlay addresses being spoofed from outside (uRPF or anti-spoofing): the boundary trusts a packet's outer source address", s.GUEPort)
	var open []string
	for _, p := range s.AllowedSources {
		if p.Bits() == 0 {
			open = append(open, p.String())
		}
	}
	if len(open) > 0 {
		r.Status = Warn
		r.Finding = fmt.Sprintf("allowed_sources %s accepts GUE from every address of its family: any host can have this node decapsulate and forward; %s",
			strings.Join(open, ", "), network)
		r.Fix = "list only the directors' prefixes in [dataplane] allowed_sources"
		return r
	}
	r.Status = Pass
	r.Finding = fmt.Sprintf("GUE on udp/%d is decapsulated or forwarded only from %d member underlay addresses%s and forwarded only to members (XDP drops and counts the rest, drop_gue_*); %s",
		s.GUEPort, s.Members, prefixesWord(s.AllowedSources), network)
	return r
}

func prefixesWord(ps []netip.Prefix) string {
	if len(ps) == 0 {
		return ""
	}
	var s []string
	for _, p := range ps {
		s = append(s, p.String())
	}
	return " and allowed_sources " + strings.Join(s, ", ")
}
