package config

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/cluster/etcd"
)

// The defaults here are the cluster packages' own.
func TestClusterStateDefaults(t *testing.T) {
	if DefaultMaxClockSkew != cluster.DefaultMaxSkew || DefaultEtcdPrefix != etcd.DefaultPrefix ||
		DefaultEtcdLeaseTTL != etcd.DefaultLeaseTTL || DefaultEtcdDial != etcd.DefaultDialTimeout ||
		DefaultEtcdRequest != etcd.DefaultRequestTimeout || DefaultProbeInterval != cluster.DefaultProbeInterval ||
		DefaultProbeFailures != cluster.DefaultProbeFailures || DefaultProbeSuccesses != cluster.DefaultProbeSuccesses {
		t.Error("config's cluster defaults drifted from package cluster's or cluster/etcd's")
	}
}

const etcdSection = `key_file = "/etc/vipd/cluster.key"
backend = "etcd"
[cluster.etcd]
endpoints = ["http://192.0.2.21:2379", "https://[2001:db8::21]:2379"]
lease_ttl = "4s"
username = "vipd"
password = "pw"
`

func TestClusterStateParse(t *testing.T) {
	c, err := Parse("vipd.toml", []byte(edit(t, `key_file = "/etc/vipd/cluster.key"`+"\n", etcdSection,
		"[timers]", "[timers]\ntable_grace = \"5s\"")))
	if err != nil {
		t.Fatal(err)
	}
	want := &Etcd{Endpoints: []string{"http://192.0.2.21:2379", "https://[2001:db8::21]:2379"}, Prefix: DefaultEtcdPrefix,
		LeaseTTL: 4 * time.Second, DialTimeout: DefaultEtcdDial, RequestTimeout: DefaultEtcdRequest, Username: "vipd", Password: "pw"}
	if d := cmp.Diff(want, c.Cluster.Etcd); d != "" || c.Cluster.Backend != BackendEtcd {
		t.Errorf("etcd section (-want +got):\n%s\nbackend %q", d, c.Cluster.Backend)
	}
	if !c.Cluster.Etcd.TLS() {
		t.Error("an https endpoint is TLS")
	}
	// A one-member cluster needs no key: nothing to trust.
	one := edit(t, `key_file = "/etc/vipd/cluster.key"`+"\n", "",
		"[[cluster.member]]\nname = \"n2\"", "[[vip.nothing]]\nname = \"n2\"")
	one = strings.Replace(one, "[[vip.nothing]]\nname = \"n2\"\nunderlay_v4 = \"192.0.2.12\"\nunderlay_v6 = \"2001:db8::12\"\nstate_url = \"http://192.0.2.12:9180/state\"\n", "", 1)
	if _, err := Parse("vipd.toml", []byte(one)); err != nil {
		t.Errorf("one member without key_file: %v", err)
	}
	if c, err := Parse("vipd.toml", []byte(edit(t, `key_file = "/etc/vipd/cluster.key"`, `allow_unsigned = true`))); err != nil || c.Cluster.KeyFile != "" || !c.Cluster.AllowUnsigned {
		t.Errorf("allow_unsigned without key_file: %v", err)
	}
}

