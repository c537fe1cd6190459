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
	w := &peerWatch{client: api.NewGobgpApiClient(conn), last: map[string]event{}}
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
		if err := announce(ctx, []vip.Route{{Prefix: vip4}, {Prefix: vip4b}}); err != nil {
			b.Fatal(err)
		}
		w.wait(b, vip4.String(), false)
		start := time.Now()
		if err := drainVIP(ctx, announce, DrainWithdraw, all, vip4); err != nil {
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
// the same run. Goals: at most 1.2x raw GoBGP; RSS under 150 MB.
func BenchmarkAnnounce10k(b *testing.B) {
	const n = 10000
	ctx := context.Background()
	var vips []VIPRoute
	var routes []vip.Route
	for i := range n {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{100, 64 + byte(i>>16), byte(i >> 8), byte(i)}), 32)
		vips = append(vips, VIPRoute{Prefix: p, Attrs: RouteAttrs{Communities: []string{"65000:100"}}})
		routes = append(routes, vip.Route{Prefix: p})
	}
	waitAll := func(w *peerWatch) {
		for w.count(b, familyV4) < n {
			time.Sleep(5 * time.Millisecond)
		}
	}

	// vipd first, so that the RSS reading is not inflated by the baseline.
	pr := newPair(b)
	g := startGoBGP(b, pr)
	w := watchPeer(b, g)
	cfg := testConfig(pr, g.port, vips...)
	startAt := time.Now()
	s := startSpeaker(b, cfg, StartOptions{})
	startDur := time.Since(startAt)
	waitEstablished(b, s)
	t0 := time.Now()
	if _, err := s.SetRoutes(ctx, routes); err != nil {
		b.Fatal(err)
	}
	setDur := time.Since(t0)
	waitAll(w)
	vipdDur := time.Since(t0)
	rss := rssMB(b)

	// Baseline: raw GoBGP AddPath of the same paths, built beforehand.
	prRaw := newPair(b)
	gRaw := startGoBGP(b, prRaw)
	wRaw := watchPeer(b, gRaw)
	raw := rawServer(b, prRaw, gRaw.port)
	spec := pathSpec{asn: speakerASN, nextHop4: netip.MustParseAddr("192.0.2.1")}
	paths := make([]*api.Path, n)
	for i, v := range vips {
		paths[i], _ = spec.announce(v.Prefix, v.Attrs)
	}
	t1 := time.Now()
	for _, p := range paths {
		if _, err := raw.AddPath(ctx, &api.AddPathRequest{Path: p}); err != nil {
			b.Fatal(err)
		}
	}
	rawDur := time.Since(t1)
	waitAll(wRaw)
	rawTotal := time.Since(t1)

	b.ReportMetric(vipdDur.Seconds(), "vipd-s")
	b.ReportMetric(rawTotal.Seconds(), "raw-s")
	b.ReportMetric(float64(vipdDur)/float64(rawTotal), "ratio-vs-raw")
	b.ReportMetric(rss, "rss-MB")
	b.Logf("10k VIPs until the peer holds all: vipd %s (SetRoutes returned after %s; Start with a 10k-prefix export policy %s), raw GoBGP %s (AddPath loop %s); ratio %.2fx (goal <= 1.2x); process RSS after the vipd phase %.0f MB (goal < 150 MB)",
		vipdDur.Round(time.Millisecond), setDur.Round(time.Millisecond), startDur.Round(time.Millisecond),
		rawTotal.Round(time.Millisecond), rawDur.Round(time.Millisecond), float64(vipdDur)/float64(rawTotal), rss)
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
