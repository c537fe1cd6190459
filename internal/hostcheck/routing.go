package hostcheck

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bird"
)

// dialTimeout bounds each network probe of the routing checks.
const dialTimeout = 2 * time.Second

// defaultBirdSocket is BIRD's control socket when none is configured
// (Debian's bird2 package).
const defaultBirdSocket = "/run/bird/bird.ctl"

// checkBird verifies, in bird-ospf mode, that BIRD's control socket answers
// and reports its version from the greeting ("0001 BIRD 2.0.12 ready.").
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
	ctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	version, err := birdVersion(ctx, h, sock)
	if err != nil {
		r.Status, r.Finding = Fail, fmt.Sprintf("%s: %v", sock, err)
		r.Fix = fmt.Sprintf("bird -c /etc/bird/bird.conf -s %s", sock)
		return r
	}
	r.Status, r.Finding = Pass, fmt.Sprintf("%s: BIRD %s", sock, version)
	return r
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

// checkOSPFAdjacency asks the running BIRD for OSPF neighbours stuck in
// ExStart, the symptom of an MTU mismatch with the switch that BIRD >= 2.0.7
// refuses (docs/field-notes.md, note 5); with [routing.bird] log_file set, the mismatch
// itself ("remote 9000, local 1500") is in the finding.
func checkOSPFAdjacency(ctx context.Context, _ Host, s Spec) Result {
	r := Result{ID: IDOSPF, Name: "OSPF adjacencies (MTU mismatch)"}
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
		r.Status, r.Finding = Warn, fmt.Sprintf("cannot ask BIRD about OSPF neighbours: %v", err)
	case len(problems) == 0:
		r.Status, r.Finding = Pass, "no OSPF adjacency stuck in ExStart"
	default:
		var parts []string
		for _, p := range problems {
			parts = append(parts, p.String())
		}
		r.Status, r.Finding = Fail, strings.Join(parts, "; ")
		r.Fix = "match the interface MTU to the switch (ip link set IFACE mtu N), or set ignore_mtu = true in " +
			"[[routing.bird.ospf]] on both ends (needs a BIRD with the ignoremtu patch: make bird-ignoremtu)"
	}
	return r
}
