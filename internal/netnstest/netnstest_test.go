package netnstest

import (
	"strings"
	"testing"
)

func TestNamespaceAndVeth(t *testing.T) {
	a, b := New(t, "a"), New(t, "b")
	an, bn := Veth(t, a, b)
	a.MustRun(t, "ip", "addr", "add", "192.0.2.1/24", "dev", an)
	b.MustRun(t, "ip", "addr", "add", "192.0.2.2/24", "dev", bn)
	out := a.MustRun(t, "ip", "-br", "addr")
	if !strings.Contains(out, "192.0.2.1") || strings.Contains(out, "192.0.2.2") {
		t.Fatalf("namespace a addresses:\n%s", out)
	}
}
