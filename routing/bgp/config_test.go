package bgp

import (
	"errors"
	"net/netip"
	"sort"
	"testing"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/fielderr"
)

func validConfig() Config {
	return Config{
		ASN:      65000,
		RouterID: netip.MustParseAddr("10.0.0.1"),
		NextHop4: netip.MustParseAddr("192.0.2.1"),
		NextHop6: netip.MustParseAddr("2001:db8::1"),
		Neighbors: []Neighbor{
			{Address: netip.MustParseAddr("10.0.0.254"), ASN: 65001, Password: "s3cret", HoldTime: 9 * time.Second, Keepalive: 3 * time.Second},
			{Address: netip.MustParseAddr("2001:db8::fe"), ASN: 4200000000, MultihopTTL: 2},
		},
		VIPs: []VIPRoute{
			{Prefix: netip.MustParsePrefix("203.0.113.10/32"), Attrs: RouteAttrs{Communities: []string{"65000:1", "no-export"}, LargeCommunities: []string{"4200000000:1:2"}, MED: u32(10), Prepend: 2}},
			{Prefix: netip.MustParsePrefix("2001:db8:f::10/128")},
		},
	}
}

// errPaths returns the fielderr paths of err, sorted.
func errPaths(t *testing.T, err error) []string {
	t.Helper()
	var paths []string
	for _, e := range fielderr.All(err) {
		var fe *fielderr.Error
		if !errors.As(e, &fe) {
			t.Errorf("error without a field path: %v", e)
			continue
		}
		paths = append(paths, fe.Path)
	}
	sort.Strings(paths)
	return paths
}

func TestValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(c *Config)
		want   []string // paths of the errors, sorted
	}{
		{"valid", func(*Config) {}, nil},
		{"no asn", func(c *Config) { c.ASN = 0 }, []string{"asn"}},
		{"AS_TRANS", func(c *Config) { c.ASN = 23456 }, []string{"asn"}},
		{"reserved neighbor asn", func(c *Config) { c.Neighbors[1].ASN = 4294967295 }, []string{"neighbor[1].asn"}},
		{"router id v6", func(c *Config) { c.RouterID = netip.MustParseAddr("::1") }, []string{"router_id"}},
		{"listen port", func(c *Config) { c.ListenPort = 70000 }, []string{"listen_port"}},
		{"next hop family", func(c *Config) { c.NextHop4 = netip.MustParseAddr("2001:db8::1") }, []string{"next_hop_v4"}},
		{"drain community", func(c *Config) { c.DrainAttrs.Communities = []string{"65536:1"} }, []string{"drain_attributes.communities[0]"}},
		{"no neighbors", func(c *Config) { c.Neighbors = nil }, []string{"neighbor"}},
		{"duplicate neighbor", func(c *Config) {
			c.Neighbors = append(c.Neighbors, Neighbor{Address: netip.MustParseAddr("10.0.0.254"), ASN: 65002})
		}, []string{"neighbor[2].address"}},
		{"neighbor without address", func(c *Config) { c.Neighbors[0].Address = netip.Addr{} }, []string{"neighbor[0].address"}},
		{"password on passive neighbor without address", func(c *Config) {
			c.Neighbors[0].Address, c.Neighbors[0].Passive = netip.Addr{}, true
		}, []string{"neighbor[0].address", "neighbor[0].password"}},
		{"password too long", func(c *Config) { c.Neighbors[0].Password = string(make([]byte, 81)) }, []string{"neighbor[0].password"}},
		{"local address family", func(c *Config) { c.Neighbors[1].LocalAddress = netip.MustParseAddr("10.0.0.1") }, []string{"neighbor[1].local_address"}},
		{"multihop on iBGP", func(c *Config) { c.Neighbors[1].ASN = 65000 }, []string{"neighbor[1].ebgp_multihop_ttl"}},
		{"hold time too short", func(c *Config) { c.Neighbors[0].HoldTime, c.Neighbors[0].Keepalive = 2*time.Second, time.Second }, []string{"neighbor[0].hold_time"}},
		{"keepalive not below hold", func(c *Config) { c.Neighbors[0].Keepalive = 9 * time.Second }, []string{"neighbor[0].keepalive_interval"}},
		{"restart time", func(c *Config) { c.GracefulRestart.RestartTime = 5000 * time.Second }, []string{"graceful_restart.restart_time"}},
		{"VIP not a host prefix", func(c *Config) { c.VIPs[0].Prefix = netip.MustParsePrefix("203.0.113.0/24") }, []string{"vip(203.0.113.0/24)"}},
		{"bad large community", func(c *Config) { c.VIPs[1].Attrs.LargeCommunities = []string{"1:2"} }, []string{"vip(2001:db8:f::10/128).large_communities[0]"}},
		{"local_pref without iBGP neighbor", func(c *Config) { c.VIPs[1].Attrs.LocalPref = u32(200) }, []string{"vip(2001:db8:f::10/128).local_pref"}},
		{"local_pref with iBGP neighbor", func(c *Config) {
			c.VIPs[1].Attrs.LocalPref = u32(200)
			c.Neighbors[0].ASN = 65000
		}, nil},
		{"too many prepends", func(c *Config) { c.VIPs[0].Attrs.Prepend = 17 }, []string{"vip(203.0.113.10/32).as_path_prepend"}},
		{"several errors at once", func(c *Config) { c.ASN = 0; c.Neighbors[0].ASN = 0 }, []string{"asn", "neighbor[0].asn"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.modify(&c)
			if d := cmp.Diff(tc.want, errPaths(t, c.Validate())); d != "" {
				t.Errorf("error paths (-want +got):\n%s\nerror: %v", d, c.Validate())
			}
		})
	}
}

