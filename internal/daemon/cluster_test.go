package daemon

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/api"
	"github.com/vipd/vipd/internal/cluster"
)

// peerRig is a daemon (n1) with one more member, n2, played by the test: an
// HTTP server answering n2's state URL with whatever serve returns. n2
// also polls n1 as a real member would, with its own keyring, so a test
// sees whether n2 would accept n1's documents.
type peerRig struct {
	*rig
	serve    atomic.Pointer[func() []byte]
	keys2    *cluster.Keyring // n2's keys
	gen      atomic.Uint64
	log      *syncBuffer
	metrics  string // base URL of n1's metrics listener
	digests2 atomic.Pointer[cluster.Digests]
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newPeerRig(t *testing.T) *peerRig { t.Helper(); return newPeerRigWith(t, nil, nil) }

// newPeerRigWith is newPeerRig with more edits of the config text, and
// serve (nil: good signed documents) set before n1 starts.
func newPeerRigWith(t *testing.T, more func(string) string, serve func(*peerRig)) *peerRig {
	t.Helper()
	pr := &peerRig{rig: newIdleRig(t), log: &syncBuffer{}}
	var err error
	if pr.keys2, err = cluster.NewKeyring(testKey(1)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		f := pr.serve.Load()
		if f == nil {
			http.Error(w, "not yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write((*f)())
	}))
	t.Cleanup(srv.Close)
	pr.metrics = "127.0.0.1:" + strconv.Itoa(freePort(t))
	pr.edit = func(s string) string {
		s = strings.Replace(s, "\n[[vip]]", `
[[cluster.member]]
name = "n2"
underlay_v4 = "192.0.2.12"
state_url = "`+srv.URL+`/state"
`+"\n[[vip]]", 1)
		s += "metrics_listen = \"" + pr.metrics + "\"\n"
		if more != nil {
			s = more(s)
		}
		return s
	}
	cfg := pr.write(vipA)
	pr.digests2.Store(cluster.ComputeDigests(clusterSpec(cfg)))
	pr.gen.Store(100)
	pr.serveGood()
	if serve != nil {
		serve(pr)
	}
	logger := hclog.New(&hclog.LoggerOptions{Output: pr.log, Level: hclog.Info})
	pr.startNode(Options{Logger: logger}, vipA)
	pr.waitAnnounced(vipA)
	return pr
}

// doc is n2's next document: active and healthy for vipA, with its digests.
func (pr *peerRig) doc() cluster.NodeState {
	return cluster.NodeState{Node: "n2", Generation: pr.gen.Add(1),
		VIPs:    map[netip.Addr]cluster.VIPState{vipA.Addr(): {State: cluster.StateActive, Healthy: true}},
		Digests: pr.digests2.Load().Clone()}
}

// serveGood has n2 serve fresh documents signed with its keys.
func (pr *peerRig) serveGood() { pr.serveSealed(pr.keys2) }

func (pr *peerRig) serveSealed(keys *cluster.Keyring) {
	f := func() []byte {
		b, err := keys.Seal(pr.doc(), time.Now())
		if err != nil {
			panic(err)
		}
		return b
	}
	pr.serve.Store(&f)
}

func (pr *peerRig) serveBytes(b []byte) {
	f := func() []byte { return b }
	pr.serve.Store(&f)
}

func (pr *peerRig) member(name string) api.Member {
	for _, m := range pr.status().Members {
		if m.Name == name {
			return m
		}
	}
	return api.Member{}
}

func (pr *peerRig) scrape(t *testing.T) string {
	t.Helper()
	resp, err := http.Get("http://" + pr.metrics + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// n2Accepts fetches n1's document as n2 would and verifies it with n2's
// keys (and a verifier of its own, so replays across calls count).
func (pr *peerRig) n2Accepts(v *cluster.Verifier) error {
	resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(pr.port) + cluster.StatePath)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	_, err = v.Verify("n1", b, 0)
	return err
}

// Issue 12, item 1: a member's document forged, signed with the wrong key
// or replayed is refused, counted per reason and shown in status (and the
// metrics); the member is failed (fall 1) and comes back with a good one.
func TestMemberDocumentsRefused(t *testing.T) {
	pr := newPeerRig(t)
	waitFor(t, "n2 up with a verified document", func() bool {
		m := pr.member("n2")
		return m.Up && m.Signature == "ok" && m.KeyID == cluster.KeyID(testKey(1))
	})
	good, err := pr.keys2.Seal(pr.doc(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	forged := bytes.Replace(good, []byte(`"state":"active"`), []byte(`"state":"inactive"`), 1)
	if bytes.Equal(forged, good) {
		t.Fatal("the forgery changed nothing")
	}
	wrong, err := cluster.NewKeyring(testKey(9))
	if err != nil {
		t.Fatal(err)
	}
	// The good document, served once, then again: a replay.
	pr.serveBytes(good)
	waitFor(t, "the captured document accepted", func() bool { return pr.member("n2").Generation == pr.gen.Load() })

	for _, step := range []struct {
		reason string
		serve  func()
	}{
		{"replayed", func() {}}, // the same bytes again
		{"forged", func() { pr.serveBytes(forged) }},
		{"wrong-key", func() { pr.serveSealed(wrong) }},
		{"unsigned", func() { pr.serveBytes([]byte(`{"node":"n2","generation":1000000,"vips":{}}`)) }},
	} {
		step.serve()
		waitFor(t, "n2 refused as "+step.reason, func() bool {
			m := pr.member("n2")
			return !m.Up && m.Signature == step.reason && m.Rejected[step.reason] > 0
		})
		want := `vipd_cluster_documents_rejected_total{member="n2",reason="` + step.reason + `"} `
		if out := pr.scrape(t); !strings.Contains(out, want) || strings.Contains(out, want+"0\n") {
			t.Errorf("metrics lack a non-zero %s", want)
		}
		// Failed: the table has n1 alone as primary again.
		waitFor(t, "n2 out of the primaries", func() bool {
			for _, b := range pr.vipStatus(pr.status(), vipA).Backends {
				if b.Name == "n2" && b.Role == "primary" {
					return false
				}
			}
			return true
		})
		pr.serveGood()
		waitFor(t, "n2 back after "+step.reason, func() bool { m := pr.member("n2"); return m.Up && m.Signature == "ok" })
	}
	m := pr.member("n2")
	for _, r := range []string{"replayed", "forged", "wrong-key", "unsigned"} {
		if m.Rejected[r] == 0 {
			t.Errorf("status counts no %s document: %v", r, m.Rejected)
		}
	}
}

// Issue 12, item 2: a member with another cluster configuration is named
// in status (what differs), in the log and in the metric, and stops being
// once it agrees again.
func TestDigestMismatchNamed(t *testing.T) {
	pr := newPeerRig(t)
	waitFor(t, "n2 up", func() bool { return pr.member("n2").Up })
	if out := pr.scrape(t); !strings.Contains(out, `vipd_cluster_config_digest_mismatch{member="n2"} 0`) {
		t.Errorf("agreeing member: metric not 0")
	}
	cfg := pr.write(vipA)
	spec := clusterSpec(cfg)
	spec.Seed++
	spec.VIPs[0].Services = append(spec.VIPs[0].Services, cluster.Service{Proto: 17, Port: 53})
	agreed := pr.digests2.Load()
	pr.digests2.Store(cluster.ComputeDigests(spec))
	waitFor(t, "n2 differs in status", func() bool {
		return strings.Join(pr.member("n2").Differs, ", ") == "seed, vips 198.51.100.10 services"
	})
	if !pr.member("n2").ConfigDiffers {
		t.Error("status: config_differs false")
	}
	if out := pr.scrape(t); !strings.Contains(out, `vipd_cluster_config_digest_mismatch{member="n2"} 1`) {
		t.Errorf("differing member: metric not 1")
	}
	if log := pr.log.String(); !strings.Contains(log, "member n2 differs: seed, vips 198.51.100.10 services") {
		t.Errorf("no log line naming what differs:\n%s", log)
	}
	pr.digests2.Store(agreed)
	waitFor(t, "n2 agrees again", func() bool { return len(pr.member("n2").Differs) == 0 })
	if out := pr.scrape(t); !strings.Contains(out, `vipd_cluster_config_digest_mismatch{member="n2"} 0`) {
		t.Errorf("agreeing again: metric not 0")
	}
	if !strings.Contains(pr.log.String(), "member agrees again") {
		t.Error("no log line when it agrees again")
	}
}

// Issue 12, item 1: the key rotation of docs/cluster.md, with fall 1 and
// each side reloaded at every step, never refuses a document either way:
// n2 stays up at n1, and n2 accepts every document of n1.
func TestKeyRotationNoFlap(t *testing.T) {
	pr := newPeerRig(t)
	waitFor(t, "n2 up", func() bool { return pr.member("n2").Up })
	oldKey, newKey := testKey(1), testKey(2)
	v2 := cluster.NewVerifier(pr.keys2, cluster.VerifierOptions{})

	stop := make(chan struct{})
	var flaps atomic.Int64
	var refusedByN2 atomic.Pointer[string]
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(20 * time.Millisecond):
			}
			// A refused document is what would flap n2 (fall 1); a poll
			// that times out on a loaded test machine is not the
			// rotation's doing.
			for _, v := range pr.d.members.Views() {
				if v.Name == "n2" && (v.Signature != "ok" || len(v.Rejected) > 0) {
					flaps.Add(1)
				}
			}
			if err := pr.n2Accepts(v2); err != nil {
				s := err.Error()
				refusedByN2.Store(&s)
			}
		}
	})
	path := pr.dir + "/cluster.key"
	settle := func() { time.Sleep(400 * time.Millisecond) } // several polls each way
	reload := func(keys ...[]byte) {
		t.Helper()
		writeKeyFile(t, path, keys...)
		if err := pr.d.Reload(); err != nil {
			t.Fatal(err)
		}
	}
	// 1. Add the new key second, everywhere.
	reload(oldKey, newKey)
	if err := pr.keys2.Set(oldKey, newKey); err != nil {
		t.Fatal(err)
	}
	settle()
	// 2. Swap: n2 first, then n1.
	if err := pr.keys2.Set(newKey, oldKey); err != nil {
		t.Fatal(err)
	}
	settle()
	waitFor(t, "n2 signing with the new key", func() bool { return pr.member("n2").KeyID == cluster.KeyID(newKey) })
	reload(newKey, oldKey)
	settle()
	if ids := pr.status().Cluster.KeyIDs; len(ids) != 2 || ids[0] != cluster.KeyID(newKey) {
		t.Errorf("n1 key ids %v, want the new key signing", ids)
	}
	// 3. Remove the old key everywhere.
	reload(newKey)
	if err := pr.keys2.Set(newKey); err != nil {
		t.Fatal(err)
	}
	settle()
	close(stop)
	wg.Wait()
	if n := flaps.Load(); n > 0 {
		t.Errorf("a document of n2 was refused in %d samples during the rotation", n)
	}
	if s := refusedByN2.Load(); s != nil {
		t.Errorf("n2 refused a document of n1: %s", *s)
	}
	waitFor(t, "n2 up after the rotation", func() bool { return pr.member("n2").Up })
	if m := pr.member("n2"); len(m.Rejected) > 0 || m.KeyID != cluster.KeyID(newKey) {
		t.Errorf("n2 after the rotation: rejected %v, key %s", m.Rejected, m.KeyID)
	}
	// A key file that is not one refuses the reload and keeps the keys.
	if err := writeFile(path, "not a key\n"); err != nil {
		t.Fatal(err)
	}
	if err := pr.d.Reload(); err == nil || !strings.Contains(err.Error(), "cluster.key_file") {
		t.Errorf("reload with a bad key file: %v", err)
	}
	if ids := pr.status().Cluster.KeyIDs; len(ids) != 1 || ids[0] != cluster.KeyID(newKey) {
		t.Errorf("keys after a refused reload: %v", ids)
	}
}

