//go:build linux

package dataplane

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/netnstest"
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

// TestFDsFlat makes 10,000 table updates (docs/field-notes.md, note 8: a leaked map fd
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
	progs := [2]vip.ProgramSpec{vipProgram(testVIP4, "a", "b"), vipProgram(testVIP4, "a", "c")}
	if err := d.Program(ctx, progs[1]); err != nil {
		t.Fatal(err)
	}
	var rows [2][]Row
	for i, p := range progs {
		var err error
		if rows[i], err = BuildSharedTable(d.opts.Seed, p.Backends); err != nil {
			t.Fatal(err)
		}
	}
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
		tab := d.addrs[testVIP4].vip.tables[0]
		if i%50 == 1 {
			// The rows of the last Program, with its slots.
			d.encodeRowsLocked(rows[(i/50)%2], tab.slots)
		}
		_, err := d.installTableLocked(tab.id)
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

// BenchmarkTableUpdate times one full Program that changes the table of a
// VIP with 16 backends (build, encode, new inner map, swap, vips entries),
// against building the same table in Go alone (the baseline, reported as
// the ratio x-build).
func BenchmarkTableUpdate(b *testing.B) {
	netnstest.RequireRoot(b)
	ctx := context.Background()
	names := make([]string, 16)
	for i := range names {
		names[i] = fmt.Sprintf("node%02d", i)
	}
	progs := [2]vip.ProgramSpec{vipProgram(testVIP4, names...), vipProgram(testVIP4, names...)}
	progs[1].Backends[3].Role = vip.RoleSecondary

	var build float64
	b.Run("build", func(b *testing.B) {
		for i := 0; b.Loop(); i++ {
			if _, err := BuildTable(1, testVIP4, progs[i%2].Backends); err != nil {
				b.Fatal(err)
			}
		}
		build = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("program", func(b *testing.B) {
		r := newDPRig(b)
		d := r.open(b, r.options())
		for i := 0; b.Loop(); i++ {
			if err := d.Program(ctx, progs[i%2]); err != nil {
				b.Fatal(err)
			}
		}
		if build > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/build, "x-build")
		}
	})
}
