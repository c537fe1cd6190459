package hostcheck

import (
	"context"
	"errors"
	"net/netip"
	"testing"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/routing"
)

// birdProbe is a ProbeIgnoreMTU that answers without running BIRD.
func birdProbe(supported bool, err error) func(context.Context, string) (bool, error) {
	return func(context.Context, string) (bool, error) { return supported, err }
}

func TestMTU(t *testing.T) {
	name := "MTU vs switch and native XDP"
	ospf := func(ignore bool, supported bool) Spec {
		return Spec{Interface: "eth0", SwitchMTU: 9000, RoutingMode: routing.ModeBirdOSPF, IgnoreMTU: ignore,
			AttachMode: dataplane.AttachNative, ProbeIgnoreMTU: birdProbe(supported, nil)}
	}
	runCases(t, checkMTU, []checkCase{{
		name: "field note 5: switch 9000, local 1500, stock BIRD", fixture: "ixgbe", spec: ospf(false, false),
		want: Result{ID: "mtu", Name: name, Status: Fail,
			Finding: "eth0: mtu 1500; native XDP limit of ixgbe about 3050; switch mtu 9000; OSPF will refuse adjacency (MTU mismatch, remote 9000, local 1500); " +
				"installed BIRD does not support ignoremtu (stock BIRD; a patched one is required)",
			Fix: "set ignore_mtu = true in [[routing.bird.ospf]] with a patched BIRD"},
	}, {
		name: "switch 9000, patched BIRD installed, option not set", fixture: "ixgbe", spec: ospf(false, true),
		want: Result{ID: "mtu", Name: name, Status: Fail,
			Finding: "eth0: mtu 1500; native XDP limit of ixgbe about 3050; switch mtu 9000; OSPF will refuse adjacency (MTU mismatch, remote 9000, local 1500); " +
				"installed BIRD supports ignoremtu",
			Fix: "set ignore_mtu = true in [[routing.bird.ospf]] with a patched BIRD"},
	}, {
		name: "fixed: ignore_mtu with a patched BIRD", fixture: "ixgbe", spec: ospf(true, true),
		want: Result{ID: "mtu", Name: name, Status: Pass,
			Finding: "eth0: mtu 1500; native XDP limit of ixgbe about 3050; switch mtu 9000; OSPF mismatch ignored (ignore_mtu, installed BIRD supports ignoremtu)"},
	}, {
		name: "BIRD 2.0.6 only warns", fixture: "ixgbe",
		spec: Spec{Interface: "eth0", SwitchMTU: 9000, RoutingMode: routing.ModeBirdOSPF, AttachMode: dataplane.AttachNative,
			BirdSocket: fakeBird(t, "0001 BIRD 2.0.6 ready.\n"), ProbeIgnoreMTU: birdProbe(false, nil)},
		want: Result{ID: "mtu", Name: name, Status: Warn,
			Finding: "eth0: mtu 1500; native XDP limit of ixgbe about 3050; switch mtu 9000; running BIRD 2.0.6 only warns on OSPF MTU mismatch " +
				"(an error since 2.0.7, the adjacency breaks on upgrade); installed BIRD does not support ignoremtu (stock BIRD; a patched one is required)",
			Fix: "set ignore_mtu = true in [[routing.bird.ospf]] with a patched BIRD"},
	}, {
		name: "BIRD 2.0.12 refuses", fixture: "ixgbe",
		spec: Spec{Interface: "eth0", SwitchMTU: 2000, RoutingMode: routing.ModeBirdOSPF, AttachMode: dataplane.AttachNative,
			BirdSocket: fakeBird(t, "0001 BIRD 2.0.12 ready.\n"), ProbeIgnoreMTU: birdProbe(false, nil)},
		want: Result{ID: "mtu", Name: name, Status: Fail,
			Finding: "eth0: mtu 1500; native XDP limit of ixgbe about 3050; switch mtu 2000; OSPF will refuse adjacency (MTU mismatch, remote 2000, local 1500); " +
				"installed BIRD does not support ignoremtu (stock BIRD; a patched one is required)",
			Fix: "ip link set eth0 mtu 2000"},
	}, {
		name: "ignore_mtu with a stock BIRD", fixture: "ixgbe", spec: ospf(true, false),
		want: Result{ID: "mtu", Name: name, Status: Fail,
			Finding: "eth0: mtu 1500; native XDP limit of ixgbe about 3050; switch mtu 9000; ignore_mtu is set but installed BIRD does not support ignoremtu (stock BIRD; a patched one is required)",
			Fix:     "install the patched BIRD (routing/bird/patch) and set routing.bird.bird to it"},
	}, {
		name: "BIRD probe fails", fixture: "ixgbe",
		spec: Spec{Interface: "eth0", SwitchMTU: 9000, RoutingMode: routing.ModeBirdOSPF, IgnoreMTU: true,
			ProbeIgnoreMTU: birdProbe(false, errors.New("exec: \"bird\": executable file not found in $PATH"))},
		want: Result{ID: "mtu", Name: name, Status: Fail,
			Finding: "eth0: mtu 1500; native XDP limit of ixgbe about 3050; switch mtu 9000; ignore_mtu is set but cannot tell whether BIRD supports ignoremtu: exec: \"bird\": executable file not found in $PATH",
			Fix:     "install the patched BIRD (routing/bird/patch) and set routing.bird.bird to it"},
	}, {
		name: "switch 2000 can be matched under the native limit", fixture: "i40e",
		spec: Spec{Interface: "eth0", SwitchMTU: 2000, RoutingMode: routing.ModeBirdOSPF, ProbeIgnoreMTU: birdProbe(false, nil)},
		want: Result{ID: "mtu", Name: name, Status: Fail,
			Finding: "eth0: mtu 1500; native XDP limit of i40e about 3046; switch mtu 2000; OSPF will refuse adjacency (MTU mismatch, remote 2000, local 1500); " +
				"installed BIRD does not support ignoremtu (stock BIRD; a patched one is required)",
			Fix: "ip link set eth0 mtu 2000"},
	}, {
		name: "switch MTU matched, above the native XDP limit (see xdp-mtu)", fixture: "virtio",
		spec:   Spec{Interface: "eth0", SwitchMTU: 9000, RoutingMode: routing.ModeBirdOSPF, AttachMode: dataplane.AttachAuto, IgnoreMTU: true, ProbeIgnoreMTU: birdProbe(true, nil)},
		mutate: func(f *fixture) { f.set("/sys/class/net/eth0/mtu", "9000\n") },
		want: Result{ID: "mtu", Name: name, Status: Pass,
			Finding: "eth0: mtu 9000; native XDP limit of virtio_net about 3506; switch mtu 9000"},
	}, {
		name: "generic XDP has no such limit", fixture: "virtio",
		spec:   Spec{Interface: "eth0", SwitchMTU: 9000, RoutingMode: routing.ModeBGP, AttachMode: dataplane.AttachGeneric},
		mutate: func(f *fixture) { f.set("/sys/class/net/eth0/mtu", "9000\n") },
		want: Result{ID: "mtu", Name: name, Status: Pass,
			Finding: "eth0: mtu 9000; native XDP limit of virtio_net about 3506; switch mtu 9000"},
	}, {
		name: "bgp mode mismatch is a warning", fixture: "virtio",
		spec: Spec{Interface: "eth0", SwitchMTU: 9000, RoutingMode: routing.ModeBGP, AttachMode: dataplane.AttachNative},
		want: Result{ID: "mtu", Name: name, Status: Warn,
			Finding: "eth0: mtu 1500; native XDP limit of virtio_net about 3506; switch mtu 9000; frames above 1500 from the switch are dropped here",
			Fix:     "lower the switch port MTU to 1500"},
	}, {
		name: "local MTU above the switch's", fixture: "veth",
		spec:   Spec{Interface: "veth0", SwitchMTU: 1500, RoutingMode: routing.ModeBGP, AttachMode: dataplane.AttachGeneric},
		mutate: func(f *fixture) { f.set("/sys/class/net/veth0/mtu", "9000\n") },
		want: Result{ID: "mtu", Name: name, Status: Warn,
			Finding: "veth0: mtu 9000; native XDP limit of veth about 3506; switch mtu 1500; frames above 1500 sent to the switch are dropped there",
			Fix:     "ip link set veth0 mtu 1500"},
	}, {
		name: "matching MTU", fixture: "veth", spec: Spec{Interface: "veth0", SwitchMTU: 1500, RoutingMode: routing.ModeBirdOSPF},
		want: Result{ID: "mtu", Name: name, Status: Pass,
			Finding: "veth0: mtu 1500; native XDP limit of veth about 3506; switch mtu 1500"},
	}, {
		name: "no switch MTU configured", fixture: "veth", spec: Spec{Interface: "veth0"},
		want: Result{ID: "mtu", Name: name, Status: Pass,
			Finding: "veth0: mtu 1500; native XDP limit of veth about 3506; no switch_mtu configured"},
	}})
}

