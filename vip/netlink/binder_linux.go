package netlink

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"syscall"

	"github.com/hashicorp/go-hclog"
	nl "github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/vipd/vipd/vip"
)

// Address flags from linux/if_addr.h.
const (
	ifaFNodad     = 0x02
	ifaFTentative = 0x40
)

var _ vip.Binder = (*Binder)(nil)

// Binder binds VIP addresses to one link through a single netlink handle,
// reused for every call (no socket per call, so no fd growth across
// reconciles). It is safe for concurrent use.
type Binder struct {
	log hclog.Logger

	mu     sync.Mutex // serialises requests on h
	h      *nl.Handle
	link   nl.Link
	ns     netns.NsHandle // Options.NetNS: where Watch subscribes
	closed bool
}

// New opens a netlink handle in opts.NetNS (or the current namespace) and
// looks up the link.
func New(log hclog.Logger, opts Options) (*Binder, error) {
	if log == nil {
		log = hclog.NewNullLogger()
	}
	name := opts.Link
	if name == "" {
		name = DefaultLink
	}
	var (
		h   *nl.Handle
		err error
	)
	if opts.NetNS > 0 {
		h, err = nl.NewHandleAt(opts.NetNS, syscall.NETLINK_ROUTE)
	} else {
		h, err = nl.NewHandle(syscall.NETLINK_ROUTE)
	}
	if err != nil {
		return nil, fmt.Errorf("opening netlink handle: %w", err)
	}
	link, err := h.LinkByName(name)
	if err != nil {
		h.Close()
		return nil, fmt.Errorf("looking up link %s: %w", name, err)
	}
	return &Binder{log: log.Named("binder"), h: h, link: link, ns: opts.NetNS}, nil
}

// Close releases the netlink handle. Bound addresses stay: they must outlive
// vipd across an upgrade restart.
func (b *Binder) Close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.closed {
		b.closed = true
		b.h.Close()
	}
	return nil
}

// hostAddr returns the netlink address for addr as a host prefix.
func hostAddr(addr netip.Addr) (*nl.Addr, error) {
	addr = addr.Unmap()
	if !addr.IsValid() {
		return nil, errors.New("invalid address")
	}
	a := &nl.Addr{IPNet: &net.IPNet{
		IP:   addr.AsSlice(),
		Mask: net.CIDRMask(addr.BitLen(), addr.BitLen()),
	}}
	if addr.Is6() {
		// A VIP is shared by every node: DAD would see the others and
		// leave it tentative (unusable) on all of them.
		a.Flags = ifaFNodad
	}
	return a, nil
}

// Bind adds addr to the link. Already present is success.
func (b *Binder) Bind(ctx context.Context, addr netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("binding %s to %s: %w", addr, b.link.Attrs().Name, err)
	}
	a, err := hostAddr(addr)
	if err != nil {
		return fmt.Errorf("binding %s to %s: %w", addr, b.link.Attrs().Name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("binding %s to %s: binder closed", addr, b.link.Attrs().Name)
	}
	err = b.h.AddrAdd(b.link, a)
	if errors.Is(err, syscall.EEXIST) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("binding %s to %s: %w", addr, b.link.Attrs().Name, err)
	}
	b.log.Debug("bound", "vip", addr, "iface", b.link.Attrs().Name)
	return nil
}

// Unbind removes addr from the link. Not present is success.
func (b *Binder) Unbind(ctx context.Context, addr netip.Addr) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("unbinding %s from %s: %w", addr, b.link.Attrs().Name, err)
	}
	a, err := hostAddr(addr)
	if err != nil {
		return fmt.Errorf("unbinding %s from %s: %w", addr, b.link.Attrs().Name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return fmt.Errorf("unbinding %s from %s: binder closed", addr, b.link.Attrs().Name)
	}
	err = b.h.AddrDel(b.link, a)
	if errors.Is(err, syscall.EADDRNOTAVAIL) || errors.Is(err, syscall.ENOENT) || errors.Is(err, syscall.ESRCH) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unbinding %s from %s: %w", addr, b.link.Attrs().Name, err)
	}
	b.log.Debug("unbound", "vip", addr, "iface", b.link.Attrs().Name)
	return nil
}

// Bound lists the host addresses on the link other than the loopback's own
// (127/8, ::1) and link-local ones, sorted.
func (b *Binder) Bound(ctx context.Context) ([]netip.Addr, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("listing addresses on %s: %w", b.link.Attrs().Name, err)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return nil, fmt.Errorf("listing addresses on %s: binder closed", b.link.Attrs().Name)
	}
	list, err := b.h.AddrList(b.link, nl.FAMILY_ALL)
	if err != nil {
		return nil, fmt.Errorf("listing addresses on %s: %w", b.link.Attrs().Name, err)
	}
	var out []netip.Addr
	for _, a := range list {
		if a.IPNet == nil {
			continue
		}
		ip, ok := netip.AddrFromSlice(a.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		ones, bits := a.Mask.Size()
		if ones != bits || !isVIPAddr(ip) {
			continue
		}
		out = append(out, ip)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return slices.Compact(out), nil
}
