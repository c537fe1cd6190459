package config

import (
	"github.com/BurntSushi/toml"

	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/bird"
)

// The raw schema: what vipd.toml may contain, as TOML decodes it. Values
// that need parsing (addresses, durations, URLs) are strings here so that
// the validator can name the item and keep going; sections are Primitives
// decoded one at a time, so one section's type error does not hide the
// others' mistakes. A nil *toml.Primitive is an absent section.

type rawFile struct {
	Node      *toml.Primitive  `toml:"node"`
	Cluster   *toml.Primitive  `toml:"cluster"`
	VIPs      []toml.Primitive `toml:"vip"`
	Routing   *toml.Primitive  `toml:"routing"`
	Dataplane *toml.Primitive  `toml:"dataplane"`
	Timers    *toml.Primitive  `toml:"timers"`
	API       *toml.Primitive  `toml:"api"`
}

type rawNode struct {
	Name           string    `toml:"name"`
	RouterID       string    `toml:"router_id"`
	UnderlayV4     string    `toml:"underlay_v4"`
	UnderlayV6     string    `toml:"underlay_v6"`
	AllowIPForward bool      `toml:"allow_ip_forward"`
	ClientPrefixes *[]string `toml:"client_prefixes"`
	StateDir       string    `toml:"state_dir"`
	StartDrained   bool      `toml:"start_drained"`
}

type rawCluster struct {
	Seed           *int64           `toml:"seed"`
	PollInterval   string           `toml:"poll_interval"`
	PollTimeout    string           `toml:"poll_timeout"`
	Rise           *int64           `toml:"rise"`
	Fall           *int64           `toml:"fall"`
	Backend        string           `toml:"backend"`
	KeyFile        string           `toml:"key_file"`
	AllowUnsigned  bool             `toml:"allow_unsigned"`
	MaxClockSkew   string           `toml:"max_clock_skew"`
	SlowStart      string           `toml:"slow_start"`
	RestartGrace   string           `toml:"restart_grace"`
	Probe          *bool            `toml:"probe"`
	ProbeInterval  string           `toml:"probe_interval"`
	ProbeTimeout   string           `toml:"probe_timeout"`
	ProbeFailures  *int64           `toml:"probe_failures"`
	ProbeSuccesses *int64           `toml:"probe_successes"`
	Etcd           *toml.Primitive  `toml:"etcd"`
	Members        []toml.Primitive `toml:"member"`
}

type rawEtcd struct {
	Endpoints      []string `toml:"endpoints"`
	Prefix         string   `toml:"prefix"`
	LeaseTTL       string   `toml:"lease_ttl"`
	DialTimeout    string   `toml:"dial_timeout"`
	RequestTimeout string   `toml:"request_timeout"`
	CAFile         string   `toml:"ca_file"`
	CertFile       string   `toml:"cert_file"`
	KeyFile        string   `toml:"key_file"`
	Username       string   `toml:"username"`
	Password       string   `toml:"password"`
}

type rawMember struct {
	Name       string `toml:"name"`
	UnderlayV4 string `toml:"underlay_v4"`
	UnderlayV6 string `toml:"underlay_v6"`
	StateURL   string `toml:"state_url"`
	Weight     *int64 `toml:"weight"`
}

type rawVIP struct {
	Name     string          `toml:"name"`
	Address  string          `toml:"address"`
	Services []string        `toml:"services"`
	Check    *toml.Primitive `toml:"check"`
	BGP      *toml.Primitive `toml:"bgp"`
	OSPF     *toml.Primitive `toml:"ospf"`
}

type rawRouting struct {
	Mode string          `toml:"mode"`
	BGP  *toml.Primitive `toml:"bgp"`
	Bird *toml.Primitive `toml:"bird"`
}

// rawBGP and rawBird are the mode sections: the advertiser's own keys, and
// the drain policy, which the state machine applies.
type rawBGP struct {
	bgp.Config
	Drain string `toml:"drain"`
}

type rawBird struct {
	bird.Config
	Drain string `toml:"drain"`
}

type rawDataplane struct {
	Interface string `toml:"interface"`
	Attach    string `toml:"attach"`
	GUEPort   *int64 `toml:"gue_port"`
	PinPath   string `toml:"pin_path"`
	SwitchMTU int64  `toml:"switch_mtu"`
	// The trust boundary's keys (limits.go).
	AllowedSources []string `toml:"allowed_sources"`
	MaxHops        *int64   `toml:"max_hops"`
}

type rawTimers struct {
	WithdrawGrace  string `toml:"withdraw_grace"`
	TableGrace     string `toml:"table_grace"`
	DrainTimeout   string `toml:"drain_timeout"`
	RemoveTimeout  string `toml:"remove_timeout"`
	VerifyInterval string `toml:"verify_interval"`
	VerifySettle   string `toml:"verify_settle"`
}

type rawAPI struct {
	Socket        string `toml:"socket"`
	StateListen   string `toml:"state_listen"`
	MetricsListen string `toml:"metrics_listen"`
}

type tomlPrim = toml.Primitive
