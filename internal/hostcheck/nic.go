package hostcheck

import (
	"context"
	"errors"
	"fmt"
	"path"
	"strconv"
	"strings"
)

// checkRxVLAN reports hardware VLAN stripping on the XDP interface
// (docs/field-notes.md, note 6): with rx-vlan-offload on, the NIC removes the 802.1Q tag
// before XDP runs, so the program never sees the VLAN id and frames it
// sends back with XDP_TX leave untagged.
func checkRxVLAN(_ context.Context, h Host, s Spec) Result {
	r := Result{ID: "rx-vlan", Name: "rx-vlan-offload on the XDP interface"}
	if s.Interface == "" {
		r.Status, r.Finding = Skip, "no interface configured"
		return r
	}
	on, err := h.RxVLANOffload(s.Interface)
	switch {
	case errors.Is(err, ErrUnsupported):
		r.Status, r.Finding = Pass, fmt.Sprintf("%s: driver has no rx-vlan-offload (tags reach XDP)", s.Interface)
	case err != nil:
		r.Status, r.Finding = Warn, fmt.Sprintf("reading ethtool features of %s: %v", s.Interface, err)
	case on:
		r.Status = Warn
		r.Finding = fmt.Sprintf("%s: rx-vlan-offload: on: the NIC strips 802.1Q tags before XDP sees them", s.Interface)
		r.Fix = fmt.Sprintf("ethtool -K %s rxvlan off", s.Interface)
	default:
		r.Status, r.Finding = Pass, fmt.Sprintf("%s: rx-vlan-offload: off", s.Interface)
	}
	return r
}

// kernelVersion parses the major and minor numbers of a kernel release such
// as "4.19.12-1.el7.elrepo.x86_64".
func kernelVersion(release string) (major, minor int, err error) {
	f := strings.FieldsFunc(release, func(r rune) bool { return r == '.' || r == '-' })
	if len(f) < 2 {
		return 0, 0, fmt.Errorf("parsing kernel release %q: too short", release)
	}
	if major, err = strconv.Atoi(f[0]); err != nil {
		return 0, 0, fmt.Errorf("parsing kernel release %q: %w", release, err)
	}
	if minor, err = strconv.Atoi(f[1]); err != nil {
		return 0, 0, fmt.Errorf("parsing kernel release %q: %w", release, err)
	}
	return major, minor, nil
}

func kernelBefore(release string, major, minor int) (bool, error) {
	ma, mi, err := kernelVersion(release)
	if err != nil {
		return false, err
	}
	return ma < major || (ma == major && mi < minor), nil
}

// countCPUs counts the CPUs in a sysfs CPU list such as "0-27,32,40-47".
func countCPUs(list string) (int, error) {
	n := 0
	for _, part := range strings.Split(strings.TrimSpace(list), ",") {
		lo, hi, isRange := strings.Cut(part, "-")
		a, err := strconv.Atoi(lo)
		if err != nil {
			return 0, fmt.Errorf("parsing cpu list %q: %w", list, err)
		}
		b := a
		if isRange {
			if b, err = strconv.Atoi(hi); err != nil || b < a {
				return 0, fmt.Errorf("parsing cpu list %q: bad range %q", list, part)
			}
		}
		n += b - a + 1
	}
	return n, nil
}

// ixgbeMaxTxQueues is MAX_TX_QUEUES in drivers/net/ethernet/intel/ixgbe/ixgbe.h:
// regular Tx queues plus the XDP Tx queues must fit in it.
const ixgbeMaxTxQueues = 64

