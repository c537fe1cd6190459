package config

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestWeightParse(t *testing.T) {
	c, err := Parse("vipd.toml", []byte(edit(t, "name = \"n2\"", "name = \"n2\"\nweight = 250", "seed = 7", "seed = 7\nslow_start = \"2m\"")))
	if err != nil {
		t.Fatal(err)
	}
	if w := []int{c.Cluster.Members[0].Weight, c.Cluster.Members[1].Weight}; w[0] != DefaultWeight || w[1] != 250 {
		t.Errorf("weights %v, want [%d 250]", w, DefaultWeight)
	}
	if c.Cluster.SlowStart != 2*time.Minute {
		t.Errorf("slow_start %s, want 2m", c.Cluster.SlowStart)
	}
	if c, err := Parse("vipd.toml", []byte(edit(t, "seed = 7", "seed = 7\nslow_start = \"0s\""))); err != nil || c.Cluster.SlowStart != 0 {
		t.Errorf("slow_start 0s: %v, %s", err, c.Cluster.SlowStart)
	}
	// The effective config shows both.
	out, err := c.Effective(false)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"slow_start = \"2m0s\"", "weight = 250", "weight = 100"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("effective config lacks %q:\n%s", want, out)
		}
	}
}

func TestWeightErrors(t *testing.T) {
	for _, tt := range []struct {
		name  string
		edits []string
		want  []string
	}{
		{"zero", []string{"name = \"n2\"", "name = \"n2\"\nweight = 0"},
			[]string{"vipd.toml:14: cluster.member[1].weight: 0 is out of range 1-10000 (a node that should take no new flows is drained: vipctl drain)"}},
		{"too big", []string{"name = \"n1\"\nunderlay_v4 = \"192.0.2.11\"\nunderlay_v6 = \"2001:db8::11\"\nstate", "name = \"n1\"\nweight = 10001\nunderlay_v4 = \"192.0.2.11\"\nunderlay_v6 = \"2001:db8::11\"\nstate"},
			[]string{"vipd.toml:9: cluster.member[0].weight: 10001 is out of range 1-10000 (a node that should take no new flows is drained: vipctl drain)"}},
		{"type", []string{"name = \"n2\"", "name = \"n2\"\nweight = \"heavy\""}, nil},
		{"slow start", []string{"seed = 7", "seed = 7\nslow_start = \"2h\""}, []string{"vipd.toml:6: cluster.slow_start: 2h0m0s is out of range 1s-1h0m0s (or 0s: off)"}},
		{"slow start negative", []string{"seed = 7", "seed = 7\nslow_start = \"-1s\""}, []string{"vipd.toml:6: cluster.slow_start: -1s is out of range 1s-1h0m0s (or 0s: off)"}},
		{"slow start word", []string{"seed = 7", "seed = 7\nslow_start = \"soon\""}, []string{`vipd.toml:6: cluster.slow_start: "soon" is not a duration (like "1m" or "30s")`}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Parse("vipd.toml", []byte(edit(t, tt.edits...)))
			if err == nil {
				t.Fatal("Parse succeeded, want errors")
			}
			if tt.want == nil {
				return // a TOML type error: its wording is the decoder's
			}
			if d := cmp.Diff(tt.want, strings.Split(err.Error(), "\n")); d != "" {
				t.Errorf("errors (-want +got):\n%s", d)
			}
		})
	}
}

// TestDiffWeight: a weight or slow start change applies live and does not
// restart the source of member states.
func TestDiffWeight(t *testing.T) {
	old, err := Parse("vipd.toml", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		edits []string
		live  []string
	}{
		{[]string{"name = \"n2\"", "name = \"n2\"\nweight = 300"}, []string{"cluster.weight"}},
		{[]string{"name = \"n2\"", "name = \"n2\"\nweight = 100"}, nil},
		{[]string{"seed = 7", "seed = 7\nslow_start = \"1m\""}, []string{"cluster.slow_start"}},
	} {
		c, err := Parse("vipd.toml", []byte(edit(t, tt.edits...)))
		if err != nil {
			t.Fatal(err)
		}
		ch := c.Diff(old)
		if d := cmp.Diff(tt.live, ch.Live); d != "" || len(ch.Restart) > 0 || ch.SourceRestart() {
			t.Errorf("%q: live (-want +got):\n%s restart %v, source restart %v", tt.edits, d, ch.Restart, ch.SourceRestart())
		}
	}
}
