package statedir

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/routing"
)

var (
	at   = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)
	vipA = netip.MustParseAddr("198.51.100.10")
	vipB = netip.MustParseAddr("2001:db8::10")
)

func open(t *testing.T, path, node string) *Dir {
	t.Helper()
	d, err := Open(path, node)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// What one Dir writes, the next Open reads back: drains and routes survive
// a Close that writes nothing (a crash looks the same).
func TestRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state")
	d := open(t, path, "n1")
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("state dir %v, %v, want mode 0700", fi, err)
	}
	if dr := d.Drains(); dr.Node != nil || len(dr.VIPs) != 0 || d.StartRoutes() != nil || d.Recovered() != "" {
		t.Fatalf("fresh dir: %+v, routes %v, %q", dr, d.StartRoutes(), d.Recovered())
	}
	for _, step := range []struct {
		do   func() (bool, error)
		want bool
	}{
		{func() (bool, error) { return d.SetNodeDrain(true, ByOperator, at) }, true},
		{func() (bool, error) { return d.SetNodeDrain(true, ByFlag, at.Add(time.Hour)) }, false}, // keeps the first
		{func() (bool, error) { return d.SetVIPDrain(vipA, true, ByOperator, at.Add(time.Minute)) }, true},
		{func() (bool, error) { return d.SetVIPDrain(vipB, true, ByOperator, at) }, true},
		{func() (bool, error) { return d.SetVIPDrain(vipB, false, ByOperator, at) }, true},
		{func() (bool, error) { return d.SetVIPDrain(vipB, false, ByOperator, at) }, false},
	} {
		if changed, err := step.do(); err != nil || changed != step.want {
			t.Fatalf("changed %v, %v; want %v", changed, err, step.want)
		}
	}
	routes := []routing.Route{{Prefix: netip.MustParsePrefix("198.51.100.10/32")}, {Prefix: netip.MustParsePrefix("2001:db8::10/128"), Draining: true}}
	if err := d.WriteRoutes(routes, at); err != nil {
		t.Fatal(err)
	}
	want := Drains{Node: &Drain{Since: at, By: ByOperator}, VIPs: map[netip.Addr]Drain{vipA: {Since: at.Add(time.Minute), By: ByOperator}}}
	if diff := cmp.Diff(want, d.Drains(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("drains (-want +got):\n%s", diff)
	}
	d.Close()

	d2 := open(t, path, "n1")
	if diff := cmp.Diff(want, d2.Drains(), cmp.Comparer(func(a, b netip.Addr) bool { return a == b })); diff != "" {
		t.Errorf("drains after reopening (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(routes, d2.StartRoutes(), cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })); diff != "" {
		t.Errorf("routes after reopening (-want +got):\n%s", diff)
	}
	// An undrain is as durable as a drain; an empty route list too.
	if _, err := d2.SetNodeDrain(false, ByOperator, at); err != nil {
		t.Fatal(err)
	}
	if err := d2.WriteRoutes(nil, at); err != nil {
		t.Fatal(err)
	}
	d2.Close()
	d3 := open(t, path, "n1")
	if d3.Drains().Node != nil || len(d3.StartRoutes()) != 0 {
		t.Errorf("after undrain and a clean stop: %+v, routes %v", d3.Drains(), d3.StartRoutes())
	}
	// Nothing but the files and the lock is left behind (no temp files).
	ents, _ := os.ReadDir(path)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if diff := cmp.Diff([]string{DrainsFile, lockFile, RoutesFile}, names); diff != "" {
		t.Errorf("files (-want +got):\n%s", diff)
	}
}

// A second vipd on the same directory is refused; so is another node's
// directory.
func TestOpenRefuses(t *testing.T) {
	path := t.TempDir()
	d := open(t, path, "n1")
	if _, err := Open(path, "n1"); !errors.Is(err, ErrInUse) || !strings.Contains(err.Error(), "state_dir") {
		t.Errorf("second Open: %v, want ErrInUse naming the fix", err)
	}
	if _, err := d.SetNodeDrain(true, ByOperator, at); err != nil {
		t.Fatal(err)
	}
	d.Close()
	if _, err := Open(path, "n2"); !errors.Is(err, ErrOtherNode) {
		t.Errorf("Open by another node: %v, want ErrOtherNode", err)
	}
	// The lock is free again: n1 opens it.
	open(t, path, "n1")
}

// An unreadable drains file is moved aside and the node comes up drained
// (what it held is unknown); an unreadable routes file is ignored.
func TestUnreadableFiles(t *testing.T) {
	path := t.TempDir()
	os.WriteFile(filepath.Join(path, DrainsFile), []byte(`{"version":1,"node":"n1","node_drain":`), 0o600)
	os.WriteFile(filepath.Join(path, RoutesFile), []byte(`{"version":9}`), 0o600)
	d := open(t, path, "n1")
	dr := d.Drains()
	if dr.Node == nil || dr.Node.By != ByRecovery {
		t.Errorf("drains %+v, want the node drained by %s", dr, ByRecovery)
	}
	if r := d.Recovered(); !strings.Contains(r, "decoding drains.json") || !strings.Contains(r, "moved to") || !strings.Contains(r, "routes.json: version 9") {
		t.Errorf("recovered %q", r)
	}
	if d.StartRoutes() != nil {
		t.Errorf("routes %v from an unreadable file", d.StartRoutes())
	}
	matches, _ := filepath.Glob(filepath.Join(path, DrainsFile+".unreadable-*"))
	if len(matches) != 1 {
		t.Errorf("moved aside: %v", matches)
	}
	d.Close()
	// The recovery drain was written: it survives.
	if d := open(t, path, "n1"); d.Drains().Node == nil || strings.Contains(d.Recovered(), DrainsFile) {
		t.Errorf("after recovery: %+v %q", d.Drains(), d.Recovered())
	}
}

// A write that fails keeps the drain in effect and says it is unsaved;
// SaveDrains writes it once the directory works again.
func TestWriteFailure(t *testing.T) {
	path := t.TempDir()
	d := open(t, path, "n1")
	if err := os.RemoveAll(path); err != nil { // even root cannot write there now
		t.Fatal(err)
	}
	changed, err := d.SetNodeDrain(true, ByOperator, at)
	if err == nil || !changed {
		t.Fatalf("SetNodeDrain in a removed directory: changed %v, %v", changed, err)
	}
	if d.Drains().Node == nil || d.Unsaved() == nil {
		t.Fatalf("drain %+v, unsaved %v: want in effect and unsaved", d.Drains().Node, d.Unsaved())
	}
	if changed, err := d.SetNodeDrain(true, ByOperator, at); changed || err == nil {
		t.Errorf("draining again: changed %v, %v; want unchanged, still unsaved", changed, err)
	}
	if err := os.MkdirAll(path, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := d.SaveDrains(); err != nil || d.Unsaved() != nil {
		t.Fatalf("SaveDrains: %v, unsaved %v", err, d.Unsaved())
	}
	data, err := os.ReadFile(filepath.Join(path, DrainsFile))
	if err != nil || !strings.Contains(string(data), `"node_drain"`) {
		t.Errorf("drains.json after SaveDrains: %s, %v", data, err)
	}
}

// TestHeld: Held sees the lock of an open Dir, without taking it, and no
// lock once the Dir is closed or when there is no directory at all.
func TestHeld(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if held, err := Held(dir); err != nil || held {
		t.Fatalf("Held on a missing directory = %v, %v; want false, nil", held, err)
	}
	d, err := Open(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if held, err := Held(dir); err != nil || !held {
		t.Fatalf("Held while open = %v, %v; want true, nil", held, err)
	}
	// Asking did not take the lock: a second Open still finds it held by
	// the first, and nothing else.
	if _, err := Open(dir, "n1"); !errors.Is(err, ErrInUse) {
		t.Fatalf("second Open = %v, want ErrInUse", err)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if held, err := Held(dir); err != nil || held {
		t.Fatalf("Held after Close = %v, %v; want false, nil", held, err)
	}
}

// The record of what vipd put on lo: absent until written, read back by
// the next Open, another node's refused, an unreadable one ignored (the
// start then owns only configured VIPs).
func TestBoundRecord(t *testing.T) {
	path := t.TempDir()
	d := open(t, path, "n1")
	if got, known := d.Bound(); known || got != nil {
		t.Fatalf("fresh dir: bound %v known %v, want no record", got, known)
	}
	if err := d.WriteBound([]netip.Addr{vipB, vipA}, at); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d = open(t, path, "n1")
	if got, known := d.Bound(); !known || !slices.Equal(got, []netip.Addr{vipA, vipB}) {
		t.Errorf("reopened: bound %v known %v, want [%s %s] (sorted)", got, known, vipA, vipB)
	}
	if err := d.WriteBound(nil, at); err != nil {
		t.Fatal(err)
	}
	d.Close()
	d = open(t, path, "n1")
	if got, known := d.Bound(); !known || len(got) != 0 {
		t.Errorf("after an empty record: bound %v known %v, want an empty, known record", got, known)
	}
	d.Close()
	if _, err := Open(path, "n2"); !errors.Is(err, ErrOtherNode) {
		t.Errorf("Open by another node: %v, want ErrOtherNode", err)
	}
	os.WriteFile(filepath.Join(path, BoundFile), []byte(`{"version":1,"node":"n1","addresses":["x"]}`), 0o600)
	d = open(t, path, "n1")
	if got, known := d.Bound(); known || got != nil || !strings.Contains(d.Recovered(), BoundFile) {
		t.Errorf("unreadable record: bound %v known %v, recovered %q", got, known, d.Recovered())
	}
}
