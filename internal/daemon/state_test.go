package daemon

import (
	"context"
	"encoding/json"
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

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/routingtest"
	"github.com/vipd/vipd/vip"
)

func (r *rig) client() *api.Client { return api.NewClient(filepath.Join(r.dir, "vipd.sock")) }

func (r *rig) status() api.Status {
	r.t.Helper()
	st, err := r.client().Status(context.Background())
	if err != nil {
		r.t.Fatal(err)
	}
	return st
}

// drainsOnDisk reads drains.json as it is on disk now, without opening
// the directory (the running vipd holds it).
func (r *rig) drainsOnDisk() map[string]any {
	r.t.Helper()
	data, err := os.ReadFile(filepath.Join(r.dir, "state", statedir.DrainsFile))
	if err != nil {
		r.t.Fatalf("reading drains.json: %v", err)
	}
	var f map[string]any
	if err := json.Unmarshal(data, &f); err != nil {
		r.t.Fatal(err)
	}
	return f
}

// routesOnDisk reads routes.json as it is on disk now.
func (r *rig) routesOnDisk() []string {
	data, err := os.ReadFile(filepath.Join(r.dir, "state", statedir.RoutesFile))
	if err != nil {
		return nil
	}
	var f struct{ Routes []struct{ Prefix string } }
	json.Unmarshal(data, &f)
	var out []string
	for _, rt := range f.Routes {
		out = append(out, rt.Prefix)
	}
	return out
}

func (r *rig) vipStatus(st api.Status, a netip.Prefix) api.VIPStatus {
	for _, v := range st.VIPs {
		if v.Address == a.Addr() {
			return v
		}
	}
	r.t.Fatalf("no %s in status", a)
	return api.VIPStatus{}
}

// announcedEver lists every route the current Recorder was asked to
// announce.
func (r *rig) announcedEver() []string {
	var out []string
	for _, c := range r.adv.Calls() {
		for _, rt := range c.Routes {
			out = append(out, rt.Prefix.String())
		}
	}
	return out
}

// Issue 10, defect 1: a drain is in the state directory before the API call
// returns (main kept it nowhere but in memory: there is no such file).
func TestDrainPersistedBeforeReturn(t *testing.T) {
	r := newRig(t, vipA, vipB)
	ctx := context.Background()
	if err := r.client().Drain(ctx, api.DrainRequest{Node: true}); err != nil {
		t.Fatal(err)
	}
	f := r.drainsOnDisk()
	nd, ok := f["node_drain"].(map[string]any)
	if !ok || nd["by"] != "vipctl" || nd["since"] == "" {
		t.Fatalf("drains.json right after the node drain returned: %v", f)
	}
	a := vipB.Addr()
	if err := r.client().Drain(ctx, api.DrainRequest{VIP: &a}); err != nil {
		t.Fatal(err)
	}
	if v, _ := r.drainsOnDisk()["vip_drains"].(map[string]any); v[a.String()] == nil {
		t.Fatalf("drains.json right after the vip drain returned: %v", r.drainsOnDisk())
	}
	if err := r.client().Undrain(ctx, api.DrainRequest{Node: true}); err != nil {
		t.Fatal(err)
	}
	if f := r.drainsOnDisk(); f["node_drain"] != nil || f["vip_drains"] == nil {
		t.Fatalf("drains.json right after the node undrain returned: %v", f)
	}
	st := r.status()
	if st.NodeDrain != nil || st.StateDir != filepath.Join(r.dir, "state") {
		t.Errorf("status node drain %+v, state dir %q", st.NodeDrain, st.StateDir)
	}
	if d := r.vipStatus(st, vipB).Drain; d == nil || d.By != "vipctl" || d.Restored {
		t.Errorf("status of the drained vip: %+v", d)
	}
}

