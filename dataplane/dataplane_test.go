//go:build linux

package dataplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	"github.com/vipd/vipd/internal/netnstest"
	"github.com/vipd/vipd/vip"
)

// dpRig is one namespace with a veth whose end ifname carries the
// program, and a pin directory removed in cleanup.
type dpRig struct {
	ns, peer *netnstest.NS
	ifname   string
	pinPath  string
	// log, if set, is the Dataplane's logger (else a null one).
	log hclog.Logger
}

func newDPRig(t testing.TB) *dpRig {
	t.Helper()
	ns, peer := netnstest.New(t, "dp"), netnstest.New(t, "pe")
	an, _ := netnstest.Veth(t, ns, peer)
	return &dpRig{ns: ns, peer: peer, ifname: an, pinPath: filepath.Join(netnstest.BPFFS(t), "vipd")}
}

func (r *dpRig) options() Options {
	return Options{
		Interface: r.ifname,
		Attach:    AttachNative,
		PinPath:   r.pinPath,
		Local4:    netip.MustParseAddr("10.0.0.1"),
		Seed:      42,
	}
}

func (r *dpRig) open(t testing.TB, opts Options) *Dataplane {
	t.Helper()
	var d *Dataplane
	err := r.ns.Do(func() (err error) {
		log := r.log
		if log == nil {
			log = hclog.NewNullLogger()
		}
		d, err = Open(log, opts)
		return err
	})
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}

// xdpMode reads the attach mode of the interface from `ip link`.
func (r *dpRig) xdpMode(t *testing.T) string {
	t.Helper()
	out := r.ns.MustRun(t, "ip", "-d", "link", "show", r.ifname)
	switch {
	case strings.Contains(out, "xdpgeneric"):
		return "generic"
	case strings.Contains(out, "prog/xdp"):
		return "native"
	}
	return "none"
}

var (
	testVIP4 = netip.MustParseAddr("198.51.100.1")
	testVIP6 = netip.MustParseAddr("2001:db8::1")
)

func vipProgram(addr netip.Addr, backends ...string) vip.ProgramSpec {
	p := vip.ProgramSpec{Addr: addr, Services: []vip.Service{{Proto: 6, Port: 80}, {Proto: 17, Port: 0}}}
	for i, n := range backends {
		b := vip.Backend{Name: n, Addr: netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)})}
		if addr.Is6() {
			b.Addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 15: byte(i + 1)})
		}
		p.Backends = append(p.Backends, b)
	}
	return p
}

func TestAttachModes(t *testing.T) {
	for _, tc := range []struct {
		mode        AttachMode
		autoGeneric bool
		want        string
	}{
		{AttachNative, false, "native"},
		{AttachGeneric, false, "generic"},
		{AttachAuto, false, "native"},
		{AttachAuto, true, "generic"},
	} {
		t.Run(fmt.Sprintf("%s/autoGeneric=%v", tc.mode, tc.autoGeneric), func(t *testing.T) {
			r := newDPRig(t)
			var logs bytes.Buffer
			r.log = hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
			opts := r.options()
			opts.Attach, opts.AutoGeneric = tc.mode, tc.autoGeneric
			d := r.open(t, opts)
			if got := r.xdpMode(t); got != tc.want {
				t.Errorf("attached %s, want %s", got, tc.want)
			}
			// The mode is logged as its word (it was string() of the
			// number: mode="\x01").
			if want := " mode=" + tc.want + " state=attached"; !strings.Contains(logs.String(), want) {
				t.Errorf("log lacks %q:\n%s", want, logs.String())
			}
			if err := d.Uninstall(); err != nil {
				t.Fatalf("Uninstall: %v", err)
			}
			if got := r.xdpMode(t); got != "none" {
				t.Errorf("after Uninstall: %s attached", got)
			}
			if _, err := os.Stat(r.pinPath); !errors.Is(err, os.ErrNotExist) {
				t.Errorf("pin path still there after Uninstall: %v", err)
			}
		})
	}
}