func TestXDPMTU(t *testing.T) {
	name := "MTU vs native XDP limit"
	mtu9000 := func(f *fixture) { f.set("/sys/class/net/eth0/mtu", "9000\n") }
	runCases(t, checkXDPMTU, []checkCase{{
		name: "field note 5: 9000 on ixgbe, native", fixture: "ixgbe", mutate: mtu9000,
		spec: Spec{Interface: "eth0", AttachMode: dataplane.AttachNative},
		want: Result{ID: "xdp-mtu", Name: name, Status: Fail,
			Finding: "eth0: mtu 9000 > about 3050, the native XDP limit of ixgbe: native XDP will not attach (generic XDP will)",
			Fix:     "ip link set eth0 mtu 3050"},
	}, {
		name: "auto counts as native", fixture: "virtio", mutate: mtu9000,
		spec: Spec{Interface: "eth0", AttachMode: dataplane.AttachAuto},
		want: Result{ID: "xdp-mtu", Name: name, Status: Fail,
			Finding: "eth0: mtu 9000 > about 3506, the native XDP limit of virtio_net: native XDP will not attach (generic XDP will)",
			Fix:     "ip link set eth0 mtu 3506"},
	}, {
		name: "generic", fixture: "ixgbe", mutate: mtu9000,
		spec: Spec{Interface: "eth0", AttachMode: dataplane.AttachGeneric},
		want: Result{ID: "xdp-mtu", Name: name, Status: Skip,
			Finding: "eth0: mtu 9000; attach_mode generic (native XDP limit of ixgbe about 3050)"},
	}, {
		name: "fixed", fixture: "ixgbe", spec: Spec{Interface: "eth0", AttachMode: dataplane.AttachNative},
		want: Result{ID: "xdp-mtu", Name: name, Status: Pass,
			Finding: "eth0: mtu 1500 <= about 3050, the native XDP limit of ixgbe"},
	}, {
		name: "unknown driver", fixture: "ixgbe", spec: Spec{Interface: "eth0"},
		mutate: func(f *fixture) {
			e := f.eth["eth0"]
			e.Driver = "mlx5_core"
			f.eth["eth0"] = e
		},
		want: Result{ID: "xdp-mtu", Name: name, Status: Pass,
			Finding: "eth0: mtu 1500; native XDP limit of mlx5_core unknown"},
	}})
}