// checkIxgbe flags the ixgbe "Detected Tx Unit Hang (XDP)" reset loop
// (docs/field-notes.md, note 1). With an XDP program the driver adds one XDP Tx queue per
// CPU (nr_cpu_ids); before Linux 4.20 (fix: upstream commit 8d7179b1e2d6,
// 4.20-rc1) it did not cap combined + nr_cpu_ids at MAX_TX_QUEUES = 64, and
// packets received on a high core hang the ring. The CPU count is
// /sys/devices/system/cpu/possible (what nr_cpu_ids counts), falling back to
// .../online.
func checkIxgbe(_ context.Context, h Host, s Spec) Result {
	r := Result{ID: IDIxgbe, Name: "ixgbe XDP Tx queues (kernel < 4.20)"}
	_, ok := onlyDriver(h, s, "ixgbe", &r)
	if !ok {
		return r
	}
	rel, err := h.KernelRelease()
	if err == nil {
		var old bool
		if old, err = kernelBefore(rel, 4, 20); err == nil && !old {
			r.Status, r.Finding = Pass, fmt.Sprintf("%s: ixgbe on kernel %s, which has the fix (8d7179b1e2d6, 4.20)", s.Interface, rel)
			return r
		}
	}
	if err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("reading kernel release: %v", err)
		return r
	}
	ncpu, err := cpuCount(h)
	if err != nil {
		r.Status, r.Finding = Warn, err.Error()
		return r
	}
	ch, err := h.Channels(s.Interface)
	if err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("reading channels of %s: %v", s.Interface, err)
		return r
	}
	sum := ch.Combined + ncpu
	if sum <= ixgbeMaxTxQueues {
		r.Status = Pass
		r.Finding = fmt.Sprintf("%s: ixgbe on kernel %s: %d combined + %d CPUs = %d <= %d (MAX_TX_QUEUES)",
			s.Interface, rel, ch.Combined, ncpu, sum, ixgbeMaxTxQueues)
		return r
	}
	r.Status = Fail
	safe := ixgbeMaxTxQueues - ncpu
	if safe >= 1 {
		r.Finding = fmt.Sprintf("%s: ixgbe on kernel %s: %d combined + %d CPUs = %d > %d (MAX_TX_QUEUES): XDP Tx hang; "+
			"safe combined = %d - %d = %d (or generic XDP, or kernel >= 4.20)",
			s.Interface, rel, ch.Combined, ncpu, sum, ixgbeMaxTxQueues, ixgbeMaxTxQueues, ncpu, safe)
		r.Fix = fmt.Sprintf("ethtool -L %s combined %d", s.Interface, safe)
		return r
	}
	r.Finding = fmt.Sprintf("%s: ixgbe on kernel %s: %d CPUs leave no combined channel under %d (MAX_TX_QUEUES): native XDP is unsafe at any channel count",
		s.Interface, rel, ncpu, ixgbeMaxTxQueues)
	r.Fix = `set attach_mode = "generic" (or "auto"), or upgrade to a kernel >= 4.20`
	return r
}

func cpuCount(h Host) (int, error) {
	var firstErr error
	for _, f := range []string{"/sys/devices/system/cpu/possible", "/sys/devices/system/cpu/online"} {
		b, err := h.ReadFile(f)
		if err == nil {
			var n int
			if n, err = countCPUs(string(b)); err == nil {
				return n, nil
			}
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("reading cpu count: %w", err)
		}
	}
	return 0, firstErr
}

// x722DeviceIDs are the PCI device ids of the Intel X722 (I40E_DEV_ID_*_X722
// in drivers/net/ethernet/intel/i40e/i40e_devids.h; QSFP_I_X722 from Intel's
// shared i40e base code).
var x722DeviceIDs = map[string]string{
	"0x37ce": "KX_X722",
	"0x37cf": "QSFP_X722",
	"0x37d0": "SFP_X722",
	"0x37d1": "1G_BASE_T_X722",
	"0x37d2": "10G_BASE_T_X722",
	"0x37d3": "SFP_I_X722",
	"0x37d4": "QSFP_I_X722",
	"0x0dda": "SFP_X722_A",
}

// i40eXDPCrash are i40e driver versions that oops in i40e_xdp when XDP is
// loaded on an X722 (docs/field-notes.md, note 2: "failed to get tracking for 256 queues
// for VSI 0 err -12", then a NULL dereference from dev_change_xdp_fd). The
// field notes name the in-tree 2.3.2-k (CentOS 7 / 4.19 hosts); fixed
// upstream in 92947844b8be and in Intel's out-of-tree driver.
var i40eXDPCrash = map[string]bool{"2.3.2-k": true}

// i40eRxStuck are i40e versions known to report RX counters stuck at 0
// (fixed upstream in cdec2141c24e, missing from some vendor drivers). The
// field notes name no version, so this lists only the in-tree 2.3.2-k of
// the incident hosts, which predates the fix; extend it as reports come in.
var i40eRxStuck = map[string]bool{"2.3.2-k": true}

