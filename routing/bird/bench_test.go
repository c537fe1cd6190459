package bird

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/netnstest"
	"github.com/vipd/vipd/routing"
)

func benchSamples() int {
	if n, err := strconv.Atoi(os.Getenv("VIPD_BENCH_SAMPLES")); err == nil && n > 0 {
		return n
	}
	return 20
}

func percentile(ds []time.Duration, p float64) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := int(float64(len(s)-1)*p + 0.5)
	return s[i]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// BenchmarkDrainToWithdrawn measures, with type ptp, hello 1, dead 3, the
// time from a drain (SetRoutes without the VIP) to the route leaving the
// router's kernel table, p50/p99, against a baseline measured in the same
// run: the same file written by hand and `birdc configure` run directly.
// Each sample withdraws a different VIP (a re-announce of the same LSA
// would wait out BIRD's MinLSInterval). Run with -benchtime=1x;
// VIPD_BENCH_SAMPLES sets the samples per side (default 20).
func BenchmarkDrainToWithdrawn(b *testing.B) {
	n := benchSamples()
	var vips []netip.Prefix
	for i := 0; i < 2*n; i++ {
		vips = append(vips, netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 0, 2, byte(10 + i)}), 32))
	}
	var all []routing.Route
	for _, p := range vips {
		all = append(all, routing.Route{Prefix: p})
	}
	l := newOSPFLab(b, labOptions{vips: vips, initial: all})
	waitFor(b, 15*time.Second, "adjacency Full", func() bool { return l.full(b) })
	waitFor(b, 30*time.Second, "all VIP routes at the router", func() bool {
		for _, p := range vips {
			if !l.routerHas(b, p) {
				return false
			}
		}
		return true
	})
	ctx := context.Background()
	desired := slices.Clone(all)
	remove := func(p netip.Prefix) {
		desired = slices.DeleteFunc(desired, func(r routing.Route) bool { return r.Prefix == p })
	}
	var viaVipd, viaBirdc, applied []time.Duration
	b.ResetTimer()
	for i := 0; i < n; i++ {
		// vipd: the whole apply path (debounce, render, bird -p, rename,
		// configure).
		p := vips[2*i]
		remove(p)
		t0 := time.Now()
		if _, err := l.adv.SetRoutes(ctx, desired); err != nil {
			b.Fatal(err)
		}
		applied = append(applied, time.Since(t0))
		waitFor(b, 10*time.Second, "withdraw at the router", func() bool { return !l.routerHas(b, p) })
		viaVipd = append(viaVipd, time.Since(t0))

		// Baseline: the same change by hand.
		p = vips[2*i+1]
		remove(p)
		data := mustRender(b, l.cfg, desired)
		t0 = time.Now()
		if err := os.WriteFile(l.cfg.ConfigFile, data, 0o644); err != nil {
			b.Fatal(err)
		}
		if _, err := Configure(ctx, l.cfg.Birdc, l.cfg.Socket, l.cfg.ConfigFile); err != nil {
			b.Fatal(err)
		}
		waitFor(b, 10*time.Second, "withdraw at the router", func() bool { return !l.routerHas(b, p) })
		viaBirdc = append(viaBirdc, time.Since(t0))
		if !l.full(b) {
			b.Fatalf("adjacency left Full")
		}
	}
	b.StopTimer()
	p50, p99 := percentile(viaVipd, 0.5), percentile(viaVipd, 0.99)
	b50, b99 := percentile(viaBirdc, 0.5), percentile(viaBirdc, 0.99)
	b.ReportMetric(ms(p50), "p50-ms")
	b.ReportMetric(ms(p99), "p99-ms")
	b.ReportMetric(ms(b50), "baseline-p50-ms")
	b.ReportMetric(ms(b99), "baseline-p99-ms")
	b.ReportMetric(ms(p99)/ms(b99), "p99-ratio")
	a50, a99 := percentile(applied, 0.5), percentile(applied, 0.99)
	b.ReportMetric(ms(a99), "setroutes-p99-ms")
	fmt.Printf("drain -> withdrawn at router (%d samples, ptp hello 1 dead 3): vipd p50 %.0f ms p99 %.0f ms; "+
		"hand-written file + birdc configure p50 %.0f ms p99 %.0f ms; p99 ratio %.2f (goal: vipd p99 < 1500 ms); "+
		"SetRoutes returned (BIRD reconfigured) p50 %.0f ms p99 %.0f ms (debounce %s)\n",
		n, ms(p50), ms(p99), ms(b50), ms(b99), ms(p99)/ms(b99), ms(a50), ms(a99), l.adv.cfg.Debounce)
}

