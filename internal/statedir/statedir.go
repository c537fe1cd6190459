// Package statedir owns vipd's state directory ([node] state_dir, default
// /var/lib/vipd): what must outlive any stop of vipd, a crash, kill -9,
// SIGTERM, a reboot or an upgrade. It holds the operator's drains
// (drains.json), which every start honours, and the routes last announced
// (routes.json), which a start after a crash or an upgrade exit hands to
// the advertiser for a graceful restart.
//
// Every file is written atomically and durably (a temp file, fsync, rename,
// fsync of the directory) before the call that changed it returns. One vipd
// holds the directory at a time: Open takes an flock on its lock file, so a
// second vipd (another node of a lab on the same host, say) is refused
// instead of sharing the operator's intent. A Dir is safe for concurrent
// use.
package statedir

import (
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"syscall"
	"time"

	"github.com/vipd/vipd/routing"
)

// File names inside the directory.
const (
	DrainsFile = "drains.json"
	RoutesFile = "routes.json"
	BoundFile  = "bound.json"
	lockFile   = "lock"
)

// DefaultPath is the state directory unless [node] state_dir says otherwise.
const DefaultPath = "/var/lib/vipd"

// Errors returned by Open.
var (
	// ErrInUse: another vipd holds the directory.
	ErrInUse = errors.New("another vipd holds the state directory")
	// ErrOtherNode: the directory holds another node's state.
	ErrOtherNode = errors.New("the state directory belongs to another node")
)

// Origin says who asked for a drain.
type Origin string

// Origins of a drain.
const (
	ByOperator Origin = "vipctl"           // POST /v1/drain
	ByFlag     Origin = "flag"             // vipd --drained
	ByConfig   Origin = "config"           // [node] start_drained
	ByRecovery Origin = "unreadable-state" // drains.json could not be read: drained to be safe
)

// Drain is one operator drain: since when, and who asked.
type Drain struct {
	Since time.Time `json:"since"`
	By    Origin    `json:"by"`
}

// Drains are the operator's drains: of the whole node, and of single VIPs
// (kept even for a VIP that left the config: it applies again if the VIP
// comes back).
type Drains struct {
	Node *Drain
	VIPs map[netip.Addr]Drain
}

func (d Drains) clone() Drains {
	if d.Node != nil {
		n := *d.Node
		d.Node = &n
	}
	d.VIPs = maps.Clone(d.VIPs)
	if d.VIPs == nil {
		d.VIPs = map[netip.Addr]Drain{}
	}
	return d
}

// fileVersion is the layout of the files below; a reader refuses a newer one.
const fileVersion = 1

type drainsFile struct {
	Version   int                  `json:"version"`
	Node      string               `json:"node"`
	NodeDrain *Drain               `json:"node_drain,omitempty"`
	VIPDrains map[netip.Addr]Drain `json:"vip_drains,omitempty"`
}

type routesFile struct {
	Version int         `json:"version"`
	Node    string      `json:"node"`
	Written time.Time   `json:"written"`
	Routes  []routeJSON `json:"routes"`
}

// boundFile records the addresses vipd put on lo and has not removed.
type boundFile struct {
	Version   int          `json:"version"`
	Node      string       `json:"node"`
	Written   time.Time    `json:"written"`
	Addresses []netip.Addr `json:"addresses"`
}

type routeJSON struct {
	Prefix   netip.Prefix `json:"prefix"`
	Draining bool         `json:"draining,omitempty"`
}

// Dir is an open state directory.
type Dir struct {
	path, node string
	lock       *os.File

	mu     sync.Mutex // guards drains and the files' writes
	drains Drains
	// unsaved is why the drains in memory are not on disk (the last
	// write failed), or nil.
	unsaved error
	routes  []routing.Route // as read at Open
	// bound is bound.json as read at Open; boundKnown is false when
	// there was none (or it was unreadable).
	bound      []netip.Addr
	boundKnown bool
	// Recovered is why drains.json could not be read at Open (it was
	// moved aside and the node drained, ByRecovery), or "".
	recovered string
}

