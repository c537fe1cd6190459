package hostcheck

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bird"
)

func TestOSPFAdjacency(t *testing.T) {
	stuck := bird.Problem{Protocol: "ospf_v2", Neighbor: "192.0.2.1", Interface: "eth0",
		Reason: "adjacency stuck in ExStart/DR: MTU mismatch (remote 9000, local 1500): BIRD >= 2.0.7 refuses it",
		Fix:    "make the MTUs match"}
	disabled := bird.Problem{Protocol: "ospf_v3", Reason: "ospf_v3 is disabled in bird (birdc enable ospf_v3)",
		Fix: "birdc -s /run/bird/bird.ctl enable ospf_v3"}
	lonely := bird.Problem{Protocol: "ospf_v2", Reason: "ospf_v2 has no OSPF neighbour (no router heard on its interfaces)",
		Fix: "check the interfaces"}
	tests := []struct {
		name     string
		mode     routing.Mode
		problems []bird.Problem
		err      error
		want     Result
	}{
		{"bgp mode", routing.ModeBGP, nil, nil, Result{Status: Skip, Finding: `routing mode "bgp", not bird-ospf`}},
		{"full adjacencies", routing.ModeBirdOSPF, nil, nil, Result{Status: Pass, Finding: "every OSPF protocol of vipd's is up with its neighbours Full"}},
		{"mtu mismatch", routing.ModeBirdOSPF, []bird.Problem{stuck}, nil, Result{Status: Fail, Finding: stuck.String(), Fix: stuck.Fix}},
		{"disabled and no neighbour", routing.ModeBirdOSPF, []bird.Problem{lonely, disabled}, nil,
			Result{Status: Fail, Finding: lonely.String() + "; " + disabled.String(), Fix: lonely.Fix + "; " + disabled.Fix}},
		// The whole error, never cut: it says which socket and why.
		{"bird down", routing.ModeBirdOSPF, nil, errors.New("connecting to /run/bird/bird.ctl: bird is not running: its control socket refuses connections"),
			Result{Status: Warn, Finding: "cannot ask BIRD about OSPF: connecting to /run/bird/bird.ctl: bird is not running: its control socket refuses connections"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Spec{RoutingMode: tt.mode, DiagnoseOSPF: func(context.Context) ([]bird.Problem, error) { return tt.problems, tt.err }}
			got := checkOSPFAdjacency(context.Background(), nil, s)
			tt.want.ID, tt.want.Name = IDOSPF, "OSPF adjacencies"
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
