package daemon

import (
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/routing/bgp"
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

func TestNeedsRestart(t *testing.T) {
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
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := needsRestart(base, loadExample(t, tt.edit))
			if d := cmp.Diff(tt.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
}

func TestUnion(t *testing.T) {
	p := netip.MustParsePrefix
	key := func(v bgp.VIPRoute) netip.Prefix { return v.Prefix }
	med := uint32(5)
	newer := []bgp.VIPRoute{{Prefix: p("198.51.100.1/32"), Attrs: bgp.RouteAttrs{MED: &med}}, {Prefix: p("198.51.100.3/32")}}
	older := []bgp.VIPRoute{{Prefix: p("198.51.100.1/32")}, {Prefix: p("198.51.100.2/32")}}
	got := union(newer, older, key)
	want := []bgp.VIPRoute{newer[0], newer[1], older[1]}
	if d := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestControllerConfigPeerWait(t *testing.T) {
	c := loadExample(t, nil)
	vc := controllerConfig(c, "")
	want := c.Cluster.PollInterval*time.Duration(max(c.Cluster.Rise, c.Cluster.Fall)+1) + c.Cluster.PollTimeout
	if vc.PeerWait != want || vc.PeerWait <= 0 {
		t.Errorf("PeerWait %v, want %v", vc.PeerWait, want)
	}
	if err := vc.Validate(); err != nil {
		t.Errorf("controller config from the example: %v", err)
	}
}
