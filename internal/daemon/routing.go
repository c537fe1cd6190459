package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/config"
	"github.com/vipd/vipd/routing"
	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/bird"
)

// openAdvertiser starts the routing mode's advertiser: the one place the
// daemon names a routing mode's package. After an upgrade exit (rs not nil)
// the BGP speaker starts as a graceful restarter announcing what the old
// vipd announced, before the controller decides anything.
func openAdvertiser(ctx context.Context, cfg *config.Config, rs *restartState, log hclog.Logger) (routing.Advertiser, error) {
	switch cfg.Routing.Mode {
	case routing.ModeBGP:
		s, err := bgp.New(*cfg.Routing.BGP, log.Named("bgp"))
		if err != nil {
			return nil, fmt.Errorf("configuring BGP: %w", err)
		}
		opts := bgp.StartOptions{}
		if rs != nil {
			opts.Routes = rs.Routes
			opts.Restarting = cfg.Routing.BGP.GracefulRestart.Enabled
		}
		if err := s.Start(ctx, opts); err != nil {
			return nil, fmt.Errorf("starting BGP: %w", err)
		}
		return s, nil
	case routing.ModeBirdOSPF:
		a, err := bird.New(ctx, *cfg.Routing.Bird, log.Named("bird"))
		if err != nil {
			return nil, fmt.Errorf("configuring BIRD: %w", err)
		}
		return a, nil
	}
	return nil, fmt.Errorf("%s: no routing section", cfg.File)
}

// advertisedVIPs is what a reload tells the advertiser it may announce:
// the VIPs of the new config, then those of the old one it no longer
// lists. A removed VIP stays announceable until the controller has
// withdrawn it (withdraw before unprogram); the next reload drops it.
func advertisedVIPs(cfg, old *config.Config) []routing.VIP {
	out := cfg.AdvertisedVIPs()
	seen := make(map[netip.Prefix]bool, len(out))
	for _, v := range out {
		seen[v.Prefix] = true
	}
	for _, v := range old.AdvertisedVIPs() {
		if !seen[v.Prefix] {
			out = append(out, v)
		}
	}
	return out
}

// restartState is what an upgrade exit hands to the next vipd: the routes
// it announced (re-announced first, for graceful restart) and the drains an
// operator asked for (a node drained for maintenance stays drained).
type restartState struct {
	Routes      []routing.Route `json:"routes"`
	NodeDrained bool            `json:"node_drained,omitempty"`
	DrainedVIPs []netip.Addr    `json:"drained_vips,omitempty"`
}

// loadRestart reads and removes the restart state, if an upgrade exit left
// one.
func (d *Daemon) loadRestart() {
	path := restartFile(d.cfg)
	rs, err := readRestart(path)
	switch {
	case err == nil:
		d.restart = rs
		d.log.Info("adopting an upgrade restart", "routes", len(rs.Routes), "node_drained", rs.NodeDrained,
			"drained_vips", len(rs.DrainedVIPs))
	case !errors.Is(err, os.ErrNotExist):
		d.log.Warn("ignoring the restart state", "file", path, "error", err)
	}
	os.Remove(path)
}

func writeRestart(path string, st restartState) error {
	data, err := json.Marshal(st)
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return fmt.Errorf("writing restart state: %w", err)
	}
	return os.Rename(tmp, path)
}

func readRestart(path string) (*restartState, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var st restartState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", path, err)
	}
	return &st, nil
}