func TestClusterStateErrors(t *testing.T) {
	key := `key_file = "/etc/vipd/cluster.key"`
	tests := []struct {
		name  string
		edits []string
		want  []string
	}{
		{"no key", []string{key, ""}, []string{"vipd.toml:4: cluster.key_file: required: the cluster key signs every node-state document (vipctl cluster keygen makes one); allow_unsigned = true runs without one during a rollout"}},
		{"relative key", []string{key, `key_file = "cluster.key"`}, []string{`vipd.toml:6: cluster.key_file: "cluster.key" is not an absolute path`}},
		{"backend", []string{key, key + "\nbackend = \"zk\""}, []string{`vipd.toml:7: cluster.backend: "zk": want "poll" or "etcd"`}},
		{"skew", []string{key, key + "\nmax_clock_skew = \"10m\""}, []string{`vipd.toml:7: cluster.max_clock_skew: 10m0s is out of range 1s-5m0s`}},
		{"restart grace", []string{key, key + "\nrestart_grace = \"20m\""}, []string{`vipd.toml:7: cluster.restart_grace: 20m0s is out of range 1s-10m0s`}},
		{"restart grace word", []string{key, key + "\nrestart_grace = \"soon\""}, []string{`vipd.toml:7: cluster.restart_grace: "soon" is not a duration (like "1s" or "500ms")`}},
		{"etcd without section", []string{key, key + "\nbackend = \"etcd\""}, []string{`vipd.toml:7: cluster.backend: "etcd" needs a [cluster.etcd] section with its endpoints`}},
		{"etcd unsigned", []string{key, "allow_unsigned = true\nbackend = \"etcd\"\n[cluster.etcd]\nendpoints = [\"http://192.0.2.21:2379\"]"},
			[]string{`vipd.toml:4: cluster.key_file: required with backend "etcd" (documents in etcd are always signed)`}},
		{"etcd keys", []string{key, key + "\nbackend = \"etcd\"\n[cluster.etcd]\nendpoints = [\"192.0.2.21:2379\"]\nprefix = \"vipd\"\nlease_ttl = \"1500ms\"\ncert_file = \"/etc/c.pem\"\npassword = \"x\""},
			[]string{
				`vipd.toml:9: cluster.etcd.endpoints[0]: "192.0.2.21:2379" is not an etcd client URL (like "https://192.0.2.21:2379")`,
				`vipd.toml:10: cluster.etcd.prefix: "vipd" must start and end with "/" (like "/vipd/nodes/")`,
				`vipd.toml:11: cluster.etcd.lease_ttl: 1.5s: want whole seconds, at least 2s`,
				`vipd.toml:12: cluster.etcd.cert_file: cert_file and key_file go together (the client certificate and its key)`,
				`vipd.toml:13: cluster.etcd.password: set without a username`,
			}},
		{"etcd table grace", []string{key, etcdSection, "[timers]", "[timers]\ntable_grace = \"4s\""},
			[]string{`vipd.toml:52: timers.table_grace: 4s is shorter than the 5s peers take to notice a node leave (cluster.etcd.lease_ttl + 1s)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("vipd.toml", []byte(edit(t, tt.edits...)))
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			if d := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); d != "" {
				t.Errorf("errors (-want +got):\n%s", d)
			}
		})
	}
}

func TestDiffClusterState(t *testing.T) {
	old, err := Parse("vipd.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	key := `key_file = "/etc/vipd/cluster.key"`
	for _, tt := range []struct {
		edits   []string
		live    []string
		restart bool
	}{
		{[]string{key, `key_file = "/etc/vipd/new.key"`}, []string{"cluster.key_file"}, false},
		{[]string{key, key + "\nallow_unsigned = true\nmax_clock_skew = \"5s\""}, []string{"cluster.allow_unsigned", "cluster.max_clock_skew"}, false},
		{[]string{key, key + "\nrestart_grace = \"45s\""}, []string{"cluster.restart_grace"}, false},
		{[]string{key + "\n", etcdSection, "[timers]", "[timers]\ntable_grace = \"5s\""}, []string{"cluster.backend", "cluster.etcd", "timers"}, true},
		{[]string{"seed = 7", "seed = 7\nfall = 5"}, []string{"cluster.polling"}, true},
	} {
		c, err := Parse("vipd.toml", []byte(edit(t, tt.edits...)))
		if err != nil {
			t.Fatal(err)
		}
		ch := c.Diff(old)
		if d := cmp.Diff(tt.live, ch.Live); d != "" || len(ch.Restart) > 0 || ch.SourceRestart() != tt.restart {
			t.Errorf("%q: live (-want +got):\n%s restart %v, source restart %v", tt.edits, d, ch.Restart, ch.SourceRestart())
		}
	}
}

// TestProbeKeys: the data-path probe keys, their defaults, "off" two ways,
// errors with file and line, and a change applied live.
func TestProbeKeys(t *testing.T) {
	key := `key_file = "/etc/vipd/cluster.key"`
	c, err := Parse("vipd.toml", []byte(edit(t, key, key+"\nprobe_interval = \"2s\"\nprobe_timeout = \"1s\"\nprobe_failures = 5\nprobe_successes = 1")))
	if err != nil {
		t.Fatal(err)
	}
	if c.Cluster.ProbeInterval != 2*time.Second || c.Cluster.ProbeTimeout != time.Second || c.Cluster.ProbeFailures != 5 || c.Cluster.ProbeSuccesses != 1 {
		t.Errorf("probe keys %+v", c.Cluster)
	}
	for _, off := range []string{"probe = false", `probe_interval = "0s"`} {
		c, err := Parse("vipd.toml", []byte(edit(t, key, key+"\n"+off)))
		if err != nil || c.Cluster.ProbeInterval != 0 {
			t.Errorf("%s: interval %v, %v; want 0 (off)", off, c.Cluster.ProbeInterval, err)
		}
	}
	for _, tt := range []struct{ edit, want string }{
		{`probe_interval = "10ms"`, `vipd.toml:7: cluster.probe_interval: 10ms is out of range 100ms-1m0s (or 0s: off)`},
		{`probe_interval = "1s"` + "\n" + `probe_timeout = "1s"`, `vipd.toml:8: cluster.probe_timeout: 1s must be shorter than probe_interval 1s`},
		{`probe_failures = 0`, `vipd.toml:7: cluster.probe_failures: 0 is out of range 1-1000`},
		{`probe_interval = "soon"`, `vipd.toml:7: cluster.probe_interval: "soon" is not a duration (like "1s" or "500ms")`},
	} {
		_, err := Parse("vipd.toml", []byte(edit(t, key, key+"\n"+tt.edit)))
		if err == nil || err.Error() != tt.want {
			t.Errorf("%s: %v, want %s", tt.edit, err, tt.want)
		}
	}
	old, err := Parse("vipd.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	ch := c.Diff(old)
	if !slices.Contains(ch.Live, "cluster.probe") || len(ch.Restart) != 0 {
		t.Errorf("diff %+v, want cluster.probe live", ch)
	}
}
