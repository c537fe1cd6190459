package bird

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/routingtest"
)

var (
	vipA  = netip.MustParsePrefix("192.0.2.10/32")
	vipB  = netip.MustParsePrefix("192.0.2.11/32")
	vipA6 = netip.MustParsePrefix("2001:db8::10/128")
)

var routeOpts = cmpopts.EquateComparable(netip.Prefix{})

// TestOSPFDrainUndrain runs the generated config (OSPFv2 and v3) in a
// director BIRD peering with a router BIRD: the VIP routes reach the
// router's kernel, a drain withdraws them, an undrain restores them, and
// the adjacencies stay Full.
func TestOSPFDrainUndrain(t *testing.T) {
	t.Parallel()
	l := newOSPFLab(t, labOptions{vips: []netip.Prefix{vipA, vipB, vipA6}, v6: true})
	ctx := context.Background()
	waitFor(t, 15*time.Second, "adjacency Full", func() bool { return l.full(t) })
	stayFull := func(cond func() bool) func() bool {
		return func() bool {
			if !l.full(t) {
				t.Fatalf("adjacency left Full: %+v", l.neighbors(t))
			}
			return cond()
		}
	}

	steps := []struct {
		name   string
		routes []routing.Route
		want   map[netip.Prefix]bool // at the router
	}{
		{name: "announce", routes: []routing.Route{{Prefix: vipA}, {Prefix: vipB}, {Prefix: vipA6}},
			want: map[netip.Prefix]bool{vipA: true, vipB: true, vipA6: true}},
		// The withdraw drain policy: the state machine leaves the
		// draining VIPs out.
		{name: "drain A", routes: []routing.Route{{Prefix: vipB}},
			want: map[netip.Prefix]bool{vipA: false, vipB: true, vipA6: false}},
		{name: "undrain A", routes: []routing.Route{{Prefix: vipA}, {Prefix: vipB}, {Prefix: vipA6}},
			want: map[netip.Prefix]bool{vipA: true, vipB: true, vipA6: true}},
	}
	// On failure, show what each side had.
	t.Cleanup(func() {
		if t.Failed() {
			out, _ := l.router.Run("ip", "-6", "route")
			out2, _ := runCmd(l.routerBird.birdc, "-s", l.routerBird.sock, "show", "route", "all")
			out3, _ := runCmd(l.cfg.Birdc, "-s", l.cfg.Socket, "show", "route", "all")
			out4, _ := runCmd(l.cfg.Birdc, "-s", l.cfg.Socket, "show", "ospf", "neighbors")
			t.Logf("state at failure: router kernel v6:\n%s\nrouter bird:\n%s\ndirector bird:\n%s\n%s", out, out2, out3, out4)
		}
	})
	for _, s := range steps {
		got, err := l.adv.SetRoutes(ctx, s.routes)
		if err != nil {
			t.Fatalf("%s: SetRoutes: %v", s.name, err)
		}
		wantRoutes := announced(s.routes)
		if diff := cmp.Diff(wantRoutes, got, routeOpts); diff != "" {
			t.Errorf("%s: SetRoutes returned (-want +got):\n%s", s.name, diff)
		}
		took := waitFor(t, 20*time.Second, s.name+" at the router", stayFull(func() bool {
			for p, want := range s.want {
				if l.routerHas(t, p) != want {
					return false
				}
			}
			return true
		}))
		t.Logf("%s: router converged in %s", s.name, took)
	}
	// Idempotent: the same set again does not touch BIRD.
	before, _ := os.ReadFile(l.cfg.ConfigFile)
	if _, err := l.adv.SetRoutes(ctx, steps[2].routes); err != nil {
		t.Fatal(err)
	}
	after, _ := os.ReadFile(l.cfg.ConfigFile)
	if !bytes.Equal(before, after) {
		t.Error("SetRoutes with the same routes rewrote the file")
	}
	// Status shows BIRD up, each OSPF instance up, and the router's
	// adjacency of each, the instance and its neighbour counting the
	// routes of their family.
	peers, err := l.adv.Peers(ctx)
	if err != nil {
		t.Fatalf("Peers: %v", err)
	}
	perFamily := map[string]int{"ospf_v2": 2, "ospf_v3": 1}
	var kinds []string
	for _, p := range peers {
		kinds = append(kinds, string(p.Kind)+":"+strings.Fields(p.Name)[0])
		switch p.Kind {
		case routing.PeerDaemon:
			if !p.Up || !strings.HasPrefix(p.State, "up 2.") || p.LastError != "" {
				t.Errorf("bird %+v: want up with its version", p)
			}
		case routing.PeerInstance:
			if !p.Up || p.State != "up running" || p.Advertised != perFamily[p.Name] || p.LastError != "" {
				t.Errorf("instance %+v: want up running, %d routes", p, perFamily[p.Name])
			}
		case routing.PeerSession:
			proto := strings.Fields(p.Name)[0]
			if !p.Up || !strings.HasPrefix(p.State, "full") || p.Advertised != perFamily[proto] || !p.Address.IsValid() {
				t.Errorf("neighbour %+v: want up, full, %d routes advertised", p, perFamily[proto])
			}
		}
	}
	if want := []string{"daemon:bird", "instance:ospf_v2", ":ospf_v2", "instance:ospf_v3", ":ospf_v3"}; !slices.Equal(kinds, want) {
		t.Errorf("Peers lists %v, want %v", kinds, want)
	}
	routingtest.CheckUnknownPrefix(t, l.adv, steps[2].routes, netip.MustParsePrefix("198.51.100.1/32"))

	// The deprefer drain policy: the draining VIP stays announced, with the
	// drain metric.
	cfg := l.cfg
	cfg.DrainMetric = 1000
	dep, err := New(ctx, cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dep.Abandon()
	if _, err := dep.SetRoutes(ctx, []routing.Route{{Prefix: vipA, Draining: true}, {Prefix: vipB}, {Prefix: vipA6}}); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 20*time.Second, "the drain metric at the router", stayFull(func() bool {
		out, err := runCmd(l.routerBird.birdc, "-s", l.routerBird.sock, "show", "route", vipA.String(), "all")
		return err == nil && strings.Contains(out, "OSPF.metric2: 1000") && l.routerHas(t, vipA)
	}))
	t.Logf("deprefer: drain metric at the router in %s", took)
}

