package main

import (
	"bytes"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
)

// keygen writes a key file vipd loads (mode 0600, one key), prints its
// id, and refuses to replace a file without --force.
func TestClusterKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "cluster.key")
	out, _, err := vipctl(t, "cluster", "keygen", path)
	if err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(path)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file %v, mode %v", err, fi.Mode())
	}
	keys, err := cluster.LoadKeyFile(path)
	if err != nil || len(keys) != 1 {
		t.Fatalf("LoadKeyFile: %d keys, %v", len(keys), err)
	}
	if want := "key id " + cluster.KeyID(keys[0]); !strings.Contains(out, want) {
		t.Errorf("keygen said %q, want %q", out, want)
	}
	if _, _, err := vipctl(t, "cluster", "keygen", path); err == nil || !strings.Contains(err.Error(), "--force") {
		t.Errorf("keygen over an existing file: %v", err)
	}
	if _, _, err := vipctl(t, "cluster", "keygen", "--force", path); err != nil {
		t.Fatal(err)
	}
	again, err := cluster.LoadKeyFile(path)
	if err != nil || bytes.Equal(again[0], keys[0]) {
		t.Errorf("--force: %v, same key %v", err, err == nil && bytes.Equal(again[0], keys[0]))
	}
}

// The table names each member's signature status, refusals and what
// differs; the header says the backend and our keys.
func TestPrintCluster(t *testing.T) {
	a := netip.MustParseAddr("198.51.100.10")
	st := api.Status{
		Cluster: &api.Cluster{Backend: "etcd", Connected: true, Revision: 41, KeyIDs: []string{"75874146", "0a0b0c0d"},
			Digests: &api.Digests{Config: "0123456789abcdef", TablesAt: 40}},
		Members: []api.Member{
			{Name: "n2", Up: true, Generation: 9, Signature: "ok", KeyID: "75874146", LastSeen: time.Now(), LagSeconds: 0.25,
				Digests: &api.Digests{Config: "0123456789abcdef", Tables: map[netip.Addr]string{a: "fedcba9876543210"}, TablesAt: 40}},
			{Name: "n3", Signature: "forged", Rejected: map[string]uint64{"forged": 3, "stale": 1},
				Differs: []string{"seed", "vips 198.51.100.10 services"}, ConfigDiffers: true},
		},
	}
	var b bytes.Buffer
	printCluster(&b, st, false)
	out := b.String()
	for _, want := range []string{
		"backend: etcd, connected, revision 41", "keys: signing 75874146, also accepting 0a0b0c0d",
		"config digest: 01234567, tables at revision 40",
		"n2      up     ok", "250ms", "n3      down   forged", "forged:3 stale:1", "seed, vips 198.51.100.10 services",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printCluster(&b, st, true)
	if out := b.String(); !strings.Contains(out, "198.51.100.10=fedcba98 @40") || !strings.Contains(out, "75874146") {
		t.Errorf("wide output lacks the table digest or the key:\n%s", out)
	}
	if w := memberWord(st.Members[1]); w != "n3=down[forged](refused forged:3 stale:1)(differs: seed, vips 198.51.100.10 services)" {
		t.Errorf("status member word %q", w)
	}
}

// The probe column: RTT when answered, since when failing and the
// demotion reason; the header line says this node's own state and the
// fail-open note.
func TestPrintClusterProbes(t *testing.T) {
	since := time.Date(2026, 12, 2, 7, 40, 1, 0, time.Local)
	st := api.Status{
		Cluster: &api.Cluster{Backend: "poll", Connected: true},
		Members: []api.Member{{Name: "n2", Up: true, Signature: "ok"}, {Name: "n3", Up: true, Signature: "ok"}},
		Probes: &api.Probes{On: true, IntervalSeconds: 1, Members: []api.MemberProbe{
			{Name: "n1", Self: true, State: "ok"},
			{Name: "n2", State: "ok", RTTSeconds: 0.00031},
			{Name: "n3", State: "failing", Since: since, Failures: 4, LastError: "no answer", Demoted: "GUE path to n3 failing"},
		}},
	}
	var b bytes.Buffer
	printCluster(&b, st, false)
	out := b.String()
	for _, want := range []string{"probes: every 1s; this node ok", "ok 310µs", "failing since 07:40:01 (demoted: GUE path to n3 failing)"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	b.Reset()
	printCluster(&b, st, true)
	if out := b.String(); !strings.Contains(out, "probe: no answer") {
		t.Errorf("wide output lacks the probe's error:\n%s", out)
	}
	st.Probes.Note = cluster.ReasonProbeAll
	b.Reset()
	printCluster(&b, st, false)
	if out := b.String(); !strings.Contains(out, "probes: probe failing to every member; not demoting") {
		t.Errorf("output lacks the fail-open note:\n%s", out)
	}
}
