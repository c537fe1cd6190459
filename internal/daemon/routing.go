package daemon

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"

	"github.com/vipd/vipd/routing/bgp"
	"github.com/vipd/vipd/routing/bird"
	"github.com/vipd/vipd/vip"
)

// openAdvertiser starts the routing mode's advertiser. After an upgrade exit
// the BGP speaker starts as a graceful restarter announcing what the old vipd
// announced, before the controller decides anything.
func (d *Daemon) openAdvertiser(ctx context.Context) error {
	cfg := d.cfg
	switch {
	case cfg.Routing.BGP != nil:
		s, err := bgp.New(*cfg.Routing.BGP, d.log.Named("bgp"))
		if err != nil {
			return fmt.Errorf("configuring BGP: %w", err)
		}
		opts := bgp.StartOptions{}
		if rs := d.restart; rs != nil {
			opts.Routes = rs.Routes
			opts.Restarting = cfg.Routing.BGP.GracefulRestart.Enabled
		}
		if err := s.Start(ctx, opts); err != nil {
			return fmt.Errorf("starting BGP: %w", err)
		}
		d.speaker, d.adv = s, s
	case cfg.Routing.Bird != nil:
		a, err := bird.New(ctx, *cfg.Routing.Bird, d.log.Named("bird"))
		if err != nil {
			return fmt.Errorf("configuring BIRD: %w", err)
		}
		d.birdAdv, d.adv = a, a
	default:
		return fmt.Errorf("%s: no routing section", d.path)
	}
	return nil
}

// closeAdvertiser withdraws everything (the controller's drain already did;
// this also waits until the BGP peers were sent the withdrawals).
func (d *Daemon) closeAdvertiser(ctx context.Context) error {
	if d.speaker != nil {
		return d.speaker.Close(ctx)
	}
	if d.birdAdv != nil {
		_, err := d.birdAdv.SetRoutes(ctx, nil)
		return errors.Join(err, d.birdAdv.Close())
	}
	return nil
}

// abandonAdvertiser stops without withdrawing (upgrade exit).
func (d *Daemon) abandonAdvertiser() {
	if d.speaker != nil {
		d.speaker.Abandon()
	}
	if d.birdAdv != nil {
		d.birdAdv.Close()
	}
}

// restartState is what an upgrade exit hands to the next vipd: the routes
// it announced (re-announced first, for graceful restart) and the drains an
// operator asked for (a node drained for maintenance stays drained).
type restartState struct {
	Routes      []vip.Route  `json:"routes"`
	NodeDrained bool         `json:"node_drained,omitempty"`
	DrainedVIPs []netip.Addr `json:"drained_vips,omitempty"`
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
