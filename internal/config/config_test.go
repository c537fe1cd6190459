package config

import (
	"errors"
	"flag"
	"fmt"
	"net/netip"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/fielderr"
	"github.com/vipd/vipd/internal/health"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/vip"
)

// base is a small valid configuration; the error cases edit one or two
// lines of it. Line numbers in the expectations refer to it.
const base = `[node]
name = "n1"
underlay_v4 = "192.0.2.11"
[cluster]
seed = 7
key_file = "/etc/vipd/cluster.key"
[[cluster.member]]
name = "n1"
underlay_v4 = "192.0.2.11"
underlay_v6 = "2001:db8::11"
state_url = "http://192.0.2.11:9180/state"
[[cluster.member]]
name = "n2"
underlay_v4 = "192.0.2.12"
underlay_v6 = "2001:db8::12"
state_url = "http://192.0.2.12:9180/state"

[[vip]]
address = "198.51.100.10"
services = ["tcp/80", "udp/*"]
[vip.check]
type = "tcp"
target = "127.0.0.1:80"
[vip.bgp]
communities = ["65000:100"]

[[vip]]
name = "two"
address = "198.51.100.20"
services = ["tcp/443"]
check = { type = "none" }

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
withdraw_grace = "3s"

[api]
socket = "/run/vipd/vipd.sock"
`

// edit applies old->new replacements to base; each old must occur.
func edit(t *testing.T, pairs ...string) string {
	t.Helper()
	s := base
	for i := 0; i+1 < len(pairs); i += 2 {
		if !strings.Contains(s, pairs[i]) {
			t.Fatalf("edit: %q not in base", pairs[i])
		}
		s = strings.Replace(s, pairs[i], pairs[i+1], 1)
	}
	return s
}

var cmpAddrs = []cmp.Option{
	cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
	cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
}

