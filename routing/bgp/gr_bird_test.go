package bgp

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/netnstest"
	"github.com/vipd/vipd/routing"
)

// birdCtl is a connection to a BIRD control socket (the protocol birdc
// speaks), fast enough to sample BIRD's RIB every ~10 ms.
type birdCtl struct {
	c  net.Conn
	rd *bufio.Reader
}

func dialBird(t testing.TB, sock string) *birdCtl {
	t.Helper()
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatalf("connecting to bird: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	b := &birdCtl{c: c, rd: bufio.NewReader(c)}
	if _, err := b.read(); err != nil {
		t.Fatalf("bird greeting: %v", err)
	}
	return b
}

func (b *birdCtl) read() (string, error) {
	var out strings.Builder
	for {
		l, err := b.rd.ReadString('\n')
		if err != nil {
			return out.String(), err
		}
		out.WriteString(l)
		if len(l) >= 5 && l[0] != ' ' && l[4] == ' ' {
			return out.String(), nil
		}
	}
}

func (b *birdCtl) query(cmd string) (string, error) {
	if err := b.c.SetDeadline(time.Now().Add(5 * time.Second)); err != nil {
		return "", err
	}
	if _, err := b.c.Write([]byte(cmd + "\n")); err != nil {
		return "", err
	}
	return b.read()
}

// TestGracefulRestartBIRD is TestGracefulRestartFRR with BIRD 2 as the
// router, a graceful-restart helper (`graceful restart on`) that installs
// what it learns into its kernel, in a namespace of its own; the speaker
// runs in another, joined by a veth. vipd is SIGKILLed (a crash) and comes
// back as a restarting speaker with the routes it had announced: the
// re-announced VIP never leaves the router's kernel (ip monitor sees every
// deletion) nor BIRD's RIB (sampled every ~10 ms), and the route the new
// vipd does not re-announce is flushed at its End-of-RIB, once.
func TestGracefulRestartBIRD(t *testing.T) {
	requireBinary(t, "bird")
	spk, rtr := netnstest.New(t, "gs"), netnstest.New(t, "gr")
	sIf, rIf := netnstest.Veth(t, spk, rtr)
	spk.MustRun(t, "ip", "addr", "add", "10.97.0.1/30", "dev", sIf)
	rtr.MustRun(t, "ip", "addr", "add", "10.97.0.2/30", "dev", rIf)
	dir := t.TempDir()
	conf := filepath.Join(dir, "router.conf")
	sock := filepath.Join(dir, "router.ctl")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`router id 10.97.0.2;
log "%s/router.log" all;
protocol device {
}
protocol kernel {
	ipv4 { export all; };
}
protocol bgp vipd {
	local 10.97.0.2 as %d;
	neighbor 10.97.0.1 as %d;
	passive on;
	hold time 9;
	error wait time 1, 5;
	debug { states, events };
	graceful restart on;
	ipv4 { import all; export none; };
}
`, dir, peerASN, speakerASN)), 0o644); err != nil {
		t.Fatal(err)
	}
	startDaemon(t, dir, rtr.Cmd("bird", "-f", "-c", conf, "-s", sock, "-P", filepath.Join(dir, "router.pid")))
	eventually(t, 10*time.Second, "the router BIRD's control socket", func() bool {
		return exec.Command("birdc", "-s", sock, "show", "status").Run() == nil
	})

	cfg := Config{
		ASN: speakerASN, RouterID: netip.MustParseAddr("10.255.0.1"), ListenPort: -1,
		NextHop4: netip.MustParseAddr("10.97.0.1"),
		Neighbors: []Neighbor{{Address: netip.MustParseAddr("10.97.0.2"), ASN: peerASN,
			LocalAddress: netip.MustParseAddr("10.97.0.1"), HoldTime: 9 * time.Second, Keepalive: 3 * time.Second}},
		GracefulRestart: GracefulRestart{Enabled: true, RestartTime: 60 * time.Second},
		VIPs:            []VIPRoute{{vip4, attrsFull}, {vip4b, RouteAttrs{}}},
	}
	inKernel := func(p netip.Prefix) bool {
		out, err := rtr.Run("ip", "route", "show", "exact", p.String())
		return err == nil && strings.TrimSpace(out) != ""
	}
	old := startHelperIn(t, spk, cfg, false, nil)
	eventually(t, 30*time.Second, "both VIPs in the router's kernel", func() bool { return inKernel(vip4) && inKernel(vip4b) })

	kw := rtr.WatchRouteDeletions(t)
	ctl := dialBird(t, sock)
	rs := sample(func() (bool, bool, error) {
		out, err := ctl.query("show route for " + vip4.String())
		if err != nil {
			return false, false, err
		}
		return strings.Contains(out, vip4.String()), false, nil
	})
	if err := old.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "the router's session down (helper mode)", func() bool {
		out, _ := exec.Command("birdc", "-s", sock, "show", "protocols", "vipd").Output()
		return !strings.Contains(string(out), "Established")
	})
	time.Sleep(time.Second) // a crashed vipd takes a moment to come back
	restarted := time.Now()
	startHelperIn(t, spk, cfg, true, []routing.Route{{Prefix: vip4}})
	eventually(t, 30*time.Second, "End-of-RIB: the route not re-announced flushed", func() bool { return !inKernel(vip4b) })
	took := time.Since(restarted)
	time.Sleep(200 * time.Millisecond)
	rs.halt()
	med, worst := percentile(rs.gaps, 0.5), percentile(rs.gaps, 1)
	t.Logf("restart: %d samples of BIRD's RIB (median interval %s, longest %s); End-of-RIB processed %s after the new speaker started",
		rs.samples, med.Round(100*time.Microsecond), worst.Round(100*time.Microsecond), took.Round(time.Millisecond))
	if med > 50*time.Millisecond { // ~10 ms when the machine is not loaded
		t.Errorf("BIRD's RIB sampled every %s (median), want ~10 ms", med)
	}
	if rs.missing > 0 {
		t.Errorf("BIRD lost %s in %d of %d samples across the crash and restart", vip4, rs.missing, rs.samples)
	}
	if n := kw.Of(vip4); n != 0 {
		t.Errorf("%s left the router's kernel %d times across the crash and restart, want never", vip4, n)
	}
	if n := kw.Of(vip4b); n != 1 {
		t.Errorf("%s left the router's kernel %d times, want once (flushed at End-of-RIB)", vip4b, n)
	}
	if !inKernel(vip4) {
		t.Errorf("%s not in the router's kernel after the restart", vip4)
	}
	// BIRD does not print a stale flag; its protocol trace says it held
	// the routes as a helper and when our End-of-RIB ended that.
	b, err := os.ReadFile(filepath.Join(dir, "router.log"))
	if err != nil {
		t.Fatal(err)
	}
	var gr []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "graceful restart") {
			gr = append(gr, l[strings.Index(l, "vipd:"):])
		}
	}
	if want := []string{"vipd: Neighbor graceful restart detected", "vipd: Neighbor graceful restart done"}; !slices.Equal(gr, want) {
		t.Errorf("the router's graceful-restart trace = %q, want %q", gr, want)
	}
}

