//go:build linux

package dataplane

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
)

// VIPStats returns the per-VIP counters of every VIP address this node
// programs or binds, each summed over CPUs.
func (d *Dataplane) VIPStats(ctx context.Context) (map[netip.Addr]VIPCounters, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil, ErrClosed
	}
	out := make(map[netip.Addr]VIPCounters, len(d.addrs))
	perCPU := make([]vipdVipCounters, len(d.zeroCounters))
	for addr, a := range d.addrs {
		if err := d.objs.VipStats.Lookup(a.idx, &perCPU); err != nil {
			return nil, fmt.Errorf("reading counters of %s: %w", addr, err)
		}
		var sum [vipdVipStatVIP_STAT_MAX]Counter
		for _, c := range perCPU {
			for i := range sum {
				sum[i].Packets += c.C[i].Packets
				sum[i].Bytes += c.C[i].Bytes
			}
		}
		out[addr] = VIPCounters{
			Encapsulated: sum[vipdVipStatVIP_STAT_ENCAP],
			Local:        sum[vipdVipStatVIP_STAT_LOCAL],
			SecondChance: sum[vipdVipStatVIP_STAT_SECOND_CHANCE],
			LoopGuard:    sum[vipdVipStatVIP_STAT_LOOP_GUARD],
		}
	}
	return out, nil
}

// Memory reports the kernel memory of the program's maps and tables and
// how much of each limit is in use.
func (d *Dataplane) Memory() (Memory, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return Memory{}, ErrClosed
	}
	var m Memory
	for _, nm := range []struct {
		name string
		m    *ebpf.Map
	}{
		{"vips4", d.objs.Vips4}, {"vips6", d.objs.Vips6}, {"tables", d.objs.Tables}, {"backends", d.objs.Backends},
		{"vip_addrs", d.objs.VipAddrs}, {"members4", d.objs.Members4}, {"members6", d.objs.Members6}, {"directors", d.objs.Directors},
		{"config", d.objs.Config}, {"vip_filter", d.objs.VipFilter}, {"stats", d.objs.Stats},
		{"vip_stats", d.objs.VipStats}, {"nh_cache", d.objs.NhCache}, {"vip_cache", d.objs.VipCache},
		{"icmp_limit", d.objs.IcmpLimit}, {"trust_cache", d.objs.TrustCache},
	} {
		mm := MapMemory{Name: nm.name, MaxEntries: nm.m.MaxEntries(), Bytes: mapBytes(nm.m)}
		m.Maps = append(m.Maps, mm)
		m.Total += mm.Bytes
	}
	for _, t := range d.tableByID {
		m.Tables++
		m.TableBytes += t.bytes
	}
	m.Total += m.TableBytes
	m.VIPs, m.VIPKeys, m.Backends = len(d.addrs), d.nkeys, d.slots.inUse()
	return m, nil
}
