package bird

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/fielderr"
)

func TestValidate(t *testing.T) {
	tests := []struct {
		name   string
		modify func(*Config)
		want   []string // "path: message" of every error, in order
	}{
		{name: "valid v4", modify: func(*Config) {}},
		{name: "valid include", modify: func(c *Config) { c.Mode = ModeInclude; c.OSPF = nil }},
		{name: "bad mode", modify: func(c *Config) { c.Mode = "partial" },
			want: []string{`mode: must be "full" or "include", not "partial"`}},
		{name: "no config file", modify: func(c *Config) { c.ConfigFile = "" },
			want: []string{"config_file: is required: the file vipd writes for BIRD"}},
		{name: "v6 router id", modify: func(c *Config) { c.RouterID = netip.MustParseAddr("2001:db8::1") },
			want: []string{"router_id: must be an IPv4 address (BIRD router ids are 32-bit), not 2001:db8::1"}},
		{name: "debounce too long", modify: func(c *Config) { c.Debounce = time.Second },
			want: []string{"debounce: must be between 0 and 200ms, not 1s"}},
		{name: "full without ospf", modify: func(c *Config) { c.OSPF = nil },
			want: []string{`ospf: at least one OSPF instance is required in mode "full"`,
				"ospf: IPv4 VIP 192.0.2.10/32 needs an OSPF version 2 instance"}},
		{name: "include with ospf", modify: func(c *Config) { c.Mode = ModeInclude },
			want: []string{`ospf: OSPF instances are configured in your own bird.conf in mode "include"; remove them here`}},
		{name: "v6 VIP without v3", modify: func(c *Config) {
			c.VIPs = append(c.VIPs, VIPRoute{Prefix: netip.MustParsePrefix("2001:db8::1/128")})
		}, want: []string{"ospf: IPv6 VIP 2001:db8::1/128 needs an OSPF version 3 instance"}},
		{name: "bad version and name", modify: func(c *Config) { c.OSPF[0].Version = 4; c.OSPF[0].Name = "my-ospf" },
			want: []string{"ospf[0].version: must be 2 (IPv4) or 3 (IPv6), not 4",
				`ospf[0].name: "my-ospf" is not a BIRD protocol name (letters, digits, underscore)`,
				"ospf: IPv4 VIP 192.0.2.10/32 needs an OSPF version 2 instance"}},
		{name: "duplicate names", modify: func(c *Config) { c.OSPF = append(c.OSPF, c.OSPF[0]) },
			want: []string{`ospf[1].name: "ospf_v2" is already used by ospf[0]`}},
		{name: "reserved name", modify: func(c *Config) { c.OSPF[0].Name = "vipd_x" },
			want: []string{"ospf[0].name: names starting with vipd_ are reserved for generated protocols"}},
		{name: "bad area", modify: func(c *Config) { c.OSPF[0].Areas[0].ID = "backbone" },
			want: []string{`ospf[0].area[0].id: "backbone" is neither a number nor a dotted quad`}},
		{name: "duplicate area", modify: func(c *Config) {
			c.OSPF[0].Areas = append(c.OSPF[0].Areas, Area{ID: "0.0.0.0", Interfaces: []Interface{ptpIface("x")}})
		}, want: []string{"ospf[0].area[1].id: area 0.0.0.0 is listed twice"}},
		{name: "interface errors", modify: func(c *Config) {
			c.OSPF[0].Areas[0].Interfaces[1] = Interface{Name: `eth"1`, Type: "nbma", Hello: 5, Dead: 5,
				Retransmit: 1, AuthType: "simple", Password: "longer than 8"}
		}, want: []string{
			"ospf[0].area[0].interface[1].name: is required and must not contain quotes, backslashes or newlines",
			`ospf[0].area[0].interface[1].type: must be "ptp" or "broadcast", not "nbma"`,
			"ospf[0].area[0].interface[1].dead: must be greater than hello (5)",
			"ospf[0].area[0].interface[1].retransmit: must be greater than one second",
			"ospf[0].area[0].interface[1].password: simple authentication needs a password of 1 to 8 characters",
		}},
		{name: "v3 simple auth", modify: func(c *Config) {
			c.OSPF[0].Version = 3
			c.VIPs = nil
			c.OSPF[0].Areas[0].Interfaces[0].AuthType = "simple"
			c.OSPF[0].Areas[0].Interfaces[0].Password = "pw"
		}, want: []string{`ospf[0].area[0].interface[0].authentication: OSPFv3 has no simple authentication; use "cryptographic"`}},
		{name: "no interfaces", modify: func(c *Config) { c.OSPF[0].Areas[0].Interfaces = nil },
			want: []string{"ospf[0].area[0].interface: at least one interface is required"}},
		{name: "bad route attrs", modify: func(c *Config) { c.VIPs[0].Attrs = RouteAttrs{Metric: 1 << 24, Type: 3} },
			want: []string{"VIP 192.0.2.10/32: metric: must be at most 16777215 (24-bit OSPF metric)",
				"VIP 192.0.2.10/32: type: must be 1 or 2, not 3"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c := v4Config()
			tc.modify(&c)
			var got []string
			for _, e := range fielderr.All(c.Validate()) {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("Validate (-want +got):\n%s", diff)
			}
		})
	}
}

func TestValidatePathsArePrefixable(t *testing.T) {
	c := v4Config()
	c.OSPF[0].Areas[0].Interfaces[1].Type = "nbma"
	err := fielderr.Prefix("routing.bird", c.Validate())
	var fe *fielderr.Error
	if !errors.As(err, &fe) || fe.Path != "routing.bird.ospf[0].area[0].interface[1].type" {
		t.Fatalf("got %v, want a fielderr at routing.bird.ospf[0].area[0].interface[1].type", err)
	}
}