// birdRouter is a BIRD 2 router in a namespace of its own, a
// graceful-restart helper with a passive session to the speaker, that
// installs what it learns into its kernel.
type birdRouter struct {
	ns          *netnstest.NS
	dir, sock   string
	addr, local netip.Addr // its address, the speaker's
}

// startBirdRouters starts n birdRouters on one segment with the speaker's
// namespace spk, as in the lab: the speaker's next hop (returned with its
// neighbors, of hold time hold) is on every router's network, a bridge in
// spk.
func startBirdRouters(t *testing.T, spk *netnstest.NS, n int, hold time.Duration) ([]*birdRouter, []Neighbor, netip.Addr) {
	t.Helper()
	var (
		rs        []*birdRouter
		neighbors []Neighbor
	)
	spk.MustRun(t, "ip", "link", "add", "br0", "type", "bridge")
	spk.MustRun(t, "ip", "addr", "add", "10.97.0.33/28", "dev", "br0")
	spk.MustRun(t, "ip", "link", "set", "br0", "up")
	local := netip.MustParseAddr("10.97.0.33")
	for i := range n {
		ns := netnstest.New(t, fmt.Sprintf("g%c", 'a'+i))
		sIf, rIf := netnstest.Veth(t, spk, ns)
		spk.MustRun(t, "ip", "link", "set", sIf, "master", "br0")
		peer := netip.AddrFrom4([4]byte{10, 97, 0, byte(34 + i)})
		ns.MustRun(t, "ip", "addr", "add", peer.String()+"/28", "dev", rIf)
		r := &birdRouter{ns: ns, dir: t.TempDir(), addr: peer, local: local}
		r.sock = filepath.Join(r.dir, "router.ctl")
		conf := filepath.Join(r.dir, "router.conf")
		if err := os.WriteFile(conf, []byte(fmt.Sprintf(`router id %s;
log "%s/router.log" all;
protocol device {
}
protocol kernel {
	ipv4 { export all; };
}
protocol bgp vipd {
	local %s as %d;
	neighbor %s as %d;
	passive on;
	hold time %d;
	error wait time 1, 5;
	debug { states, events };
	graceful restart on;
	ipv4 { import all; export none; };
}
`, peer, r.dir, peer, peerASN, local, speakerASN, int(hold/time.Second))), 0o644); err != nil {
			t.Fatal(err)
		}
		startDaemon(t, r.dir, ns.Cmd("bird", "-f", "-c", conf, "-s", r.sock, "-P", filepath.Join(r.dir, "router.pid")))
		eventually(t, 10*time.Second, "a router BIRD's control socket", func() bool {
			return exec.Command("birdc", "-s", r.sock, "show", "status").Run() == nil
		})
		rs = append(rs, r)
		t.Cleanup(func() {
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(r.dir, "router.log"))
				t.Logf("router %s log:\n%s", r.addr, b)
			}
		})
		neighbors = append(neighbors, Neighbor{Address: peer, ASN: peerASN, LocalAddress: local,
			HoldTime: hold, Keepalive: hold / 3})
	}
	return rs, neighbors, local
}