// TestProgramAndAdopt programs VIPs, closes the Dataplane (upgrade exit)
// and opens a new one: the pinned link is reused (same link, new program,
// never detached), the tables are the same kernel objects (not flushed),
// and the new Dataplane knows the VIPs.
func TestProgramAndAdopt(t *testing.T) {
	ctx := context.Background()
	r := newDPRig(t)
	d := r.open(t, r.options())

	if err := d.Program(ctx, vipProgram(testVIP4, "a", "b", "c")); err != nil {
		t.Fatalf("Program: %v", err)
	}
	if err := d.Program(ctx, vipProgram(testVIP6, "a", "b")); err != nil {
		t.Fatalf("Program v6: %v", err)
	}
	// Idempotent: the same program again does not swap the table.
	before := dpTableID(t, d, testVIP4)
	again := vipProgram(testVIP4, "a", "b", "c")
	slices.Reverse(again.Backends)
	slices.Reverse(again.Services)
	if err := d.Program(ctx, again); err != nil {
		t.Fatalf("Program again: %v", err)
	}
	if got := dpTableID(t, d, testVIP4); got != before {
		t.Errorf("same program swapped the table: map id %d -> %d", before, got)
	}
	if err := d.SetBound(ctx, []netip.Addr{testVIP4, testVIP6}); err != nil {
		t.Fatalf("SetBound: %v", err)
	}
	if err := d.SetBound(ctx, []netip.Addr{testVIP6}); err != nil {
		t.Fatalf("SetBound: %v", err)
	}
	got, err := d.Programmed(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]netip.Addr{testVIP4, testVIP6}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Programmed (-want +got):\n%s", diff)
	}
	if got := d.slots.inUse(); got != 5 {
		t.Errorf("backend slots in use = %d, want 5 (3 IPv4, 2 IPv6)", got)
	}
	stats, err := d.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stats["drop_loop_guard"]; !ok {
		t.Errorf("Stats lacks drop_loop_guard: %v", stats)
	}

	linkBefore := dpLinkInfo(t, d)
	tables := map[netip.Addr]ebpf.MapID{testVIP4: dpTableID(t, d, testVIP4), testVIP6: dpTableID(t, d, testVIP6)}
	slots := d.slots.inUse()
	if err := d.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if got := r.xdpMode(t); got != "native" {
		t.Fatalf("after Close the program is %s, want still attached", got)
	}

	d2 := r.open(t, r.options())
	linkAfter := dpLinkInfo(t, d2)
	if linkAfter.ID != linkBefore.ID {
		t.Errorf("link replaced (%d -> %d): want the pinned link adopted", linkBefore.ID, linkAfter.ID)
	}
	if linkAfter.Program == linkBefore.Program {
		t.Errorf("program %d not replaced on the adopted link", linkAfter.Program)
	}
	for a, id := range tables {
		if got := dpTableID(t, d2, a); got != id {
			t.Errorf("%s: table map %d after restart, want %d (adopted, not rebuilt)", a, got, id)
		}
	}
	if got := d2.slots.inUse(); got != slots {
		t.Errorf("adopted %d backend slots, want %d", got, slots)
	}
	got, err = d2.Programmed(ctx)
	if err != nil || len(got) != 2 {
		t.Errorf("Programmed after restart = %v, %v", got, err)
	}
	// Reprogramming an adopted VIP with fewer backends frees a slot.
	if err := d2.Program(ctx, vipProgram(testVIP4, "a", "b")); err != nil {
		t.Fatal(err)
	}
	if err := d2.Unprogram(ctx, testVIP6); err != nil {
		t.Fatal(err)
	}
	if err := d2.Unprogram(ctx, testVIP6); err != nil {
		t.Fatalf("Unprogram absent: %v", err)
	}
	if got := d2.slots.inUse(); got != 2 {
		t.Errorf("slots in use = %d, want 2", got)
	}
	got, _ = d2.Programmed(ctx)
	if diff := cmp.Diff([]netip.Addr{testVIP4}, got, cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("Programmed (-want +got):\n%s", diff)
	}
}

func dpLinkInfo(t *testing.T, d *Dataplane) *link.Info {
	t.Helper()
	info, err := d.link.Info()
	if err != nil {
		t.Fatal(err)
	}
	return info
}

