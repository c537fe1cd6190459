package daemon

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/vip"
)

// What the daemon keeps in the state directory (package statedir): the
// operator's drains, written before the API call that changed them
// returns and honoured at every start, and the routes the controller last
// reported announced, written on every change (debounced, off the
// controller's loop) so that a start after a crash or an upgrade exit
// hands them to the advertiser as a graceful restart. A clean SIGTERM
// leaves the routes empty.

// routesDebounce coalesces a burst of route changes into one write; routes
// are written at most this long after they change.
const routesDebounce = 50 * time.Millisecond

// retryEvery is how often a failed write of the state directory is tried
// again.
const retryEvery = 5 * time.Second

// openState opens the state directory, imports what a vipd of an older
// version left at an upgrade exit, records a start in maintenance
// (--drained, [node] start_drained) and logs every drain it restores. It
// returns the routes to hand the advertiser.
func (d *Daemon) openState(startDrained bool) ([]routing.Route, error) {
	cfg := d.cfg
	st, err := statedir.Open(cfg.Node.StateDir, cfg.Node.Name)
	if err != nil {
		return nil, fmt.Errorf("opening the state directory: %w", err)
	}
	d.state = st
	if why := st.Recovered(); why != "" {
		d.log.Error("the state directory was partly unreadable", "dir", st.Path(), "problem", why)
	}
	routes := st.StartRoutes()
	if r, ok, err := st.TakeRestart(); err != nil {
		d.log.Warn("the upgrade exit's record is unreadable: the service checks start over", "error", err)
	} else if ok {
		d.restart = r
	}
	if legacy := d.importLegacyRestart(); legacy != nil && len(routes) == 0 {
		routes = legacy
	}
	before := st.Drains()
	d.restoredNode = before.Node != nil
	for a := range before.VIPs {
		d.restoredVIPs[a] = true
	}
	by := statedir.ByFlag
	if !startDrained && cfg.Node.StartDrained {
		by = statedir.ByConfig
	}
	if startDrained || cfg.Node.StartDrained {
		if _, err := st.SetNodeDrain(true, by, time.Now()); err != nil {
			st.Close()
			return nil, fmt.Errorf("recording the start in maintenance: %w", err)
		}
	}
	drains := st.Drains()
	if n := drains.Node; n != nil {
		if d.restoredNode {
			d.log.Warn("node drain restored: the node stays drained (vipctl undrain ends it)",
				"since", n.Since.Format(time.RFC3339), "by", n.By)
		} else {
			d.log.Warn("starting drained (maintenance)", "by", n.By)
		}
	}
	for _, a := range sortedAddrs(drains.VIPs) {
		dr := drains.VIPs[a]
		if slices.ContainsFunc(cfg.VIPs, func(v config.VIP) bool { return v.Addr == a }) {
			d.log.Warn("vip drain restored", "vip", a, "since", dr.Since.Format(time.RFC3339), "by", dr.By)
		} else {
			d.log.Warn("vip drain kept for a VIP not in the config: it applies again if the VIP comes back",
				"vip", a, "since", dr.Since.Format(time.RFC3339))
		}
	}
	if len(routes) > 0 {
		d.log.Info("the previous vipd left routes announced: starting as a graceful restart", "routes", len(routes))
	}
	return routes, nil
}

// syncDrains hands the drains in effect (the state directory's) to the
// controller, all of them: a drain kept for a VIP not in the config holds
// again, in the same event, when a reload brings the VIP back. Caller
// holds drainMu (or nothing else runs yet).
func (d *Daemon) syncDrains() {
	drains := d.state.Drains()
	d.ctrl.SetDrains(drains.Node != nil, sortedAddrs(drains.VIPs))
}

// setDrain is POST /v1/drain and /v1/undrain: the drain is written to the
// state directory, then handed to the controller, under drainMu so that
// concurrent requests reach both in the same order. A write that fails
// leaves the drain in effect and says so (api.ErrNotSaved).
func (d *Daemon) setDrain(req api.DrainRequest, on bool) error {
	if err := req.Validate(); err != nil {
		return err
	}
	verb := map[bool]string{true: "draining", false: "undraining"}[on]
	d.drainMu.Lock()
	defer d.drainMu.Unlock()
	now := time.Now()
	if req.Node {
		changed, werr := d.state.SetNodeDrain(on, statedir.ByOperator, now)
		if changed {
			d.restoredNode = false
		}
		d.syncDrains()
		d.log.Info(verb+" the node", "changed", changed)
		return d.saved(verb+" the node", werr)
	}
	a := *req.VIP
	if !d.configured(a) {
		// Undraining a VIP that left the config removes its kept drain.
		if !on {
			if changed, werr := d.state.SetVIPDrain(a, false, statedir.ByOperator, now); changed {
				delete(d.restoredVIPs, a)
				d.syncDrains()
				d.log.Info("removed the kept drain of a VIP not in the config", "vip", a)
				return d.saved(verb+" "+a.String(), werr)
			}
		}
		return fmt.Errorf("%s %s: %w", verb, a, api.ErrUnknownVIP)
	}
	changed, werr := d.state.SetVIPDrain(a, on, statedir.ByOperator, now)
	if changed {
		delete(d.restoredVIPs, a)
	}
	d.syncDrains()
	d.log.Info(verb+" a vip", "vip", a, "changed", changed)
	return d.saved(verb+" "+a.String(), werr)
}