func (r *birdRouter) inKernel(p netip.Prefix) bool {
	out, err := r.ns.Run("ip", "route", "show", "exact", p.String())
	return err == nil && strings.TrimSpace(out) != ""
}

func (r *birdRouter) established() bool {
	out, _ := exec.Command("birdc", "-s", r.sock, "show", "protocols", "vipd").Output()
	return strings.Contains(string(out), "Established")
}

// grTrace is what the router's log says of graceful restarts.
func (r *birdRouter) grTrace(t *testing.T) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(r.dir, "router.log"))
	if err != nil {
		t.Fatal(err)
	}
	var gr []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, "graceful restart") {
			gr = append(gr, l[strings.Index(l, "vipd:"):])
		}
	}
	return gr
}

// blackhole cuts the speaker's namespace and the router off from each
// other (a blackhole route on either side: the link stays up, or BIRD
// would end a restart itself), or with on false restores them.
func (r *birdRouter) blackhole(t *testing.T, spk *netnstest.NS, on bool) {
	t.Helper()
	op := "add"
	if !on {
		op = "del"
	}
	spk.MustRun(t, "ip", "route", op, "blackhole", r.addr.String()+"/32")
	r.ns.MustRun(t, "ip", "route", op, "blackhole", r.local.String()+"/32")
}

// grDone is the trace of a helper restart ended by our End-of-RIB.
var grDone = []string{"vipd: Neighbor graceful restart detected", "vipd: Neighbor graceful restart done"}

// TestGracefulRestartBIRDLateNeighbor: a restart with two routers, the
// second of which comes back only after the first has synced. GoBGP ends
// its restart once every neighbor established so far has sent End-of-RIB;
// without keepRestarting the late router got an OPEN without the Restart
// and Forwarding bits, flushed our stale route at once and relearned it
// (the lab saw the gap in its kernel). Each router's kernel must keep the
// route throughout, and each must leave helper mode only at our End-of-RIB.
func TestGracefulRestartBIRDLateNeighbor(t *testing.T) {
	requireBinary(t, "bird")
	spk := netnstest.New(t, "gs")
	rs, neighbors, local := startBirdRouters(t, spk, 2, 9*time.Second)
	cfg := Config{
		ASN: speakerASN, RouterID: netip.MustParseAddr("10.255.0.2"), ListenPort: -1,
		NextHop4:        local,
		Neighbors:       neighbors,
		GracefulRestart: GracefulRestart{Enabled: true, RestartTime: 60 * time.Second},
		VIPs:            []VIPRoute{{vip4, attrsFull}},
	}
	old := startHelperIn(t, spk, cfg, false, nil)
	eventually(t, 30*time.Second, "the VIP in both routers' kernels", func() bool { return rs[0].inKernel(vip4) && rs[1].inKernel(vip4) })
	kws := [2]*netnstest.RouteDeletions{rs[0].ns.WatchRouteDeletions(t), rs[1].ns.WatchRouteDeletions(t)}

	if err := old.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "both sessions down (helper mode)", func() bool { return !rs[0].established() && !rs[1].established() })
	// The second router is unreachable from the speaker while the
	// restarted speaker syncs with the first.
	rs[1].blackhole(t, spk, true)
	startHelperIn(t, spk, cfg, true, []routing.Route{{Prefix: vip4}})
	eventually(t, 30*time.Second, "the first router's restart done", func() bool { return len(rs[0].grTrace(t)) == 2 })
	time.Sleep(time.Second)
	rs[1].blackhole(t, spk, false)
	eventually(t, 30*time.Second, "the second router's session up again", func() bool { return rs[1].established() })
	eventually(t, 15*time.Second, "the second router's restart done", func() bool { return len(rs[1].grTrace(t)) == 2 })
	time.Sleep(500 * time.Millisecond)
	for i, r := range rs {
		if n := kws[i].Of(vip4); n != 0 {
			t.Errorf("router %d: %s left the kernel %d times across the crash and the late restart, want never", i+1, vip4, n)
		}
		if !r.inKernel(vip4) {
			t.Errorf("router %d: %s not in the kernel after the restart", i+1, vip4)
		}
		if gr := r.grTrace(t); !slices.Equal(gr, grDone) {
			t.Errorf("router %d's graceful-restart trace = %q, want %q", i+1, gr, grDone)
		}
	}
}