// tableID is the kernel id of the inner map tables[id of addr].
func dpTableID(t *testing.T, d *Dataplane, addr netip.Addr) ebpf.MapID {
	t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	a := d.addrs[addr]
	if a == nil || a.vip == nil || len(a.vip.tables) != 1 {
		t.Fatalf("%s not programmed with one table", addr)
	}
	var inner *ebpf.Map
	if err := d.objs.Tables.Lookup(a.vip.tables[0].id, &inner); err != nil {
		t.Fatalf("looking up table of %s: %v", addr, err)
	}
	defer inner.Close()
	info, err := inner.Info()
	if err != nil {
		t.Fatal(err)
	}
	id, _ := info.ID()
	return id
}

// TestOpenIncompatiblePins: maps pinned by another version with another
// layout are not silently replaced (that would flush the forwarding
// state); Open says what to do. One case is a map of another shape, the
// other the counters of the layout before issue 11 (21 of them).
func TestOpenIncompatiblePins(t *testing.T) {
	for _, c := range []struct {
		name string
		spec *ebpf.MapSpec
	}{
		{"vips4", &ebpf.MapSpec{Name: "vips4", Type: ebpf.Hash, KeySize: 4, ValueSize: 4, MaxEntries: 8}},
		{"stats", &ebpf.MapSpec{Name: "stats", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 21}},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := newDPRig(t)
			if err := os.MkdirAll(r.pinPath, 0o700); err != nil {
				t.Fatal(err)
			}
			m, err := ebpf.NewMap(c.spec)
			if err != nil {
				t.Fatal(err)
			}
			defer m.Close()
			if err := m.Pin(filepath.Join(r.pinPath, c.name)); err != nil {
				t.Fatal(err)
			}
			err = r.ns.Do(func() error {
				d, err := Open(hclog.NewNullLogger(), r.options())
				if err == nil {
					d.Close()
				}
				return err
			})
			if !errors.Is(err, ebpf.ErrMapIncompatible) || !strings.Contains(err.Error(), "uninstall") {
				t.Errorf("Open over incompatible pins: %v, want ErrMapIncompatible and a hint", err)
			}
			if got := r.xdpMode(t); got != "none" {
				t.Errorf("program attached (%s) although Open failed", got)
			}
		})
	}
}

func TestOpenNotBPFFS(t *testing.T) {
	r := newDPRig(t)
	opts := r.options()
	opts.PinPath = filepath.Join(t.TempDir(), "vipd")
	err := r.ns.Do(func() error {
		d, err := Open(hclog.NewNullLogger(), opts)
		if err == nil {
			d.Close()
		}
		return err
	})
	if !errors.Is(err, ErrNotBPFFS) {
		t.Errorf("Open with a pin path on tmpfs: %v, want ErrNotBPFFS", err)
	}
}

// TestEnsureLookupForwarding: a later sysctl write that turns forwarding on
// lo off (net.ipv4.ip_forward=0 does) is undone, and only then.
func TestEnsureLookupForwarding(t *testing.T) {
	r := newDPRig(t)
	d := r.open(t, r.options())
	read := func() string {
		return strings.TrimSpace(r.ns.MustRun(t, "sysctl", "-n", "net.ipv4.conf.lo.forwarding"))
	}
	if got := read(); got != "1" {
		t.Fatalf("after Open lo forwarding = %s, want 1", got)
	}
	var restored bool
	ensure := func() {
		t.Helper()
		if err := r.ns.Do(func() (err error) { restored, err = d.EnsureLookupForwarding(); return err }); err != nil {
			t.Fatal(err)
		}
	}
	ensure()
	if restored {
		t.Error("restored although nothing was off")
	}
	r.ns.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	r.ns.MustRun(t, "sysctl", "-qw", "net.ipv4.ip_forward=0") // resets every conf.*.forwarding
	if got := read(); got != "0" {
		t.Fatalf("the ip_forward write left lo forwarding = %s; the test assumes it resets it", got)
	}
	ensure()
	if !restored || read() != "1" {
		t.Errorf("EnsureLookupForwarding: restored=%v, lo forwarding %s", restored, read())
	}
}
