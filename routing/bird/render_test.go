package bird

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/routing"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

func ptpIface(name string) Interface {
	return Interface{Name: name, Type: "ptp", Cost: 10, Hello: 1, Dead: 3, Retransmit: 2}
}

func v4Config() Config {
	return Config{
		ConfigFile: "/etc/bird/bird.conf",
		RouterID:   netip.MustParseAddr("10.0.0.1"),
		OSPF: []OSPF{{
			Version: 2, ECMP: true,
			Areas: []Area{{ID: "0", Interfaces: []Interface{
				ptpIface("eth0"),
				{Name: "eth1*", Type: "broadcast", Cost: 100, AuthType: "cryptographic", Password: "s3cret"},
			}}},
		}},
		VIPs: []VIPRoute{
			{Prefix: mustPrefix("192.0.2.10/32")},
			{Prefix: mustPrefix("192.0.2.11/32"), Attrs: RouteAttrs{Metric: 50, Type: 1, Tag: 7}},
		},
	}
}

func v4v6Config() Config {
	c := v4Config()
	c.OSPF = append(c.OSPF, OSPF{Name: "ospf6", Version: 3, ECMP: true,
		Areas: []Area{{ID: "0.0.0.1", Interfaces: []Interface{ptpIface("eth0")}}}})
	c.VIPs = append(c.VIPs, VIPRoute{Prefix: mustPrefix("2001:db8::10/128")})
	c.DrainMetric = 1000
	return c
}

// goldenCases are the representative configurations; each must match its
// golden file and pass a real `bird -p`.
func goldenCases() []struct {
	name      string
	cfg       Config
	routes    []routing.Route
	ignoreMTU bool
} {
	include := Config{Mode: ModeInclude, ConfigFile: "/etc/bird/vipd-vips.conf", VIPs: v4v6Config().VIPs}
	mtu := v4Config()
	mtu.OSPF[0].IgnoreMTU = true
	bfd := v4Config()
	bfd.OSPF[0].Areas[0].Interfaces[0].BFD = true
	bfd.OSPF[0].Areas[0].Interfaces[1].Stub = true
	bfd.LogFile = "/var/log/bird.log"
	all := func(c Config) []routing.Route {
		var rs []routing.Route
		for _, v := range c.VIPs {
			rs = append(rs, routing.Route{Prefix: v.Prefix})
		}
		return rs
	}
	return []struct {
		name      string
		cfg       Config
		routes    []routing.Route
		ignoreMTU bool
	}{
		{name: "v4", cfg: v4Config(), routes: all(v4Config())},
		{name: "v4v6-deprefer", cfg: v4v6Config(), routes: []routing.Route{
			{Prefix: mustPrefix("2001:db8::10/128")},
			{Prefix: mustPrefix("192.0.2.11/32"), Draining: true},
			{Prefix: mustPrefix("192.0.2.10/32")},
		}},
		{name: "include", cfg: include, routes: all(include)},
		{name: "ignoremtu", cfg: mtu, routes: all(mtu), ignoreMTU: true},
		{name: "bfd", cfg: bfd, routes: all(bfd)},
		// Under the withdraw drain policy the state machine passes no
		// route for a draining VIP: the file announces nothing.
		{name: "withdraw-draining", cfg: v4Config(), routes: nil},
	}
}

func TestRenderGolden(t *testing.T) {
	for _, tc := range goldenCases() {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); err != nil {
				t.Fatalf("Validate: %v", err)
			}
			got, err := Render(tc.cfg, tc.routes)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			golden := filepath.Join("testdata", tc.name+".conf")
			if *update {
				if err := os.WriteFile(golden, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update): %v", err)
			}
			if diff := cmp.Diff(string(want), string(got)); diff != "" {
				t.Errorf("Render mismatch (-want +got):\n%s", diff)
			}
			bird := "bird"
			if tc.ignoreMTU {
				bird = patchedBird(t)
			}
			if err := Check(context.Background(), bird, golden); err != nil {
				t.Errorf("%s -p rejects the golden file: %v", bird, err)
			}
		})
	}
}

// TestRenderIgnoreMTUStockRejects pins down why the probe exists: stock
// BIRD rejects the keyword at its position.
func TestStockBirdRejectsIgnoreMTU(t *testing.T) {
	requireBird(t)
	err := Check(context.Background(), "bird", filepath.Join("testdata", "ignoremtu.conf"))
	var ce *ConfigError
	if !asConfigError(err, &ce) {
		t.Fatalf("stock bird -p: got %v, want a ConfigError", err)
	}
	t.Logf("stock bird: %v", ce)
}

func TestWriteAtomic(t *testing.T) {
	file := filepath.Join(t.TempDir(), "bird.conf")
	for _, data := range []string{"first\n", "second\n"} {
		if err := WriteAtomic(file, []byte(data)); err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(file)
		if err != nil || string(got) != data {
			t.Fatalf("after WriteAtomic(%q): %q, %v", data, got, err)
		}
	}
	if entries, _ := os.ReadDir(filepath.Dir(file)); len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

func TestRenderUnknownVIP(t *testing.T) {
	_, err := Render(v4Config(), []routing.Route{{Prefix: mustPrefix("198.51.100.1/32")}})
	if !errors.Is(err, routing.ErrUnknownPrefix) {
		t.Fatalf("Render of a prefix that is not a configured VIP: %v, want routing.ErrUnknownPrefix", err)
	}
}

func TestRoutesInFile(t *testing.T) {
	got := routesInFile(mustRender(t, v4v6Config(), []routing.Route{
		{Prefix: mustPrefix("192.0.2.10/32")},
		{Prefix: mustPrefix("2001:db8::10/128"), Draining: true},
	}))
	want := []routing.Route{
		{Prefix: mustPrefix("192.0.2.10/32")},
		{Prefix: mustPrefix("2001:db8::10/128"), Draining: true},
	}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("routesInFile (-want +got):\n%s", diff)
	}
}

func mustRender(t testing.TB, cfg Config, routes []routing.Route) []byte {
	t.Helper()
	b, err := Render(cfg, routes)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