// Open creates the directory (mode 0700) if needed, takes its lock and
// reads what a previous vipd of node left there. An unreadable drains file
// is moved aside and the node comes up drained (the drains it held are
// unknown: attracting no traffic is the safe guess); an unreadable routes
// file is ignored (the start is then not a graceful restart).
func Open(path, node string) (*Dir, error) {
	if err := os.MkdirAll(path, 0o700); err != nil {
		return nil, fmt.Errorf("creating state directory %s: %w", path, err)
	}
	lock, err := os.OpenFile(filepath.Join(path, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock of state directory %s: %w", path, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w (give each vipd its own [node] state_dir)", path, ErrInUse)
		}
		return nil, fmt.Errorf("locking state directory %s: %w", path, err)
	}
	d := &Dir{path: path, node: node, lock: lock, drains: Drains{VIPs: map[netip.Addr]Drain{}}}
	if err := d.readDrains(); err != nil {
		if errors.Is(err, ErrOtherNode) {
			lock.Close()
			return nil, err
		}
		aside := filepath.Join(path, DrainsFile+".unreadable-"+time.Now().UTC().Format("20060102T150405Z"))
		if rerr := os.Rename(filepath.Join(path, DrainsFile), aside); rerr != nil {
			lock.Close()
			return nil, fmt.Errorf("moving aside the unreadable %s: %w", DrainsFile, errors.Join(err, rerr))
		}
		d.recovered = fmt.Sprintf("%v (moved to %s)", err, aside)
		d.drains.Node = &Drain{Since: time.Now().UTC(), By: ByRecovery}
		if werr := d.writeDrainsLocked(d.drains); werr != nil {
			lock.Close()
			return nil, werr
		}
	}
	routes, err := d.readRoutes()
	if err != nil {
		if errors.Is(err, ErrOtherNode) {
			lock.Close()
			return nil, err
		}
		d.recovered = joinWhy(d.recovered, err.Error()+" (ignored: no graceful restart)")
	}
	d.routes = routes
	bound, known, err := d.readBound()
	if err != nil {
		if errors.Is(err, ErrOtherNode) {
			lock.Close()
			return nil, err
		}
		d.recovered = joinWhy(d.recovered, err.Error()+" (ignored: only configured VIPs on lo are vipd's)")
	}
	d.bound, d.boundKnown = bound, known
	return d, nil
}

func joinWhy(a, b string) string {
	if a == "" {
		return b
	}
	return a + "; " + b
}

// Path returns the directory.
func (d *Dir) Path() string { return d.path }

// Recovered says what could not be read at Open, or "".
func (d *Dir) Recovered() string { return d.recovered }

// Close releases the lock. It writes nothing: a Dir closed by a crash and
// one closed here look the same to the next Open.
func (d *Dir) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lock == nil {
		return nil
	}
	err := d.lock.Close()
	d.lock = nil
	return err
}

// Drains returns the drains in effect.
func (d *Dir) Drains() Drains {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.drains.clone()
}

// StartRoutes returns the routes the previous vipd announced last, as read
// at Open (nil after a clean stop or on a first start).
func (d *Dir) StartRoutes() []routing.Route {
	d.mu.Lock()
	defer d.mu.Unlock()
	return slices.Clone(d.routes)
}

// SetNodeDrain drains the node (on) or undrains it, and writes it down
// before returning. Draining a drained node keeps its first Since; changed
// says whether anything changed. A write error is returned, but the drain
// stays in effect in memory (an operator draining a node with a full disk
// still wants it drained): Unsaved reports it until SaveDrains succeeds.
func (d *Dir) SetNodeDrain(on bool, by Origin, at time.Time) (changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	switch {
	case on && d.drains.Node == nil:
		d.drains.Node = &Drain{Since: at.UTC(), By: by}
	case !on && d.drains.Node != nil:
		d.drains.Node = nil
	default:
		return false, d.unsaved
	}
	return true, d.saveLocked()
}

// SetVIPDrain drains one VIP (on) or undrains it, like SetNodeDrain.
func (d *Dir) SetVIPDrain(addr netip.Addr, on bool, by Origin, at time.Time) (changed bool, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	_, had := d.drains.VIPs[addr]
	switch {
	case on && !had:
		d.drains.VIPs[addr] = Drain{Since: at.UTC(), By: by}
	case !on && had:
		delete(d.drains.VIPs, addr)
	default:
		return false, d.unsaved
	}
	return true, d.saveLocked()
}

// Unsaved reports why the drains in effect are not all on disk, or nil.
func (d *Dir) Unsaved() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.unsaved
}

// SaveDrains writes the drains again if the last write failed.
func (d *Dir) SaveDrains() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.unsaved == nil {
		return nil
	}
	return d.saveLocked()
}

func (d *Dir) saveLocked() error {
	d.unsaved = d.writeDrainsLocked(d.drains)
	return d.unsaved
}

// WriteRoutes records the routes announced now, durably. An empty list
// (after a clean stop) means the next start is not a graceful restart.
func (d *Dir) WriteRoutes(routes []routing.Route, at time.Time) error {
	f := routesFile{Version: fileVersion, Node: d.node, Written: at.UTC(), Routes: []routeJSON{}}
	for _, r := range routes {
		f.Routes = append(f.Routes, routeJSON{Prefix: r.Prefix, Draining: r.Draining})
	}
	return d.writeJSON(RoutesFile, "routes", f)
}

