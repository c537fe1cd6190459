//go:build linux

package dataplane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/rlimit"
	"github.com/hashicorp/go-hclog"
	"golang.org/x/sys/unix"
)

// pinnedMaps are the maps that outlive vipd: an upgrade restart adopts them
// (and the link that keeps the program attached) instead of flushing them.
var pinnedMaps = []string{"vips4", "vips6", "tables", "backends", "vip_addrs", "members4", "members6", "directors", "config",
	"vip_filter", "stats", "vip_stats"}

// linkPin is the name of the pinned XDP link inside Options.PinPath.
const linkPin = "link"

// Dataplane is the node's XDP program and its maps. It implements
// vip.Dataplane. All methods are safe for concurrent use.
type Dataplane struct {
	log  hclog.Logger
	opts Options

	mu           sync.Mutex // guards everything below
	closed       bool
	objs         vipdObjects
	link         link.Link
	innerSpec    *ebpf.MapSpec
	statNames    []string // index = enum stat value
	addrs        map[netip.Addr]*addrState
	vipIdx       ids // per-VIP counter indexes
	nkeys        int // `vips` entries
	tables       map[string]*tableState
	tableByID    map[uint32]*tableState
	tableIDs     ids // slots of `tables`
	slots        backendSlots
	vf           *vipFilter
	trust        Trust
	warnedTrust  bool
	rowKeys      []uint32          // 0..TableRows/2-1: the pairs of a table, for adoption's reads
	rowVals      []vipdRowPair     // reused by adoption's table reads
	rowBuf       []byte            // TableRows*rowSize, reused by every table fill
	zeroCounters []vipdVipCounters // one per possible CPU, all zero
	fibIf        int               // the device bpf_fib_lookup looks up from: lo
}

