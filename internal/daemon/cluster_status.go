package daemon

import (
	"maps"
	"net/netip"
	"slices"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/config"
)

// memberStatus is every member heard of, in the API's words.
func (d *Daemon) memberStatus() []api.Member {
	out := []api.Member{}
	for _, v := range d.members.Views() {
		m := api.Member{
			Name: v.Name, Up: v.Up, Generation: v.Generation, RestartUntil: v.RestartUntil, Signature: v.Signature, KeyID: v.KeyID,
			Misses: v.Misses, LastError: v.LastError, SignedAt: v.SignedAt, LastSeen: v.LastSeen,
			LagSeconds: v.Lag.Seconds(), Revision: v.Revision, Digests: apiDigests(v.Digests),
			Differs: v.Differs.Items(), ConfigDiffers: len(v.Differs.Config) > 0,
		}
		if len(v.Rejected) > 0 {
			m.Rejected = map[string]uint64{}
			for r, n := range v.Rejected {
				m.Rejected[string(r)] = n
			}
		}
		out = append(out, m)
	}
	return out
}

// clusterStatus is the backend, the keys and this node's digests.
func (d *Daemon) clusterStatus(cfg *config.Config) *api.Cluster {
	b := d.members.Backend()
	doc := d.ctrl.NodeState()
	ids := d.cluster.keys.IDs()
	if ids == nil {
		ids = []string{}
	}
	return &api.Cluster{
		Backend: b.Backend, Connected: b.Connected, Frozen: b.Frozen, Revision: b.Revision, Since: b.Since, Error: b.Err,
		KeyIDs: ids, AllowUnsigned: cfg.Cluster.AllowUnsigned, Digests: apiDigests(doc.Digests),
	}
}

func apiDigests(d *cluster.Digests) *api.Digests {
	if d == nil {
		return nil
	}
	out := &api.Digests{Config: d.Config.String(), TablesAt: d.TablesAt}
	for _, a := range slices.SortedFunc(maps.Keys(d.VIPs), netip.Addr.Compare) {
		if t := d.VIPs[a].Table; !t.IsZero() {
			if out.Tables == nil {
				out.Tables = map[netip.Addr]string{}
			}
			out.Tables[a] = t.String()
		}
	}
	return out
}
