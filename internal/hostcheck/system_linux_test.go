package hostcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/netnstest"
	"github.com/vipd/vipd/routing"
)

// uplink is the interface of the host's IPv4 default route, or lo.
func uplink(t testing.TB) string {
	t.Helper()
	rs, err := netlink.RouteList(nil, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rs {
		if r.Dst == nil || r.Dst.IP.IsUnspecified() {
			if l, err := netlink.LinkByIndex(r.LinkIndex); err == nil {
				return l.Attrs().Name
			}
		}
	}
	return "lo"
}

// TestSystem runs every check against this machine (no XDP-capable NIC:
// virtio or veth) read-only, the way `vipctl doctor` does: it must complete
// and give every check a finding. Run with -v to see the table.
func TestSystem(t *testing.T) {
	vips := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
	for _, spec := range []Spec{{
		Interface: uplink(t), Backend: true, LocalGUE: true, SwitchMTU: 9000, AttachMode: dataplane.AttachAuto,
		VIPs: vips, RoutingMode: routing.ModeBirdOSPF, BirdSocket: filepath.Join(t.TempDir(), "bird.ctl"),
		PeerStateURLs: []string{"http://127.0.0.1:1/state"},
	}, {
		Interface: "lo", Backend: true, SwitchMTU: 1500, AttachMode: dataplane.AttachNative, VIPs: vips,
		RoutingMode: routing.ModeBGP, BGPListen: "127.0.0.1:0",
	}, {
		Interface: "nosuch0", RoutingMode: routing.ModeBGP,
	}, {}} {
		t.Run(spec.Interface, func(t *testing.T) {
			r := Run(context.Background(), System(), spec)
			var table bytes.Buffer
			if err := r.WriteTable(&table); err != nil {
				t.Fatal(err)
			}
			t.Logf("exit code %d\n%s", r.ExitCode(), table.String())
			if len(r.Checks) != len(checks) {
				t.Errorf("%d checks, want %d", len(r.Checks), len(checks))
			}
			for _, c := range r.Checks {
				if c.ID == "" || c.Name == "" || c.Finding == "" {
					t.Errorf("incomplete result %+v", c)
				}
				if c.Status >= Warn && c.Fix == "" && !strings.HasPrefix(c.Finding, "reading") {
					t.Logf("no fix for %s: %s", c.ID, c.Finding)
				}
			}
			var js bytes.Buffer
			if err := r.WriteJSON(&js); err != nil || !json.Valid(js.Bytes()) {
				t.Errorf("WriteJSON: %v\n%s", err, js.String())
			}
			if c := r.ExitCode(); c < 0 || c > 2 {
				t.Errorf("ExitCode() = %d", c)
			}
		})
	}
}

// TestNamespace sets real sysctls, MTU, VLAN offload and routes inside a
// private namespace and checks that the real Host finds them there.
func TestNamespace(t *testing.T) {
	ns, peer := netnstest.New(t, "hc"), netnstest.New(t, "hp")
	dev, _ := netnstest.Veth(t, ns, peer)
	for _, argv := range [][]string{
		{"sysctl", "-qw", "net.ipv4.ip_forward=1"},
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=1"},
		{"sysctl", "-qw", "net.ipv4.conf." + dev + ".accept_local=1"},
		{"ip", "link", "set", dev, "mtu", "1400"},
		{"ethtool", "-K", dev, "rxvlan", "off"},
		{"ip", "-6", "addr", "add", "2001:db8:1::1/64", "dev", dev, "nodad"},
	} {
		ns.MustRun(t, argv...)
	}
	spec := Spec{
		Interface: dev, Backend: true, LocalGUE: true, SwitchMTU: 1500, AttachMode: dataplane.AttachNative,
		VIPs: []netip.Addr{netip.MustParseAddr("2001:db8::10")}, RoutingMode: routing.ModeBGP,
	}
	run := func() Report {
		t.Helper()
		var r Report
		if err := ns.Do(func() error {
			r = Run(context.Background(), System(), spec)
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		var b bytes.Buffer
		r.WriteTable(&b)
		t.Logf("\n%s", b.String())
		return r
	}
	expect := func(r Report, id string, want Status, finding string) {
		t.Helper()
		c, _ := r.Get(id)
		if c.Status != want || !strings.Contains(c.Finding, finding) {
			t.Errorf("%s = %s %q, want %s containing %q", id, c.Status, c.Finding, want, finding)
		}
	}

	r := run()
	expect(r, IDForwarding, Fail, "net.ipv4.ip_forward=1")
	expect(r, "accept-local", Pass, "net.ipv4.conf."+dev+".accept_local=1")
	expect(r, "rp-filter", Warn, "net.ipv4.conf.all.rp_filter=1")
	expect(r, "rx-vlan", Pass, dev+": rx-vlan-offload: off")
	expect(r, IDMTU, Warn, dev+": mtu 1400; native XDP limit of veth about 3506; switch mtu 1500")
	if c, _ := r.Get(IDMTU); c.Fix != "ip link set "+dev+" mtu 1500" {
		t.Errorf("mtu fix = %q", c.Fix)
	}
	expect(r, IDIPv6Route, Fail, "no IPv6 default route")
	expect(r, IDIxgbe, Skip, "driver veth, not ixgbe")
	if hold, _ := HoldIPv6(r); !hold {
		t.Error("HoldIPv6 = false without an IPv6 route")
	}
	if StartError(r) == nil {
		t.Error("StartError = nil with ip_forward=1 on a backend")
	}

	// The fixes, applied; the host's own settings were never touched.
	for _, argv := range [][]string{
		{"sysctl", "-qw", "net.ipv4.ip_forward=0"},
		{"sysctl", "-qw", "net.ipv4.conf.all.rp_filter=2"},
		{"ip", "link", "set", dev, "mtu", "1500"},
		{"ethtool", "-K", dev, "rxvlan", "on"},
		{"ip", "-6", "route", "add", "default", "via", "2001:db8:1::2", "dev", dev},
	} {
		ns.MustRun(t, argv...)
	}
	r = run()

	// The ethtool ioctls see what the ethtool CLI set.
	queues := min(2, runtime.NumCPU())
	ns.MustRun(t, "ethtool", "-L", dev, "rx", strconv.Itoa(queues), "tx", strconv.Itoa(queues))
	var di DriverInfo
	var ch Channels
	var vlan bool
	if err := ns.Do(func() error {
		var err1, err2, err3 error
		di, err1 = System().DriverInfo(dev)
		ch, err2 = System().Channels(dev)
		vlan, err3 = System().RxVLANOffload(dev)
		return errors.Join(err1, err2, err3)
	}); err != nil {
		t.Fatal(err)
	}
	if di.Driver != "veth" || di.Version != "1.0" || ch.RX != queues || ch.TX != queues || !vlan {
		t.Errorf("ethtool on %s: %+v %+v rxvlan %t; want veth 1.0, %d rx/tx queues, rxvlan on", dev, di, ch, vlan, queues)
	}

	expect(r, IDForwarding, Pass, "net.ipv4.ip_forward=0")
	expect(r, "rp-filter", Pass, "(effective 2)")
	expect(r, "rx-vlan", Warn, dev+": rx-vlan-offload: on")
	expect(r, IDMTU, Pass, dev+": mtu 1500; native XDP limit of veth about 3506; switch mtu 1500")
	expect(r, IDIPv6Route, Pass, "default route present")
	if StartError(r) != nil {
		t.Errorf("StartError = %v after the fix", StartError(r))
	}
}
