package statedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"time"
)

// RestartFile records, at an upgrade exit, the local service checks'
// verdicts and until when the peers were asked to keep the node
// (restart_until): the next vipd starts its checks from these verdicts
// instead of from "checking", so it does not publish its services
// unhealthy, and have every director move its rows, while the checks
// rise again.
const RestartFile = "restart.json"

type restartFile struct {
	Version int       `json:"version"`
	Node    string    `json:"node"`
	Written time.Time `json:"written"`
	// Until is the restart_until the exiting vipd published.
	Until time.Time `json:"until"`
	// Healthy lists the VIPs whose check passed at the exit.
	Healthy []netip.Addr `json:"healthy"`
}

// Restart is what an upgrade exit left for the next vipd (WriteRestart).
type Restart struct {
	Written, Until time.Time
	Healthy        []netip.Addr
}

// WriteRestart records, durably, an upgrade exit: the VIPs whose service
// check passed and the time the peers keep the node until.
func (d *Dir) WriteRestart(healthy []netip.Addr, until, at time.Time) error {
	f := restartFile{Version: fileVersion, Node: d.node, Written: at.UTC(), Until: until.UTC(), Healthy: slices.Clone(healthy)}
	if f.Healthy == nil {
		f.Healthy = []netip.Addr{}
	}
	slices.SortFunc(f.Healthy, netip.Addr.Compare)
	return d.writeJSON(RestartFile, "the restart record", f)
}

// TakeRestart returns the upgrade exit's record and removes it, so only
// the start right after the exit uses it (ok false: none, or unreadable).
func (d *Dir) TakeRestart() (r Restart, ok bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	path := filepath.Join(d.path, RestartFile)
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return Restart{}, false, nil
	}
	defer os.Remove(path)
	if err != nil {
		return Restart{}, false, fmt.Errorf("reading %s: %w", RestartFile, err)
	}
	var f restartFile
	if err := json.Unmarshal(data, &f); err != nil {
		return Restart{}, false, fmt.Errorf("decoding %s: %w", RestartFile, err)
	}
	if err := d.checkHeader(RestartFile, f.Version, f.Node); err != nil {
		return Restart{}, false, err
	}
	for _, a := range f.Healthy {
		if !a.IsValid() {
			return Restart{}, false, fmt.Errorf("decoding %s: an invalid address", RestartFile)
		}
	}
	return Restart{Written: f.Written, Until: f.Until, Healthy: f.Healthy}, true, nil
}