// TestParseBase checks the typed result of a valid file, defaults included.
func TestParseBase(t *testing.T) {
	got, err := Parse("vipd.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	a := netip.MustParseAddr
	u := func(s string) url.URL {
		v, err := url.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return *v
	}
	vips := []VIP{
		{
			Addr:     a("198.51.100.10"),
			Services: []vip.Service{{Proto: 6, Port: 80}, {Proto: 17}},
			Check:    health.CheckConfig{Type: "tcp", Target: "127.0.0.1:80"},
			BGP:      bgp.RouteAttrs{Communities: []string{"65000:100"}},
		},
		{
			Name:     "two",
			Addr:     a("198.51.100.20"),
			Services: []vip.Service{{Proto: 6, Port: 443}},
			Check:    health.CheckConfig{Type: "none"},
		},
	}
	want := &Config{
		File: "vipd.toml",
		Node: Node{
			Name:           "n1",
			RouterID:       a("192.0.2.11"),
			UnderlayV4:     a("192.0.2.11"),
			UnderlayV6:     a("2001:db8::11"),
			ClientPrefixes: []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0"), netip.MustParsePrefix("::/0")},
			StateDir:       "/var/lib/vipd",
		},
		Cluster: Cluster{
			Seed: 7, PollInterval: time.Second, PollTimeout: 500 * time.Millisecond, Rise: 2, Fall: 3,
			Backend: BackendPoll, KeyFile: "/etc/vipd/cluster.key", MaxClockSkew: 10 * time.Second, RestartGrace: DefaultRestartGrace,
			ProbeInterval: time.Second, ProbeTimeout: 500 * time.Millisecond, ProbeFailures: 3, ProbeSuccesses: 2,
			Members: []Member{
				{Name: "n1", UnderlayV4: a("192.0.2.11"), UnderlayV6: a("2001:db8::11"), StateURL: u("http://192.0.2.11:9180/state"), Weight: DefaultWeight},
				{Name: "n2", UnderlayV4: a("192.0.2.12"), UnderlayV6: a("2001:db8::12"), StateURL: u("http://192.0.2.12:9180/state"), Weight: DefaultWeight},
			},
		},
		VIPs: vips,
		Routing: Routing{
			Mode: routing.ModeBGP,
			BGP: &bgp.Config{
				ASN:       65100,
				RouterID:  a("192.0.2.11"),
				NextHop4:  a("192.0.2.11"),
				NextHop6:  a("2001:db8::11"),
				Neighbors: []bgp.Neighbor{{Address: a("192.0.2.1"), ASN: 65000}},
				VIPs: []bgp.VIPRoute{
					{Prefix: netip.MustParsePrefix("198.51.100.10/32"), Attrs: vips[0].BGP},
					{Prefix: netip.MustParsePrefix("198.51.100.20/32")},
				},
			},
		},
		Dataplane: Dataplane{Interface: "eth0", Attach: dataplane.AttachAuto, GUEPort: 19523, PinPath: "/sys/fs/bpf/vipd", MaxHops: 1},
		Timers: Timers{WithdrawGrace: 3 * time.Second, TableGrace: 10 * time.Second, DrainTimeout: time.Minute, RemoveTimeout: time.Minute,
			VerifyInterval: 2 * time.Second, VerifySettle: 3 * time.Second},
		API: API{
			Socket:      "/run/vipd/vipd.sock",
			StateListen: netip.MustParseAddrPort("192.0.2.11:9180"),
		},
	}
	if diff := cmp.Diff(want, got, cmpAddrs...); diff != "" {
		t.Errorf("Parse(base) (-want +got):\n%s", diff)
	}
}

// TestParseErrors has one broken config per kind of mistake and asserts
// the exact file:line: item: message lines.
func TestParseErrors(t *testing.T) {
	tests := []struct {
		name  string
		edits []string
		want  []string
	}{
		{
			name:  "toml syntax error",
			edits: []string{`seed = 7`, `seed = = 7`},
			want:  []string{`vipd.toml:5: cluster.seed: expected value but found '=' instead`},
		},
		{
			name:  "unknown top-level table",
			edits: []string{"[timers]", "[timer]"},
			want:  []string{`vipd.toml:44: timer: unknown key (did you mean "timers"?)`},
		},
		{
			name:  "unknown key in a vip",
			edits: []string{`name = "two"`, `nmae = "two"`},
			want:  []string{`vipd.toml:28: vip[1].nmae: unknown key (did you mean "name"?)`},
		},
		{
			name:  "unknown key in an inline check table",
			edits: []string{`{ type = "none" }`, `{ type = "none", tpye = "tcp" }`},
			want:  []string{`vipd.toml:31: vip[1].check.tpye: unknown key (did you mean "type"?)`},
		},
		{
			name:  "unknown key in a routing section",
			edits: []string{"asn = 65000", "asn = 65000\nmultihop = 2"},
			want:  []string{`vipd.toml:40: routing.bgp.neighbor[0].multihop: unknown key`},
		},
		{
			name:  "unknown key deep in a routing section gets a suggestion",
			edits: []string{"asn = 65000", "asn = 65000\nhold_tme = \"9s\""},
			want:  []string{`vipd.toml:40: routing.bgp.neighbor[0].hold_tme: unknown key (did you mean "hold_time"?)`},
		},
		{
			name:  "unknown table in a vip",
			edits: []string{"[vip.bgp]", "[vip.bgpp]"},
			want:  []string{`vipd.toml:24: vip[0].bgpp: unknown key (did you mean "bgp"?)`},
		},
		{
			name:  "missing node name",
			edits: []string{`name = "n1"` + "\nunderlay_v4", `underlay_v4`},
			want:  []string{`vipd.toml:1: node.name: required key is missing`},
		},
		{
			name:  "missing section",
			edits: []string{"[dataplane]\ninterface = \"eth0\"\n", ""},
			want:  []string{`vipd.toml: dataplane: missing section [dataplane]`},
		},
		{
			name:  "duplicate vip address",
			edits: []string{`address = "198.51.100.20"`, `address = "198.51.100.10/32"`},
			want:  []string{`vipd.toml:29: vip[1].address: 198.51.100.10 duplicates vip[0]`},
		},
		{
			name:  "duplicate member name",
			edits: []string{`name = "n2"`, `name = "n1"`},
			want:  []string{`vipd.toml:13: cluster.member[1].name: "n1" duplicates cluster.member[0]`},
		},
		{
			name:  "duplicate member address",
			edits: []string{`underlay_v6 = "2001:db8::12"`, `underlay_v6 = "2001:db8::11"`},
			want:  []string{`vipd.toml:15: cluster.member[1].underlay_v6: 2001:db8::11 is also the underlay address of cluster.member[0]`},
		},
		{
			name:  "node is not a member",
			edits: []string{`name = "n1"`, `name = "n9"`},
			want:  []string{`vipd.toml:2: node.name: "n9" is not a [[cluster.member]]`},
		},
		{
			name:  "bad address",
			edits: []string{`address = "198.51.100.20"`, `address = "10.0.0.300"`},
			want:  []string{`vipd.toml:29: vip[1].address: "10.0.0.300" is not an IP address`},
		},
		{
			name:  "vip given as a prefix",
			edits: []string{`address = "198.51.100.20"`, `address = "198.51.100.0/24"`},
			want:  []string{`vipd.toml:29: vip[1].address: "198.51.100.0/24" is a prefix, not a host address (/32 or /128)`},
		},
		{
			name:  "vip is loopback",
			edits: []string{`address = "198.51.100.20"`, `address = "127.0.0.5"`},
			want:  []string{`vipd.toml:29: vip[1].address: 127.0.0.5 is a loopback address, it cannot be a VIP`},
		},
		{
			name:  "port out of range",
			edits: []string{`"tcp/443"`, `"tcp/70000"`},
			want:  []string{`vipd.toml:30: vip[1].services[0]: "tcp/70000": port 70000 is out of range 1-65535`},
		},
		{
			name:  "bad protocol",
			edits: []string{`"tcp/443"`, `"sctp/443"`},
			want:  []string{`vipd.toml:30: vip[1].services[0]: "sctp/443": protocol "sctp" is not tcp or udp`},
		},
		{
			name:  "not proto/port",
			edits: []string{`"tcp/443"`, `"443"`},
			want:  []string{`vipd.toml:30: vip[1].services[0]: "443" is not protocol/port (like "tcp/80" or "udp/*")`},
		},
		{
			name:  "duplicate and covered services",
			edits: []string{`["tcp/80", "udp/*"]`, "[\n  \"tcp/80\",\n  \"udp/53\",\n  \"udp/*\",\n  \"tcp/80\",\n]"},
			want: []string{
				`vipd.toml:22: vip[0].services[1]: "udp/53" is already covered by "udp/*"`,
				`vipd.toml:24: vip[0].services[3]: "tcp/80" duplicates services[0]`,
			},
		},
		{
			name:  "no services",
			edits: []string{`services = ["tcp/443"]`, `services = []`},
			want:  []string{`vipd.toml:30: vip[1].services: at least one service (like "tcp/80" or "udp/*") is required`},
		},
		{
			name:  "ipv6 vip without ipv6 underlay",
			edits: []string{`underlay_v6 = "2001:db8::12"` + "\n", ``, `address = "198.51.100.20"`, `address = "2001:db8:100::20"`},
			want:  []string{`vipd.toml:28: vip[1].address: IPv6 VIP, but cluster.member[1] (n2) has no underlay_v6`},
		},
		{
			name:  "ipv6 vip without node ipv6 underlay",
			edits: []string{`underlay_v6 = "2001:db8::11"` + "\n", ``, `address = "198.51.100.20"`, `address = "2001:db8:100::20"`},
			want:  []string{`vipd.toml:28: vip[1].address: IPv6 VIP, but this node has no underlay_v6`},
		},
		{
			name:  "vip is an underlay address",
			edits: []string{`address = "198.51.100.20"`, `address = "192.0.2.12"`},
			want:  []string{`vipd.toml:29: vip[1].address: 192.0.2.12 is the underlay address of cluster.member[1] (n2)`},
		},
		{
			name:  "missing check",
			edits: []string{`check = { type = "none" }` + "\n", ``},
			want:  []string{`vipd.toml:27: vip[1].check: missing section [vip.check] (type = "none" serves without a check)`},
		},
		{
			name:  "attach mode",
			edits: []string{`interface = "eth0"`, `interface = "eth0"` + "\nattach = \"fast\""},
			want:  []string{`vipd.toml:43: dataplane.attach: "fast" is not one of native, generic, auto`},
		},
		{
			name:  "gue port out of range",
			edits: []string{`interface = "eth0"`, `interface = "eth0"` + "\ngue_port = 0"},
			want:  []string{`vipd.toml:43: dataplane.gue_port: 0 is out of range 1-65535`},
		},
		{
			name:  "type mismatch names the item",
			edits: []string{`interface = "eth0"`, `interface = "eth0"` + "\ngue_port = \"19523\""},
			want:  []string{`vipd.toml:43: dataplane.gue_port: incompatible types: TOML value has type string; destination has type integer`},
		},
		{
			name:  "type mismatch in an array of tables",
			edits: []string{`name = "n2"`, `name = 2`},
			want:  []string{`vipd.toml:13: cluster.member[1].name: incompatible types: TOML value has type int64; destination has type string`},
		},
		{
			name:  "bad duration",
			edits: []string{`withdraw_grace = "3s"`, `withdraw_grace = "3"`},
			want:  []string{`vipd.toml:45: timers.withdraw_grace: "3" is not a duration (like "1s" or "500ms")`},
		},
		{
			name:  "zero duration",
			edits: []string{`withdraw_grace = "3s"`, `withdraw_grace = "0s"`},
			want:  []string{`vipd.toml:45: timers.withdraw_grace: 0s must be positive`},
		},
		{
			name:  "poll timeout not shorter than interval",
			edits: []string{`seed = 7`, "seed = 7\npoll_interval = \"1s\"\npoll_timeout = \"1s\""},
			want:  []string{`vipd.toml:7: cluster.poll_timeout: 1s must be shorter than poll_interval 1s`},
		},
		{
			name:  "table grace shorter than peers take to notice",
			edits: []string{`withdraw_grace = "3s"`, "withdraw_grace = \"3s\"\ntable_grace = \"2s\""},
			want:  []string{`vipd.toml:46: timers.table_grace: 2s is shorter than the 3.5s peers take to notice a node leave (poll_interval x fall + poll_timeout)`},
		},
		{
			name:  "state url not http",
			edits: []string{`"http://192.0.2.12:9180/state"`, `"ftp://192.0.2.12/state"`},
			want:  []string{`vipd.toml:16: cluster.member[1].state_url: "ftp://192.0.2.12/state" is not an http(s) URL`},
		},
		{
			name:  "duplicate state url",
			edits: []string{`"http://192.0.2.12:9180/state"`, `"http://192.0.2.11:9180/state"`},
			want:  []string{`vipd.toml:16: cluster.member[1].state_url: "http://192.0.2.11:9180/state" is also the state_url of cluster.member[0]`},
		},
		{
			name:  "socket not absolute",
			edits: []string{`socket = "/run/vipd/vipd.sock"`, `socket = "vipd.sock"`},
			want:  []string{`vipd.toml:48: api.socket: "vipd.sock" is not an absolute path`},
		},
		{
			name:  "routing mode",
			edits: []string{`mode = "bgp"`, `mode = "ospf"`},
			want:  []string{`vipd.toml:34: routing.mode: "ospf" is not one of bgp, bird-ospf`},
		},
		{
			name:  "drain policy",
			edits: []string{"asn = 65100", "asn = 65100\ndrain = \"shutdown\""},
			want:  []string{`vipd.toml:37: routing.bgp.drain: "shutdown" is neither "withdraw" nor "deprefer"`},
		},
		{
			name:  "drain policy misspelt",
			edits: []string{"asn = 65100", "asn = 65100\ndrian = \"deprefer\""},
			want:  []string{`vipd.toml:37: routing.bgp.drian: unknown key (did you mean "drain"?)`},
		},
		{
			name: "bird deprefer without a drain metric",
			edits: []string{`mode = "bgp"`, `mode = "bird-ospf"`, "[routing.bgp]\nasn = 65100\n[[routing.bgp.neighbor]]\naddress = \"192.0.2.1\"\nasn = 65000\n",
				"[routing.bird]\nconfig_file = \"/etc/bird/bird.conf\"\ndrain = \"deprefer\"\n[[routing.bird.ospf]]\nversion = 2\n[[routing.bird.ospf.area]]\nid = \"0\"\n[[routing.bird.ospf.area.interface]]\nname = \"eth0\"\n",
				"[vip.bgp]\ncommunities = [\"65000:100\"]\n", ""},
			want: []string{`vipd.toml:33: routing.bird.drain_metric: is required with drain = "deprefer"`},
		},
		{
			name:  "section of the other mode",
			edits: []string{`[dataplane]`, "[routing.bird]\nconfig_file = \"/etc/bird/bird.conf\"\n\n[dataplane]"},
			want:  []string{`vipd.toml:41: routing.bird: set, but routing.mode is "bgp"`},
		},
		{
			name:  "per-vip attributes of the other mode",
			edits: []string{`[vip.bgp]`, "[vip.ospf]\nmetric = 20\n[vip.bgp]"},
			want:  []string{`vipd.toml:24: vip[0].ospf: set, but routing.mode is "bgp"`},
		},
		{
			name:  "client prefix with host bits",
			edits: []string{`underlay_v4 = "192.0.2.11"` + "\n[cluster]", `underlay_v4 = "192.0.2.11"` + "\nclient_prefixes = [\"10.1.2.3/8\"]\n[cluster]"},
			want:  []string{`vipd.toml:4: node.client_prefixes[0]: "10.1.2.3/8" has host bits set (did you mean 10.0.0.0/8?)`},
		},
		{
			name:  "node underlay differs from its member entry",
			edits: []string{`underlay_v4 = "192.0.2.11"` + "\n[cluster]", `underlay_v4 = "192.0.2.99"` + "\n[cluster]"},
			want:  []string{`vipd.toml:3: node.underlay_v4: 192.0.2.99 differs from cluster.member[0].underlay_v4 (192.0.2.11), this node's entry`},
		},
		{
			name:  "a table written as an array of tables",
			edits: []string{"[node]", "[[node]]"},
			want:  []string{`vipd.toml:1: node: must be a table ([...]), not an array of tables ([[...]])`},
		},
		{
			name:  "type error in the first of two array elements names the first",
			edits: []string{`address = "192.0.2.1"`, "address = \"192.0.2.300\"\nasn = 65000\n[[routing.bgp.neighbor]]\naddress = \"192.0.2.2\""},
			want:  []string{`vipd.toml:38: routing.bgp.neighbor[0].address: ParseAddr("192.0.2.300"): IPv4 field has value >255`},
		},
		{
			name:  "type error in a per-vip routing table",
			edits: []string{"[vip.bgp]", "[vip.bgp]\nmed = -1"},
			want:  []string{`vipd.toml:25: vip[0].bgp.med: -1 is out of range for uint32`},
		},
		{
			name: "several mistakes are reported at once, in file order",
			edits: []string{
				`address = "198.51.100.20"`, `address = "10.0.0.300"`,
				`socket = "/run/vipd/vipd.sock"`, `socket = "vipd.sock"`,
				`seed = 7`, `seed = -1`,
			},
			want: []string{
				`vipd.toml:5: cluster.seed: -1 must not be negative`,
				`vipd.toml:29: vip[1].address: "10.0.0.300" is not an IP address`,
				`vipd.toml:48: api.socket: "vipd.sock" is not an absolute path`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := Parse("vipd.toml", []byte(edit(t, tt.edits...)))
			if err == nil {
				t.Fatalf("Parse succeeded (%+v), want errors", cfg)
			}
			if cfg != nil {
				t.Errorf("Parse returned a config with an error")
			}
			got := strings.Split(err.Error(), "\n")
			if *dumpGot {
				t.Logf("GOT %s %q", tt.name, got)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			for _, e := range unjoin(err) {
				var ce *Error
				if !errors.As(e, &ce) {
					t.Errorf("%v is not a *config.Error", e)
				}
			}
		})
	}
}

var dumpGot = flag.Bool("dump", false, "log every case's errors")

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// TestUnknownKeySentinel checks errors.Is on the sentinels.
func TestUnknownKeySentinel(t *testing.T) {
	_, err := Parse("vipd.toml", []byte(edit(t, "[timers]", "[timer]")))
	if !errors.Is(err, ErrUnknownKey) {
		t.Errorf("errors.Is(%v, ErrUnknownKey) = false", err)
	}
	_, err = Parse("vipd.toml", []byte(edit(t, `interface = "eth0"`, ``)))
	if !errors.Is(err, ErrMissing) {
		t.Errorf("errors.Is(%v, ErrMissing) = false", err)
	}
}

// TestLoadMissingFile checks that a read error is wrapped, not mapped to a
// line.
func TestLoadMissingFile(t *testing.T) {
	_, err := Load("/nonexistent/vipd.toml")
	if err == nil || !strings.HasPrefix(err.Error(), "reading config: ") {
		t.Errorf("Load(missing) = %v, want a reading config error", err)
	}
}

// TestRoutingErrs checks that errors of a routing section's Validate get
// absolute paths, and per-VIP ones (by path "vip(PREFIX)" or by message
// "VIP PREFIX: ...") move to the [[vip]] they belong to.
func TestRoutingErrs(t *testing.T) {
	p := &parser{vipIdx: []int{0, 2}}
	cfg := &Config{VIPs: []VIP{{Addr: netip.MustParseAddr("198.51.100.10")}, {Addr: netip.MustParseAddr("2001:db8::10")}}}
	err := p.routingErrs(cfg, "routing.bgp", "bgp", errors.Join(
		fielderr.New("vip(2001:db8::10/128).med", "too big"),
		fielderr.New("vip(2001:db8::99/128)", "unknown"),
		fielderr.New("asn", "bad"),
		fmt.Errorf("VIP 198.51.100.10/32: %w", fielderr.New("metric", "must be at most 16777215")),
		fmt.Errorf("VIP 198.51.100.10/32: not a valid masked prefix"),
		fmt.Errorf("wrapping %w", fielderr.New("x", "inner")),
	))
	var got []string
	for _, e := range fielderr.All(err) {
		got = append(got, e.Error())
	}
	want := []string{
		"vip[2].bgp.med: too big",
		"routing.bgp.vip(2001:db8::99/128): unknown",
		"routing.bgp.asn: bad",
		"vip[0].bgp.metric: must be at most 16777215",
		"vip[0].bgp: not a valid masked prefix",
		"routing.bgp: wrapping x: inner",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("routingErrs (-want +got):\n%s", diff)
	}
}

func TestAdvertisedVIPs(t *testing.T) {
	c, err := Parse("vipd.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	want := []routing.VIP{
		{Prefix: netip.MustParsePrefix("198.51.100.10/32"), Attrs: bgp.RouteAttrs{Communities: []string{"65000:100"}}},
		{Prefix: netip.MustParsePrefix("198.51.100.20/32"), Attrs: bgp.RouteAttrs{}},
	}
	if d := cmp.Diff(want, c.AdvertisedVIPs(), cmpAddrs...); d != "" {
		t.Errorf("AdvertisedVIPs (-want +got):\n%s", d)
	}
	if c.Routing.Drain != vip.DrainWithdraw {
		t.Errorf("default drain policy %s, want withdraw", c.Routing.Drain)
	}
	c, err = Parse("vipd.toml", []byte(edit(t, "asn = 65100", "asn = 65100\ndrain = \"deprefer\"")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Routing.Drain != vip.DrainDeprefer {
		t.Errorf("drain policy %s, want deprefer", c.Routing.Drain)
	}
}