// Issue 10, defect 1: a drain survives kill -9 (no Shutdown, no Abandon),
// and SIGTERM then start: the next vipd restores it (status and log say
// so, with since when) and never announces the drained routes again. On
// main the node came back active and re-announced.
func TestKillKeepsDrains(t *testing.T) {
	r := newRig(t, vipA, vipB)
	ctx := context.Background()
	a := vipA.Addr()
	if err := r.client().Drain(ctx, api.DrainRequest{VIP: &a}); err != nil {
		t.Fatal(err)
	}
	if err := r.client().Drain(ctx, api.DrainRequest{Node: true}); err != nil {
		t.Fatal(err)
	}
	first := r.status()
	r.kill(r.d) // right after the call returned

	for _, stop := range []string{"kill", "sigterm"} {
		r.startNode(Options{}, vipA, vipB)
		st := r.status()
		if st.NodeDrain == nil || !st.NodeDrain.Restored || !st.NodeDrain.Since.Equal(first.NodeDrain.Since) || st.Phase == "active" {
			t.Fatalf("after %s: node drain %+v (first %+v), phase %s", stop, st.NodeDrain, first.NodeDrain, st.Phase)
		}
		if d := r.vipStatus(st, vipA).Drain; d == nil || !d.Restored {
			t.Errorf("after %s: vip drain %+v", stop, d)
		}
		waitFor(t, "drained", func() bool { return r.status().Phase == "drained" })
		if got := r.announcedEver(); len(got) != 0 {
			t.Errorf("after %s: the drained node announced %v", stop, got)
		}
		if stop == "kill" {
			sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			if err := r.d.Shutdown(sctx); err != nil {
				t.Fatal(err)
			}
			cancel()
		}
	}
	// Undrain ends the maintenance for good: the next start serves.
	if err := r.client().Undrain(ctx, api.DrainRequest{Node: true}); err != nil {
		t.Fatal(err)
	}
	r.kill(r.d)
	r.startNode(Options{}, vipA, vipB)
	r.waitAnnounced(vipB) // A stays drained on its own
	if st := r.status(); st.NodeDrain != nil || r.vipStatus(st, vipA).Drain == nil {
		t.Errorf("after undrain and a restart: %+v, %+v", st.NodeDrain, r.vipStatus(st, vipA).Drain)
	}
}

