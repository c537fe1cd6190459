//go:build linux

package dataplane

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/cilium/ebpf"
)

// SetTrust makes the GUE trust boundary exactly t: GUE is decapsulated,
// forwarded or answered only from t's members and director prefixes, and
// names only members as hops; anything else is dropped and counted by the
// program. New members and prefixes are added before the boundary is
// switched on and old ones removed after, so no packet from a wanted
// sender is refused on the way. With no members the boundary is off
// (everyone is trusted) and a warning is logged. Calling it again with the
// same value does nothing.
func (d *Dataplane) SetTrust(ctx context.Context, t Trust) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := t.validate(); err != nil {
		return fmt.Errorf("setting trust: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	return d.setTrustLocked(t)
}

// normalize unmaps, masks, sorts and deduplicates t.
func (t Trust) normalize() Trust {
	var out Trust
	for _, m := range t.Members {
		out.Members = append(out.Members, m.Unmap())
	}
	slices.SortFunc(out.Members, netip.Addr.Compare)
	out.Members = slices.Compact(out.Members)
	for _, p := range t.Directors {
		a := p.Addr()
		bits := p.Bits()
		if a.Is4In6() && bits >= 96 {
			a, bits = a.Unmap(), bits-96
		}
		out.Directors = append(out.Directors, netip.PrefixFrom(a, bits).Masked())
	}
	slices.SortFunc(out.Directors, func(a, b netip.Prefix) int {
		return cmp.Or(a.Addr().Compare(b.Addr()), cmp.Compare(a.Bits(), b.Bits()))
	})
	out.Directors = slices.Compact(out.Directors)
	return out
}

// prefixKey is the `directors` key of p: IPv4 as IPv4-mapped IPv6.
func prefixKey(p netip.Prefix) vipdPrefixKey {
	k := vipdPrefixKey{Prefixlen: uint32(p.Bits())}
	a := p.Addr()
	if a.Is4() {
		k.Prefixlen += 96
		a = netip.AddrFrom16(a.As16())
	}
	k.Addr = a.As16()
	return k
}

// memberEntry is the map and key of a member address.
func (d *Dataplane) memberEntry(a netip.Addr) (*ebpf.Map, any) {
	if a.Is4() {
		b := a.As4()
		return d.objs.Members4, binary.NativeEndian.Uint32(b[:])
	}
	return d.objs.Members6, vipdIn6Key{Addr: a.As16()}
}

// members lists the addresses in `members4` and `members6`.
func (d *Dataplane) members() (map[netip.Addr]bool, error) {
	out := map[netip.Addr]bool{}
	var (
		k4 uint32
		k6 vipdIn6Key
		v  uint8
	)
	it := d.objs.Members4.Iterate()
	for it.Next(&k4, &v) {
		var b [4]byte
		binary.NativeEndian.PutUint32(b[:], k4)
		out[netip.AddrFrom4(b)] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading members4: %w", err)
	}
	it = d.objs.Members6.Iterate()
	for it.Next(&k6, &v) {
		out[netip.AddrFrom16(k6.Addr)] = true
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading members6: %w", err)
	}
	return out, nil
}

func (d *Dataplane) setTrustLocked(t Trust) (err error) {
	// After every change, removals included, on every way out: the
	// program's trust cache may hold a source that is no longer allowed,
	// or allowed otherwise.
	defer func() {
		err = errors.Join(err, d.retireTrustCache())
	}()
	t = t.normalize()
	wantM := map[netip.Addr]bool{}
	for _, m := range t.Members {
		wantM[m] = true
	}
	wantD := map[vipdPrefixKey]bool{}
	for _, p := range t.Directors {
		wantD[prefixKey(p)] = true
	}
	haveM, err := d.members()
	if err != nil {
		return err
	}
	haveD := map[vipdPrefixKey]bool{}
	var (
		pk vipdPrefixKey
		pv uint8
	)
	pit := d.objs.Directors.Iterate()
	for pit.Next(&pk, &pv) {
		haveD[pk] = true
	}
	if err := pit.Err(); err != nil {
		return fmt.Errorf("reading director prefixes: %w", err)
	}

	for a := range wantM {
		if !haveM[a] {
			m, k := d.memberEntry(a)
			if err := m.Put(k, uint8(1)); err != nil {
				return fmt.Errorf("adding member %s: %w", a, err)
			}
		}
	}
	for k := range wantD {
		if !haveD[k] {
			if err := d.objs.Directors.Put(k, uint8(1)); err != nil {
				return fmt.Errorf("adding director prefix %v/%d: %w", k.Addr, k.Prefixlen, err)
			}
		}
	}
	old := d.trust
	d.trust = t
	if err := d.writeConfigLocked(); err != nil {
		d.trust = old
		return err
	}
	var errs []error
	for a := range haveM {
		if !wantM[a] {
			m, k := d.memberEntry(a)
			if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("removing member %s: %w", a, err))
			}
		}
	}
	for k := range haveD {
		if !wantD[k] {
			if err := d.objs.Directors.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
				errs = append(errs, fmt.Errorf("removing director prefix %v/%d: %w", k.Addr, k.Prefixlen, err))
			}
		}
	}
	if len(t.Members) == 0 && (len(old.Members) > 0 || len(haveM) > 0 || !d.warnedTrust) {
		d.warnedTrust = true
		d.log.Warn("no cluster members given: GUE is accepted from anyone and may name any hop (trust boundary off)",
			"reason", "no members")
	}
	return errors.Join(errs...)
}
