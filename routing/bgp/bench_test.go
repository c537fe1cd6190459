package bgp

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	api "github.com/osrg/gobgp/v3/api"
	"github.com/osrg/gobgp/v3/pkg/apiutil"
	"github.com/osrg/gobgp/v3/pkg/server"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/vip"
)

// peerWatch follows a gobgpd's adj-rib-in through its gRPC API, so the
// benchmarks see the moment an UPDATE reached the peer without polling.
type peerWatch struct {
	client api.GobgpApiClient
	mu     sync.Mutex
	cond   *sync.Cond
	last   map[string]event // prefix -> last event
	events int              // paths received, announcements and withdrawals
	// per prefix: announcements and withdrawals received
	announces, withdraws map[string]int
}

type event struct {
	withdraw bool
	at       time.Time
}

func watchPeer(b testing.TB, g *gobgpPeer) *peerWatch {
	b.Helper()
	conn, err := grpc.Dial(netip.AddrPortFrom(g.addr, g.apiPort).String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatalf("dialing gobgpd's API: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	b.Cleanup(func() { cancel(); conn.Close() })
	w := &peerWatch{client: api.NewGobgpApiClient(conn), last: map[string]event{},
		announces: map[string]int{}, withdraws: map[string]int{}}
	w.cond = sync.NewCond(&w.mu)
	stream, err := w.client.WatchEvent(ctx, &api.WatchEventRequest{Table: &api.WatchEventRequest_Table{
		Filters: []*api.WatchEventRequest_Table_Filter{{Type: api.WatchEventRequest_Table_Filter_ADJIN}},
	}})
	if err != nil {
		b.Fatalf("watching gobgpd: %v", err)
	}
	go func() {
		for {
			r, err := stream.Recv()
			if err != nil {
				return
			}
			now := time.Now()
			t := r.GetTable()
			if t == nil {
				continue
			}
			w.mu.Lock()
			for _, p := range t.Paths {
				n, err := apiutil.GetNativeNlri(p)
				if err != nil {
					continue
				}
				w.last[n.String()] = event{withdraw: p.IsWithdraw, at: now}
				w.events++
				if p.IsWithdraw {
					w.withdraws[n.String()]++
				} else {
					w.announces[n.String()]++
				}
			}
			w.cond.Broadcast()
			w.mu.Unlock()
		}
	}()
	return w
}

// wait blocks until prefix's last event has the given withdraw flag and
// returns its time.
func (w *peerWatch) wait(b testing.TB, prefix string, withdraw bool) time.Time {
	deadline := time.AfterFunc(10*time.Second, func() { w.mu.Lock(); w.cond.Broadcast(); w.mu.Unlock() })
	defer deadline.Stop()
	start := time.Now()
	w.mu.Lock()
	defer w.mu.Unlock()
	for {
		if e, ok := w.last[prefix]; ok && e.withdraw == withdraw {
			return e.at
		}
		if time.Since(start) > 10*time.Second {
			b.Fatalf("%s withdraw=%v not seen at the peer in 10s", prefix, withdraw)
		}
		w.cond.Wait()
	}
}

// received returns how many paths (announcements and withdrawals) reached
// the peer so far.
func (w *peerWatch) received() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.events
}

// counts returns how many announcements and withdrawals of prefix reached
// the peer so far.
func (w *peerWatch) counts(prefix string) (announces, withdraws int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.announces[prefix], w.withdraws[prefix]
}

// count returns the number of prefixes in the peer's global RIB.
func (w *peerWatch) count(b testing.TB, fam *api.Family) uint64 {
	r, err := w.client.GetTable(context.Background(), &api.GetTableRequest{TableType: api.TableType_GLOBAL, Family: fam})
	if err != nil {
		b.Fatalf("GetTable: %v", err)
	}
	return r.NumDestination
}

// rawServer is a bare GoBGP server peering with the gobgpd of pr: the
// baseline the benchmarks compare the speaker with.
func rawServer(b testing.TB, pr pair, port uint16) *server.BgpServer {
	b.Helper()
	s := server.NewBgpServer(server.LoggerOption(&logAdapter{log: hclog.NewNullLogger()}))
	go s.Serve()
	ctx := context.Background()
	if err := s.StartBgp(ctx, &api.StartBgpRequest{Global: &api.Global{Asn: speakerASN, RouterId: "10.255.0.9", ListenPort: -1}}); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = s.StopBgp(context.Background(), &api.StopBgpRequest{}) })
	if err := s.AddPeer(ctx, &api.AddPeerRequest{Peer: &api.Peer{
		Conf:      &api.PeerConf{NeighborAddress: pr.peer.String(), PeerAsn: peerASN},
		Transport: &api.Transport{RemotePort: uint32(port), LocalAddress: pr.speaker.String()},
		AfiSafis: []*api.AfiSafi{
			{Config: &api.AfiSafiConfig{Family: familyV4, Enabled: true}},
			{Config: &api.AfiSafiConfig{Family: familyV6, Enabled: true}},
		},
	}}); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		up := false
		_ = s.ListPeer(ctx, &api.ListPeerRequest{}, func(p *api.Peer) {
			up = p.State.SessionState == api.PeerState_ESTABLISHED
		})
		if up {
			return s
		}
		if time.Now().After(deadline) {
			b.Fatal("raw GoBGP session not established")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func percentile(d []time.Duration, p float64) time.Duration {
	s := slices.Clone(d)
	slices.Sort(s)
	return s[min(len(s)-1, int(float64(len(s))*p))]
}

// The benchmarks below are scenarios: each runs once per invocation (the
// scenario takes seconds, so the framework settles on b.N = 1) and reports
// its figures with ReportMetric and Logf. Run them with -benchtime=1x.

// BenchmarkWithdrawLatency: a drain command (through the announce function
// the state machine calls) until gobgpd has the withdraw, 200 rounds, against
// raw GoBGP DeletePath in the same run. Goal: p99 under 20 ms.
func BenchmarkWithdrawLatency(b *testing.B) {
	const rounds = 200
	ctx := context.Background()
	spec := pathSpec{asn: speakerASN, nextHop4: netip.MustParseAddr("192.0.2.1")}

	// Baseline: raw GoBGP.
	prRaw := newPair(b)
	gRaw := startGoBGP(b, prRaw)
	wRaw := watchPeer(b, gRaw)
	raw := rawServer(b, prRaw, gRaw.port)
	add, _ := spec.announce(vip4, RouteAttrs{})
	del, _ := spec.withdraw(vip4)
	var rawLat []time.Duration
	for range rounds {
		if _, err := raw.AddPath(ctx, &api.AddPathRequest{Path: add}); err != nil {
			b.Fatal(err)
		}
		wRaw.wait(b, vip4.String(), false)
		start := time.Now()
		if err := raw.DeletePath(ctx, &api.DeletePathRequest{Family: familyV4, Path: del}); err != nil {
			b.Fatal(err)
		}
		rawLat = append(rawLat, wRaw.wait(b, vip4.String(), true).Sub(start))
	}

	// vipd: the speaker driven like the state machine drives it.
	pr := newPair(b)
	g := startGoBGP(b, pr)
	w := watchPeer(b, g)
	s := startSpeaker(b, testConfig(pr, g.port, VIPRoute{vip4, RouteAttrs{}}, VIPRoute{vip4b, RouteAttrs{}}), StartOptions{})
	waitEstablished(b, s)
	announce := setRoutesFunc(s)
	all := []netip.Prefix{vip4, vip4b}
	var lat []time.Duration
	for range rounds {
		if err := announce(ctx, []routing.Route{{Prefix: vip4}, {Prefix: vip4b}}); err != nil {
			b.Fatal(err)
		}
		w.wait(b, vip4.String(), false)
		start := time.Now()
		if err := drainVIP(ctx, announce, vip.DrainWithdraw, all, vip4); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, w.wait(b, vip4.String(), true).Sub(start))
	}
	p50, p99 := percentile(lat, 0.50), percentile(lat, 0.99)
	r50, r99 := percentile(rawLat, 0.50), percentile(rawLat, 0.99)
	b.ReportMetric(float64(p50.Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(p99.Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(p99)/float64(r99), "p99-ratio-vs-raw")
	b.Logf("withdraw latency over %d rounds: vipd p50 %s p99 %s; raw GoBGP p50 %s p99 %s; ratio p50 %.2fx p99 %.2fx (goal p99 < 20ms)",
		rounds, p50, p99, r50, r99, float64(p50)/float64(r50), float64(p99)/float64(r99))
}

// BenchmarkAnnounce10k: 10,000 VIPs announced through SetRoutes until
// gobgpd holds all of them, against raw GoBGP AddPath of the same 10,000 in
// the same run. The phases alternate (vipd, raw, vipd, raw), each against a
// fresh gobgpd, and the best of each counts: this VM flips between speed
// states, so a single pair could compare two different machines. Goals: at
// most 1.2x raw GoBGP; RSS under 150 MB.
func BenchmarkAnnounce10k(b *testing.B) {
	const n = 10000
	var vips []VIPRoute
	var routes []routing.Route
	for i := range n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}), 32)
		vips = append(vips, VIPRoute{Prefix: p, Attrs: RouteAttrs{Communities: []string{"65000:100"}}})
		routes = append(routes, routing.Route{Prefix: p})
	}
	var vipdBest, rawBest time.Duration
	var rss float64
	for round := range 2 {
		d, r := announce10kVipd(b, vips, routes)
		if round == 0 {
			rss = r // before any baseline ran in this process
		}
		if vipdBest == 0 || d < vipdBest {
			vipdBest = d
		}
		if d := announce10kRaw(b, vips); rawBest == 0 || d < rawBest {
			rawBest = d
		}
	}
	ratio := float64(vipdBest) / float64(rawBest)
	b.ReportMetric(vipdBest.Seconds(), "vipd-s")
	b.ReportMetric(rawBest.Seconds(), "raw-s")
	b.ReportMetric(ratio, "ratio-vs-raw")
	b.ReportMetric(rss, "rss-MB")
	b.Logf("10k VIPs until the peer holds all, best of 2: vipd %s, raw GoBGP %s; ratio %.2fx (goal <= 1.2x); process RSS after the first vipd phase %.0f MB (goal < 150 MB)",
		vipdBest.Round(time.Millisecond), rawBest.Round(time.Millisecond), ratio, rss)
}

