package daemon

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/internal/statedir"
)

// ownedBinder is the binder as the controller sees it: lo's addresses
// narrowed to those that are vipd's, a configured VIP or an address vipd
// put there itself (recorded in the state directory's bound.json before it
// is added, dropped after it is removed). The controller adopts at a
// restart, and may later remove, whatever Bound lists; without this it
// listed every host address on lo, and an operator's own (a router id's
// loopback) was adopted and removed at the next start.
type ownedBinder struct {
	Binder
	state *statedir.Dir
	log   hclog.Logger

	mu         sync.Mutex
	owned      map[netip.Addr]bool // recorded as put on lo by vipd
	configured map[netip.Addr]bool
	pruned     bool                // owned trimmed to lo once (at adoption)
	foreign    map[netip.Addr]bool // logged once each
}

func newOwnedBinder(b Binder, state *statedir.Dir, cfg *config.Config, log hclog.Logger) *ownedBinder {
	o := &ownedBinder{Binder: b, state: state, log: log, owned: map[netip.Addr]bool{}, foreign: map[netip.Addr]bool{}}
	rec, known := state.Bound()
	if !known {
		log.Info("no record of the addresses vipd put on lo: only configured VIPs on lo are taken over",
			"record", statedir.BoundFile)
	}
	for _, a := range rec {
		o.owned[a] = true
	}
	o.setConfig(cfg)
	return o
}

// setConfig makes cfg's VIPs vipd's (at start and at each reload).
func (o *ownedBinder) setConfig(cfg *config.Config) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.configured = map[netip.Addr]bool{}
	for _, v := range cfg.VIPs {
		o.configured[v.Addr] = true
	}
}

// Bind records the address before adding it: a crash in between leaves
// a record of an address not on lo, which is harmless.
func (o *ownedBinder) Bind(ctx context.Context, addr netip.Addr) error {
	o.mu.Lock()
	if !o.owned[addr] {
		o.owned[addr] = true
		o.saveLocked()
	}
	o.mu.Unlock()
	return o.Binder.Bind(ctx, addr)
}

// Unbind drops the address from the record once it is off lo.
func (o *ownedBinder) Unbind(ctx context.Context, addr netip.Addr) error {
	if err := o.Binder.Unbind(ctx, addr); err != nil {
		return err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.owned[addr] {
		delete(o.owned, addr)
		o.saveLocked()
	}
	return nil
}

// Bound lists the addresses on lo that are vipd's. The first call (the
// adoption) also trims the record to what is really on lo.
func (o *ownedBinder) Bound(ctx context.Context) ([]netip.Addr, error) {
	all, err := o.Binder.Bound(ctx)
	if err != nil {
		return nil, err
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	out := make([]netip.Addr, 0, len(all))
	for _, a := range all {
		if o.owned[a] || o.configured[a] {
			out = append(out, a)
			continue
		}
		if !o.foreign[a] {
			o.foreign[a] = true
			o.log.Info("an address on lo is not vipd's: left alone", "address", a)
		}
	}
	if !o.pruned {
		o.pruned = true
		n := len(o.owned)
		for a := range o.owned {
			if !slices.Contains(all, a) {
				delete(o.owned, a)
			}
		}
		if len(o.owned) != n {
			o.saveLocked()
		}
	}
	return out, nil
}

// saveLocked writes the record. A failure is logged and retried with the
// next change: binding never waits for the disk to work.
func (o *ownedBinder) saveLocked() {
	addrs := make([]netip.Addr, 0, len(o.owned))
	for a := range o.owned {
		addrs = append(addrs, a)
	}
	if err := o.state.WriteBound(addrs, time.Now()); err != nil {
		o.log.Warn("recording the addresses vipd put on lo", "error", err)
	}
}
