package config

import (
	"net/netip"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/bird"
)

// TestEffectiveRoundTrip: what vipctl config show prints is a config vipd
// reads back to the same configuration, for every example (both routing
// modes, the reference with every key), and printing it again changes
// nothing. A Config field without a key to write it under fails here.
func TestEffectiveRoundTrip(t *testing.T) {
	for _, f := range exampleFiles(t) {
		t.Run(filepath.Base(f), func(t *testing.T) {
			cfg, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			out, err := cfg.Effective(false)
			if err != nil {
				t.Fatal(err)
			}
			back, err := Parse(f, out)
			if err != nil {
				t.Fatalf("the effective config does not parse:\n%v\n%s", err, out)
			}
			opts := cmp.Options{
				cmp.Comparer(func(a, b netip.Addr) bool { return a == b }),
				cmp.Comparer(func(a, b netip.Prefix) bool { return a == b }),
				cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
				cmpopts.EquateEmpty(),
				// The routing sections' VIP lists are derived from
				// [[vip]] (compared above), not written.
				cmpopts.IgnoreFields(bgp.Config{}, "VIPs"),
				cmpopts.IgnoreFields(bird.Config{}, "VIPs"),
			}
			if d := cmp.Diff(cfg.withDefaults(), back.withDefaults(), opts); d != "" {
				t.Errorf("read back (-want +got):\n%s", d)
			}
			again, err := back.Effective(false)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(string(out), string(again)); d != "" {
				t.Errorf("printed twice (-first +second):\n%s", d)
			}
		})
	}
}

func TestEffectiveDefaultsAndRedaction(t *testing.T) {
	text := strings.Replace(string(readFile(t, "../../examples/bgp-n1.toml")),
		"[[routing.bgp.neighbor]]\n", "[[routing.bgp.neighbor]]\npassword = \"s3cret\"\n", 1)
	cfg, err := Parse("/etc/vipd/vipd.toml", []byte(text))
	if err != nil {
		t.Fatal(err)
	}
	out, err := cfg.Effective(true)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{
		"# /etc/vipd/vipd.toml as vipd runs it",
		"password = \"<redacted>\"",
		"port = 179",             // routing/bgp's default, written out
		"poll_interval = \"1s\"", // config's own default
		"interval = \"2s\"",      // health's check default
		"drain = \"withdraw\"",
		"client_prefixes = [",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("effective config lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "s3cret") {
		t.Error("the password is shown")
	}
	if strings.Contains(s, "[vip.ospf]") {
		t.Error("bgp mode shows OSPF route attributes")
	}
}