// TestNewRefuses: New runs Validate and checks what the loader must have
// filled in.
func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct {
		name   string
		modify func(c *Config)
	}{
		{"invalid", func(c *Config) { c.ASN = 0 }},
		{"no router id", func(c *Config) { c.RouterID = netip.Addr{} }},
		{"v4 VIP without next hop", func(c *Config) { c.NextHop4 = netip.Addr{} }},
		{"v6 VIP without next hop", func(c *Config) { c.NextHop6 = netip.Addr{} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := validConfig()
			tc.modify(&c)
			if _, err := New(c, nil); err == nil {
				t.Error("New accepted the config")
			}
		})
	}
}

// TestSchemaUnknownKeys: the TOML tags are the schema; a misspelt neighbor
// key is left undecoded, which the config loader reports as unknown. The
// drain policy is not the speaker's: the config loader decodes it for the
// state machine.
func TestSchemaUnknownKeys(t *testing.T) {
	const doc = `
asn = 65000
router_id = "10.0.0.1"
drain = "deprefer"
[drain_attributes]
med = 500
communities = ["65000:666"]
[graceful_restart]
enabled = true
restart_time = "90s"
[[neighbor]]
address = "10.0.0.254"
asn = 65001
hold = "9s"
`
	var c Config
	md, err := toml.Decode(doc, &c)
	if err != nil {
		t.Fatal(err)
	}
	var undecoded []string
	for _, k := range md.Undecoded() {
		undecoded = append(undecoded, k.String())
	}
	if d := cmp.Diff([]string{"drain", "neighbor.hold"}, undecoded); d != "" {
		t.Errorf("undecoded keys (-want +got):\n%s", d)
	}
	if c.GracefulRestart.RestartTime != 90*time.Second || *c.DrainAttrs.MED != 500 || c.Neighbors[0].ASN != 65001 {
		t.Errorf("decoded %+v", c)
	}
}

func TestParseCommunity(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    uint32
		wantErr bool
	}{
		{"65000:100", 65000<<16 | 100, false},
		{"0:0", 0, false},
		{"no-export", 0xFFFFFF01, false},
		{"GRACEFUL-SHUTDOWN", 0xFFFF0000, false},
		{"65536:1", 0, true},
		{"65000", 0, true},
		{"a:b", 0, true},
	} {
		got, err := parseCommunity(tc.in)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("parseCommunity(%q) = %#x, %v; want %#x, error %v", tc.in, got, err, tc.want, tc.wantErr)
		}
	}
}

func TestWithDrain(t *testing.T) {
	base := RouteAttrs{Communities: []string{"65000:1"}, MED: u32(10), LocalPref: u32(200), Prepend: 1}
	drain := RouteAttrs{Communities: []string{"65000:666"}, LargeCommunities: []string{"65000:0:666"}, MED: u32(1000), Prepend: 3}
	want := RouteAttrs{Communities: []string{"65000:1", "65000:666"}, LargeCommunities: []string{"65000:0:666"}, MED: u32(1000), LocalPref: u32(200), Prepend: 4}
	if d := cmp.Diff(want, withDrain(base, drain)); d != "" {
		t.Errorf("withDrain (-want +got):\n%s", d)
	}
	if len(base.Communities) != 1 {
		t.Errorf("withDrain modified its input: %v", base.Communities)
	}
}