// checkI40eXDP flags i40e driver versions known to crash on XDP load on an
// X722, and those whose RX counters stick (docs/field-notes.md, note 2).
func checkI40eXDP(_ context.Context, h Host, s Spec) Result {
	r := Result{ID: IDI40eXDP, Name: "i40e/X722 driver version"}
	di, ok := onlyDriver(h, s, "i40e", &r)
	if !ok {
		return r
	}
	dev := "unknown device"
	b, err := h.ReadFile("/sys/class/net/" + s.Interface + "/device/device")
	id := strings.ToLower(strings.TrimSpace(string(b)))
	model, x722 := x722DeviceIDs[id]
	if err == nil {
		dev = "device " + id
		if x722 {
			dev = fmt.Sprintf("X722 (%s %s)", model, id)
		}
	}
	observed := fmt.Sprintf("%s: i40e %s, firmware %s, %s", s.Interface, di.Version, di.Firmware, dev)
	switch {
	case x722 && i40eXDPCrash[di.Version]:
		r.Status = Fail
		r.Finding = observed + ": this driver oopses in i40e_xdp when XDP is loaded (fixed upstream 92947844b8be)"
		r.Fix = `install Intel's out-of-tree i40e (see the i40e-depmod check) or a kernel with 92947844b8be; until then attach_mode = "generic"`
	case err != nil && i40eXDPCrash[di.Version]:
		r.Status = Warn
		r.Finding = observed + fmt.Sprintf(": cannot tell whether it is an X722 (%v); %s crashes on XDP load on X722", err, di.Version)
		r.Fix = "lspci -nn -s " + di.BusInfo
	case i40eRxStuck[di.Version]:
		r.Status = Warn
		r.Finding = observed + ": RX counters of this version may stay at 0 (fixed upstream cdec2141c24e)"
		r.Fix = "install Intel's out-of-tree i40e or a kernel with cdec2141c24e"
	default:
		r.Status, r.Finding = Pass, observed
	}
	return r
}

// checkI40eDepmod verifies that an out-of-tree i40e (under
// /lib/modules/RELEASE/updates or weak-updates) wins over the in-tree one
// after a kernel upgrade: the driver package's depmod ran against the old
// kernel, so without an /etc/depmod.d override the next boot loads the
// in-tree driver and a second reboot is needed (docs/field-notes.md, note 2).
func checkI40eDepmod(_ context.Context, h Host, s Spec) Result {
	r := Result{ID: "i40e-depmod", Name: "depmod override for out-of-tree i40e"}
	rel, err := h.KernelRelease()
	if err != nil {
		r.Status, r.Finding = Warn, fmt.Sprintf("reading kernel release: %v", err)
		return r
	}
	var mods []string
	for _, dir := range []string{"updates", "weak-updates"} {
		for _, pat := range []string{"i40e.ko*", "i40e/i40e.ko*", "drivers/net/ethernet/intel/i40e/i40e.ko*"} {
			m, _ := h.Glob(path.Join("/lib/modules", rel, dir, pat))
			mods = append(mods, m...)
		}
	}
	if len(mods) == 0 {
		r.Status, r.Finding = Skip, "no out-of-tree i40e under /lib/modules/"+rel+"/{updates,weak-updates}"
		return r
	}
	confs, _ := h.Glob("/etc/depmod.d/*.conf")
	for _, c := range confs {
		b, err := h.ReadFile(c)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[0] == "override" && f[1] == "i40e" && strings.Contains(f[3], "updates") {
				r.Status = Pass
				r.Finding = fmt.Sprintf("out-of-tree %s; %s: %s", mods[0], c, strings.Join(f, " "))
				return r
			}
		}
	}
	r.Status = Warn
	r.Finding = fmt.Sprintf("out-of-tree %s but no `override i40e` in /etc/depmod.d: after a kernel upgrade the in-tree i40e loads until a second reboot", mods[0])
	if di, err := h.DriverInfo(s.Interface); s.Interface != "" && err == nil && di.Driver == "i40e" && strings.HasSuffix(di.Version, "-k") {
		// In-tree versions end in "-k": the reboot already happened once.
		r.Finding += fmt.Sprintf(" (%s runs the in-tree i40e %s now)", s.Interface, di.Version)
	}
	r.Fix = "echo 'override i40e * weak-updates/i40e' > /etc/depmod.d/i40e.conf && depmod -a"
	return r
}

// onlyDriver reads the uplink's driver info for a check about one driver;
// false (with r filled in) when there is no interface, the info cannot be
// read, or the uplink runs another driver.
func onlyDriver(h Host, s Spec, driver string, r *Result) (DriverInfo, bool) {
	if s.Interface == "" {
		r.Status, r.Finding = Skip, "no interface configured"
		return DriverInfo{}, false
	}
	di, err := h.DriverInfo(s.Interface)
	if err != nil {
		r.Status, r.Finding = driverInfoErr(s.Interface, err)
		return DriverInfo{}, false
	}
	if di.Driver != driver {
		r.Status, r.Finding = Skip, fmt.Sprintf("%s: driver %s, not %s", s.Interface, di.Driver, driver)
		return DriverInfo{}, false
	}
	return di, true
}

// driverInfoErr turns a failed ETHTOOL_GDRVINFO into a result: a device
// without driver info (lo, some virtual devices) is not an Intel NIC.
func driverInfoErr(iface string, err error) (Status, string) {
	if errors.Is(err, ErrUnsupported) {
		return Skip, fmt.Sprintf("%s: no ethtool driver info (%v)", iface, err)
	}
	return Warn, fmt.Sprintf("reading driver of %s: %v", iface, err)
}
