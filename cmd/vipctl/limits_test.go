package main

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vipd/vipd/dataplane"
)

// TestConfigCheckLimits: a config with more VIPs than the dataplane holds
// is rejected by `vipctl config check`, naming the limit, the file, the
// line and the first VIP over it.
func TestConfigCheckLimits(t *testing.T) {
	data, err := os.ReadFile("../../examples/bgp-n1.toml")
	if err != nil {
		t.Fatal(err)
	}
	have := strings.Count(string(data), "\n[[vip]]")
	var b strings.Builder
	b.Write(data)
	for i := range dataplane.MaxVIPs + 1 - have {
		a := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
		fmt.Fprintf(&b, "\n[[vip]]\naddress = %q\nservices = [\"tcp/80\"]\ncheck = { type = \"none\" }\n", a)
	}
	file := filepath.Join(t.TempDir(), "big.toml")
	if err := os.WriteFile(file, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	line := strings.Count(b.String()[:strings.LastIndex(b.String(), "[[vip]]")], "\n") + 1
	_, stderr, err := vipctl(t, "config", "check", file)
	if err == nil {
		t.Fatal("config check of a config over MaxVIPs succeeded")
	}
	want := fmt.Sprintf("%s:%d: vip[%d]: %d VIPs: over the dataplane's limits (MaxVIPs = %d)", file, line, dataplane.MaxVIPs, dataplane.MaxVIPs+1, dataplane.MaxVIPs)
	if !strings.Contains(stderr, want) {
		t.Errorf("stderr does not say %q:\n%s", want, stderr)
	}
}
