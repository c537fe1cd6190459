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
		Reason: "stuck in ExStart: MTU mismatch (remote 9000, local 1500)"}
	fix := "match the interface MTU to the switch (ip link set IFACE mtu N), or set ignore_mtu = true in " +
		"[[routing.bird.ospf]] on both ends (needs a BIRD with the ignoremtu patch: make bird-ignoremtu)"
	tests := []struct {
		name     string
		mode     routing.Mode
		problems []bird.Problem
		err      error
		want     Result
	}{
		{"bgp mode", routing.ModeBGP, nil, nil, Result{Status: Skip, Finding: `routing mode "bgp", not bird-ospf`}},
		{"full adjacencies", routing.ModeBirdOSPF, nil, nil, Result{Status: Pass, Finding: "no OSPF adjacency stuck in ExStart"}},
		{"mtu mismatch", routing.ModeBirdOSPF, []bird.Problem{stuck}, nil, Result{Status: Fail, Finding: stuck.String(), Fix: fix}},
		{"bird down", routing.ModeBirdOSPF, nil, errors.New("dial unix /run/bird/bird.ctl: connect: no such file or directory"),
			Result{Status: Warn, Finding: "cannot ask BIRD about OSPF neighbours: dial unix /run/bird/bird.ctl: connect: no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Spec{RoutingMode: tt.mode, DiagnoseOSPF: func(context.Context) ([]bird.Problem, error) { return tt.problems, tt.err }}
			got := checkOSPFAdjacency(context.Background(), nil, s)
			tt.want.ID, tt.want.Name = IDOSPF, "OSPF adjacencies (MTU mismatch)"
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}
