package daemon

import (
	"bytes"
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/routingtest"
	"github.com/vipd/vipd/vip"
)

func loadExample(t *testing.T, edit func(string) string) *config.Config {
	t.Helper()
	data, err := os.ReadFile("../../examples/bgp-n1.toml")
	if err != nil {
		t.Fatal(err)
	}
	s := string(data)
	if edit != nil {
		s = edit(s)
	}
	c, err := config.Parse(filepath.Join(t.TempDir(), "vipd.toml"), []byte(s))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestReloadLiveOrRestart: what a reload of the example applies in place
// and what it refuses (config.Diff decides, the daemon follows).
func TestReloadLiveOrRestart(t *testing.T) {
	base := loadExample(t, nil)
	tests := []struct {
		name string
		edit func(string) string
		want []string
	}{
		{"same", nil, nil},
		{"timers apply live", func(s string) string {
			return regexp.MustCompile(`drain_timeout = "[^"]*"`).ReplaceAllString(s, `drain_timeout = "17m"`)
		}, nil},
		{"a VIP's community applies live", func(s string) string {
			return strings.Replace(s, `communities = ["65000:100"]`, `communities = ["65000:101"]`, 1)
		}, nil},
		{"the interface needs a restart", func(s string) string {
			return strings.Replace(s, `interface = "eth0"`, `interface = "eth1"`, 1)
		}, []string{"dataplane.interface"}},
		{"the seed needs a restart", func(s string) string {
			return strings.Replace(s, "seed = ", "seed = 9", 1)
		}, []string{"cluster.seed"}},
		{"a neighbor change needs a restart", func(s string) string {
			return strings.Replace(s, "asn = 65000", "asn = 65010", 1)
		}, []string{"routing.bgp"}},
		{"the drain policy needs a restart", func(s string) string {
			return strings.Replace(s, `drain = "withdraw"`, `drain = "deprefer"`, 1)
		}, []string{"routing.drain"}},
		{"the state directory needs a restart", func(s string) string {
			return strings.Replace(s, "\n[node]\n", "\n[node]\nstate_dir = \"/var/lib/vipd-2\"\n", 1)
		}, []string{"node.state_dir"}},
		{"start_drained is read at the next start", func(s string) string {
			return strings.Replace(s, "\n[node]\n", "\n[node]\nstart_drained = true\n", 1)
		}, nil},
		{"the remove timeout and the checks apply live", func(s string) string {
			return strings.Replace(s, "[timers]\n", "[timers]\nremove_timeout = \"5m\"\nverify_interval = \"1s\"\nverify_settle = \"9s\"\n", 1)
		}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := loadExample(t, tt.edit).Diff(base).Restart
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

// A reload's SetVIPs lists the new config's VIPs with their new attributes,
// then the removed ones (still announceable until the controller has
// drained and forgotten them).
func TestAdvertisedVIPsKeepsRemoved(t *testing.T) {
	p := netip.MustParsePrefix
	older := loadExample(t, nil)
	newer := loadExample(t, func(s string) string {
		s = strings.Replace(s, `address = "198.51.100.53"`, `address = "198.51.100.54"`, 1)
		return strings.Replace(s, `communities = ["65000:100"]`, `communities = ["65000:101"]`, 1)
	})
	d := &Daemon{leaving: map[netip.Prefix]routing.VIP{}}
	d.leaving = d.nowLeaving(newer, older)
	got := d.announceable(newer)
	med := uint32(10)
	want := []routing.VIP{
		{Prefix: p("198.51.100.10/32"), Attrs: bgp.RouteAttrs{Communities: []string{"65000:101"}}},
		{Prefix: p("198.51.100.54/32"), Attrs: bgp.RouteAttrs{Communities: []string{"65000:200"}, MED: &med}},
		{Prefix: p("2001:db8:100::10/128"), Attrs: bgp.RouteAttrs{Communities: []string{"65000:100"}}},
		{Prefix: p("198.51.100.53/32"), Attrs: bgp.RouteAttrs{Communities: []string{"65000:200"}, MED: &med}},
	}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestControllerConfigPeerWait(t *testing.T) {
	c := loadExample(t, nil)
	vc := controllerConfig(c)
	want := c.Cluster.PollInterval*time.Duration(max(c.Cluster.Rise, c.Cluster.Fall)+1) + c.Cluster.PollTimeout
	if vc.PeerWait != want || vc.PeerWait <= 0 {
		t.Errorf("PeerWait %v, want %v", vc.PeerWait, want)
	}
	if err := vc.Validate(); err != nil {
		t.Errorf("controller config from the example: %v", err)
	}
}

// fakeBinder is an in-memory lo.
type fakeBinder struct {
	mu     sync.Mutex
	bound  map[netip.Addr]bool
	closed bool
}

func (b *fakeBinder) Bind(_ context.Context, a netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.bound[a] = true
	return nil
}

func (b *fakeBinder) Unbind(_ context.Context, a netip.Addr) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.bound, a)
	return nil
}

func (b *fakeBinder) Bound(context.Context) ([]netip.Addr, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []netip.Addr
	for a := range b.bound {
		out = append(out, a)
	}
	return out, nil
}

func (b *fakeBinder) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.closed = true
	return nil
}

// fakeDataplane is an in-memory XDP dataplane.
type fakeDataplane struct {
	mu         sync.Mutex
	programmed map[netip.Addr]vip.ProgramSpec
	bound      []netip.Addr
	closed     bool
	// wedge, when set, makes Program block until it is closed (or the
	// caller's context ends): a side effect that never returns.
	wedge chan struct{}
}

func (f *fakeDataplane) Program(ctx context.Context, p vip.ProgramSpec) error {
	f.mu.Lock()
	wedge := f.wedge
	f.mu.Unlock()
	if wedge != nil {
		select {
		case <-wedge:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.programmed[p.Addr] = p
	return nil
}

func (f *fakeDataplane) Unprogram(_ context.Context, a netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.programmed, a)
	return nil
}

func (f *fakeDataplane) SetBound(_ context.Context, addrs []netip.Addr) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.bound = slices.Clone(addrs)
	return nil
}

func (f *fakeDataplane) Programmed(context.Context) ([]netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []netip.Addr
	for a := range f.programmed {
		out = append(out, a)
	}
	return out, nil
}

// Stats returns counters named as the XDP program's are (a verdict, a
// drop reason, the two that are facts of their own).
func (f *fakeDataplane) Stats() (map[string]uint64, error) {
	return map[string]uint64{"xdp_pass": 1, "director_tx": 0, "drop_loop_guard": 0, "director_icmp": 0,
		"director_local_second_chance": 0}, nil
}

func (f *fakeDataplane) EnsureLookupForwarding() (bool, error) { return false, nil }

func (f *fakeDataplane) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.closed = true
	return nil
}

var (
	vipA = netip.MustParsePrefix("198.51.100.10/32")
	vipB = netip.MustParsePrefix("198.51.100.20/32")
	vipC = netip.MustParsePrefix("198.51.100.30/32")
)

// nodeConfig is a one-node cluster with fast timers serving vips (host
// addresses), its state served on a free local port and its API socket in
// dir.
func nodeConfig(dir string, port int, vips ...netip.Prefix) string {
	var b strings.Builder
	b.WriteString(`[node]
name = "n1"
underlay_v4 = "192.0.2.11"
state_dir = "` + filepath.Join(dir, "state") + `"

[cluster]
seed = 1
poll_interval = "100ms"
poll_timeout = "50ms"
rise = 1
fall = 1
key_file = "` + filepath.Join(dir, "cluster.key") + `"

[[cluster.member]]
name = "n1"
underlay_v4 = "192.0.2.11"
state_url = "http://127.0.0.1:` + strconv.Itoa(port) + `/state"
`)
	for _, v := range vips {
		b.WriteString("\n[[vip]]\naddress = \"" + v.Addr().String() + "\"\nservices = [\"tcp/80\"]\ncheck = { type = \"none\" }\n")
	}
	b.WriteString(`
[routing]
mode = "bgp"
[routing.bgp]
asn = 65100
[[routing.bgp.neighbor]]
address = "192.0.2.1"
asn = 65000

[dataplane]
interface = "eth0"

[timers]
withdraw_grace = "50ms"
table_grace = "200ms"
drain_timeout = "100ms"
verify_interval = "50ms"
verify_settle = "50ms"

[api]
socket = "` + filepath.Join(dir, "vipd.sock") + `"
`)
	return b.String()
}

// rig is a daemon on fakes: a routingtest.Recorder for the advertiser
// (with one session up), an in-memory binder and dataplane that, like the
// kernel's, outlive a vipd.
type rig struct {
	t    *testing.T
	dir  string
	port int
	path string
	adv  *routingtest.Recorder
	dp   *fakeDataplane
	b    *fakeBinder
	d    *Daemon
	// start is what the last advertiser was opened with.
	start AdvertiserStart
	// dpPart, if set, is the Dataplane part instead of dp (a wrapper of
	// it with more methods); traffic the Traffic part.
	dpPart  Dataplane
	traffic func(context.Context) (map[netip.Addr][]api.Traffic, error)
	// probe, if set, is the Probe part: the node sends data-path probes.
	probe func(context.Context, dataplane.ProbeSpec) (time.Duration, error)
	// edit, if set, rewrites the config text write writes.
	edit func(string) string
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// newRig starts a node serving vips and waits until every one is announced.
func newRig(t *testing.T, vips ...netip.Prefix) *rig {
	t.Helper()
	r := newIdleRig(t)
	r.startNode(Options{}, vips...)
	r.waitAnnounced(vips...)
	return r
}

// newIdleRig is a rig with no node running yet.
func newIdleRig(t *testing.T) *rig {
	r := &rig{t: t, dir: t.TempDir(), port: freePort(t)}
	r.path = filepath.Join(r.dir, "vipd.toml")
	r.dp = &fakeDataplane{programmed: map[netip.Addr]vip.ProgramSpec{}}
	r.b = &fakeBinder{bound: map[netip.Addr]bool{}}
	writeKeyFile(t, filepath.Join(r.dir, "cluster.key"), testKey(1))
	return r
}

// testKey is a cluster key made of one repeated byte.
func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, cluster.KeySize) }

