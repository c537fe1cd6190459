package hostcheck

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"net/netip"
)

// Host is everything the checks read from the machine. System returns the
// real one; tests use a fixture tree or a network namespace.
//
// Paths are absolute host paths ("/proc/sys/net/ipv4/ip_forward"); a
// fixture maps them under its own root.
type Host interface {
	// ReadFile reads a file such as /proc/sys/... or /sys/....
	ReadFile(name string) ([]byte, error)
	// Stat reports on a file such as /sys/kernel/btf/vmlinux.
	Stat(name string) (fs.FileInfo, error)
	// Glob lists files matching a filepath.Match pattern.
	Glob(pattern string) ([]string, error)
	// KernelRelease is `uname -r`.
	KernelRelease() (string, error)
	// DriverInfo is ETHTOOL_GDRVINFO for iface.
	DriverInfo(iface string) (DriverInfo, error)
	// Channels is ETHTOOL_GCHANNELS for iface.
	Channels(iface string) (Channels, error)
	// RxVLANOffload reports whether iface strips VLAN tags in hardware
	// (ethtool's rx-vlan-offload, legacy flag ETH_FLAG_RXVLAN).
	RxVLANOffload(iface string) (bool, error)
	// MTU is iface's MTU (netlink).
	MTU(iface string) (int, error)
	// Routes lists the unicast routes of the main table for one family.
	Routes(v6 bool) ([]netip.Prefix, error)
	// ProbeBPF reports whether the kernel supports a BPF feature the XDP
	// program needs; ErrUnsupported when it does not.
	ProbeBPF(f BPFFeature) error
	// Dial connects to a socket, e.g. BIRD's control socket.
	Dial(ctx context.Context, network, address string) (net.Conn, error)
	// Listen opens a listener, to tell whether a port is free.
	Listen(ctx context.Context, network, address string) (net.Listener, error)
	// HTTPGet fetches url and returns the HTTP status code.
	HTTPGet(ctx context.Context, url string) (int, error)
}

// DriverInfo is what `ethtool -i` shows.
type DriverInfo struct {
	Driver   string `json:"driver"`
	Version  string `json:"version"`
	Firmware string `json:"firmware"`
	BusInfo  string `json:"bus_info"`
}

// Channels is what `ethtool -l` shows (current and maximum).
type Channels struct {
	Combined    int `json:"combined"`
	MaxCombined int `json:"max_combined"`
	RX          int `json:"rx"`
	TX          int `json:"tx"`
}

// BPFFeature is a kernel feature the XDP program needs.
type BPFFeature string

// The features probed by the bpf-features check.
const (
	FeatureXDP          BPFFeature = "xdp"            // XDP program type
	FeatureSkcLookupTCP BPFFeature = "skc_lookup_tcp" // bpf_skc_lookup_tcp from XDP
	FeatureFibLookup    BPFFeature = "fib_lookup"     // bpf_fib_lookup from XDP
)

// BPFFeatures lists the probed features in order.
var BPFFeatures = []BPFFeature{FeatureXDP, FeatureSkcLookupTCP, FeatureFibLookup}

// ErrUnsupported is returned by Host methods for a feature or ioctl the
// kernel or driver does not support.
var ErrUnsupported = errors.New("not supported")