func waitCount(b testing.TB, w *peerWatch, n uint64) {
	for w.count(b, familyV4) < n {
		time.Sleep(5 * time.Millisecond)
	}
}

// announce10kVipd times SetRoutes of routes until the peer holds them all,
// and reads the process RSS then.
func announce10kVipd(b *testing.B, vips []VIPRoute, routes []routing.Route) (time.Duration, float64) {
	pr := newPair(b)
	g := startGoBGP(b, pr)
	w := watchPeer(b, g)
	startAt := time.Now()
	s, err := New(testConfig(pr, g.port, vips...), testLogger(b))
	if err != nil {
		b.Fatal(err)
	}
	if err := s.Start(context.Background(), StartOptions{}); err != nil {
		b.Fatal(err)
	}
	startDur := time.Since(startAt)
	waitEstablished(b, s)
	t0 := time.Now()
	if _, err := s.SetRoutes(context.Background(), routes); err != nil {
		b.Fatal(err)
	}
	setDur := time.Since(t0)
	waitCount(b, w, uint64(len(routes)))
	d := time.Since(t0)
	rss := rssMB(b)
	b.Logf("vipd: %s until the peer held all (SetRoutes returned after %s; Start with a %d-prefix export policy took %s)",
		d.Round(time.Millisecond), setDur.Round(time.Millisecond), len(routes), startDur.Round(time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t1 := time.Now()
	if err := s.Close(ctx); err != nil {
		b.Errorf("Close with %d routes: %v", len(routes), err)
	}
	b.Logf("vipd: Close withdrew %d routes and saw them written in %s", len(routes), time.Since(t1).Round(time.Millisecond))
	return d, rss
}

// announce10kRaw times AddPath of the same paths on a bare GoBGP server
// (building each path, as any GoBGP user must) until the peer holds them.
func announce10kRaw(b *testing.B, vips []VIPRoute) time.Duration {
	pr := newPair(b)
	g := startGoBGP(b, pr)
	w := watchPeer(b, g)
	raw := rawServer(b, pr, g.port)
	spec := pathSpec{asn: speakerASN, nextHop4: netip.MustParseAddr("192.0.2.1")}
	t0 := time.Now()
	for _, v := range vips {
		p, err := spec.announce(v.Prefix, v.Attrs)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := raw.AddPath(context.Background(), &api.AddPathRequest{Path: p}); err != nil {
			b.Fatal(err)
		}
	}
	loop := time.Since(t0)
	waitCount(b, w, uint64(len(vips)))
	d := time.Since(t0)
	b.Logf("raw GoBGP: %s until the peer held all (AddPath loop %s)", d.Round(time.Millisecond), loop.Round(time.Millisecond))
	_ = raw.StopBgp(context.Background(), &api.StopBgpRequest{})
	return d
}

// rssMB reads this process' resident set size.
func rssMB(b testing.TB) float64 {
	raw, err := os.ReadFile("/proc/self/status")
	if err != nil {
		b.Fatal(err)
	}
	for _, l := range strings.Split(string(raw), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmRSS:" {
			kb, _ := strconv.ParseFloat(f[1], 64)
			return kb / 1024
		}
	}
	b.Fatal(fmt.Errorf("no VmRSS in /proc/self/status"))
	return 0
}

// BenchmarkExported10k: Exported with 10,000 VIPs announced to two
// established gobgpd neighbors, against the raw loop any GoBGP user would
// write for the same answer (ListPath of the adj-RIB-out, per neighbor and
// family, counting the paths) in the same run. Each side runs 10 times,
// alternating, and the medians count. Goal: cheap enough to call every few
// seconds (routing.Advertiser), and within 1.5x the raw loop.
func BenchmarkExported10k(b *testing.B) {
	const n, rounds = 10000, 10
	pr := newPair(b)
	pr2 := pair{speaker: pr.speaker, peer: netip.AddrFrom4([4]byte{pr.peer.As4()[0], pr.peer.As4()[1], pr.peer.As4()[2], 3})}
	g1, g2 := startGoBGP(b, pr), startGoBGP(b, pr2)
	w1, w2 := watchPeer(b, g1), watchPeer(b, g2)
	var vips []VIPRoute
	var routes []routing.Route
	for i := range n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}), 32)
		vips = append(vips, VIPRoute{Prefix: p, Attrs: RouteAttrs{Communities: []string{"65000:100"}, MED: u32(10)}})
		// Every tenth route draining, so both signatures are compared.
		routes = append(routes, routing.Route{Prefix: p, Draining: i%10 == 0})
	}
	cfg := testConfig(pr, g1.port, vips...)
	nb := cfg.Neighbors[0]
	nb.Address, nb.Port = pr2.peer, g2.port
	cfg.Neighbors = append(cfg.Neighbors, nb)
	cfg.DrainAttrs = drainAttrs
	s := startSpeaker(b, cfg, StartOptions{})
	waitEstablished(b, s)
	ctx := context.Background()
	if _, err := s.SetRoutes(ctx, routes); err != nil {
		b.Fatal(err)
	}
	waitCount(b, w1, n)
	waitCount(b, w2, n)

	raw := func() int {
		total := 0
		for _, nb := range cfg.Neighbors {
			for _, fam := range []*api.Family{familyV4, familyV6} {
				if err := s.srv.ListPath(ctx, &api.ListPathRequest{TableType: api.TableType_ADJ_OUT, Name: nb.Address.String(), Family: fam},
					func(d *api.Destination) { total += len(d.Paths) }); err != nil {
					b.Fatal(err)
				}
			}
		}
		return total
	}
	var exp, rawT []time.Duration
	b.ResetTimer()
	for range rounds {
		t0 := time.Now()
		ex, err := s.Exported(ctx)
		exp = append(exp, time.Since(t0))
		if err != nil {
			b.Fatal(err)
		}
		if ex.SessionsUp != 2 || len(ex.Routes) != n {
			b.Fatalf("Exported: %d sessions, %d routes; want 2 and %d", ex.SessionsUp, len(ex.Routes), n)
		}
		if div := ex.Divergences(routes); div != nil {
			b.Fatalf("Exported diverges: %d lines, first %s", len(div), div[0])
		}
		t0 = time.Now()
		if got := raw(); got != 2*n {
			b.Fatalf("raw ListPath saw %d paths, want %d", got, 2*n)
		}
		rawT = append(rawT, time.Since(t0))
	}
	b.StopTimer()
	e50, r50 := percentile(exp, 0.5), percentile(rawT, 0.5)
	ratio := float64(e50) / float64(r50)
	b.ReportMetric(float64(e50.Microseconds())/1000, "exported-ms")
	b.ReportMetric(float64(r50.Microseconds())/1000, "raw-listpath-ms")
	b.ReportMetric(ratio, "ratio-vs-raw")
	b.Logf("Exported with %d VIPs and 2 peers, median of %d: %s; raw ListPath adj-RIB-out loop %s; ratio %.2fx (goal <= 1.5x)",
		n, rounds, e50.Round(time.Millisecond), r50.Round(time.Millisecond), ratio)
}
