package daemon

import (
	"context"
	"net/netip"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/api"
)

// MemoryReporter is optional on a Dataplane: it reports the kernel memory
// of its maps and tables (dataplane.Dataplane.Memory), shown by vipctl
// status.
type MemoryReporter interface {
	Memory() (dataplane.Memory, error)
}

// VIPStatser is what the per-VIP traffic of status and metrics is read
// from (dataplane.Dataplane.VIPStats).
type VIPStatser interface {
	VIPStats(ctx context.Context) (map[netip.Addr]dataplane.VIPCounters, error)
}

// Verdicts of api.Traffic, in the order status and metrics list them.
const (
	verdictEncapsulated = "encapsulated"
	verdictLocal        = "local"
	verdictSecondChance = "second_chance"
	verdictLoopGuard    = "loop_guard"
)

// trafficOf adapts the dataplane's per-VIP counters to Parts.Traffic:
// every verdict of every VIP the dataplane programs or binds, zeros
// included, so each VIP's series exist from the start.
func trafficOf(s VIPStatser) func(context.Context) (map[netip.Addr][]api.Traffic, error) {
	return func(ctx context.Context) (map[netip.Addr][]api.Traffic, error) {
		stats, err := s.VIPStats(ctx)
		if err != nil {
			return nil, err
		}
		out := make(map[netip.Addr][]api.Traffic, len(stats))
		for a, c := range stats {
			out[a] = []api.Traffic{
				{Verdict: verdictEncapsulated, Packets: c.Encapsulated.Packets, Bytes: c.Encapsulated.Bytes},
				{Verdict: verdictLocal, Packets: c.Local.Packets, Bytes: c.Local.Bytes},
				{Verdict: verdictSecondChance, Packets: c.SecondChance.Packets, Bytes: c.SecondChance.Bytes},
				{Verdict: verdictLoopGuard, Packets: c.LoopGuard.Packets, Bytes: c.LoopGuard.Bytes},
			}
		}
		return out, nil
	}
}

// memoryStatus is the dataplane's memory for status, or nil (with the
// error) when the dataplane cannot say.
func (d *Daemon) memoryStatus() (*api.DataplaneMemory, error) {
	mr, ok := d.dp.(MemoryReporter)
	if !ok {
		return nil, nil
	}
	m, err := mr.Memory()
	if err != nil {
		return nil, err
	}
	return &api.DataplaneMemory{
		TotalBytes: m.Total, TableBytes: m.TableBytes,
		Tables: m.Tables, MaxTables: dataplane.MaxTables,
		VIPs: m.VIPs, MaxVIPs: dataplane.MaxVIPs,
		VIPKeys: m.VIPKeys, MaxVIPKeys: dataplane.MaxVIPKeys,
		Backends: m.Backends, MaxBackends: dataplane.MaxBackends,
	}, nil
}

// The XDP dataplane Start opens offers every optional part.
var (
	_ Dataplane      = (*dataplane.Dataplane)(nil)
	_ FlowLooker     = (*dataplane.Dataplane)(nil)
	_ TrustSetter    = (*dataplane.Dataplane)(nil)
	_ MemoryReporter = (*dataplane.Dataplane)(nil)
	_ VIPStatser     = (*dataplane.Dataplane)(nil)
)