// TestGracefulRestartBIRDLateNeighborOtherLost: as
// TestGracefulRestartBIRDLateNeighbor, but the first router is lost (hold
// timer: a link flap soon after an upgrade) before the late second one
// comes back, and comes back after it. GoBGP made the second router's
// session, configured as restarting again, wait for the lost router's
// End-of-RIB: for the 30 s deferral time the second router kept our stale
// routes and got none of our updates (the lab saw a drain not reach it).
// A withdrawal made as the second router's session comes back must reach
// it within seconds. Within the restart time, the second router must also
// keep the route throughout and end its helper restart at our End-of-RIB;
// after it, when the first router is lost after the restart time, the
// second router's session is a plain one.
func TestGracefulRestartBIRDLateNeighborOtherLost(t *testing.T) {
	requireBinary(t, "bird")
	for _, c := range []struct {
		name    string
		restart time.Duration // the restart time
		after   bool          // the first router is lost after the restart time
	}{
		{"within the restart time", 60 * time.Second, false},
		{"after the restart time", 4 * time.Second, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			const hold = 3 * time.Second
			spk := netnstest.New(t, "gs")
			rs, neighbors, local := startBirdRouters(t, spk, 2, hold)
			cfg := Config{
				ASN: speakerASN, RouterID: netip.MustParseAddr("10.255.0.3"), ListenPort: -1,
				NextHop4:        local,
				Neighbors:       neighbors,
				GracefulRestart: GracefulRestart{Enabled: true, RestartTime: c.restart},
				VIPs:            []VIPRoute{{vip4, attrsFull}, {vip4b, RouteAttrs{}}},
			}
			both := []routing.Route{{Prefix: vip4}, {Prefix: vip4b}}
			old := startHelperIn(t, spk, cfg, false, nil)
			eventually(t, 30*time.Second, "the VIPs in both routers' kernels", func() bool {
				return rs[0].inKernel(vip4) && rs[1].inKernel(vip4) && rs[0].inKernel(vip4b) && rs[1].inKernel(vip4b)
			})
			kw := rs[1].ns.WatchRouteDeletions(t)

			if err := old.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			eventually(t, 10*time.Second, "both sessions down (helper mode)", func() bool { return !rs[0].established() && !rs[1].established() })
			rs[1].blackhole(t, spk, true)
			h := startHelperIn(t, spk, cfg, true, both)
			started := time.Now()
			eventually(t, 30*time.Second, "the first router's restart done", func() bool { return len(rs[0].grTrace(t)) == 2 })
			time.Sleep(time.Second) // the second router is configured as restarting again
			if c.after {
				time.Sleep(time.Until(started.Add(c.restart + time.Second)))
			}
			rs[0].blackhole(t, spk, true)
			eventually(t, 3*hold, "the first router's session lost", func() bool { return !rs[0].established() })
			time.Sleep(time.Second) // the speaker's hold timer too
			rs[1].blackhole(t, spk, false)
			eventually(t, 30*time.Second, "the second router's session up again", func() bool { return rs[1].established() })
			back := time.Now()
			rs[0].blackhole(t, spk, false)
			h.setRoutes(t, []routing.Route{{Prefix: vip4}})
			const within = 5 * time.Second // the deferral time is 30 s
			eventually(t, within, "the withdrawal of "+vip4b.String()+" at the second router", func() bool { return !rs[1].inKernel(vip4b) })
			t.Logf("the withdrawal reached the second router %v after its session came back", time.Since(back).Round(time.Millisecond))
			eventually(t, within, "the second router with "+vip4.String(), func() bool { return rs[1].inKernel(vip4) })
			eventually(t, 30*time.Second, "the first router back, without "+vip4b.String(), func() bool {
				return rs[0].established() && rs[0].inKernel(vip4) && !rs[0].inKernel(vip4b)
			})
			if c.after {
				return // the helpers dropped our routes at the restart time
			}
			if n := kw.Of(vip4); n != 0 {
				t.Errorf("the second router: %s left the kernel %d times, want never", vip4, n)
			}
			if gr := rs[1].grTrace(t); !slices.Equal(gr, grDone) {
				t.Errorf("the second router's graceful-restart trace = %q, want %q", gr, grDone)
			}
		})
	}
}
