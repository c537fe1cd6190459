package netlink

import (
	"context"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	nl "github.com/vishvananda/netlink"

	"github.com/vipd/vipd/internal/netnstest"
)

var (
	vip4 = netip.MustParseAddr("198.51.100.77")
	vip6 = netip.MustParseAddr("2001:db8:77::1")

	addrEq = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
)

func newBinder(t *testing.T) (*Binder, *netnstest.NS) {
	t.Helper()
	ns := netnstest.New(t, "bind")
	b, err := New(hclog.NewNullLogger(), Options{NetNS: ns.Handle()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b, ns
}

func bound(t *testing.T, b *Binder) []netip.Addr {
	t.Helper()
	got, err := b.Bound(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// TestBindUnbind walks a VIP pair through bind, rebind, unbind, unbind again
// and checks Bound and `ip addr` at every step.
func TestBindUnbind(t *testing.T) {
	b, ns := newBinder(t)
	ctx := context.Background()

	if diff := cmp.Diff([]netip.Addr(nil), bound(t, b), addrEq); diff != "" {
		t.Errorf("Bound() on a fresh namespace (-want +got):\n%s", diff)
	}
	for round := 0; round < 2; round++ { // the second round proves idempotence
		for _, a := range []netip.Addr{vip4, vip6} {
			if err := b.Bind(ctx, a); err != nil {
				t.Fatalf("round %d: Bind(%s): %v", round, a, err)
			}
		}
	}
	want := []netip.Addr{vip4, vip6}
	if diff := cmp.Diff(want, bound(t, b), addrEq); diff != "" {
		t.Errorf("Bound() after bind (-want +got):\n%s", diff)
	}

	out4 := ns.MustRun(t, "ip", "-4", "addr", "show", "dev", "lo")
	if !strings.Contains(out4, "inet 198.51.100.77/32") {
		t.Errorf("ip -4 addr show dev lo lacks the VIP:\n%s", out4)
	}
	out6 := ns.MustRun(t, "ip", "-6", "addr", "show", "dev", "lo")
	if !strings.Contains(out6, "inet6 2001:db8:77::1/128") {
		t.Errorf("ip -6 addr show dev lo lacks the VIP:\n%s", out6)
	}
	if strings.Contains(out6, "tentative") || !strings.Contains(out6, "nodad") {
		t.Errorf("IPv6 VIP should be nodad and never tentative:\n%s", out6)
	}

	for round := 0; round < 2; round++ {
		for _, a := range []netip.Addr{vip4, vip6} {
			if err := b.Unbind(ctx, a); err != nil {
				t.Fatalf("round %d: Unbind(%s): %v", round, a, err)
			}
		}
	}
	if got := bound(t, b); len(got) != 0 {
		t.Errorf("Bound() after unbind = %v, want none", got)
	}
	if out := ns.MustRun(t, "ip", "addr", "show", "dev", "lo"); strings.Contains(out, "198.51.100.77") || strings.Contains(out, "2001:db8:77::1") {
		t.Errorf("VIP still on lo after unbind:\n%s", out)
	}
}

// TestBoundIgnoresLoopbackAndPrefixes checks that Bound reports only host
// addresses that are not the loopback's own.
func TestBoundIgnoresLoopbackAndPrefixes(t *testing.T) {
	b, ns := newBinder(t)
	ns.MustRun(t, "ip", "addr", "add", "127.0.0.2/8", "dev", "lo")
	ns.MustRun(t, "ip", "addr", "add", "203.0.113.0/24", "dev", "lo")
	if err := b.Bind(context.Background(), vip4); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Addr{vip4}, bound(t, b), addrEq); diff != "" {
		t.Errorf("Bound() (-want +got):\n%s", diff)
	}
}

// TestNeverTouchesHost binds in a private namespace and checks that the
// test process's own namespace (the host in CI) did not get the addresses.
func TestNeverTouchesHost(t *testing.T) {
	b, _ := newBinder(t)
	ctx := context.Background()
	for _, a := range []netip.Addr{vip4, vip6} {
		if err := b.Bind(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	lo, err := nl.LinkByName("lo")
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := nl.AddrList(lo, nl.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		if a.IP.String() == vip4.String() || a.IP.String() == vip6.String() {
			t.Errorf("host lo got %s", a.IP)
		}
	}
}

// TestErrorsNameAddressAndLink checks that a failing bind names both.
func TestErrorsNameAddressAndLink(t *testing.T) {
	b, ns := newBinder(t)
	err := b.Bind(context.Background(), netip.Addr{})
	if err == nil || !strings.Contains(err.Error(), "invalid") || !strings.Contains(err.Error(), "lo") {
		t.Errorf("Bind(invalid) = %v, want an error naming the address and lo", err)
	}
	if _, err := New(hclog.NewNullLogger(), Options{Link: "nosuchlink0", NetNS: ns.Handle()}); err == nil {
		t.Error("New with a missing link succeeded")
	}
}

// TestNoFDLeak binds and unbinds many times and checks the process's fd
// count stays flat (one handle, reused).
func TestNoFDLeak(t *testing.T) {
	b, _ := newBinder(t)
	ctx := context.Background()
	before := countFDs(t)
	for i := 0; i < 200; i++ {
		if err := b.Bind(ctx, vip4); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Bound(ctx); err != nil {
			t.Fatal(err)
		}
		if err := b.Unbind(ctx, vip4); err != nil {
			t.Fatal(err)
		}
	}
	if after := countFDs(t); after > before+2 {
		t.Errorf("fds grew from %d to %d over 200 bind/unbind cycles", before, after)
	}
}

func countFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}
