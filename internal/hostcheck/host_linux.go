package hostcheck

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"unsafe"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// System returns the Host of the running machine. Network state (sysctls
// under /proc/sys/net, ethtool, netlink, sockets) is read in the network
// namespace of the calling thread, so a caller inside a namespace's Do sees
// that namespace; /sys/class/net follows the namespace sysfs was mounted in,
// which is why MTUs come from netlink.
func System() Host {
	return systemHost{http: &http.Client{
		// Peers are reached directly, never through an HTTP_PROXY from
		// the environment; no idle connections are kept.
		Transport: &http.Transport{Proxy: nil, DisableKeepAlives: true},
	}}
}

type systemHost struct {
	http *http.Client
}

func (systemHost) ReadFile(name string) ([]byte, error)  { return os.ReadFile(name) }
func (systemHost) Stat(name string) (fs.FileInfo, error) { return os.Stat(name) }
func (systemHost) Glob(pattern string) ([]string, error) { return filepath.Glob(pattern) }

func (systemHost) KernelRelease() (string, error) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		return "", fmt.Errorf("calling uname: %w", err)
	}
	return unix.ByteSliceToString(u.Release[:]), nil
}

// ifreqData is struct ifreq with its union holding a pointer (ifr_data), as
// SIOCETHTOOL expects.
type ifreqData struct {
	name [unix.IFNAMSIZ]byte
	data unsafe.Pointer
	_    [16]byte // rest of the 24-byte union
}

// ethtool issues one SIOCETHTOOL command; data must start with the u32 cmd.
func ethtool(iface string, data unsafe.Pointer) error {
	if len(iface) >= unix.IFNAMSIZ {
		return fmt.Errorf("interface name %q too long", iface)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	var ifr ifreqData
	copy(ifr.name[:], iface)
	ifr.data = data
	_, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr)))
	runtime.KeepAlive(data)
	if errno != 0 {
		if errno == unix.EOPNOTSUPP {
			return fmt.Errorf("ethtool on %s: %w (%v)", iface, ErrUnsupported, errno)
		}
		return fmt.Errorf("ethtool on %s: %w", iface, errno)
	}
	return nil
}

func (systemHost) DriverInfo(iface string) (DriverInfo, error) {
	v := unix.EthtoolDrvinfo{Cmd: unix.ETHTOOL_GDRVINFO}
	if err := ethtool(iface, unsafe.Pointer(&v)); err != nil {
		return DriverInfo{}, err
	}
	return DriverInfo{
		Driver:   unix.ByteSliceToString(v.Driver[:]),
		Version:  unix.ByteSliceToString(v.Version[:]),
		Firmware: unix.ByteSliceToString(v.Fw_version[:]),
		BusInfo:  unix.ByteSliceToString(v.Bus_info[:]),
	}, nil
}

// ethtoolChannels is struct ethtool_channels.
type ethtoolChannels struct {
	cmd                                         uint32
	maxRX, maxTX, maxOther, maxCombined         uint32
	rxCount, txCount, otherCount, combinedCount uint32
}

func (systemHost) Channels(iface string) (Channels, error) {
	v := ethtoolChannels{cmd: unix.ETHTOOL_GCHANNELS}
	if err := ethtool(iface, unsafe.Pointer(&v)); err != nil {
		return Channels{}, err
	}
	return Channels{
		Combined:    int(v.combinedCount),
		MaxCombined: int(v.maxCombined),
		RX:          int(v.rxCount),
		TX:          int(v.txCount),
	}, nil
}

// ethFlagRxVLAN is ETH_FLAG_RXVLAN (linux/ethtool.h): the legacy
// ETHTOOL_GFLAGS bit the kernel derives from NETIF_F_HW_VLAN_CTAG_RX.
const ethFlagRxVLAN = 1 << 8

func (systemHost) RxVLANOffload(iface string) (bool, error) {
	v := struct{ cmd, data uint32 }{cmd: unix.ETHTOOL_GFLAGS}
	if err := ethtool(iface, unsafe.Pointer(&v)); err != nil {
		return false, err
	}
	return v.data&ethFlagRxVLAN != 0, nil
}

func (systemHost) MTU(iface string) (int, error) {
	l, err := netlink.LinkByName(iface)
	if err != nil {
		return 0, fmt.Errorf("looking up link %s: %w", iface, err)
	}
	return l.Attrs().MTU, nil
}

func (systemHost) Routes(v6 bool) ([]netip.Prefix, error) {
	family := netlink.FAMILY_V4
	if v6 {
		family = netlink.FAMILY_V6
	}
	rs, err := netlink.RouteList(nil, family)
	if err != nil {
		return nil, fmt.Errorf("listing routes: %w", err)
	}
	var out []netip.Prefix
	for _, r := range rs {
		if r.Type != unix.RTN_UNICAST {
			continue // unreachable, blackhole, prohibit: no way back
		}
		if r.Dst == nil {
			out = append(out, netip.PrefixFrom(zeroAddr(v6), 0))
			continue
		}
		a, ok := netip.AddrFromSlice(r.Dst.IP)
		if !ok {
			continue
		}
		if !v6 {
			a = a.Unmap()
		}
		ones, _ := r.Dst.Mask.Size()
		out = append(out, netip.PrefixFrom(a, ones))
	}
	return out, nil
}

func zeroAddr(v6 bool) netip.Addr {
	if v6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

func (systemHost) ProbeBPF(f BPFFeature) error {
	var err error
	switch f {
	case FeatureXDP:
		err = features.HaveProgramType(ebpf.XDP)
	case FeatureSkcLookupTCP:
		err = features.HaveProgramHelper(ebpf.XDP, asm.FnSkcLookupTcp)
	case FeatureFibLookup:
		err = features.HaveProgramHelper(ebpf.XDP, asm.FnFibLookup)
	default:
		return fmt.Errorf("probing %s: unknown feature", f)
	}
	if errors.Is(err, ebpf.ErrNotSupported) {
		return fmt.Errorf("probing %s: %w (%v)", f, ErrUnsupported, err)
	}
	if err != nil {
		return fmt.Errorf("probing %s: %w", f, err)
	}
	return nil
}

func (systemHost) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, address)
}

func (systemHost) Listen(ctx context.Context, network, address string) (net.Listener, error) {
	var lc net.ListenConfig
	return lc.Listen(ctx, network, address)
}

func (s systemHost) HTTPGet(ctx context.Context, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, fmt.Errorf("building request: %w", err)
	}
	resp, err := s.http.Do(req)
	if err != nil {
		return 0, err
	}
	resp.Body.Close()
	return resp.StatusCode, nil
}