// TestIncludeMode: vipd writes only the VIP routes; the operator's own
// bird.conf includes them and exports them into its OSPF.
func TestIncludeMode(t *testing.T) {
	t.Parallel()
	l := newOSPFLab(t, labOptions{vips: []netip.Prefix{vipA, vipB}, include: true})
	ctx := context.Background()
	waitFor(t, 15*time.Second, "adjacency Full", func() bool { return l.full(t) })
	if _, err := l.adv.SetRoutes(ctx, []routing.Route{{Prefix: vipA}, {Prefix: vipB}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 20*time.Second, "both VIPs at the router", func() bool { return l.routerHas(t, vipA) && l.routerHas(t, vipB) })
	if _, err := l.adv.SetRoutes(ctx, []routing.Route{{Prefix: vipB}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "A withdrawn at the router", func() bool { return !l.routerHas(t, vipA) && l.routerHas(t, vipB) })
	if !l.full(t) {
		t.Errorf("adjacency left Full: %+v", l.neighbors(t))
	}
}

// TestRejectedConfigKeepsRunning: a generated config that BIRD rejects, at
// `bird -p` or at `birdc configure`, never replaces the running one, and
// SetRoutes reports the routes still in effect.
func TestRejectedConfigKeepsRunning(t *testing.T) {
	t.Parallel()
	patched := patchedBird(t)
	l := newOSPFLab(t, labOptions{vips: []netip.Prefix{vipA, vipB}, initial: []routing.Route{{Prefix: vipA}}})
	ctx := context.Background()
	good, err := os.ReadFile(l.cfg.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	runningRoutes := func() string {
		out, err := runCmd(l.cfg.Birdc, "-s", l.cfg.Socket, "show", "route", "protocol", StaticV4)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	wantRunning := runningRoutes()
	if !strings.Contains(wantRunning, vipA.String()) {
		t.Fatalf("director does not run the initial routes: %s", wantRunning)
	}

	// With the patched binary installed but the stock BIRD still running,
	// New asks the running daemon, not the binary, and refuses at once.
	ignoring := l.cfg
	ignoring.OSPF = append([]OSPF(nil), ignoring.OSPF...)
	ignoring.Bird, ignoring.OSPF[0].IgnoreMTU = patched, true
	if _, err := New(ctx, ignoring, nil); !errors.Is(err, ErrIgnoreMTUUnsupported) || !strings.Contains(err.Error(), "the bird running on "+l.cfg.Socket) {
		t.Errorf("New with ignore_mtu and a stock BIRD running = %v, want ErrIgnoreMTUUnsupported naming the running bird", err)
	}

	tests := []struct {
		name   string
		modify func(*Config)
		// probeAway: New probes while the socket is elsewhere (a BIRD
		// that was not running yet), so it asks the binary.
		probeAway bool
		want      error
	}{
		// "ospf" is a keyword: bird -p rejects the file.
		{name: "bird -p rejects", modify: func(c *Config) { c.OSPF[0].Name = "ospf" }},
		// bird -p of the patched BIRD accepts ignoremtu, the stock BIRD
		// that started meanwhile does not: configure fails after the
		// rename, and the error says the running BIRD lacks the option.
		{name: "configure rejects", modify: func(c *Config) { c.Bird = patched; c.OSPF[0].IgnoreMTU = true },
			probeAway: true, want: ErrIgnoreMTUUnsupported},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := l.cfg
			cfg.OSPF = append([]OSPF(nil), cfg.OSPF...)
			tc.modify(&cfg)
			if tc.probeAway {
				cfg.Socket = filepath.Join(t.TempDir(), "not-yet.ctl")
			}
			adv, err := New(ctx, cfg, nil)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			defer adv.Abandon()
			adv.cfg.Socket = l.cfg.Socket
			got, err := adv.SetRoutes(ctx, []routing.Route{{Prefix: vipA}, {Prefix: vipB}})
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Fatalf("SetRoutes: got %v, want a *ConfigError (file:line:col)", err)
			}
			if tc.want != nil && !errors.Is(err, tc.want) {
				t.Errorf("SetRoutes: got %v, want %v", err, tc.want)
			}
			t.Logf("rejected as wanted: %v", err)
			if diff := cmp.Diff([]routing.Route{{Prefix: vipA}}, got, routeOpts); diff != "" {
				t.Errorf("SetRoutes returned (-want +got):\n%s", diff)
			}
			now, _ := os.ReadFile(cfg.ConfigFile)
			if diff := cmp.Diff(string(good), string(now)); diff != "" {
				t.Errorf("config file changed (-last good +now):\n%s", diff)
			}
			if diff := cmp.Diff(wantRunning, runningRoutes()); diff != "" {
				t.Errorf("running routes changed (-want +got):\n%s", diff)
			}
		})
	}
	// The good advertiser still works after the rejections.
	if _, err := l.adv.SetRoutes(ctx, []routing.Route{{Prefix: vipA}, {Prefix: vipB}}); err != nil {
		t.Fatalf("SetRoutes after rejections: %v", err)
	}
	if r := runningRoutes(); !strings.Contains(r, vipB.String()) {
		t.Errorf("director does not announce %s after a good apply: %s", vipB, r)
	}
}

// TestMTUMismatch: MTU 1500 on the director, 9000 on the router. Stock BIRD
// stays in ExStart and says why (Neighbors, ScanMTUMismatches); the patched
// BIRD with ignoremtu on both ends reaches Full and the VIP route arrives.
func TestMTUMismatch(t *testing.T) {
	t.Parallel()
	t.Run("stock", func(t *testing.T) {
		t.Parallel()
		l := newOSPFLab(t, labOptions{directorMTU: 1500, routerMTU: 9000,
			vips: []netip.Prefix{vipA}, initial: []routing.Route{{Prefix: vipA}}})
		var mm []MTUMismatch
		waitFor(t, 15*time.Second, "an MTU mismatch in the director's log", func() bool {
			f, err := os.Open(l.cfg.LogFile)
			if err != nil {
				return false
			}
			defer f.Close()
			mm, _ = ScanMTUMismatches(f)
			return len(mm) > 0
		})
		want := []MTUMismatch{{Protocol: "ospf_v2", Neighbor: "10.99.0.2", Interface: l.dIf, Remote: 9000, Local: 1500}}
		if diff := cmp.Diff(want, mm); diff != "" {
			t.Errorf("ScanMTUMismatches (-want +got):\n%s", diff)
		}
		// Give it the time a good adjacency needs, several times over.
		deadline := time.Now().Add(4 * time.Second)
		for time.Now().Before(deadline) {
			ns := l.neighbors(t)
			if len(ns) != 1 || !ns[0].Stuck() {
				t.Fatalf("neighbours = %+v, want one stuck in ExStart", ns)
			}
			time.Sleep(200 * time.Millisecond)
		}
		if l.routerHas(t, vipA) {
			t.Error("the VIP route reached the router without an adjacency")
		}
		probs, err := l.adv.Diagnose(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(probs) != 1 || !strings.Contains(probs[0].Reason, "MTU mismatch (remote 9000, local 1500)") {
			t.Errorf("Diagnose = %v, want the MTU mismatch", probs)
		} else {
			t.Logf("doctor: %s", probs[0])
		}
	})
	t.Run("patched ignoremtu", func(t *testing.T) {
		t.Parallel()
		l := newOSPFLab(t, labOptions{directorMTU: 1500, routerMTU: 9000, bird: patchedBird(t), ignoreMTU: true,
			vips: []netip.Prefix{vipA}, initial: []routing.Route{{Prefix: vipA}}})
		took := waitFor(t, 15*time.Second, "adjacency Full despite the MTU mismatch", func() bool { return l.full(t) })
		t.Logf("Full after %s", took)
		took = waitFor(t, 20*time.Second, "the VIP route at the router", func() bool { return l.routerHas(t, vipA) })
		t.Logf("route at the router after %s more", took)
		if probs, err := Diagnose(context.Background(), l.cfg); err != nil || len(probs) != 0 {
			t.Errorf("Diagnose = %v, %v; want no problem", probs, err)
		}
		out, err := runCmd(l.cfg.Birdc, "-s", l.cfg.Socket, "show", "ospf")
		if err != nil || !strings.Contains(out, "Ignore MTU: Yes") {
			t.Errorf("show ospf does not report ignoremtu: %v: %s", err, out)
		}
	})
}

func runCmd(argv ...string) (string, error) {
	out, err := osexec(argv...)
	return string(out), err
}