func TestIPv6Route(t *testing.T) {
	name := "IPv6 route back to clients"
	v6 := []netip.Addr{netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")}
	noRoute := "IPv6 VIPs 2001:db8::10 but no IPv6 default route (0 IPv6 routes): replies have nowhere to go; IPv6 VIPs withheld (no IPv6 route back to clients)"
	fix := "ip -6 route add default via GATEWAY dev eth0  (enable IPv6 on eth0: sysctl -w net.ipv6.conf.eth0.disable_ipv6=0)"
	runCases(t, checkIPv6Route, []checkCase{{
		name: "field note 4: IPv6 VIP, no IPv6 route", fixture: "ixgbe", spec: Spec{Interface: "eth0", VIPs: v6},
		want: Result{ID: "ipv6-route", Name: name, Status: Fail, Finding: noRoute, Fix: fix},
	}, {
		name: "fixed: default route", fixture: "i40e", spec: Spec{Interface: "eth0", VIPs: v6},
		want: Result{ID: "ipv6-route", Name: name, Status: Pass, Finding: "IPv6 VIPs 2001:db8::10; default route present"},
	}, {
		name: "routes to every client prefix", fixture: "ixgbe",
		spec: Spec{Interface: "eth0", VIPs: v6, ClientPrefixes: []netip.Prefix{
			netip.MustParsePrefix("2001:db8:c1::/48"), netip.MustParsePrefix("198.51.100.0/24")}},
		mutate: func(f *fixture) { f.routes = append(f.routes, netip.MustParsePrefix("2001:db8:c0::/44")) },
		want: Result{ID: "ipv6-route", Name: name, Status: Pass,
			Finding: "IPv6 VIPs 2001:db8::10; no default route but routes to every client prefix"},
	}, {
		name: "a client prefix without a route", fixture: "ixgbe",
		spec: Spec{Interface: "eth0", VIPs: v6, ClientPrefixes: []netip.Prefix{
			netip.MustParsePrefix("2001:db8:c1::/48"), netip.MustParsePrefix("2001:db8:ff::/48")}},
		mutate: func(f *fixture) { f.routes = append(f.routes, netip.MustParsePrefix("2001:db8:c0::/44")) },
		want: Result{ID: "ipv6-route", Name: name, Status: Fail,
			Finding: "IPv6 VIPs 2001:db8::10 but no IPv6 default route and no route to 2001:db8:ff::/48 (1 IPv6 routes): replies have nowhere to go; IPv6 VIPs withheld (no IPv6 route back to clients)",
			Fix:     fix},
	}, {
		name: "IPv4 VIPs only", fixture: "ixgbe", spec: Spec{Interface: "eth0", VIPs: v6[:1]},
		want: Result{ID: "ipv6-route", Name: name, Status: Skip, Finding: "no IPv6 VIP configured"},
	}})
}

func TestHoldIPv6(t *testing.T) {
	v6 := []netip.Addr{netip.MustParseAddr("2001:db8::10")}
	for _, tc := range []struct {
		fixture string
		want    bool
	}{{"ixgbe", true}, {"virtio", false}} {
		f := loadFixture(t, tc.fixture)
		hold, reason := HoldIPv6(Run(context.Background(), f, Spec{Interface: "eth0", VIPs: v6}))
		if hold != tc.want || (hold && reason != "no IPv6 route back to clients") {
			t.Errorf("%s: HoldIPv6 = %t, %q; want %t", tc.fixture, hold, reason, tc.want)
		}
	}
}

func TestI40e(t *testing.T) {
	name := "i40e/X722 driver version"
	version := func(v string) func(*fixture) {
		return func(f *fixture) {
			e := f.eth["eth0"]
			e.Version = v
			f.eth["eth0"] = e
		}
	}
	spec := Spec{Interface: "eth0"}
	runCases(t, checkI40eXDP, []checkCase{{
		name: "field note 2: X722 with in-tree 2.3.2-k", fixture: "i40e", spec: spec,
		want: Result{ID: "i40e-x722", Name: name, Status: Fail,
			Finding: "eth0: i40e 2.3.2-k, firmware 3.33 0x80000f0c 1.1767.0, X722 (SFP_X722 0x37d0): this driver oopses in i40e_xdp when XDP is loaded (fixed upstream 92947844b8be)",
			Fix:     `install Intel's out-of-tree i40e (see the i40e-depmod check) or a kernel with 92947844b8be; until then attach_mode = "generic"`},
	}, {
		name: "fixed: Intel's out-of-tree driver", fixture: "i40e", spec: spec, mutate: version("2.22.18"),
		want: Result{ID: "i40e-x722", Name: name, Status: Pass,
			Finding: "eth0: i40e 2.22.18, firmware 3.33 0x80000f0c 1.1767.0, X722 (SFP_X722 0x37d0)"},
	}, {
		name: "2.3.2-k on an XL710: RX counters", fixture: "i40e", spec: spec,
		mutate: func(f *fixture) { f.set("/sys/class/net/eth0/device/device", "0x1583\n") },
		want: Result{ID: "i40e-x722", Name: name, Status: Warn,
			Finding: "eth0: i40e 2.3.2-k, firmware 3.33 0x80000f0c 1.1767.0, device 0x1583: RX counters of this version may stay at 0 (fixed upstream cdec2141c24e)",
			Fix:     "install Intel's out-of-tree i40e or a kernel with cdec2141c24e"},
	}, {
		name: "2.3.2-k, device unknown", fixture: "i40e", spec: spec,
		mutate: func(f *fixture) { f.remove("/sys/class/net/eth0/device/device") },
		want: Result{ID: "i40e-x722", Name: name, Status: Warn,
			Finding: "eth0: i40e 2.3.2-k, firmware 3.33 0x80000f0c 1.1767.0, unknown device: cannot tell whether it is an X722 (open /sys/class/net/eth0/device/device: file does not exist); 2.3.2-k crashes on XDP load on X722",
			Fix:     "lspci -nn -s 0000:3d:00.0"},
	}, {
		name: "ixgbe", fixture: "ixgbe", spec: spec,
		want: Result{ID: "i40e-x722", Name: name, Status: Skip, Finding: "eth0: driver ixgbe, not i40e"},
	}})
}

func TestI40eDepmod(t *testing.T) {
	name := "depmod override for out-of-tree i40e"
	mod := "/lib/modules/" + el7 + "/weak-updates/i40e/i40e.ko"
	runCases(t, checkI40eDepmod, []checkCase{{
		name: "field note 2: out-of-tree i40e, no override", fixture: "i40e",
		want: Result{ID: "i40e-depmod", Name: name, Status: Warn,
			Finding: "out-of-tree " + mod + " but no `override i40e` in /etc/depmod.d: after a kernel upgrade the in-tree i40e loads until a second reboot",
			Fix:     "echo 'override i40e * weak-updates/i40e' > /etc/depmod.d/i40e.conf && depmod -a"},
	}, {
		name: "in-tree driver loaded despite the out-of-tree one", fixture: "i40e", spec: Spec{Interface: "eth0"},
		want: Result{ID: "i40e-depmod", Name: name, Status: Warn,
			Finding: "out-of-tree " + mod + " but no `override i40e` in /etc/depmod.d: after a kernel upgrade the in-tree i40e loads until a second reboot" +
				" (eth0 runs the in-tree i40e 2.3.2-k now)",
			Fix: "echo 'override i40e * weak-updates/i40e' > /etc/depmod.d/i40e.conf && depmod -a"},
	}, {
		name: "fixed: override present", fixture: "i40e",
		mutate: func(f *fixture) {
			f.set("/etc/depmod.d/i40e.conf", "# Intel i40e\noverride i40e * weak-updates/i40e\n")
		},
		want: Result{ID: "i40e-depmod", Name: name, Status: Pass,
			Finding: "out-of-tree " + mod + "; /etc/depmod.d/i40e.conf: override i40e * weak-updates/i40e"},
	}, {
		name: "in-tree only", fixture: "ixgbe",
		want: Result{ID: "i40e-depmod", Name: name, Status: Skip,
			Finding: "no out-of-tree i40e under /lib/modules/" + el7 + "/{updates,weak-updates}"},
	}})
}

func TestBPF(t *testing.T) {
	runCases(t, checkBPFFS, []checkCase{{
		name: "no bpffs", fixture: "ixgbe",
		want: Result{ID: "bpffs", Name: "bpffs mounted", Status: Fail,
			Finding: "no bpf filesystem in /proc/mounts: pinned maps and programs cannot outlive vipd",
			Fix:     "mount -t bpf bpf /sys/fs/bpf"},
	}, {
		name: "mounted", fixture: "virtio",
		want: Result{ID: "bpffs", Name: "bpffs mounted", Status: Pass, Finding: "bpffs at /sys/fs/bpf"},
	}})
	runCases(t, checkBTF, []checkCase{{
		name: "no BTF", fixture: "ixgbe",
		want: Result{ID: "btf", Name: "kernel BTF", Status: Warn,
			Finding: "stat /sys/kernel/btf/vmlinux: no such file or directory: kernel built without CONFIG_DEBUG_INFO_BTF",
			Fix:     "boot a kernel with CONFIG_DEBUG_INFO_BTF=y"},
	}, {
		name: "BTF", fixture: "veth",
		want: Result{ID: "btf", Name: "kernel BTF", Status: Pass, Finding: "/sys/kernel/btf/vmlinux present (27 bytes)"},
	}})
	name := "CAP_BPF, CAP_NET_ADMIN, memlock"
	runCases(t, checkBPFPrivileges, []checkCase{{
		name: "root on 4.19 (CAP_SYS_ADMIN, CAP_SYS_RESOURCE)", fixture: "ixgbe",
		want: Result{ID: "bpf-privileges", Name: name, Status: Pass,
			Finding: "CapEff=0000003fffffffff; kernel " + el7 + " charges BPF to memlock: limit 65536, CAP_SYS_RESOURCE true"},
	}, {
		name: "4.19, 64 KiB memlock, no CAP_SYS_RESOURCE", fixture: "ixgbe",
		mutate: func(f *fixture) {
			f.set("/proc/self/status", "Name:\tvipd\nCapEff:\t0000000000201000\n")
		},
		want: Result{ID: "bpf-privileges", Name: name, Status: Fail,
			Finding: "CapEff=0000000000201000; kernel " + el7 + " charges BPF to memlock: limit 65536 bytes and no CAP_SYS_RESOURCE to raise it",
			Fix:     "ulimit -l unlimited (systemd: LimitMEMLOCK=infinity)"},
	}, {
		name: "unprivileged on 6.1", fixture: "virtio",
		mutate: func(f *fixture) { f.set("/proc/self/status", "Name:\tvipctl\nCapEff:\t0000000000000000\n") },
		want: Result{ID: "bpf-privileges", Name: name, Status: Fail,
			Finding: "CapEff=0000000000000000; missing CAP_BPF, CAP_NET_ADMIN; kernel 6.1.0-27-cloud-amd64 accounts BPF memory to the cgroup (memlock irrelevant)",
			Fix:     "run vipd as root or with AmbientCapabilities=CAP_BPF CAP_NET_ADMIN CAP_SYS_RESOURCE"},
	}, {
		name: "CAP_BPF and CAP_NET_ADMIN only", fixture: "virtio",
		mutate: func(f *fixture) { f.set("/proc/self/status", "CapEff:\t0000008000001000\n") },
		want: Result{ID: "bpf-privileges", Name: name, Status: Pass,
			Finding: "CapEff=0000008000001000; kernel 6.1.0-27-cloud-amd64 accounts BPF memory to the cgroup (memlock irrelevant)"},
	}})
	runCases(t, checkBPFFeatures, []checkCase{{
		name: "all present", fixture: "veth",
		want: Result{ID: "bpf-features", Name: "kernel BPF features", Status: Pass, Finding: "have xdp, skc_lookup_tcp, fib_lookup"},
	}, {
		name: "4.19 lacks skc_lookup_tcp", fixture: "ixgbe",
		mutate: func(f *fixture) { f.missing[FeatureSkcLookupTCP] = true },
		want: Result{ID: "bpf-features", Name: "kernel BPF features", Status: Fail,
			Finding: "have xdp, fib_lookup; kernel lacks skc_lookup_tcp",
			Fix:     "upgrade the kernel (bpf_skc_lookup_tcp needs >= 5.2, bpf_fib_lookup >= 4.18)"},
	}})
}
