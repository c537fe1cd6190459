//go:build linux

package dataplane

import (
	"context"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vipd/vipd/vip"
)

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestFDsFlat makes 10,000 table updates (FIELD-NOTES 8: a leaked map fd
// per update ends in "Device or resource busy" at 32768 references) and
// checks that the process's fd count does not grow. Every update creates,
// fills, maps and swaps in a new table, alternating two tables (the
// kernel side of Program; encoding rows is pure Go and slow under -race);
// every 50th is a full Program, with the other setters and readers in
// between.
func TestFDsFlat(t *testing.T) {
	updates := 10000
	if testing.Short() {
		updates = 1000
	}
	ctx := context.Background()
	r := newDPRig(t)
	d := r.open(t, r.options())
	progs := [2]vip.Program{vipProgram(testVIP4, "a", "b"), vipProgram(testVIP4, "a", "c")}
	if err := d.Program(ctx, progs[1]); err != nil {
		t.Fatal(err)
	}
	var rows [2][]Row
	for i, p := range progs {
		var err error
		if rows[i], err = BuildTable(d.opts.Seed, p.Addr, p.Backends); err != nil {
			t.Fatal(err)
		}
	}
	id := d.vips[testVIP4].id
	before := openFDs(t)
	start := time.Now()
	for i := range updates {
		if i%50 == 0 {
			if err := d.Program(ctx, progs[(i/50)%2]); err != nil {
				t.Fatalf("update %d: %v", i, err)
			}
			if err := d.SetBound(ctx, []netip.Addr{testVIP4}); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Stats(); err != nil {
				t.Fatal(err)
			}
			if _, err := d.Programmed(ctx); err != nil {
				t.Fatal(err)
			}
			continue
		}
		d.mu.Lock()
		if i%50 == 1 {
			// The rows of the last Program, with its slots.
			d.encodeRowsLocked(rows[(i/50)%2], d.vips[testVIP4].slots)
		}
		err := d.installTableLocked(id)
		d.mu.Unlock()
		if err != nil {
			t.Fatalf("update %d: %v", i, err)
		}
	}
	after := openFDs(t)
	t.Logf("fds before %d, after %d table updates %d (%v per update)", before, updates, after, time.Since(start)/time.Duration(updates))
	if after > before {
		t.Errorf("fd count grew from %d to %d over %d table updates", before, after, updates)
	}
}
