package hostcheck

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bird"
)

// dialTimeout bounds each network probe of the routing checks.
const dialTimeout = 2 * time.Second

// defaultBirdSocket is BIRD's control socket when none is configured
// (Debian's bird2 package).
const defaultBirdSocket = "/run/bird/bird.ctl"

// checkBird verifies, in bird-ospf mode, that BIRD's control socket answers
// and reports its version from the greeting ("0001 BIRD 2.0.12 ready."). With
// the [routing.bird] section it also asks the running daemon (not a binary
// on disk) whether it supports ignoremtu, and has it parse the file vipd
// writes as BIRD's own user: a file BIRD cannot read (vipd's files take the
// owner and group of their directory) fails here instead of at the first
// apply.
func checkBird(ctx context.Context, h Host, s Spec) Result {
	r := Result{ID: "bird", Name: "BIRD control socket"}
	if s.RoutingMode != routing.ModeBirdOSPF {
		r.Status, r.Finding = Skip, fmt.Sprintf("routing mode %q, not %s", s.RoutingMode, routing.ModeBirdOSPF)
		return r
	}
	sock := s.BirdSocket
	if sock == "" {
		sock = defaultBirdSocket
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	version, err := birdVersion(dctx, h, sock)
	if err != nil {
		r.Status, r.Finding = Fail, fmt.Sprintf("%s: %v", sock, err)
		r.Fix = birdStartFix(s, sock)
		return r
	}
	r.Status, r.Finding = Pass, fmt.Sprintf("%s: BIRD %s", sock, version)
	ask := s.AskBird
	if ask == nil && s.Bird != nil {
		cfg := *s.Bird
		ask = func(ctx context.Context) (bird.Facts, error) { return bird.AskRunning(ctx, cfg) }
	}
	if ask == nil {
		return r
	}
	actx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	f, err := ask(actx)
	if err != nil {
		r.Status = Warn
		r.Finding += fmt.Sprintf("; cannot ask it more: %v", err)
		return r
	}
	if f.IgnoreMTU {
		r.Finding += " (with the ignoremtu patch)"
	} else {
		r.Finding += " (stock: no ignoremtu)"
	}
	var ce *bird.ConfigError
	switch {
	case f.Reads == nil:
		r.Finding += "; it reads " + f.File
	case errors.Is(f.Reads, bird.ErrBirdCannotRead):
		r.Status = Fail
		r.Finding += "; it cannot read " + f.File + ": " + f.Reads.Error()
		if s.Bird != nil {
			dir := filepath.Dir(s.Bird.ConfigFile)
			r.Fix = fmt.Sprintf("chgrp BIRD_GROUP %s && chmod g+rx %s (the group bird runs as: ls -l %s), then vipd rewrites the file with that group", dir, dir, sock)
		}
	case errors.Is(f.Reads, bird.ErrBirdNoFile):
		r.Status = Fail
		r.Finding += "; " + f.Reads.Error()
		if s.Bird != nil {
			r.Fix = "vipctl bird-config -c VIPD_TOML -o " + s.Bird.ConfigFile + " (announces nothing until vipd runs)"
		}
	case errors.As(f.Reads, &ce):
		r.Status = Fail
		r.Finding += "; it refuses " + f.File + ": " + f.Reads.Error()
	default:
		r.Status = Warn
		r.Finding += "; checking " + f.File + " with it: " + f.Reads.Error()
	}
	return r
}

// birdStartFix is how to start the BIRD vipd drives, the way docs/ospf.md
// tells (its own user, the file vipd writes or the operator's bird.conf
// that includes it): never a path this node does not use.
func birdStartFix(s Spec, sock string) string {
	conf := "YOUR_BIRD_CONF"
	if b := s.Bird; b != nil && b.Mode != bird.ModeInclude {
		conf = b.ConfigFile
	} else if b != nil {
		conf = "YOUR_BIRD_CONF (it includes " + b.ConfigFile + ")"
	}
	return fmt.Sprintf("systemctl start bird, or: bird -u bird -g bird -c %s -s %s", conf, sock)
}

func birdVersion(ctx context.Context, h Host, sock string) (string, error) {
	c, err := h.Dial(ctx, "unix", sock)
	if err != nil {
		return "", err
	}
	defer c.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = c.SetDeadline(dl)
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return "", fmt.Errorf("reading greeting: %w", err)
	}
	// "0001 BIRD 2.0.12 ready."
	f := strings.Fields(line)
	if len(f) < 3 || f[0] != "0001" || f[1] != "BIRD" {
		return "", fmt.Errorf("unexpected greeting %q", strings.TrimSpace(line))
	}
	return f[2], nil
}

// checkBGPListen verifies, in bgp mode, that the embedded BGP speaker's
// listen address is free. It is busy when vipd already runs (doctor next to
// a live vipd) or another BGP daemon (bird, gobgpd, frr) holds it.
func checkBGPListen(ctx context.Context, h Host, s Spec) Result {
	r := Result{ID: "bgp-listen", Name: "BGP listen port free"}
	if s.RoutingMode != routing.ModeBGP {
		r.Status, r.Finding = Skip, fmt.Sprintf("routing mode %q, not %s", s.RoutingMode, routing.ModeBGP)
		return r
	}
	if s.BGPListen == "" {
		r.Status, r.Finding = Skip, "embedded BGP speaker does not listen"
		return r
	}
	l, err := h.Listen(ctx, "tcp", s.BGPListen)
	if err != nil {
		_, port, _ := net.SplitHostPort(s.BGPListen)
		r.Status = Warn
		r.Finding = fmt.Sprintf("%s: %v (vipd itself if it is running, else another BGP daemon)", s.BGPListen, err)
		r.Fix = fmt.Sprintf("ss -ltnp 'sport = :%s'", port)
		return r
	}
	l.Close()
	r.Status, r.Finding = Pass, s.BGPListen+" is free"
	return r
}