// Open loads the XDP program, opens (or adopts) the pinned maps under
// opts.PinPath and attaches the program to opts.Interface, or, if a pinned
// link from a previous vipd exists, atomically replaces the program on that
// link: forwarding never stops and no map is flushed. Open must run in the
// network namespace of the interface.
func Open(log hclog.Logger, opts Options) (*Dataplane, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if err := opts.validate(); err != nil {
		return nil, fmt.Errorf("validating dataplane options: %w", err)
	}
	if err := rlimit.RemoveMemlock(); err != nil {
		return nil, fmt.Errorf("removing memlock rlimit: %w", err)
	}
	iface, err := net.InterfaceByName(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("finding interface %s: %w", opts.Interface, err)
	}
	spec, err := loadVipd()
	if err != nil {
		return nil, fmt.Errorf("reading bpf object: %w", err)
	}
	for _, name := range pinnedMaps {
		ms, ok := spec.Maps[name]
		if !ok {
			return nil, fmt.Errorf("bpf object has no map %q", name)
		}
		ms.Pinning = ebpf.PinByName
	}
	// Tables are filled through mmap (swapTableLocked). The flag is set on
	// the inner template here, so the outer map only accepts mmapable
	// tables; the program's lookups are the same either way.
	spec.Maps["tables"].InnerMap.Flags |= unix.BPF_F_MMAPABLE
	names, err := statNames(spec)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.PinPath, 0o700); err != nil {
		return nil, fmt.Errorf("creating pin path: %w", err)
	}
	var fs unix.Statfs_t
	if err := unix.Statfs(opts.PinPath, &fs); err != nil {
		return nil, fmt.Errorf("checking pin path: %w", err)
	}
	if fs.Type != unix.BPF_FS_MAGIC {
		return nil, fmt.Errorf("pin path %s: %w (mount one: mount -t bpf bpf /sys/fs/bpf)", opts.PinPath, ErrNotBPFFS)
	}
	ncpu, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("counting cpus: %w", err)
	}
	d := &Dataplane{
		log:          log.With("iface", opts.Interface),
		opts:         opts,
		innerSpec:    spec.Maps["tables"].InnerMap.Copy(),
		statNames:    names,
		addrs:        map[netip.Addr]*addrState{},
		vipIdx:       newIDs(int(spec.Maps["vip_stats"].MaxEntries)),
		tables:       map[string]*tableState{},
		tableByID:    map[uint32]*tableState{},
		tableIDs:     newIDs(int(spec.Maps["tables"].MaxEntries)),
		vf:           &vipFilter{},
		slots:        newBackendSlots(int(spec.Maps["backends"].MaxEntries)),
		rowKeys:      make([]uint32, TableRows/2),
		rowVals:      make([]vipdRowPair, TableRows/2),
		rowBuf:       make([]byte, TableRows*rowSize),
		zeroCounters: make([]vipdVipCounters, ncpu),
	}
	for i := range d.rowKeys {
		d.rowKeys[i] = uint32(i)
	}
	// Without BTF types NewMap does not load a BTF blob into the kernel
	// for every table: a table update is then one map creation, one mmap
	// and one outer update.
	d.innerSpec.Key, d.innerSpec.Value = nil, nil
	err = spec.LoadAndAssign(&d.objs, &ebpf.CollectionOptions{
		Maps: ebpf.MapOptions{PinPath: opts.PinPath},
	})
	if errors.Is(err, ebpf.ErrMapIncompatible) {
		// Not migrated: a layout change (like issue 11's 16-bit table
		// rows, shared tables and per-VIP counters) changes what the
		// running program reads. Replacing the pins flushes forwarding,
		// so it is the operator's step: drain the node, uninstall, start.
		return nil, fmt.Errorf("loading bpf objects: pinned maps in %s are from an incompatible dataplane layout; "+
			"drain the node, then uninstall (remove the pins, which detaches the program) and start again: %w", opts.PinPath, err)
	}
	if err != nil {
		return nil, fmt.Errorf("loading bpf objects: %w", err)
	}
	if err := d.adoptLocked(); err != nil {
		d.objs.Close()
		return nil, fmt.Errorf("adopting pinned state: %w", err)
	}
	if d.fibIf, err = enableLookupForwarding(d.log); err != nil {
		d.objs.Close()
		return nil, err
	}
	if err := d.setTrustLocked(opts.Trust); err != nil {
		d.objs.Close()
		return nil, err
	}
	if err := d.attach(iface); err != nil {
		d.objs.Close()
		return nil, err
	}
	return d, nil
}

// attach replaces the program on the pinned link if there is one (an
// upgrade restart), else attaches and pins a new link.
func (d *Dataplane) attach(iface *net.Interface) error {
	path := filepath.Join(d.opts.PinPath, linkPin)
	l, err := link.LoadPinnedLink(path, nil)
	switch {
	case err == nil:
		info, ierr := l.Info()
		if ierr == nil && info.XDP() != nil && int(info.XDP().Ifindex) == iface.Index {
			if err := l.Update(d.objs.VipdXdp); err != nil {
				l.Close()
				return fmt.Errorf("replacing program on pinned link: %w", err)
			}
			d.link = l
			d.log.Info("adopted pinned xdp link", "state", "adopted")
			return nil
		}
		// Attached elsewhere (interface renamed, recreated, or config
		// changed): the old link is of no use.
		d.log.Warn("pinned xdp link is not on the interface, replacing it", "reason", "interface changed")
		if err := l.Unpin(); err != nil {
			l.Close()
			return fmt.Errorf("unpinning stale link: %w", err)
		}
		l.Close()
	case !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("loading pinned link: %w", err)
	}

	mode := d.opts.Attach.effective(d.opts.AutoGeneric)
	l, err = attachXDP(d.objs.VipdXdp, iface.Index, mode)
	if err != nil && d.opts.Attach == AttachAuto && mode == AttachNative {
		d.log.Warn("native xdp attach failed, using generic", "reason", err.Error())
		mode = AttachGeneric
		l, err = attachXDP(d.objs.VipdXdp, iface.Index, mode)
	}
	if err != nil {
		return fmt.Errorf("attaching xdp to %s (%s): %w", iface.Name, mode, err)
	}
	if err := l.Pin(path); err != nil {
		l.Close()
		return fmt.Errorf("pinning xdp link: %w", err)
	}
	d.link = l
	d.log.Info("attached xdp program", "mode", mode.String(), "state", "attached")
	return nil
}