// Benchmark10kVIPs measures vipd's own work for 10,000 VIPs (render, write,
// fsync, rename) and a full apply against a running BIRD, against `bird -p`
// of the same file alone, measured in the same run.
func Benchmark10kVIPs(b *testing.B) {
	netnstest.RequireRoot(b)
	requireBird(b)
	const count = 10000
	dir := b.TempDir()
	cfg := Config{
		ConfigFile: filepath.Join(dir, "director.conf"),
		Socket:     filepath.Join(dir, "director.ctl"),
		RouterID:   netip.MustParseAddr("10.99.0.1"),
		Debounce:   time.Millisecond,
		OSPF: []OSPF{{Version: 2, ECMP: true, Areas: []Area{{ID: "0",
			Interfaces: []Interface{{Name: "vipd-none*", Type: "ptp", Hello: 1, Dead: 3}}}}}},
	}
	var all []routing.Route
	for i := 0; i < count; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 128 + byte(i>>16), byte(i >> 8), byte(i)}), 32)
		cfg.VIPs = append(cfg.VIPs, VIPRoute{Prefix: p, Attrs: RouteAttrs{Tag: uint32(i)}})
		all = append(all, routing.Route{Prefix: p})
	}
	writeFile(b, cfg.ConfigFile, string(mustRender(b, cfg, nil)))
	ns := netnstest.New(b, "bk")
	d := startBird(b, ns, "bird", cfg.ConfigFile)
	cfg.Birdc = d.birdc
	adv, err := New(context.Background(), cfg, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer adv.Abandon()
	ctx := context.Background()

	var gen, warm, write, parse, apply, check, configure []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		routes := all
		if i%2 == 1 {
			routes = all[1:] // every apply changes something
		}
		// vipd's own work: validate the section and render; then write,
		// fsync and rename (I/O, reported apart).
		t0 := time.Now()
		if err := cfg.Validate(); err != nil {
			b.Fatal(err)
		}
		data, err := Render(cfg, routes)
		if err != nil {
			b.Fatal(err)
		}
		gen = append(gen, time.Since(t0))
		// What an apply renders: the advertiser keeps its renderer.
		t0 = time.Now()
		if _, err := adv.r.render(announced(routes)); err != nil {
			b.Fatal(err)
		}
		warm = append(warm, time.Since(t0))
		t0 = time.Now()
		tmp, err := writeTemp(filepath.Join(dir, "gen.conf"), data)
		if err != nil {
			b.Fatal(err)
		}
		if err := replace(tmp, filepath.Join(dir, "gen.conf")); err != nil {
			b.Fatal(err)
		}
		write = append(write, time.Since(t0))
		// BIRD's own parse of the same file.
		t0 = time.Now()
		if err := Check(ctx, "bird", filepath.Join(dir, "gen.conf")); err != nil {
			b.Fatal(err)
		}
		parse = append(parse, time.Since(t0))
		// The whole apply path against the running BIRD.
		t0 = time.Now()
		if _, err := adv.SetRoutes(ctx, routes); err != nil {
			b.Fatal(err)
		}
		apply = append(apply, time.Since(t0))
		st := adv.LastApply()
		check = append(check, st.Check)
		configure = append(configure, st.Configure)
	}
	b.StopTimer()
	g, p := percentile(gen, 0.5), percentile(parse, 0.5)
	w, wr := percentile(write, 0.5), percentile(warm, 0.5)
	b.ReportMetric(ms(g), "gen-ms")
	b.ReportMetric(ms(w), "write-fsync-ms")
	b.ReportMetric(ms(wr), "apply-render-ms")
	b.ReportMetric(ms(p), "bird-p-ms")
	b.ReportMetric(ms(percentile(apply, 0.5)), "apply-ms")
	b.ReportMetric(100*ms(g)/ms(p), "gen-%-of-parse")
	fmt.Printf("10k VIPs (median of %d): validate+render from scratch %.1f ms; bird -p alone %.1f ms (generator = %.1f%% of bird's parse, goal < 10%%); "+
		"render per apply %.1f ms (%.1f%%); write+fsync+rename %.1f ms; full apply %.1f ms (bird -p %.1f ms, birdc configure %.1f ms, debounce 1 ms); file %d KiB\n",
		b.N, ms(g), ms(p), 100*ms(g)/ms(p), ms(wr), 100*ms(wr)/ms(p), ms(w), ms(percentile(apply, 0.5)), ms(percentile(check, 0.5)),
		ms(percentile(configure, 0.5)), len(mustRender(b, cfg, all))/1024)

	// What Exported costs per OSPF protocol with 10k VIPs (this rig has no
	// adjacency, so Exported itself would skip the protocol): the listing
	// over the control socket, parsed and classified, against birdc
	// printing the same listing, in the same run.
	if _, err := adv.SetRoutes(ctx, all); err != nil {
		b.Fatal(err)
	}
	var exp, raw []time.Duration
	for range 5 {
		t0 := time.Now()
		cc, err := dialControl(ctx, cfg.Socket)
		if err != nil {
			b.Fatal(err)
		}
		lines, err := cc.cmd(ctx, "show route export ospf_v2 all")
		cc.Close()
		if err != nil {
			b.Fatal(err)
		}
		n := 0
		for _, er := range parseExport(lines) {
			if _, mismatch := adv.r.classify(er); mismatch == "" {
				n++
			}
		}
		exp = append(exp, time.Since(t0))
		if n != count {
			b.Fatalf("export listing: %d routes as configured, want %d", n, count)
		}
		t0 = time.Now()
		if out, err := exec.Command(d.birdc, "-s", cfg.Socket, "show", "route", "export", "ospf_v2", "all").Output(); err != nil || len(out) == 0 {
			b.Fatalf("birdc: %v", err)
		}
		raw = append(raw, time.Since(t0))
	}
	e, r := percentile(exp, 0.5), percentile(raw, 0.5)
	b.ReportMetric(ms(e), "exported-ms")
	b.ReportMetric(ms(e)/ms(r), "exported-ratio-vs-birdc")
	fmt.Printf("Exported's read of 10k exported routes (median of 5): %.1f ms over the control socket, parsed and classified; birdc printing the same %.1f ms (%.2fx)\n",
		ms(e), ms(r), ms(e)/ms(r))
}
