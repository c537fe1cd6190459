package daemon

import (
	"encoding/json"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"time"

	"github.com/vipd/vipd/internal/statedir"
	"github.com/vipd/vipd/routing"
)

// The upgrade from a vipd that predates the state directory: it left its
// announced routes and the operator's drains in vipd-NODE.restart next to
// the API socket (a tmpfs) at an upgrade exit. The first start of this
// version takes them over once, so that upgrade keeps both; the file is
// removed. (Remove this after the next release.)

// legacyRestart is the old file's layout.
type legacyRestart struct {
	Routes []struct {
		Prefix   netip.Prefix
		Draining bool
	} `json:"routes"`
	NodeDrained bool         `json:"node_drained,omitempty"`
	DrainedVIPs []netip.Addr `json:"drained_vips,omitempty"`
}

// importLegacyRestart moves the old upgrade-exit file's drains into the
// state directory and returns its routes (nil if there is no such file).
func (d *Daemon) importLegacyRestart() []routing.Route {
	path := filepath.Join(filepath.Dir(d.cfg.API.Socket), "vipd-"+d.cfg.Node.Name+".restart")
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	defer os.Remove(path)
	var old legacyRestart
	if err == nil {
		err = json.Unmarshal(data, &old)
	}
	if err != nil {
		d.log.Warn("ignoring the upgrade file of an older vipd", "file", path, "error", err)
		return nil
	}
	now := time.Now() // the old file did not say since when
	if old.NodeDrained {
		if _, err := d.state.SetNodeDrain(true, statedir.ByOperator, now); err != nil {
			d.log.Error("importing the node drain of an older vipd", "error", err)
		}
	}
	for _, a := range old.DrainedVIPs {
		if _, err := d.state.SetVIPDrain(a, true, statedir.ByOperator, now); err != nil {
			d.log.Error("importing a vip drain of an older vipd", "vip", a, "error", err)
		}
	}
	var routes []routing.Route
	for _, r := range old.Routes {
		if r.Prefix.IsValid() {
			routes = append(routes, routing.Route{Prefix: r.Prefix, Draining: r.Draining})
		}
	}
	d.log.Info("took over the upgrade state of an older vipd", "file", path, "routes", len(routes),
		"node_drained", old.NodeDrained, "drained_vips", len(old.DrainedVIPs))
	return routes
}
