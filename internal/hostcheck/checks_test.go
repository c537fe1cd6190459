package hostcheck

import (
	"context"
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/dataplane"
)

// checkCase runs one check against a fixture tree, adjusted by mutate.
type checkCase struct {
	name    string
	fixture string
	mutate  func(*fixture)
	spec    Spec
	want    Result
}

func runCases(t *testing.T, check func(context.Context, Host, Spec) Result, cases []checkCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			f := loadFixture(t, tc.fixture)
			if tc.mutate != nil {
				tc.mutate(f)
			}
			got := check(context.Background(), f, tc.spec)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

const el7 = "4.19.12-1.el7.elrepo.x86_64"

func TestForwarding(t *testing.T) {
	backend := Spec{Interface: "eth0", Backend: true}
	ack := Spec{Interface: "eth0", Backend: true, AllowIPForward: true}
	runCases(t, checkForwarding, []checkCase{{
		name: "field note 3: ip_forward on a backend", fixture: "ixgbe", spec: backend,
		want: Result{ID: "forwarding", Name: "IP forwarding on a backend", Status: Fail,
			Finding: "net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=0: a backend that loses a VIP routes its decapsulated packets back out (forwarding loop)",
			Fix:     "sysctl -w net.ipv4.ip_forward=0"},
	}, {
		name: "IPv6 forwarding alone", fixture: "virtio", spec: backend,
		mutate: func(f *fixture) { f.set("/proc/sys/net/ipv6/conf/all/forwarding", "1\n") },
		want: Result{ID: "forwarding", Name: "IP forwarding on a backend", Status: Fail,
			Finding: "net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=1: a backend that loses a VIP routes its decapsulated packets back out (forwarding loop)",
			Fix:     "sysctl -w net.ipv6.conf.all.forwarding=0"},
	}, {
		name: "acknowledged in config", fixture: "ixgbe", spec: ack,
		want: Result{ID: "forwarding", Name: "IP forwarding on a backend", Status: Warn,
			Finding: "net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=0: acknowledged by allow_ip_forward; the loop guard drops decapsulated traffic for unbound VIPs",
			Fix:     "sysctl -w net.ipv4.ip_forward=0"},
	}, {
		name: "fixed: forwarding off", fixture: "ixgbe", spec: backend,
		mutate: func(f *fixture) { f.set("/proc/sys/net/ipv4/ip_forward", "0\n") },
		want: Result{ID: "forwarding", Name: "IP forwarding on a backend", Status: Pass,
			Finding: "net.ipv4.ip_forward=0, net.ipv6.conf.all.forwarding=0"},
	}, {
		name: "not a backend", fixture: "ixgbe", spec: Spec{Interface: "eth0"},
		want: Result{ID: "forwarding", Name: "IP forwarding on a backend", Status: Skip,
			Finding: "not a backend (net.ipv4.ip_forward=1, net.ipv6.conf.all.forwarding=0)"},
	}, {
		name: "unreadable sysctl", fixture: "ixgbe", spec: backend,
		mutate: func(f *fixture) { f.remove("/proc/sys/net/ipv4/ip_forward") },
		want: Result{ID: "forwarding", Name: "IP forwarding on a backend", Status: Warn,
			Finding: "reading net.ipv4.ip_forward: open /proc/sys/net/ipv4/ip_forward: file does not exist"},
	}})
}

func TestStartError(t *testing.T) {
	f := loadFixture(t, "ixgbe")
	r := Report{Checks: []Result{checkForwarding(context.Background(), f, Spec{Backend: true})}}
	if err := StartError(r); !errors.Is(err, ErrForwarding) {
		t.Errorf("StartError with ip_forward=1 on a backend = %v, want ErrForwarding", err)
	}
	r = Report{Checks: []Result{checkForwarding(context.Background(), f, Spec{Backend: true, AllowIPForward: true})}}
	if err := StartError(r); err != nil {
		t.Errorf("StartError when acknowledged = %v, want nil", err)
	}
}

func TestAcceptLocal(t *testing.T) {
	name := "accept_local for local GUE"
	runCases(t, checkAcceptLocal, []checkCase{{
		name: "field note 7: local GUE with accept_local=0", fixture: "ixgbe",
		spec: Spec{Interface: "eth0", LocalGUE: true},
		want: Result{ID: "accept-local", Name: name, Status: Fail,
			Finding: "net.ipv4.conf.all.accept_local=0, net.ipv4.conf.eth0.accept_local=0: GUE packets sourced from this node's own address are dropped",
			Fix:     "sysctl -w net.ipv4.conf.eth0.accept_local=1"},
	}, {
		name: "fixed on the interface", fixture: "ixgbe",
		spec:   Spec{Interface: "eth0", LocalGUE: true},
		mutate: func(f *fixture) { f.set("/proc/sys/net/ipv4/conf/eth0/accept_local", "1\n") },
		want: Result{ID: "accept-local", Name: name, Status: Pass,
			Finding: "net.ipv4.conf.all.accept_local=0, net.ipv4.conf.eth0.accept_local=1"},
	}, {
		name: "fixed on all", fixture: "veth",
		spec: Spec{Interface: "veth0", LocalGUE: true},
		want: Result{ID: "accept-local", Name: name, Status: Pass,
			Finding: "net.ipv4.conf.all.accept_local=1, net.ipv4.conf.veth0.accept_local=0"},
	}, {
		name: "no local GUE path", fixture: "ixgbe", spec: Spec{Interface: "eth0"},
		want: Result{ID: "accept-local", Name: name, Status: Skip,
			Finding: "no local GUE path configured (net.ipv4.conf.all.accept_local=0, net.ipv4.conf.eth0.accept_local=0)"},
	}})
}

func TestRPFilter(t *testing.T) {
	name := "rp_filter on the uplink"
	fix := "sysctl -w net.ipv4.conf.all.rp_filter=2 net.ipv4.conf.eth0.rp_filter=2"
	runCases(t, checkRPFilter, []checkCase{{
		name: "strict with local GUE", fixture: "ixgbe", spec: Spec{Interface: "eth0", LocalGUE: true},
		want: Result{ID: "rp-filter", Name: name, Status: Warn,
			Finding: "net.ipv4.conf.all.rp_filter=1, net.ipv4.conf.eth0.rp_filter=1 (effective 1): strict mode drops decapsulated packets from clients routed via another interface, " +
				"and local GUE packets whose source address is not on eth0",
			Fix: fix},
	}, {
		name: "strict via all only", fixture: "ixgbe", spec: Spec{Interface: "eth0"},
		mutate: func(f *fixture) { f.set("/proc/sys/net/ipv4/conf/eth0/rp_filter", "0\n") },
		want: Result{ID: "rp-filter", Name: name, Status: Warn,
			Finding: "net.ipv4.conf.all.rp_filter=1, net.ipv4.conf.eth0.rp_filter=0 (effective 1): strict mode drops decapsulated packets from clients routed via another interface",
			Fix:     fix},
	}, {
		name: "loose", fixture: "virtio", spec: Spec{Interface: "eth0", LocalGUE: true},
		want: Result{ID: "rp-filter", Name: name, Status: Pass,
			Finding: "net.ipv4.conf.all.rp_filter=2, net.ipv4.conf.eth0.rp_filter=2 (effective 2)"},
	}, {
		name: "off", fixture: "i40e", spec: Spec{Interface: "eth0", LocalGUE: true},
		want: Result{ID: "rp-filter", Name: name, Status: Pass,
			Finding: "net.ipv4.conf.all.rp_filter=0, net.ipv4.conf.eth0.rp_filter=0 (effective 0)"},
	}})
}

func TestRxVLAN(t *testing.T) {
	name := "rx-vlan-offload on the XDP interface"
	runCases(t, checkRxVLAN, []checkCase{{
		name: "field note 6: ixgbe strips tags", fixture: "ixgbe", spec: Spec{Interface: "eth0"},
		want: Result{ID: "rx-vlan", Name: name, Status: Warn,
			Finding: "eth0: rx-vlan-offload: on: the NIC strips 802.1Q tags before XDP sees them",
			Fix:     "ethtool -K eth0 rxvlan off"},
	}, {
		name: "fixed", fixture: "ixgbe", spec: Spec{Interface: "eth0"},
		mutate: func(f *fixture) {
			e := f.eth["eth0"]
			e.RxVLAN = new(bool)
			f.eth["eth0"] = e
		},
		want: Result{ID: "rx-vlan", Name: name, Status: Pass, Finding: "eth0: rx-vlan-offload: off"},
	}, {
		name: "virtio has it off, fixed", fixture: "virtio", spec: Spec{Interface: "eth0"},
		want: Result{ID: "rx-vlan", Name: name, Status: Pass, Finding: "eth0: rx-vlan-offload: off"},
	}, {
		name: "veth strips tags", fixture: "veth", spec: Spec{Interface: "veth0"},
		want: Result{ID: "rx-vlan", Name: name, Status: Warn,
			Finding: "veth0: rx-vlan-offload: on: the NIC strips 802.1Q tags before XDP sees them",
			Fix:     "ethtool -K veth0 rxvlan off"},
	}, {
		name: "driver without the feature", fixture: "virtio", spec: Spec{Interface: "eth0"},
		mutate: func(f *fixture) {
			e := f.eth["eth0"]
			e.RxVLAN = nil
			f.eth["eth0"] = e
		},
		want: Result{ID: "rx-vlan", Name: name, Status: Pass, Finding: "eth0: driver has no rx-vlan-offload (tags reach XDP)"},
	}, {
		name: "no interface", fixture: "virtio",
		want: Result{ID: "rx-vlan", Name: name, Status: Skip, Finding: "no interface configured"},
	}})
}

func TestIxgbe(t *testing.T) {
	name := "ixgbe XDP Tx queues (kernel < 4.20)"
	spec := Spec{Interface: "eth0"}
	channels := func(n int) func(*fixture) {
		return func(f *fixture) {
			e := f.eth["eth0"]
			e.Channels.Combined = n
			f.eth["eth0"] = e
		}
	}
	runCases(t, checkIxgbe, []checkCase{{
		name: "field note 1: 56 CPUs + 28 combined on 4.19", fixture: "ixgbe", spec: spec,
		want: Result{ID: "ixgbe-tx-queues", Name: name, Status: Fail,
			Finding: "eth0: ixgbe on kernel " + el7 + ": 28 combined + 56 CPUs = 84 > 64 (MAX_TX_QUEUES): XDP Tx hang; safe combined = 64 - 56 = 8 (or generic XDP, or kernel >= 4.20)",
			Fix:     "ethtool -L eth0 combined 8"},
	}, {
		name: "the same on 5.10", fixture: "ixgbe", spec: spec,
		mutate: func(f *fixture) { f.release = "5.10.0-23-amd64" },
		want: Result{ID: "ixgbe-tx-queues", Name: name, Status: Pass,
			Finding: "eth0: ixgbe on kernel 5.10.0-23-amd64, which has the fix (8d7179b1e2d6, 4.20)"},
	}, {
		name: "4.19 with the safe channel count", fixture: "ixgbe", spec: spec, mutate: channels(8),
		want: Result{ID: "ixgbe-tx-queues", Name: name, Status: Pass,
			Finding: "eth0: ixgbe on kernel " + el7 + ": 8 combined + 56 CPUs = 64 <= 64 (MAX_TX_QUEUES)"},
	}, {
		name: "4.19 one channel too many", fixture: "ixgbe", spec: spec, mutate: channels(9),
		want: Result{ID: "ixgbe-tx-queues", Name: name, Status: Fail,
			Finding: "eth0: ixgbe on kernel " + el7 + ": 9 combined + 56 CPUs = 65 > 64 (MAX_TX_QUEUES): XDP Tx hang; safe combined = 64 - 56 = 8 (or generic XDP, or kernel >= 4.20)",
			Fix:     "ethtool -L eth0 combined 8"},
	}, {
		name: "64 CPUs: no safe channel count", fixture: "ixgbe", spec: spec,
		mutate: func(f *fixture) {
			f.set("/sys/devices/system/cpu/possible", "0-63\n")
			channels(1)(f)
		},
		want: Result{ID: "ixgbe-tx-queues", Name: name, Status: Fail,
			Finding: "eth0: ixgbe on kernel " + el7 + ": 64 CPUs leave no combined channel under 64 (MAX_TX_QUEUES): native XDP is unsafe at any channel count",
			Fix:     `set attach_mode = "generic" (or "auto"), or upgrade to a kernel >= 4.20`},
	}, {
		name: "possible CPUs missing: online counts", fixture: "ixgbe", spec: spec,
		mutate: func(f *fixture) {
			f.remove("/sys/devices/system/cpu/possible")
			f.set("/sys/devices/system/cpu/online", "0-27,32-47\n")
		},
		want: Result{ID: "ixgbe-tx-queues", Name: name, Status: Fail,
			Finding: "eth0: ixgbe on kernel " + el7 + ": 28 combined + 44 CPUs = 72 > 64 (MAX_TX_QUEUES): XDP Tx hang; safe combined = 64 - 44 = 20 (or generic XDP, or kernel >= 4.20)",
			Fix:     "ethtool -L eth0 combined 20"},
	}, {
		name: "virtio", fixture: "virtio", spec: spec,
		want: Result{ID: "ixgbe-tx-queues", Name: name, Status: Skip, Finding: "eth0: driver virtio_net, not ixgbe"},
	}, {
		name: "unknown interface", fixture: "virtio", spec: Spec{Interface: "eth9"},
		want: Result{ID: "ixgbe-tx-queues", Name: name, Status: Warn, Finding: "reading driver of eth9: ethtool on eth9: no such device"},
	}})
}

func TestSafeAttachMode(t *testing.T) {
	for _, tc := range []struct {
		name, fixture, release, mtu string
		wantGeneric                 bool
	}{
		{"ixgbe on 4.19 with 28 combined", "ixgbe", el7, "1500", true},
		{"ixgbe on 5.10", "ixgbe", "5.10.0-23-amd64", "1500", false},
		{"i40e 2.3.2-k on X722", "i40e", el7, "1500", true},
		{"virtio", "virtio", "6.1.0-27-cloud-amd64", "1500", false},
		{"virtio at mtu 9000", "virtio", "6.1.0-27-cloud-amd64", "9000", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := loadFixture(t, tc.fixture)
			f.release = tc.release
			f.set("/sys/class/net/eth0/mtu", tc.mtu+"\n")
			r := Run(context.Background(), f, Spec{Interface: "eth0", AttachMode: dataplane.AttachAuto})
			generic, reason := SafeAttachMode(r)
			if generic != tc.wantGeneric {
				t.Errorf("SafeAttachMode = %t (%s), want %t", generic, reason, tc.wantGeneric)
			}
			if reason == "" {
				t.Error("SafeAttachMode gave no reason")
			}
		})
	}
}