// vipd --drained and [node] start_drained start the node in maintenance: a
// persisted node drain, never an announcement.
func TestStartDrained(t *testing.T) {
	r := newIdleRig(t)
	r.startNode(Options{StartDrained: true}, vipA)
	waitFor(t, "drained", func() bool { return r.status().Phase == "drained" })
	st := r.status()
	if st.NodeDrain == nil || st.NodeDrain.By != "flag" || st.NodeDrain.Restored {
		t.Errorf("node drain %+v, want by flag, not restored", st.NodeDrain)
	}
	if got := r.announcedEver(); len(got) != 0 {
		t.Errorf("a node started drained announced %v", got)
	}
	if nd, _ := r.drainsOnDisk()["node_drain"].(map[string]any); nd["by"] != "flag" {
		t.Errorf("drains.json: %v", r.drainsOnDisk())
	}
	r.kill(r.d)
	r.startNode(Options{}, vipA) // without the flag: the drain was kept
	if st := r.status(); st.NodeDrain == nil || !st.NodeDrain.Restored || st.NodeDrain.By != "flag" {
		t.Errorf("restarted without the flag: %+v", st.NodeDrain)
	}

	r2 := newIdleRig(t)
	cfg := r2.write(vipA)
	cfg.Node.StartDrained = true
	d, err := New(cfg, Options{ConfigPath: r2.path, SkipHostChecks: true}, Parts{Binder: r2.b, Dataplane: r2.dp,
		NewAdvertiser: func(context.Context, AdvertiserStart) (routing.Advertiser, error) {
			r2.adv = routingtestNew(t, cfg)
			return r2.adv, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	r2.d = d
	t.Cleanup(func() { r2.kill(d) })
	if st := r2.status(); st.NodeDrain == nil || st.NodeDrain.By != "config" {
		t.Errorf("start_drained: %+v", st.NodeDrain)
	}
}

// Issue 10, defect 4 (the daemon's half): the announced routes are in the
// state directory, so a start after a crash hands them to the advertiser
// as a graceful restart; after a clean SIGTERM there are none.
func TestCrashRestartHandsRoutes(t *testing.T) {
	r := newRig(t, vipA, vipB)
	waitFor(t, "the routes saved", func() bool {
		return slices.Equal(r.routesOnDisk(), []string{vipA.String(), vipB.String()})
	})
	r.kill(r.d)
	r.startNode(Options{}, vipA, vipB)
	want := []routing.Route{{Prefix: vipA}, {Prefix: vipB}}
	if diff := cmp.Diff(want, r.start.Routes, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("the advertiser after a crash started with (-want +got):\n%s", diff)
	}
	r.waitAnnounced(vipA, vipB)
	// A change is saved: drain one VIP, its route leaves the file.
	b := vipB.Addr()
	if err := r.client().Drain(context.Background(), api.DrainRequest{VIP: &b}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the withdraw saved", func() bool { return slices.Equal(r.routesOnDisk(), []string{vipA.String()}) })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.d.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if got := r.routesOnDisk(); len(got) != 0 {
		t.Errorf("routes after a clean shutdown: %v", got)
	}
	r.startNode(Options{}, vipA, vipB)
	if len(r.start.Routes) != 0 {
		t.Errorf("the advertiser after a clean stop started with %v", r.start.Routes)
	}
}

// A drain of a VIP that left the config is kept on disk and reported as
// such; it applies again when the VIP comes back; undrain removes it.
func TestUnconfiguredDrainKept(t *testing.T) {
	r := newRig(t, vipA, vipB)
	ctx := context.Background()
	b := vipB.Addr()
	if err := r.client().Drain(ctx, api.DrainRequest{VIP: &b}); err != nil {
		t.Fatal(err)
	}
	r.write(vipA)
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	st := r.status()
	if len(st.UnconfiguredDrains) != 1 || st.UnconfiguredDrains[0].Address != b {
		t.Fatalf("unconfigured drains %+v", st.UnconfiguredDrains)
	}
	if err := r.client().Drain(ctx, api.DrainRequest{VIP: &b}); err == nil || !strings.Contains(err.Error(), "unknown vip") {
		t.Errorf("draining a VIP not in the config: %v", err)
	}
	waitFor(t, "the removed VIP forgotten", func() bool { return len(r.d.ctrl.Status().VIPs) == 1 })
	before := len(r.adv.Calls())
	r.write(vipA, vipB)
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the VIP back and programmed", func() bool {
		s := r.d.ctrl.Status()
		return len(s.VIPs) == 2 && s.VIPs[1].Programmed && s.VIPs[1].Draining
	})
	time.Sleep(100 * time.Millisecond)
	for _, c := range r.adv.Calls()[before:] {
		if slices.ContainsFunc(c.Routes, func(rt routing.Route) bool { return rt.Prefix == vipB }) {
			t.Errorf("a VIP back with a kept drain was announced: %s", c)
		}
	}
	if st := r.status(); len(st.UnconfiguredDrains) != 0 || r.vipStatus(st, vipB).Drain == nil {
		t.Errorf("after it came back: %+v", st.UnconfiguredDrains)
	}
	r.write(vipA)
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if err := r.client().Undrain(ctx, api.DrainRequest{VIP: &b}); err != nil {
		t.Fatalf("undraining a kept drain: %v", err)
	}
	if st := r.status(); len(st.UnconfiguredDrains) != 0 {
		t.Errorf("after undrain: %+v", st.UnconfiguredDrains)
	}
}

// A drain that cannot be written stays in effect, and says so: a 500, and
// state_error in status until a later write succeeds.
func TestDrainNotSaved(t *testing.T) {
	r := newRig(t, vipA)
	dir := filepath.Join(r.dir, "state")
	if err := os.RemoveAll(dir); err != nil {
		t.Fatal(err)
	}
	err := r.client().Drain(context.Background(), api.DrainRequest{Node: true})
	if err == nil || !strings.Contains(err.Error(), "not saved") {
		t.Fatalf("drain with the state directory gone: %v", err)
	}
	st := r.status()
	if st.NodeDrain == nil || !strings.Contains(st.StateError, "not saved") {
		t.Errorf("status: node drain %+v, state error %q", st.NodeDrain, st.StateError)
	}
	waitFor(t, "the drain in effect", func() bool { return r.status().Phase != "active" })
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the drain saved", func() bool { return r.status().StateError == "" })
	if nd := r.drainsOnDisk()["node_drain"]; nd == nil {
		t.Errorf("drains.json: %v", r.drainsOnDisk())
	}
}

// A second vipd on the same state directory is refused.
func TestStateDirLocked(t *testing.T) {
	r := newRig(t, vipA)
	cfg := r.write(vipA)
	cfg.API.Socket = filepath.Join(t.TempDir(), "other.sock")
	_, err := New(cfg, Options{SkipHostChecks: true}, Parts{Binder: r.b, Dataplane: r.dp, Advertiser: routingtestNew(t, cfg)})
	if err == nil || !strings.Contains(err.Error(), "state_dir") {
		t.Errorf("a second vipd on the state directory: %v", err)
	}
}

// Issue 10, item 2: a reload that adds, removes and changes VIPs, services,
// route attributes and members leaves the advertiser and the controller
// where a fresh start with the new config would: the same VIPs and
// attributes (once the removed VIP is drained and forgotten), the same
// routes, the same programmed services and tables.
func TestReloadLikeFreshStart(t *testing.T) {
	edit := func(s string) string {
		s = strings.Replace(s, "services = [\"tcp/80\"]\n", "services = [\"tcp/80\", \"udp/53\"]\nbgp = { communities = [\"65000:7\"], med = 20 }\n", 1)
		return strings.Replace(s, "\n[[vip]]", "\n[[cluster.member]]\nname = \"n2\"\nunderlay_v4 = \"192.0.2.12\"\nstate_url = \"http://127.0.0.1:9/state\"\n\n[[vip]]", 1)
	}
	r := newRig(t, vipA, vipB)
	text := edit(nodeConfig(r.dir, r.port, vipA, vipC))
	if err := os.WriteFile(r.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the reload applied and the removed VIP gone", func() bool {
		return len(r.d.ctrl.Status().VIPs) == 2 && slices.Equal(r.adv.VIPs(), []netip.Prefix{vipA, vipC})
	})
	r.waitAnnounced(vipA, vipC)

	fresh := newIdleRig(t)
	if err := os.WriteFile(fresh.path, []byte(edit(nodeConfig(fresh.dir, fresh.port, vipA, vipC))), 0o600); err != nil {
		t.Fatal(err)
	}
	freshCfg, err := loadFile(fresh.path)
	if err != nil {
		t.Fatal(err)
	}
	d, err := New(freshCfg, Options{ConfigPath: fresh.path, SkipHostChecks: true}, Parts{Binder: fresh.b, Dataplane: fresh.dp,
		NewAdvertiser: func(context.Context, AdvertiserStart) (routing.Advertiser, error) {
			fresh.adv = routingtestNew(t, freshCfg)
			return fresh.adv, nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	fresh.d = d
	t.Cleanup(func() { fresh.kill(d) })
	fresh.waitAnnounced(vipA, vipC)

	// The advertiser: the last SetVIPs of the reloaded node lists what the
	// fresh one was built with, attributes included.
	var last []routing.VIP
	for _, c := range r.adv.Calls() {
		if c.Op == "SetVIPs" {
			last = c.VIPs
		}
	}
	addrCmp := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	if diff := cmp.Diff(freshCfg.AdvertisedVIPs(), last, addrCmp); diff != "" {
		t.Errorf("advertiser's VIPs after the reload vs a fresh start (-fresh +reloaded):\n%s", diff)
	}
	if diff := cmp.Diff(fresh.adv.Announced(), r.adv.Announced(), addrCmp); diff != "" {
		t.Errorf("announced (-fresh +reloaded):\n%s", diff)
	}
	// The controller: the same programmed services and tables.
	progs := func(f *fakeDataplane) map[netip.Addr]vip.ProgramSpec {
		f.mu.Lock()
		defer f.mu.Unlock()
		out := map[netip.Addr]vip.ProgramSpec{}
		for a, p := range f.programmed {
			out[a] = p
		}
		return out
	}
	eq := cmpopts.EquateComparable(netip.Addr{})
	waitFor(t, "the same programs", func() bool { return cmp.Equal(progs(fresh.dp), progs(r.dp), eq) })
	if diff := cmp.Diff(fresh.d.VIPs(), r.d.VIPs(), eq); diff != "" {
		t.Errorf("configured VIPs (-fresh +reloaded):\n%s", diff)
	}
}

// routingtestNew is a Recorder for cfg's VIPs with one session up.
func routingtestNew(t *testing.T, cfg *config.Config) *routingtest.Recorder {
	rec := routingtest.New(t, cfg.AdvertisedVIPs()...)
	rec.SetPeers([]routing.Peer{{Name: "r1", Up: true, State: "established"}})
	return rec
}

func loadFile(path string) (*config.Config, error) { return config.Load(path) }

// Claims checked against the world through the daemon, with the Recorder
// simulating a routing daemon that lost a route (issue 10, defect 2 as the
// controller sees it): the status says diverged with the reason, the
// metrics count it, the advertiser is resynced, and the route is
// confirmed again. With no session up the route is no-session, and when
// the daemon cannot be read it is unknown: never a silent yes.
func TestWorldCheckWithRecorder(t *testing.T) {
	r := newRig(t, vipA)
	waitFor(t, "confirmed", func() bool { return r.vipStatus(r.status(), vipA).Route == "announced" })
	r.adv.Diverge(vipA)
	waitFor(t, "the divergence found and fixed", func() bool {
		v := r.vipStatus(r.status(), vipA)
		return v.Divergences == 1 && v.Route == "announced" && !v.Diverged
	})
	if !slices.Contains(r.adv.Ops(), "Resync") || r.status().World.Resyncs < 1 {
		t.Errorf("no Resync: %q, status %+v", r.adv.Ops(), r.status().World)
	}
	r.adv.SetPeers(nil)
	waitFor(t, "no session", func() bool { return r.vipStatus(r.status(), vipA).Route == "no-session" })
	r.adv.Fail("Exported", errors.New("birdc: connection refused"))
	waitFor(t, "unknown", func() bool {
		v := r.vipStatus(r.status(), vipA)
		return v.Route == "unknown" && strings.Contains(v.RouteReason, "connection refused")
	})
	if st := r.status(); !strings.Contains(st.World.Error, "connection refused") || !r.vipStatus(st, vipA).Advertised {
		t.Errorf("world %+v", st.World)
	}
}

// boundOnDisk is the record of the addresses vipd put on lo.
func (r *rig) boundOnDisk() []string {
	data, err := os.ReadFile(filepath.Join(r.dir, "state", statedir.BoundFile))
	if err != nil {
		return nil
	}
	var f struct{ Addresses []string }
	json.Unmarshal(data, &f)
	return f.Addresses
}

func (r *rig) onLo(a netip.Addr) bool {
	r.b.mu.Lock()
	defer r.b.mu.Unlock()
	return r.b.bound[a]
}

// A restart takes over only what is vipd's on lo: a configured VIP, or an
// address it recorded putting there (a VIP removed from the config while
// vipd was down goes down in order). An operator's own host address on lo
// is never adopted, listed or removed, with or without the record.
func TestRestartLeavesOperatorsAddresses(t *testing.T) {
	r := newRig(t, vipA, vipB)
	operators := netip.MustParseAddr("203.0.113.9") // a router id's loopback, say
	r.b.Bind(context.Background(), operators)
	waitFor(t, "both VIPs recorded", func() bool {
		return slices.Equal(r.boundOnDisk(), []string{vipA.Addr().String(), vipB.Addr().String()})
	})

	r.kill(r.d)
	r.startNode(Options{}, vipA) // vipB left the config while vipd was down
	r.waitAnnounced(vipA)
	waitFor(t, "the removed VIP unbound", func() bool { return !r.onLo(vipB.Addr()) })
	waitFor(t, "the record without it", func() bool { return slices.Equal(r.boundOnDisk(), []string{vipA.Addr().String()}) })
	if !r.onLo(operators) {
		t.Fatal("the operator's address was removed from lo")
	}
	for _, v := range r.status().VIPs {
		if v.Address == operators {
			t.Errorf("status lists the operator's address: %+v", v)
		}
	}

	// Without a record (a vipd from before it existed): only configured
	// VIPs are taken over.
	r.kill(r.d)
	if err := os.Remove(filepath.Join(r.dir, "state", statedir.BoundFile)); err != nil {
		t.Fatal(err)
	}
	r.startNode(Options{}, vipA)
	r.waitAnnounced(vipA)
	time.Sleep(500 * time.Millisecond) // past the rig's table grace (200ms)
	if !r.onLo(operators) || !r.onLo(vipA.Addr()) {
		t.Errorf("after a start without a record: operator's address on lo %v, vipA %v; want both", r.onLo(operators), r.onLo(vipA.Addr()))
	}
}