func attachXDP(prog *ebpf.Program, ifindex int, mode AttachMode) (link.Link, error) {
	flags := link.XDPDriverMode
	if mode == AttachGeneric {
		flags = link.XDPGenericMode
	}
	return link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
}

// writeConfigLocked writes this node's addresses, GUE port, hash seed and
// limits, with the VIP filter flag (adoptLocked has rebuilt the filter
// already) and the trust flags of d.trust. Only the flags ever change after
// Open, and they share an aligned word that is copied whole, so a packet
// never sees a torn config.
func (d *Dataplane) writeConfigLocked() error {
	var c vipdDpConfig
	if d.opts.Local4.IsValid() {
		c.Addr4 = d.opts.Local4.As4()
	}
	if d.opts.Local6.IsValid() {
		c.Addr6 = d.opts.Local6.As16()
	}
	c.GuePort = d.opts.guePort()
	c.Flags = dpFlagVIPFilter
	if len(d.trust.Members) > 0 {
		c.Flags |= dpFlagGUETrust
	}
	if len(d.trust.Directors) > 0 {
		c.Flags |= dpFlagDirectors
	}
	// Every director must hash a flow to the same row: the seed is
	// cluster-wide, folded to the program's 32 bits.
	c.HashSeed = uint32(d.opts.Seed ^ d.opts.Seed>>32)
	c.FibIfindex = uint32(d.fibIf)
	c.IcmpRate = uint32(d.opts.ICMPRate)
	c.MaxHopsRx = uint8(d.opts.MaxHops)
	if err := d.objs.Config.Put(uint32(0), &c); err != nil {
		return fmt.Errorf("writing dataplane config: %w", err)
	}
	return nil
}

// enableLookupForwarding turns forwarding on for lo, the device the XDP
// program's bpf_fib_lookup calls look up from, and returns lo's ifindex.
// The kernel refuses a lookup unless forwarding is on for that device;
// turning it on for the uplink instead would let the kernel route VIP
// packets back out of it (the loop of docs/field-notes.md, note 3), while nothing arrives
// on lo from the network. The uplink and ip_forward stay off. Changing
// net.ipv4.ip_forward (conf.all.forwarding), or writing
// net.ipv6.conf.all.forwarding at all (even an unchanged 0, as a boot-time
// sysctl run does), resets lo as well: the program then drops VIP traffic
// and counts drop_fib_fwd_disabled until the next Open.
func enableLookupForwarding(log hclog.Logger) (int, error) {
	lo, err := net.InterfaceByName("lo")
	if err != nil {
		return 0, fmt.Errorf("finding lo: %w", err)
	}
	if _, err := restoreLookupForwarding(); err != nil {
		return 0, err
	}
	log.Info("enabled forwarding on lo for the program's fib lookups; the uplink needs none")
	return lo.Index, nil
}

// lookupForwarding are the sysctls the program's fib lookups need on.
var lookupForwarding = []string{"/proc/sys/net/ipv4/conf/lo/forwarding", "/proc/sys/net/ipv6/conf/lo/forwarding"}

// restoreLookupForwarding sets forwarding on lo where it is off, and names
// the sysctls it had to set.
func restoreLookupForwarding() ([]string, error) {
	var set []string
	for _, p := range lookupForwarding {
		cur, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) && strings.Contains(p, "ipv6") {
			continue // IPv6 disabled in this kernel
		}
		if err == nil && strings.TrimSpace(string(cur)) == "1" {
			continue
		}
		if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil {
			return set, fmt.Errorf("enabling forwarding on lo for fib lookups: %w", err)
		}
		set = append(set, p)
	}
	return set, nil
}

