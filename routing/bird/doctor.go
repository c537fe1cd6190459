package bird

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Problem is something the doctor (internal/hostcheck) should report about
// the BIRD that vipd drives: a protocol of vipd's that carries no route
// (disabled, down, missing, no neighbour) or a neighbour that does not
// reach Full.
type Problem struct {
	Protocol string
	// Neighbor and Interface are empty for a problem of the protocol.
	Neighbor  string
	Interface string
	Reason    string
	// Fix is what to do, on this node and on the router.
	Fix string
}

func (p Problem) String() string {
	if p.Neighbor == "" {
		return fmt.Sprintf("ospf %s: %s", p.Protocol, p.Reason)
	}
	return fmt.Sprintf("ospf %s: neighbour %s on %s: %s", p.Protocol, p.Neighbor, p.Interface, p.Reason)
}

// RouterMTUIgnore lists what "ignore the MTU" is called on the router end,
// for the doctor's advice: BIRD needs the same patch as the node.
const RouterMTUIgnore = "BIRD: `ignoremtu yes;` (patched BIRD); FRR: `ip ospf mtu-ignore`; " +
	"Cisco IOS/NX-OS, Arista EOS: `ip ospf mtu-ignore`; Juniper: `set protocols ospf area A interface IF ignore-mtu`"

// Diagnose reads the state of the BIRD cfg drives (ReadState) and reports
// every protocol of vipd's that carries no route and every neighbour that
// is not Full: disabled, down or missing protocols, protocols with no
// neighbour, adjacencies stuck in ExStart (with the MTU mismatch BIRD
// logged to cfg.LogFile, and which end refuses: with ignore_mtu set here,
// it is the router) or in another state. A BIRD that cannot be reached is
// an error naming why (ErrSocketMissing, ErrBirdDown, ErrSocketPermission).
func Diagnose(ctx context.Context, cfg Config) ([]Problem, error) {
	cfg = cfg.WithDefaults()
	st, err := ReadState(ctx, cfg)
	if err != nil {
		return nil, err
	}
	var mm []MTUMismatch
	if cfg.LogFile != "" && st.stuck() {
		if mm, err = scanLogFile(cfg.LogFile); err != nil {
			return nil, err
		}
	}
	ignoring := map[string]bool{}
	for _, o := range cfg.OSPF {
		ignoring[o.Name] = o.IgnoreMTU
	}
	var out []Problem
	for _, p := range st.Protocols {
		if !p.Up() || len(p.Neighbors) == 0 {
			pr := Problem{Protocol: p.Name, Reason: p.Why()}
			switch {
			case p.Missing:
				pr.Fix = "start bird with the config vipd writes (" + cfg.ConfigFile + "), or include it"
			case p.Disabled():
				pr.Fix = "birdc -s " + cfg.Socket + " enable " + p.Name
			case !p.Up():
				pr.Fix = "birdc -s " + cfg.Socket + " show protocols all " + p.Name
			default:
				pr.Fix = "check that the interfaces of " + p.Name + " are the uplink and that the router runs OSPF on its end " +
					"with the same area, hello/dead timers, network type and authentication"
			}
			out = append(out, pr)
			continue
		}
		for _, n := range p.Neighbors {
			if strings.HasPrefix(n.State, "Full") || strings.HasPrefix(n.State, "2-Way") {
				continue // 2-Way: two DROthers on a broadcast link, as it should be
			}
			out = append(out, neighborProblem(p.Name, n, mm, ignoring[p.Name]))
		}
	}
	return out, nil
}