// writeJSON writes v, indented, as the file name, atomically and durably;
// what names v in the error.
func (d *Dir) writeJSON(name, what string, v any) error {
	data, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding %s: %w", what, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return writeAtomic(d.path, name, data)
}

// Bound returns the addresses a previous vipd recorded as put on lo by it
// and not removed (WriteBound), and whether there was a record at all.
func (d *Dir) Bound() ([]netip.Addr, bool) {
	return slices.Clone(d.bound), d.boundKnown
}

// WriteBound records, durably, the addresses vipd has put on lo and not
// removed: what a restart may take over. An address not in it (and not a
// configured VIP) is the operator's, never vipd's to remove.
func (d *Dir) WriteBound(addrs []netip.Addr, at time.Time) error {
	f := boundFile{Version: fileVersion, Node: d.node, Written: at.UTC(), Addresses: slices.Clone(addrs)}
	if f.Addresses == nil {
		f.Addresses = []netip.Addr{}
	}
	slices.SortFunc(f.Addresses, netip.Addr.Compare)
	return d.writeJSON(BoundFile, "bound addresses", f)
}

func (d *Dir) readBound() ([]netip.Addr, bool, error) {
	data, err := os.ReadFile(filepath.Join(d.path, BoundFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("reading %s: %w", BoundFile, err)
	}
	var f boundFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, false, fmt.Errorf("decoding %s: %w", BoundFile, err)
	}
	if err := d.checkHeader(BoundFile, f.Version, f.Node); err != nil {
		return nil, false, err
	}
	for _, a := range f.Addresses {
		if !a.IsValid() {
			return nil, false, fmt.Errorf("decoding %s: an invalid address", BoundFile)
		}
	}
	return f.Addresses, true, nil
}

func (d *Dir) writeDrainsLocked(dr Drains) error {
	f := drainsFile{Version: fileVersion, Node: d.node, NodeDrain: dr.Node}
	if len(dr.VIPs) > 0 {
		f.VIPDrains = dr.VIPs
	}
	data, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding drains: %w", err)
	}
	return writeAtomic(d.path, DrainsFile, data)
}

func (d *Dir) readDrains() error {
	data, err := os.ReadFile(filepath.Join(d.path, DrainsFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("reading %s: %w", DrainsFile, err)
	}
	var f drainsFile
	if err := json.Unmarshal(data, &f); err != nil {
		return fmt.Errorf("decoding %s: %w", DrainsFile, err)
	}
	if err := d.checkHeader(DrainsFile, f.Version, f.Node); err != nil {
		return err
	}
	d.drains.Node = f.NodeDrain
	maps.Copy(d.drains.VIPs, f.VIPDrains)
	return nil
}

func (d *Dir) readRoutes() ([]routing.Route, error) {
	data, err := os.ReadFile(filepath.Join(d.path, RoutesFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", RoutesFile, err)
	}
	var f routesFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("decoding %s: %w", RoutesFile, err)
	}
	if err := d.checkHeader(RoutesFile, f.Version, f.Node); err != nil {
		return nil, err
	}
	var out []routing.Route
	for _, r := range f.Routes {
		if !r.Prefix.IsValid() {
			return nil, fmt.Errorf("decoding %s: a route without a valid prefix", RoutesFile)
		}
		out = append(out, routing.Route{Prefix: r.Prefix, Draining: r.Draining})
	}
	return out, nil
}

func (d *Dir) checkHeader(file string, version int, node string) error {
	if version < 1 || version > fileVersion {
		return fmt.Errorf("%s: version %d, this vipd reads up to %d", file, version, fileVersion)
	}
	if node != d.node {
		return fmt.Errorf("%s in %s is node %q's, this is %q: %w", file, d.path, node, d.node, ErrOtherNode)
	}
	return nil
}

// writeAtomic replaces dir/name with data: temp file, fsync, rename, fsync
// of the directory, so that after a crash the file is either the old one
// or the new one, and the new one is there once this returns.
func writeAtomic(dir, name string, data []byte) error {
	tmp, err := os.CreateTemp(dir, "."+name+".tmp-*")
	if err != nil {
		return fmt.Errorf("writing %s: %w", name, err)
	}
	defer os.Remove(tmp.Name()) // after a successful rename: absent, fine
	_, err = tmp.Write(data)
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), filepath.Join(dir, name))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		return fmt.Errorf("writing %s: %w", filepath.Join(dir, name), err)
	}
	return nil
}

func syncDir(dir string) error {
	f, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = f.Sync()
	return errors.Join(err, f.Close())
}
