package daemon

import (
	"context"
	"fmt"
	"net/netip"

	"github.com/vipd/vipd/dataplane"
	"github.com/vipd/vipd/internal/config"
)

// TrustSetter is optional on a Dataplane: it takes the GUE trust boundary
// (dataplane.Dataplane.SetTrust), set from the config at start and on
// every reload. A dataplane without it trusts whatever it was opened with.
type TrustSetter interface {
	SetTrust(ctx context.Context, t dataplane.Trust) error
}

// trustOf is the trust boundary cfg describes: GUE is accepted from every
// member's underlay addresses (this node's included) and from
// [dataplane] allowed_sources, and forwarded only to members.
func trustOf(cfg *config.Config) dataplane.Trust {
	var t dataplane.Trust
	for _, m := range cfg.Cluster.Members {
		for _, a := range []netip.Addr{m.UnderlayV4, m.UnderlayV6} {
			if a.IsValid() {
				t.Members = append(t.Members, a)
			}
		}
	}
	t.Directors = append(t.Directors, cfg.Dataplane.AllowedSources...)
	return t
}

// setTrust hands the dataplane cfg's trust boundary, if it takes one. The
// dataplane adds new senders before it removes old ones, and setting the
// same boundary again does nothing.
func (d *Daemon) setTrust(ctx context.Context, cfg *config.Config) error {
	ts, ok := d.dp.(TrustSetter)
	if !ok {
		return nil
	}
	if err := ts.SetTrust(ctx, trustOf(cfg)); err != nil {
		return fmt.Errorf("setting the dataplane's trust boundary: %w", err)
	}
	return nil
}

// restoreTrust sets old's trust boundary again after a reload that set the
// new one failed later: the old config keeps running, all of it.
func (d *Daemon) restoreTrust(ctx context.Context, old *config.Config) {
	if err := d.setTrust(ctx, old); err != nil {
		d.log.Error("restoring the trust boundary of the running config", "reason", err.Error())
	}
}
