package bird

import (
	"context"
	"errors"
	"fmt"
	"os"
)

// Problem is something the doctor (internal/hostcheck) should report about
// the BIRD that vipd drives.
type Problem struct {
	Protocol  string
	Neighbor  string
	Interface string
	Reason    string
}

func (p Problem) String() string {
	return fmt.Sprintf("ospf %s: neighbour %s on %s: %s", p.Protocol, p.Neighbor, p.Interface, p.Reason)
}

// Diagnose looks for OSPF adjacencies stuck in ExStart (birdc show ospf
// neighbors) and explains them with the MTU mismatches in cfg.LogFile when
// there is one (docs/field-notes.md, note 5). A BIRD that cannot be reached is an error.
func Diagnose(ctx context.Context, cfg Config) ([]Problem, error) {
	cfg = cfg.WithDefaults()
	ns, err := Neighbors(ctx, cfg.Birdc, cfg.Socket)
	if err != nil {
		return nil, err
	}
	mismatch := map[[2]string]MTUMismatch{}
	if cfg.LogFile != "" {
		f, err := os.Open(cfg.LogFile)
		switch {
		case err == nil:
			mm, serr := ScanMTUMismatches(f)
			f.Close()
			if serr != nil {
				return nil, serr
			}
			for _, m := range mm {
				mismatch[[2]string{m.Neighbor, m.Interface}] = m
			}
		case !errors.Is(err, os.ErrNotExist):
			return nil, fmt.Errorf("reading bird log: %w", err)
		}
	}
	var out []Problem
	for _, n := range ns {
		if !n.Stuck() {
			continue
		}
		p := Problem{Protocol: n.Protocol, Neighbor: n.RouterID, Interface: n.Interface,
			Reason: "adjacency stuck in " + n.State + ": usually an MTU mismatch with the neighbour"}
		if m, ok := mismatch[[2]string{n.RouterID, n.Interface}]; ok {
			p.Reason = fmt.Sprintf("adjacency stuck in %s: MTU mismatch (remote %d, local %d); make the MTUs "+
				"match, or set ignore_mtu = true with a BIRD built with the ignoremtu patch (make bird-ignoremtu) "+
				"on both ends", n.State, m.Remote, m.Local)
		}
		out = append(out, p)
	}
	return out, nil
}

// Diagnose reports the problems of the BIRD this advertiser drives (see the
// package function Diagnose); vipd can log them or show them in status.
func (a *Advertiser) Diagnose(ctx context.Context) ([]Problem, error) {
	return Diagnose(ctx, a.cfg)
}
