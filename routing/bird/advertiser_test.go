package bird

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/routingtest"
)

// TestSetRoutesCoalesces: a burst of SetRoutes calls within the debounce
// window becomes one reconfigure, and every caller gets its result.
func TestSetRoutesCoalesces(t *testing.T) {
	requireBird(t)
	fc := newFakeControl(t, configureOK)
	cfg := v4Config()
	cfg.ConfigFile = filepath.Join(t.TempDir(), "bird.conf")
	cfg.Socket = fc.path
	cfg.Debounce = 150 * time.Millisecond
	for i := 0; i < 20; i++ {
		cfg.VIPs = append(cfg.VIPs, VIPRoute{Prefix: netip.PrefixFrom(netip.AddrFrom4([4]byte{198, 51, 100, byte(i)}), 32)})
	}
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Abandon()

	const callers = 20
	results := make([][]routing.Route, callers)
	errs := make([]error, callers)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := 0; i < callers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			results[i], errs[i] = a.SetRoutes(context.Background(), []routing.Route{{Prefix: cfg.VIPs[2+i].Prefix}})
		}()
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	t.Logf("%d callers answered in %s", callers, time.Since(t0))
	for i, err := range errs {
		if err != nil {
			t.Fatalf("caller %d: %v", i, err)
		}
	}
	// Coalesced: far fewer applies than callers (goroutine start-up may
	// split the burst once).
	if n := fc.count("configure"); n < 1 || n > 2 {
		t.Errorf("bird was reconfigured %d times for %d calls within the debounce window, want 1 or 2", n, callers)
	}
	// The file announces exactly what the last apply returned.
	data, err := os.ReadFile(cfg.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	last := routesInFile(data)
	seen := 0
	for _, r := range results {
		if cmp.Diff(last, r, routeOpts) == "" {
			seen++
		}
	}
	if seen == 0 {
		t.Errorf("no caller got the routes in effect (%v)", last)
	}

	// A later call is applied on its own.
	got, err := a.SetRoutes(context.Background(), nil)
	if err != nil || len(got) != 0 {
		t.Fatalf("SetRoutes(nil) = %v, %v", got, err)
	}
	if n := fc.count("configure"); n > 3 {
		t.Errorf("bird was reconfigured %d times, want at most 3", n)
	}
}

// TestSetRoutesFailedConfigure: when configure fails the last good file is
// restored and SetRoutes returns the routes still in effect.
func TestSetRoutesFailedConfigure(t *testing.T) {
	requireBird(t)
	okc := newFakeControl(t, configureOK)
	badc := newFakeControl(t, configureRefused("/x/bird.conf:3:1 syntax error, unexpected END"))
	cfg := v4Config()
	cfg.ConfigFile = filepath.Join(t.TempDir(), "bird.conf")
	cfg.Socket = okc.path
	cfg.Debounce = time.Millisecond
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := []routing.Route{{Prefix: vipA}}
	if _, err := a.SetRoutes(context.Background(), first); err != nil {
		t.Fatal(err)
	}
	a.Abandon()
	good, _ := os.ReadFile(cfg.ConfigFile)

	cfg.Socket = badc.path
	b, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abandon()
	got, err := b.SetRoutes(context.Background(), []routing.Route{{Prefix: vipA}, {Prefix: vipB}})
	if err == nil || !strings.Contains(err.Error(), "/x/bird.conf:3:1: syntax error") {
		t.Fatalf("SetRoutes: err = %v, want the file:line:col of the rejection", err)
	}
	if diff := cmp.Diff(first, got, routeOpts); diff != "" {
		t.Errorf("SetRoutes returned (-want +got):\n%s", diff)
	}
	now, _ := os.ReadFile(cfg.ConfigFile)
	if string(now) != string(good) {
		t.Errorf("the rejected file was not replaced by the last good one:\n%s", now)
	}
	// An unconfigured prefix is refused and the rest still applied (here
	// refused by BIRD): the answer still tells what is announced.
	got, err = b.SetRoutes(context.Background(), []routing.Route{{Prefix: netip.MustParsePrefix("198.51.100.1/32")}, {Prefix: vipA}})
	if !errors.Is(err, routing.ErrUnknownPrefix) {
		t.Errorf("SetRoutes with an unconfigured prefix: err = %v, want routing.ErrUnknownPrefix", err)
	}
	if diff := cmp.Diff(first, got, routeOpts); diff != "" {
		t.Errorf("SetRoutes with an unconfigured prefix returned (-want +got):\n%s", diff)
	}
	entries, _ := os.ReadDir(filepath.Dir(cfg.ConfigFile))
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

// TestSetRoutesConfigureTimeout: when birdc does not answer in time, the
// outcome is unknown, so both the old and the new routes are reported.
func TestSetRoutesConfigureTimeout(t *testing.T) {
	requireBird(t)
	okc := newFakeControl(t, configureOK)
	slow := newFakeControl(t, func(string) string { time.Sleep(5 * time.Second); return "0003 Reconfigured\n" })
	dir := t.TempDir()
	cfg := v4Config()
	cfg.ConfigFile = filepath.Join(dir, "bird.conf")
	cfg.Socket = okc.path
	cfg.Debounce = time.Millisecond
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetRoutes(context.Background(), []routing.Route{{Prefix: vipA}}); err != nil {
		t.Fatal(err)
	}
	a.Abandon()

	cfg.Socket, cfg.Timeout = slow.path, 300*time.Millisecond
	b, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer b.Abandon()
	got, err := b.SetRoutes(context.Background(), []routing.Route{{Prefix: vipB}})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SetRoutes with a stuck bird: err = %v, want a deadline error", err)
	}
	want := []routing.Route{{Prefix: vipA}, {Prefix: vipB}}
	if diff := cmp.Diff(want, got, routeOpts); diff != "" {
		t.Errorf("SetRoutes returned (-want +got):\n%s", diff)
	}
}

