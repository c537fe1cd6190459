package hostcheck

import (
	"net/netip"
	"testing"
)

func TestGUETrust(t *testing.T) {
	const network = "the network must still drop udp/19523 from outside the cluster at its edge and stop the members' underlay addresses being spoofed from outside (uRPF or anti-spoofing): the boundary trusts a packet's outer source address"
	runCases(t, checkGUETrust, []checkCase{{
		name: "no config", fixture: "virtio",
		want: Result{ID: IDGUETrust, Name: "GUE trust boundary", Status: Skip,
			Finding: "no config: the trust boundary is the cluster's members and [dataplane] allowed_sources"},
	}, {
		name: "members only", fixture: "virtio", spec: Spec{GUEPort: 19523, Members: 6},
		want: Result{ID: IDGUETrust, Name: "GUE trust boundary", Status: Pass,
			Finding: "GUE on udp/19523 is decapsulated or forwarded only from 6 member underlay addresses and forwarded only to members (XDP drops and counts the rest, drop_gue_*); " + network},
	}, {
		name: "members and a director tier", fixture: "virtio",
		spec: Spec{GUEPort: 19523, Members: 3, AllowedSources: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28")}},
		want: Result{ID: IDGUETrust, Name: "GUE trust boundary", Status: Pass,
			Finding: "GUE on udp/19523 is decapsulated or forwarded only from 3 member underlay addresses and allowed_sources 203.0.113.0/28 and forwarded only to members (XDP drops and counts the rest, drop_gue_*); " + network},
	}, {
		name: "allowed_sources opens the boundary", fixture: "virtio",
		spec: Spec{GUEPort: 19523, Members: 3, AllowedSources: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}},
		want: Result{ID: IDGUETrust, Name: "GUE trust boundary", Status: Warn,
			Finding: "allowed_sources 0.0.0.0/0 accepts GUE from every address of its family: any host can have this node decapsulate and forward; " + network,
			Fix:     "list only the directors' prefixes in [dataplane] allowed_sources"},
	}})
}
