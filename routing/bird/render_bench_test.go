package bird

import (
	"net/netip"
	"testing"

	"github.com/vipd/vipd/routing"
)

func config10k() (Config, []routing.Route) {
	cfg := v4Config()
	cfg.VIPs = nil
	var all []routing.Route
	for i := 0; i < 10000; i++ {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 128 + byte(i>>16), byte(i >> 8), byte(i)}), 32)
		cfg.VIPs = append(cfg.VIPs, VIPRoute{Prefix: p, Attrs: RouteAttrs{Tag: uint32(i)}})
		all = append(all, routing.Route{Prefix: p})
	}
	return cfg, all
}

// BenchmarkRender10k is the generator alone (no BIRD needed).
func BenchmarkRender10k(b *testing.B) {
	cfg, all := config10k()
	for i := 0; i < b.N; i++ {
		if _, err := Render(cfg, all); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkValidate10k is Config.Validate with 10,000 VIPs.
func BenchmarkValidate10k(b *testing.B) {
	cfg, _ := config10k()
	for i := 0; i < b.N; i++ {
		if err := cfg.Validate(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkRenderApply10k is what one apply renders: the advertiser keeps
// its renderer, so only the route lines are formatted.
func BenchmarkRenderApply10k(b *testing.B) {
	cfg, all := config10k()
	r, err := newRenderer(cfg)
	if err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		if _, err := r.render(announced(all)); err != nil {
			b.Fatal(err)
		}
	}
}
