package statedir

import (
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestRestartRecord(t *testing.T) {
	dir := t.TempDir()
	d, err := Open(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok, err := d.TakeRestart(); ok || err != nil {
		t.Fatalf("TakeRestart with no record = %v, %v", ok, err)
	}
	a, b := netip.MustParseAddr("198.51.100.10"), netip.MustParseAddr("2001:db8::10")
	at := time.Date(2026, 12, 2, 13, 0, 0, 0, time.UTC)
	if err := d.WriteRestart([]netip.Addr{b, a}, at.Add(time.Minute), at); err != nil {
		t.Fatal(err)
	}
	d.Close()

	d, err = Open(dir, "n1")
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	r, ok, err := d.TakeRestart()
	if !ok || err != nil {
		t.Fatalf("TakeRestart = %v, %v", ok, err)
	}
	if !r.Until.Equal(at.Add(time.Minute)) || !r.Written.Equal(at) || !slices.Equal(r.Healthy, []netip.Addr{a, b}) {
		t.Errorf("TakeRestart = %+v", r)
	}
	// Taken once: a later start (after a crash, say) has none.
	if _, ok, _ := d.TakeRestart(); ok {
		t.Errorf("the record was still there after TakeRestart")
	}

	// Another node's record, or garbage, is refused and removed.
	for _, body := range []string{`{"version":1,"node":"n2","until":"2026-12-02T13:01:00Z","healthy":[]}`, `{`} {
		if err := os.WriteFile(filepath.Join(dir, RestartFile), []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, ok, err := d.TakeRestart(); ok || err == nil {
			t.Errorf("TakeRestart of %s = %v, %v; want an error", body, ok, err)
		}
		if _, err := os.Stat(filepath.Join(dir, RestartFile)); !os.IsNotExist(err) {
			t.Errorf("a refused record was left: %v", err)
		}
	}
}