// neighborProblem explains one neighbour that is not Full.
func neighborProblem(proto string, n Neighbor, mm []MTUMismatch, ignoring bool) Problem {
	pr := Problem{Protocol: proto, Neighbor: n.RouterID, Interface: n.Interface,
		Reason: "adjacency in " + n.State + neighborHint(n)}
	if !n.Stuck() {
		pr.Fix = "wait a dead interval; if it stays, compare the OSPF settings of both ends (birdc show ospf interface)"
		return pr
	}
	var m *MTUMismatch
	for i := range mm {
		if mm[i].Neighbor == n.RouterID && mm[i].Interface == n.Interface {
			m = &mm[i]
		}
	}
	switch {
	case ignoring && m != nil:
		// This end ignores the MTU and still logs the mismatch: BIRD logs
		// it either way, but the adjacency stays stuck only because the
		// router's end refuses.
		pr.Reason = fmt.Sprintf("adjacency stuck in %s: MTU mismatch (remote %d, local %d); this node ignores it "+
			"(ignore_mtu), so the router's end is the one refusing", n.State, m.Remote, m.Local)
		pr.Fix = "on the router " + n.RouterID + ", ignore the MTU on the interface towards this node (" + RouterMTUIgnore +
			"), or make both MTUs equal"
	case ignoring:
		pr.Reason = "adjacency stuck in " + n.State + "; this node ignores MTU mismatches (ignore_mtu), so the router's end " +
			"refuses: usually its MTU check"
		pr.Fix = "on the router " + n.RouterID + ", ignore the MTU on the interface towards this node (" + RouterMTUIgnore + ")"
	case m != nil:
		pr.Reason = fmt.Sprintf("adjacency stuck in %s: MTU mismatch (remote %d, local %d): BIRD >= 2.0.7 refuses it",
			n.State, m.Remote, m.Local)
		pr.Fix = "make the MTUs match (ip link set " + n.Interface + " mtu N, within the native XDP limit), or ignore the " +
			"mismatch on both ends: ignore_mtu = true in [[routing.bird.ospf]] here (a BIRD with the ignoremtu patch: " +
			"make bird-ignoremtu), and on the router " + RouterMTUIgnore
	default:
		pr.Reason = "adjacency stuck in " + n.State + ": usually an MTU mismatch with the router"
		pr.Fix = "compare the MTUs of both ends (set routing.bird.log_file to see BIRD's \"MTU mismatch\" lines), " +
			"then make them match or ignore the mismatch on both ends (ignore_mtu = true here with a patched BIRD; " +
			"on the router " + RouterMTUIgnore + ")"
	}
	return pr
}

// scanLogFile reads the MTU mismatches BIRD logged to file (none if it
// does not exist).
func scanLogFile(file string) ([]MTUMismatch, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading bird log: %w", err)
	}
	defer f.Close()
	return ScanMTUMismatches(f)
}

// Diagnose reports the problems of the BIRD this advertiser drives (see the
// package function Diagnose); vipd can log them or show them in status.
func (a *Advertiser) Diagnose(ctx context.Context) ([]Problem, error) {
	return Diagnose(ctx, a.cfg)
}

// Facts is what the doctor asks the running BIRD beyond its version.
type Facts struct {
	// IgnoreMTU: the running daemon accepts `ignoremtu` (a patched BIRD).
	IgnoreMTU bool
	// Reads is nil when the running BIRD reads and accepts the file vipd
	// writes (`configure check` of it, as BIRD's own user), or why not:
	// ErrBirdCannotRead, ErrBirdNoFile, a *ConfigError.
	Reads error
	// File is what was checked: vipd's file (mode full), or BIRD's own
	// configuration, which includes it (mode include).
	File string
}

// AskRunning asks the BIRD that cfg drives whether it supports
// `ignoremtu` and whether it can read the file vipd writes. The error is
// about reaching BIRD at all (ErrSocketMissing, ErrBirdDown,
// ErrSocketPermission).
func AskRunning(ctx context.Context, cfg Config) (Facts, error) {
	cfg = cfg.WithDefaults()
	var f Facts
	ok, err := ProbeRunningIgnoreMTU(ctx, cfg.Socket, filepath.Dir(cfg.ConfigFile))
	if unreachable(err) {
		return f, err
	}
	f.IgnoreMTU = ok && err == nil
	arg := cfg.ConfigFile
	f.File = cfg.ConfigFile
	if cfg.Mode == ModeInclude {
		arg, f.File = "", "its configuration (which includes "+cfg.ConfigFile+")"
	}
	if _, err := os.Stat(cfg.ConfigFile); errors.Is(err, os.ErrNotExist) {
		f.Reads = fmt.Errorf("%s does not exist yet: vipctl bird-config -o %s writes the first one: %w", cfg.ConfigFile, cfg.ConfigFile, ErrBirdNoFile)
		return f, nil
	}
	if _, err := configureSocket(ctx, cfg.Socket, arg, true); err != nil {
		if unreachable(err) {
			return f, err
		}
		f.Reads = err
	}
	return f, nil
}
