package config

import (
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/fielderr"
)

// withVIPs is base with its two VIPs replaced by n VIPs of services each,
// one line each (so vip[i] is at line vipLine+i).
func withVIPs(t *testing.T, n int, services string) string {
	t.Helper()
	start := strings.Index(base, "[[vip]]")
	end := strings.Index(base, "[routing]")
	var b strings.Builder
	for i := range n {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		fmt.Fprintf(&b, "[[vip]]\naddress = %q\nservices = [%s]\ncheck = { type = \"none\" }\n", a, services)
	}
	return base[:start] + b.String() + base[end:]
}

// vipLine is the line of vip[i]'s [[vip]] header in withVIPs.
func vipLine(i int) int { return strings.Count(base[:strings.Index(base, "[[vip]]")], "\n") + 1 + 4*i }

func TestLimitsVIPs(t *testing.T) {
	if _, err := Parse("vipd.toml", []byte(withVIPs(t, dataplane.MaxVIPs, `"tcp/80"`))); err != nil {
		t.Fatalf("MaxVIPs VIPs rejected: %v", err)
	}
	_, err := Parse("vipd.toml", []byte(withVIPs(t, dataplane.MaxVIPs+1, `"tcp/80"`)))
	want := fmt.Sprintf("vipd.toml:%d: vip[%d]: %d VIPs: over the dataplane's limits (MaxVIPs = %d); this is VIP %d",
		vipLine(dataplane.MaxVIPs), dataplane.MaxVIPs, dataplane.MaxVIPs+1, dataplane.MaxVIPs, dataplane.MaxVIPs+1)
	if diff := cmp.Diff([]string{want}, errStrings(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if !errors.Is(err, dataplane.ErrOverLimit) {
		t.Errorf("%v does not wrap ErrOverLimit", err)
	}
}

func TestLimitsVIPKeys(t *testing.T) {
	// 8 ports and 2 protocols: 10 entries a VIP; MaxVIPKeys/10 VIPs fit.
	svcs := `"tcp/1","tcp/2","tcp/3","tcp/4","udp/1","udp/2","udp/3","udp/4"`
	n := dataplane.MaxVIPKeys/10 + 1
	_, err := Parse("vipd.toml", []byte(withVIPs(t, n, svcs)))
	want := fmt.Sprintf("vipd.toml:%d: vip[%d].services: %d or more VIP map entries (a VIP's services plus one per protocol): over the dataplane's limits (MaxVIPKeys = %d)",
		vipLine(n-1)+2, n-1, n*10, dataplane.MaxVIPKeys)
	if diff := cmp.Diff([]string{want}, errStrings(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
	if _, err := Parse("vipd.toml", []byte(withVIPs(t, n-1, svcs))); err != nil {
		t.Errorf("%d entries rejected: %v", (n-1)*10, err)
	}
}

func TestDataplaneTrustKeys(t *testing.T) {
	cfg, err := Parse("vipd.toml", []byte(edit(t, `interface = "eth0"`,
		"interface = \"eth0\"\nallowed_sources = [\"203.0.113.0/28\", \"2001:db8:d::/64\"]\nmax_hops = 3")))
	if err != nil {
		t.Fatal(err)
	}
	wantSrc := []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28"), netip.MustParsePrefix("2001:db8:d::/64")}
	if diff := cmp.Diff(wantSrc, cfg.Dataplane.AllowedSources, cmpAddrs...); diff != "" || cfg.Dataplane.MaxHops != 3 {
		t.Errorf("allowed_sources (-want +got):\n%s; max_hops %d, want 3", diff, cfg.Dataplane.MaxHops)
	}

	_, err = Parse("vipd.toml", []byte(edit(t, `interface = "eth0"`,
		"interface = \"eth0\"\nallowed_sources = [\"203.0.113.1/28\", \"director\"]\nmax_hops = 4")))
	want := []string{
		`vipd.toml:43: dataplane.allowed_sources[0]: "203.0.113.1/28" has host bits set (did you mean 203.0.113.0/28?)`,
		`vipd.toml:43: dataplane.allowed_sources[1]: "director" is not a prefix (like "192.0.2.0/24")`,
		`vipd.toml:44: dataplane.max_hops: 4 is out of range 1-3 (MaxHopsAccepted)`,
	}
	if diff := cmp.Diff(want, errStrings(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}

	many := make([]string, dataplane.MaxDirectorPrefixes+1)
	for i := range many {
		many[i] = fmt.Sprintf("%q", netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), 0}), 24))
	}
	_, err = Parse("vipd.toml", []byte(edit(t, `interface = "eth0"`,
		"interface = \"eth0\"\nallowed_sources = ["+strings.Join(many, ", ")+"]")))
	want = []string{fmt.Sprintf("vipd.toml:43: dataplane.allowed_sources[%d]: %d prefixes: over the dataplane's limits (MaxDirectorPrefixes = %d)",
		dataplane.MaxDirectorPrefixes, dataplane.MaxDirectorPrefixes+1, dataplane.MaxDirectorPrefixes)}
	if diff := cmp.Diff(want, errStrings(err)); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}

func errStrings(err error) []string {
	var out []string
	for _, e := range fielderr.All(err) {
		out = append(out, e.Error())
	}
	return out
}