// writeKeyFile writes a key file of keys (the signing key first), mode 0600.
func writeKeyFile(t *testing.T, path string, keys ...[]byte) {
	t.Helper()
	if err := os.WriteFile(path+".tmp", cluster.FormatKeyFile(keys...), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(path+".tmp", path); err != nil {
		t.Fatal(err)
	}
}

// startNode starts a vipd (the first, or the next after a stop) serving
// vips, over the rig's binder and dataplane and a new Recorder.
func (r *rig) startNode(opts Options, vips ...netip.Prefix) {
	r.t.Helper()
	cfg := r.write(vips...)
	opts.ConfigPath, opts.SkipHostChecks = r.path, true
	var dp Dataplane = r.dp
	if r.dpPart != nil {
		dp = r.dpPart
	}
	d, err := New(cfg, opts, Parts{Binder: r.b, Dataplane: dp, Traffic: r.traffic, Probe: r.probe,
		NewAdvertiser: func(_ context.Context, st AdvertiserStart) (routing.Advertiser, error) {
			r.start = st
			r.adv = routingtestNew(r.t, cfg)
			return r.adv, nil
		}})
	if err != nil {
		r.t.Fatal(err)
	}
	r.d = d
	r.t.Cleanup(func() { r.kill(d) })
}

// kill stops d as kill -9 would: nothing is withdrawn, written or closed
// (the state directory's lock goes with the process).
func (r *rig) kill(d *Daemon) {
	d.cancel()
	d.apiSrv.Close(context.Background())
	d.wg.Wait()
	d.state.Close()
}

// write writes the config file for vips and returns it parsed.
func (r *rig) write(vips ...netip.Prefix) *config.Config {
	r.t.Helper()
	text := nodeConfig(r.dir, r.port, vips...)
	if r.edit != nil {
		text = r.edit(text)
	}
	if err := os.WriteFile(r.path, []byte(text), 0o600); err != nil {
		r.t.Fatal(err)
	}
	cfg, err := config.Parse(r.path, []byte(text))
	if err != nil {
		r.t.Fatal(err)
	}
	return cfg
}

func (r *rig) waitAnnounced(vips ...netip.Prefix) {
	r.t.Helper()
	want := make([]routing.Route, 0, len(vips))
	for _, v := range vips {
		want = append(want, routing.Route{Prefix: v})
	}
	slices.SortFunc(want, func(a, b routing.Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	// The advertiser is told before the loop publishes its status: wait
	// for the claim too, so a test's next status read is not the one from
	// before the routes went out.
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := r.adv.Announced()
		claimed := slices.Clone(r.d.ctrl.Status().Routes)
		slices.SortFunc(claimed, func(a, b routing.Route) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
		if slices.Equal(got, want) && slices.Equal(claimed, want) {
			return
		}
		if time.Now().After(deadline) {
			r.t.Fatalf("announced %v, claimed %v, want %v; calls %q", got, claimed, want, r.adv.Ops())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// opsSince returns the advertiser calls after the first n.
func (r *rig) opsSince(n int) []string {
	ops := r.adv.Ops()
	if n > len(ops) {
		return nil
	}
	return ops[n:]
}

// TestReloadOrder: a reload tells the advertiser the new VIPs (the old ones
// still announceable) before the controller may ask for one; the added VIP
// is announced and the removed one withdrawn. Once the controller has
// drained and forgotten the removed VIP, the advertiser stops listing it
// (on main that waited for the next reload).
func TestReloadOrder(t *testing.T) {
	r := newRig(t, vipA, vipB)
	before := len(r.adv.Ops())
	r.write(vipA, vipC)
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	r.waitAnnounced(vipA, vipC)
	ops := r.opsSince(before)
	if len(ops) == 0 || ops[0] != "SetVIPs[198.51.100.10/32 198.51.100.30/32 198.51.100.20/32]" {
		t.Errorf("calls after the reload %q, want the new VIPs and the removed one set first", ops)
	}
	if got := r.d.config().VIPs; len(got) != 2 || got[1].Addr != vipC.Addr() {
		t.Errorf("config after reload: %+v", got)
	}

	waitFor(t, "the removed VIP forgotten and dropped from the advertiser", func() bool {
		return len(r.d.ctrl.Status().VIPs) == 2 && slices.Equal(r.adv.VIPs(), []netip.Prefix{vipA, vipC})
	})
	if ops := r.opsSince(before); ops[len(ops)-1] != "SetVIPs[198.51.100.10/32 198.51.100.30/32]" {
		t.Errorf("calls after the reload %q, want the removed VIP dropped last", ops)
	}
	before = len(r.adv.Ops())
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if ops := r.opsSince(before); len(ops) == 0 || ops[0] != "SetVIPs[198.51.100.10/32 198.51.100.30/32]" {
		t.Errorf("calls after the second reload %q, want the removed VIP gone", ops)
	}
}

// waitFor polls cond for up to 10 s.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// savedRoutes reads the routes in the state directory as the next vipd
// will (the directory must not be held).
func (r *rig) savedRoutes() []routing.Route {
	r.t.Helper()
	st, err := statedir.Open(filepath.Join(r.dir, "state"), "n1")
	if err != nil {
		r.t.Fatal(err)
	}
	defer st.Close()
	return st.StartRoutes()
}

// TestReloadRefusedTouchesNothing: a config the controller would refuse,
// or one that needs a restart, leaves the advertiser, the controller and
// the running config untouched.
func TestReloadRefusedTouchesNothing(t *testing.T) {
	r := newRig(t, vipA)
	old := r.d.config()
	before := len(r.adv.Ops())

	bad := r.write(vipA, vipB)
	bad.Timers.WithdrawGrace = -time.Second // config.Parse never lets this through
	if err := r.d.apply(bad); err == nil || !strings.Contains(err.Error(), "withdraw_grace") {
		t.Errorf("apply of a config the controller refuses = %v, want its withdraw_grace error", err)
	}

	text := strings.Replace(nodeConfig(r.dir, r.port, vipA, vipB), `interface = "eth0"`, `interface = "eth1"`, 1)
	if err := os.WriteFile(r.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(); err == nil || !strings.Contains(err.Error(), "dataplane.interface") {
		t.Errorf("Reload of a config that needs a restart = %v, want it named", err)
	}

	if err := os.WriteFile(r.path, []byte("[node"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(); err == nil {
		t.Error("Reload of a broken file succeeded")
	}

	time.Sleep(100 * time.Millisecond) // room for a wrong call to show
	if ops := r.opsSince(before); len(ops) != 0 {
		t.Errorf("refused reloads called the advertiser: %q", ops)
	}
	if r.d.config() != old {
		t.Error("a refused reload replaced the running config")
	}
	if st := r.d.ctrl.Status(); len(st.VIPs) != 1 {
		t.Errorf("a refused reload reached the controller: %+v", st.VIPs)
	}
}

// TestShutdownOrder: SIGTERM drains through the controller (every route
// withdrawn), and only then closes the advertiser; nothing calls it after.
func TestShutdownOrder(t *testing.T) {
	r := newRig(t, vipA)
	before := len(r.adv.Ops())
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"SetRoutes[]", "Close"}, r.opsSince(before)); d != "" {
		t.Errorf("calls at shutdown (-want +got):\n%s", d)
	}
	if !r.b.closed || !r.dp.closed || len(r.b.bound) != 0 {
		t.Errorf("binder closed %t (bound %v), dataplane closed %t", r.b.closed, r.b.bound, r.dp.closed)
	}
	if routes := r.savedRoutes(); len(routes) != 0 {
		t.Errorf("a clean shutdown left routes in the state directory: %v", routes)
	}
}

// TestAbandonOrder: the upgrade exit abandons the advertiser with the
// routes announced (never withdrawn, never closed) and leaves them to the
// next vipd.
func TestAbandonOrder(t *testing.T) {
	r := newRig(t, vipA)
	before := len(r.adv.Ops())
	if err := r.d.Abandon(); err != nil {
		t.Fatal(err)
	}
	if d := cmp.Diff([]string{"Abandon"}, r.opsSince(before)); d != "" {
		t.Errorf("calls at the upgrade exit (-want +got):\n%s", d)
	}
	if got := r.adv.Announced(); len(got) != 1 || got[0].Prefix != vipA {
		t.Errorf("announced after Abandon: %v", got)
	}
	if !r.b.closed || !r.dp.closed || !r.b.bound[vipA.Addr()] {
		t.Errorf("binder closed %t (bound %v), dataplane closed %t", r.b.closed, r.b.bound, r.dp.closed)
	}
	if routes := r.savedRoutes(); len(routes) != 1 || routes[0] != (routing.Route{Prefix: vipA}) {
		t.Errorf("routes in the state directory %v, want the announced route", routes)
	}
	// The next vipd gets them.
	r.startNode(Options{}, vipA)
	if len(r.start.Routes) != 1 || r.start.Routes[0] != (routing.Route{Prefix: vipA}) {
		t.Errorf("the next advertiser started with %v, want the announced route", r.start.Routes)
	}
}

// TestAbandonAsksPeersToWait: the upgrade exit serves its document with
// restart_until (restart_grace from the exit) and records the healthy
// VIPs for the next vipd, which takes the record (once).
func TestAbandonAsksPeersToWait(t *testing.T) {
	r := newRig(t, vipA)
	if st := r.d.servedState(); !st.RestartUntil.IsZero() {
		t.Fatalf("restart_until %v before the exit", st.RestartUntil)
	}
	t0 := time.Now()
	if err := r.d.Abandon(); err != nil {
		t.Fatal(err)
	}
	grace := r.d.config().Cluster.RestartGrace
	st := r.d.servedState()
	if st.RestartUntil.Before(t0.Add(grace)) || st.RestartUntil.After(time.Now().Add(grace)) {
		t.Errorf("restart_until %v, want %v from the exit", st.RestartUntil, grace)
	}
	if st.Generation <= r.d.ctrl.NodeState().Generation {
		t.Errorf("the restart document has generation %d, not above the controller's %d", st.Generation, r.d.ctrl.NodeState().Generation)
	}
	r.startNode(Options{}, vipA)
	rs := r.d.restart
	if !rs.Until.Equal(st.RestartUntil.UTC()) || !slices.Equal(rs.Healthy, []netip.Addr{vipA.Addr()}) {
		t.Errorf("the next vipd took %+v, want healthy %v until %v", rs, vipA.Addr(), st.RestartUntil)
	}
	if _, err := os.Stat(filepath.Join(r.d.state.Path(), statedir.RestartFile)); !os.IsNotExist(err) {
		t.Errorf("the restart record is still there after the start took it: %v", err)
	}
}

// TestStatusPeers: status shows the advertiser's sessions, or why it could
// not list them.
func TestStatusPeers(t *testing.T) {
	r := newRig(t, vipA)
	r.adv.SetPeers([]routing.Peer{{Name: "192.0.2.1 AS65000", State: "established", Up: true, Uptime: time.Minute, Advertised: 1}})
	st, err := r.d.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Peers) != 1 || st.Peers[0].Name != "192.0.2.1 AS65000" || st.Peers[0].RoutesAdvertised != 1 ||
		st.Peers[0].UptimeSeconds != 60 || !st.Peers[0].Up {
		t.Errorf("peers %+v", st.Peers)
	}
	if len(st.VIPs) != 1 || !st.VIPs[0].Advertised || st.VIPs[0].ServeState != "active" || st.Phase != "active" ||
		st.Routing != "bgp" || st.Dataplane.Counters["xdp_pass"] != 1 || st.Dataplane.Attach != "auto" {
		t.Errorf("status %+v", st)
	}
	if b := st.VIPs[0].Backends; len(b) != 1 || b[0] != (api.Backend{Name: "n1", Address: netip.MustParseAddr("192.0.2.11"), Role: "primary", Local: true}) {
		t.Errorf("backends %+v", b)
	}
	vips := r.d.VIPs()
	if len(vips) != 1 || vips[0].Address != vipA.Addr() || !slices.Equal(vips[0].Services, []string{"tcp/80"}) || vips[0].Check != "none" {
		t.Errorf("vips %+v", vips)
	}
	r.adv.Fail("Peers", os.ErrDeadlineExceeded)
	st, _ = r.d.Status(context.Background())
	if len(st.Peers) != 1 || st.Peers[0].State != "unknown" || st.Peers[0].LastError == "" {
		t.Errorf("peers when the advertiser fails: %+v", st.Peers)
	}
}

// TestReloadForgetsRemovedMember: a member a reload removes leaves the
// status, as a fresh start with the new config would never list it (the
// lab property test found it listed forever).
func TestReloadForgetsRemovedMember(t *testing.T) {
	r := newIdleRig(t)
	r.startNode(Options{}, vipA)
	r.waitAnnounced(vipA)
	// A second member whose state URL answers nothing: the poller reports
	// it failed after fall (1) misses.
	text := nodeConfig(r.dir, r.port, vipA)
	n2 := "\n[[cluster.member]]\nname = \"n2\"\nunderlay_v4 = \"192.0.2.12\"\nstate_url = \"http://127.0.0.1:" +
		strconv.Itoa(freePort(t)) + "/state\"\n"
	text = strings.Replace(text, "\n[[vip]]", n2+"\n[[vip]]", 1)
	if err := os.WriteFile(r.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	listed := func() bool {
		st, _ := r.d.Status(context.Background())
		return slices.ContainsFunc(st.Members, func(m api.Member) bool { return m.Name == "n2" })
	}
	waitFor(t, "n2 listed in the status", listed)
	r.write(vipA)
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if listed() {
		t.Fatal("n2 is still listed right after the reload that removed it")
	}
	time.Sleep(300 * time.Millisecond) // several poll intervals: no late report brings it back
	if listed() {
		t.Fatal("n2 came back in the status after the reload that removed it")
	}
}