// TestSetRoutesUnknownPrefix: the behaviour every advertiser shares for a
// prefix that is not a configured VIP.
func TestSetRoutesUnknownPrefix(t *testing.T) {
	requireBird(t)
	okc := newFakeControl(t, configureOK)
	cfg := v4Config()
	cfg.ConfigFile = filepath.Join(t.TempDir(), "bird.conf")
	cfg.Socket = okc.path
	cfg.Debounce = time.Millisecond
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Abandon()
	if _, err := a.SetRoutes(context.Background(), []routing.Route{{Prefix: vipA}, {Prefix: vipB}}); err != nil {
		t.Fatal(err)
	}
	routingtest.CheckUnknownPrefix(t, a, []routing.Route{{Prefix: vipA}}, netip.MustParsePrefix("198.51.100.1/32"))
	data, err := os.ReadFile(cfg.ConfigFile)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]routing.Route{{Prefix: vipA}}, routesInFile(data), routeOpts); diff != "" {
		t.Errorf("file after a refused prefix (-want +got):\n%s", diff)
	}
}

// TestCloseAbandon: Close withdraws every route before it stops, Abandon
// leaves BIRD announcing them; both stop the advertiser.
func TestCloseAbandon(t *testing.T) {
	requireBird(t)
	okc := newFakeControl(t, configureOK)
	for _, close := range []bool{true, false} {
		cfg := v4Config()
		cfg.ConfigFile = filepath.Join(t.TempDir(), "bird.conf")
		cfg.Socket = okc.path
		cfg.Debounce = time.Millisecond
		a, err := New(context.Background(), cfg, nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := a.SetRoutes(context.Background(), []routing.Route{{Prefix: vipA}, {Prefix: vipB}}); err != nil {
			t.Fatal(err)
		}
		before := okc.count("configure")
		want := []routing.Route{{Prefix: vipA}, {Prefix: vipB}}
		if close {
			if err := a.Close(context.Background()); err != nil {
				t.Fatalf("Close: %v", err)
			}
			want = nil
			if okc.count("configure") != before+1 {
				t.Errorf("Close did not reconfigure BIRD")
			}
		} else {
			if err := a.Abandon(); err != nil {
				t.Fatalf("Abandon: %v", err)
			}
			if okc.count("configure") != before {
				t.Errorf("Abandon reconfigured BIRD")
			}
		}
		data, err := os.ReadFile(cfg.ConfigFile)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, routesInFile(data), routeOpts, cmpopts.EquateEmpty()); diff != "" {
			t.Errorf("close=%t: routes in the file (-want +got):\n%s", close, diff)
		}
		if _, err := a.SetRoutes(context.Background(), nil); !errors.Is(err, routing.ErrClosed) {
			t.Errorf("close=%t: SetRoutes afterwards = %v, want routing.ErrClosed", close, err)
		}
		if err := a.SetVIPs(context.Background(), nil); !errors.Is(err, routing.ErrClosed) {
			t.Errorf("close=%t: SetVIPs afterwards = %v, want routing.ErrClosed", close, err)
		}
		if _, err := a.Peers(context.Background()); !errors.Is(err, routing.ErrClosed) {
			t.Errorf("close=%t: Peers afterwards = %v, want routing.ErrClosed", close, err)
		}
	}
}

// TestSetVIPsAttrs: attributes must be the OSPF ones (or none).
func TestSetVIPsAttrs(t *testing.T) {
	requireBird(t)
	okc := newFakeControl(t, configureOK)
	cfg := v4Config()
	cfg.ConfigFile = filepath.Join(t.TempDir(), "bird.conf")
	cfg.Socket = okc.path
	cfg.Debounce = time.Millisecond
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Abandon()
	ctx := context.Background()
	if err := a.SetVIPs(ctx, []routing.VIP{{Prefix: vipA, Attrs: struct{ MED int }{1}}}); !errors.Is(err, routing.ErrAttrs) {
		t.Errorf("SetVIPs with foreign attributes = %v, want routing.ErrAttrs", err)
	}
	if err := a.SetVIPs(ctx, []routing.VIP{{Prefix: vipA, Attrs: RouteAttrs{Type: 3}}}); err == nil {
		t.Error("SetVIPs with an invalid metric type succeeded")
	}
	if err := a.SetVIPs(ctx, []routing.VIP{{Prefix: vipA}, {Prefix: vipB, Attrs: RouteAttrs{Metric: 77}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.SetRoutes(ctx, []routing.Route{{Prefix: vipA}, {Prefix: vipB}}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(cfg.ConfigFile)
	if !strings.Contains(string(data), "route 192.0.2.11/32 blackhole { ospf_metric2 = 77; };") {
		t.Errorf("the new attributes are not in the file:\n%s", data)
	}
}

func TestSetRoutesAfterClose(t *testing.T) {
	cfg := v4Config()
	cfg.ConfigFile = filepath.Join(t.TempDir(), "bird.conf")
	a, err := New(context.Background(), cfg, nil)
	if err != nil {
		t.Fatal(err)
	}
	a.Abandon()
	if _, err := a.SetRoutes(context.Background(), nil); err != routing.ErrClosed {
		t.Fatalf("SetRoutes after Abandon: %v, want routing.ErrClosed", err)
	}
}