// EnsureLookupForwarding turns forwarding on lo back on if something turned
// it off since Open: writing net.ipv4.ip_forward, or anything to
// net.ipv6.conf.all.forwarding, resets it, and the program's route lookups
// then fail (drop_fib_fwd_disabled). vipd calls it periodically. It reports
// whether it had to restore anything.
func (d *Dataplane) EnsureLookupForwarding() (bool, error) {
	set, err := restoreLookupForwarding()
	if len(set) > 0 {
		d.log.Warn("forwarding on lo had been turned off (a sysctl write?); restored it for the fib lookups", "sysctls", set)
	}
	return len(set) > 0, err
}

// statNames reads the counter names from the C enum stat (BTF), so a
// counter added to vipd.h shows up without a Go change: STAT_DROP_LOOP_GUARD
// is "drop_loop_guard".
func statNames(spec *ebpf.CollectionSpec) ([]string, error) {
	var e *btf.Enum
	if err := spec.Types.TypeByName("stat", &e); err != nil {
		return nil, fmt.Errorf("finding enum stat in bpf object: %w", err)
	}
	n := -1
	for _, v := range e.Values {
		if v.Name == "STAT_MAX" {
			n = int(v.Value)
		}
	}
	if n < 0 {
		return nil, errors.New("enum stat has no STAT_MAX")
	}
	names := make([]string, n)
	for _, v := range e.Values {
		if int(v.Value) < n {
			names[v.Value] = strings.ToLower(strings.TrimPrefix(v.Name, "STAT_"))
		}
	}
	return names, nil
}

// Stats sums the per-CPU counters; keys are the enum stat names without
// the STAT_ prefix, lower case ("director_tx", "drop_loop_guard").
func (d *Dataplane) Stats() (map[string]uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	out := make(map[string]uint64, len(d.statNames))
	var perCPU []uint64
	for i, name := range d.statNames {
		if err := d.objs.Stats.Lookup(uint32(i), &perCPU); err != nil {
			return nil, fmt.Errorf("reading counter %s: %w", name, err)
		}
		var sum uint64
		for _, v := range perCPU {
			sum += v
		}
		out[name] = sum
	}
	return out, nil
}

// Close releases every file descriptor and leaves the pinned maps and link
// in place: the program keeps forwarding until the next vipd adopts it (the
// upgrade path).
func (d *Dataplane) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.closeLocked()
}

func (d *Dataplane) closeLocked() error {
	if d.closed {
		return nil
	}
	d.closed = true
	var errs []error
	if d.link != nil {
		errs = append(errs, d.link.Close())
	}
	errs = append(errs, d.objs.Close())
	return errors.Join(errs...)
}

// Uninstall detaches the program and removes every pin: the node stops
// forwarding VIP traffic. The Dataplane is closed afterwards.
func (d *Dataplane) Uninstall() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if d.link != nil && !d.closed {
		// Detach explicitly: an fd held elsewhere (bpftool) must not keep
		// the program attached.
		if err := d.link.Unpin(); err != nil {
			errs = append(errs, fmt.Errorf("unpinning link: %w", err))
		}
		if err := d.link.Detach(); err != nil && !errors.Is(err, ebpf.ErrNotSupported) {
			errs = append(errs, fmt.Errorf("detaching xdp: %w", err))
		}
	}
	errs = append(errs, d.closeLocked())
	errs = append(errs, RemovePinned(d.opts.PinPath))
	return errors.Join(errs...)
}

// RemovePinned removes a pin directory left by a vipd that is not running:
// removing the link pin detaches the program once no fd holds it.
func RemovePinned(pinPath string) error {
	if err := os.RemoveAll(pinPath); err != nil {
		return fmt.Errorf("removing pins in %s: %w", pinPath, err)
	}
	return nil
}