func writeFile(path, s string) error { return os.WriteFile(path, []byte(s), 0o600) }

// The rollout of docs/cluster.md at daemon level: n1 starts without a key
// (allow_unsigned), n2 publishes plain documents; n1 gets the key with
// unsigned still allowed, n2 starts signing, n1 stops allowing unsigned.
// No document of n2 is refused on the way, and n1's documents are plain,
// then signed.
func TestSigningRolloutNoFlap(t *testing.T) {
	step := "unsigned"
	more := func(s string) string {
		switch step {
		case "unsigned":
			return strings.Replace(s, "key_file = ", "allow_unsigned = true\n# key_file = ", 1)
		case "key":
			return strings.Replace(s, "key_file = ", "allow_unsigned = true\nkey_file = ", 1)
		}
		return s
	}
	plain := func(pr *peerRig) {
		f := func() []byte {
			b, _ := json.Marshal(pr.doc())
			return b
		}
		pr.serve.Store(&f)
	}
	pr := newPeerRigWith(t, more, plain)
	waitFor(t, "n2 up, unsigned", func() bool { m := pr.member("n2"); return m.Up && m.Signature == "unsigned" })
	if ids := pr.status().Cluster.KeyIDs; len(ids) != 0 {
		t.Errorf("keys without a key file: %v", ids)
	}
	served := func() string {
		resp, err := http.Get("http://127.0.0.1:" + strconv.Itoa(pr.port) + cluster.StatePath)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	if s := served(); strings.Contains(s, `"sig"`) {
		t.Errorf("n1 without a key served %s", s)
	}
	refused := func() {
		t.Helper()
		if m := pr.member("n2"); len(m.Rejected) > 0 {
			t.Fatalf("n2 refused during the rollout (step %s): %v", step, m.Rejected)
		}
	}
	// 1. The key, unsigned still allowed.
	step = "key"
	pr.write(vipA)
	if err := pr.d.Reload(); err != nil {
		t.Fatal(err)
	}
	if s := served(); !strings.Contains(s, `"sig"`) {
		t.Errorf("n1 with a key served %s", s)
	}
	time.Sleep(300 * time.Millisecond)
	refused()
	// n2 signs.
	pr.serveGood()
	waitFor(t, "n2 signing", func() bool { return pr.member("n2").Signature == "ok" })
	refused()
	// 2. Unsigned no longer allowed.
	step = "strict"
	pr.write(vipA)
	if err := pr.d.Reload(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	refused()
	if m := pr.member("n2"); m.Signature != "ok" || m.KeyID != cluster.KeyID(testKey(1)) {
		t.Errorf("n2 at the end: %+v", m)
	}
	// And a plain document is now refused.
	plain(pr)
	waitFor(t, "a plain document refused", func() bool { return pr.member("n2").Rejected["unsigned"] > 0 })
}