func (d *Daemon) saved(what string, err error) error {
	if err == nil {
		return nil
	}
	d.log.Error("a drain is in effect but not saved: it will not survive a restart", "what", what, "error", err)
	return fmt.Errorf("%s: %w: %v", what, api.ErrNotSaved, err)
}

func (d *Daemon) configured(a netip.Addr) bool { return d.configuredLocked(d.config(), a) }

// configuredLocked: is a a VIP of cfg?
func (d *Daemon) configuredLocked(cfg *config.Config, a netip.Addr) bool {
	return slices.ContainsFunc(cfg.VIPs, func(v config.VIP) bool { return v.Addr == a })
}

// follow keeps what lives outside the controller in step with what it
// reaches, off its loop: the announced routes go to the state directory
// (debounced), a failed write of the drains is retried, and a VIP removed
// by a reload leaves the advertiser's VIPs once the controller has
// forgotten it.
func (d *Daemon) follow(updates <-chan struct{}) {
	var written []routing.Route
	haveWritten := false
	var retry <-chan time.Time
	for {
		select {
		case <-d.ctx.Done():
			return
		case <-updates:
			select { // let a burst of changes settle into one write
			case <-d.ctx.Done():
				return
			case <-time.After(routesDebounce):
			}
		case <-retry:
		}
		retry = nil
		st := d.ctrl.Status()
		if st.RoutesKnown && (!haveWritten || !slices.Equal(st.Routes, written)) {
			if err := d.state.WriteRoutes(st.Routes, time.Now()); err != nil {
				d.log.Error("saving the announced routes (a crash now would not be a graceful restart)", "error", err)
				retry = time.After(retryEvery)
			} else {
				written, haveWritten = st.Routes, true
			}
		}
		if err := d.state.SaveDrains(); err != nil {
			retry = time.After(retryEvery)
		}
		d.dropForgotten(st.VIPs)
	}
}

// dropForgotten takes the VIPs removed by reloads that the controller has
// forgotten (withdrawn, drained, unbound) off the advertiser's list.
func (d *Daemon) dropForgotten(known []vip.VIPStatus) {
	d.advMu.Lock()
	defer d.advMu.Unlock()
	gone := false
	for p := range d.leaving {
		if !slices.ContainsFunc(known, func(v vip.VIPStatus) bool { return v.Addr == p.Addr() }) {
			delete(d.leaving, p)
			gone = true
		}
	}
	if !gone {
		return
	}
	ctx, cancel := context.WithTimeout(d.ctx, 30*time.Second)
	defer cancel()
	if err := d.adv.SetVIPs(ctx, d.announceable(d.config())); err != nil && !errors.Is(err, context.Canceled) {
		d.log.Warn("dropping removed VIPs from the advertiser", "error", err)
	}
}

// announceable is what the advertiser may announce: the VIPs of cfg, then
// those removed by reloads that the controller still knows (it withdraws
// them before it unprograms them). Caller holds advMu.
func (d *Daemon) announceable(cfg *config.Config) []routing.VIP {
	out := cfg.AdvertisedVIPs()
	var extra []routing.VIP
	for _, v := range d.leaving {
		extra = append(extra, v)
	}
	slices.SortFunc(extra, func(a, b routing.VIP) int { return a.Prefix.Addr().Compare(b.Prefix.Addr()) })
	return append(out, extra...)
}

// nowLeaving is d.leaving after a reload from old to cfg: what old had and
// cfg has not joins it, what cfg has leaves it. Caller holds advMu.
func (d *Daemon) nowLeaving(cfg, old *config.Config) map[netip.Prefix]routing.VIP {
	next := make(map[netip.Prefix]routing.VIP, len(d.leaving))
	for p, v := range d.leaving {
		next[p] = v
	}
	for _, v := range old.AdvertisedVIPs() {
		next[v.Prefix] = v
	}
	for _, v := range cfg.AdvertisedVIPs() {
		delete(next, v.Prefix)
	}
	return next
}

// stateStatus adds the drains and the state directory to a status.
func (d *Daemon) stateStatus(st *api.Status) {
	d.drainMu.Lock()
	restoredNode := d.restoredNode
	restoredVIPs := make(map[netip.Addr]bool, len(d.restoredVIPs))
	for a := range d.restoredVIPs {
		restoredVIPs[a] = true
	}
	d.drainMu.Unlock()
	drains := d.state.Drains()
	st.StateDir = d.state.Path()
	if err := d.state.Unsaved(); err != nil {
		st.StateError = "drains in effect but not saved: " + err.Error()
	}
	if n := drains.Node; n != nil {
		st.NodeDrain = &api.Drain{Since: n.Since, By: string(n.By), Restored: restoredNode}
	}
	st.UnconfiguredDrains = []api.VIPDrain{}
	cfg := d.config()
	for _, a := range sortedAddrs(drains.VIPs) {
		dr := drains.VIPs[a]
		ad := api.Drain{Since: dr.Since, By: string(dr.By), Restored: restoredVIPs[a]}
		if !slices.ContainsFunc(cfg.VIPs, func(v config.VIP) bool { return v.Addr == a }) {
			st.UnconfiguredDrains = append(st.UnconfiguredDrains, api.VIPDrain{Address: a, Drain: ad})
			continue
		}
		for i := range st.VIPs {
			if st.VIPs[i].Address == a {
				st.VIPs[i].Drain = &ad
			}
		}
	}
}

func sortedAddrs[V any](m map[netip.Addr]V) []netip.Addr {
	out := make([]netip.Addr, 0, len(m))
	for a := range m {
		out = append(out, a)
	}
	slices.SortFunc(out, netip.Addr.Compare)
	return out
}