// checkPeers fetches every peer's state URL (in parallel). A peer that does
// not answer is a WARN: this host may be fine and the peer down.
func checkPeers(ctx context.Context, h Host, s Spec) Result {
	r := Result{ID: "peers", Name: "peer state URLs"}
	if len(s.PeerStateURLs) == 0 {
		r.Status, r.Finding = Skip, "no peers configured"
		return r
	}
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	errs := make([]string, len(s.PeerStateURLs))
	var wg sync.WaitGroup
	for i, u := range s.PeerStateURLs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, err := h.HTTPGet(ctx, u)
			switch {
			case err != nil:
				errs[i] = fmt.Sprintf("%s: %v", u, err)
			case code/100 != 2:
				errs[i] = fmt.Sprintf("%s: HTTP %d", u, code)
			}
		}()
	}
	wg.Wait()
	var bad, fixes []string
	for i, e := range errs {
		if e != "" {
			bad = append(bad, e)
			fixes = append(fixes, "curl -sS "+s.PeerStateURLs[i])
		}
	}
	if len(bad) > 0 {
		r.Status = Warn
		r.Finding = fmt.Sprintf("%d of %d unreachable: %s", len(bad), len(s.PeerStateURLs), strings.Join(bad, "; "))
		r.Fix = strings.Join(fixes, "; ")
		return r
	}
	r.Status, r.Finding = Pass, fmt.Sprintf("all %d reachable", len(s.PeerStateURLs))
	return r
}

// checkOSPFAdjacency asks the running BIRD about each of vipd's OSPF
// protocols and their neighbours (routing/bird's Diagnose): a protocol
// disabled, down or missing, one with no neighbour, an adjacency stuck in
// ExStart (the symptom of an MTU mismatch with the switch that BIRD >=
// 2.0.7 refuses, docs/field-notes.md, note 5: with [routing.bird] log_file
// set, the mismatch itself, "remote 3000, local 1500", is in the finding,
// and with ignore_mtu set here the router's end is named as the one
// refusing) or in another state. Each problem brings its own fix.
func checkOSPFAdjacency(ctx context.Context, _ Host, s Spec) Result {
	r := Result{ID: IDOSPF, Name: "OSPF adjacencies"}
	if s.RoutingMode != routing.ModeBirdOSPF || (s.Bird == nil && s.DiagnoseOSPF == nil) {
		r.Status, r.Finding = Skip, fmt.Sprintf("routing mode %q, not %s", s.RoutingMode, routing.ModeBirdOSPF)
		return r
	}
	diagnose := s.DiagnoseOSPF
	if diagnose == nil {
		cfg := *s.Bird
		diagnose = func(ctx context.Context) ([]bird.Problem, error) { return bird.Diagnose(ctx, cfg) }
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	problems, err := diagnose(ctx)
	switch {
	case err != nil:
		r.Status, r.Finding = Warn, fmt.Sprintf("cannot ask BIRD about OSPF: %v", err)
	case len(problems) == 0:
		r.Status, r.Finding = Pass, "every OSPF protocol of vipd's is up with its neighbours Full"
	default:
		var parts, fixes []string
		for _, p := range problems {
			parts = append(parts, p.String())
			if p.Fix != "" && !slices.Contains(fixes, p.Fix) {
				fixes = append(fixes, p.Fix)
			}
		}
		r.Status, r.Finding = Fail, strings.Join(parts, "; ")
		r.Fix = strings.Join(fixes, "; ")
	}
	return r
}

// checkBirdGuard verifies, in bird-ospf mode, that a guard (vipctl
// bird-guard) runs for this node: without one, BIRD keeps announcing the
// node's VIPs for as long as it runs after vipd died.
func checkBirdGuard(_ context.Context, _ Host, s Spec) Result {
	r := Result{ID: "bird-guard", Name: "BIRD guard (bound on announcing without vipd)"}
	if s.RoutingMode != routing.ModeBirdOSPF || s.StateDir == "" {
		r.Status, r.Finding = Skip, fmt.Sprintf("routing mode %q, not %s", s.RoutingMode, routing.ModeBirdOSPF)
		return r
	}
	lock := filepath.Join(s.StateDir, bird.GuardLockFile)
	held, err := statedir.LockHeld(lock)
	switch {
	case err != nil:
		r.Status, r.Finding = Warn, fmt.Sprintf("cannot tell whether a guard runs: %v", err)
	case !held:
		r.Status = Warn
		r.Finding = "no vipctl bird-guard runs for " + s.StateDir + ": if vipd dies, BIRD announces this node's VIPs for as long as it runs"
		r.Fix = "systemctl enable --now vipd-bird-guard (docs/ospf.md), or: vipctl bird-guard -c VIPD_TOML"
	default:
		timeout := bird.DefaultGuardTimeout
		if s.Bird != nil && s.Bird.GuardTimeout > 0 {
			timeout = s.Bird.GuardTimeout
		}
		r.Status, r.Finding = Pass, fmt.Sprintf("a guard runs: without vipd, the VIP routes go after %v", timeout)
	}
	return r
}
