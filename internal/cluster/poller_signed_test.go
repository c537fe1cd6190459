package cluster

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// signedPeer serves a member's document signed by its keyring through the
// real handler, or one of the attacks a poller must refuse.
type signedPeer struct {
	ring *Keyring
	h    http.Handler

	mu       sync.Mutex
	mode     string // ok | unsigned | wrongkey | forged | stale | future | replay | garbage | huge100m | hang
	st       NodeState
	captured []byte // the first document served: what "replay" serves again
	polls    int
}

func newSignedPeer(t *testing.T, node string, ring *Keyring) (*signedPeer, string) {
	t.Helper()
	p := &signedPeer{ring: ring, mode: "ok", st: docState(node, 1, StateActive)}
	p.h = NewHandler(p.state, SignWith(ring, nil))
	srv := httptest.NewServer(p)
	t.Cleanup(srv.Close)
	return p, srv.URL + StatePath
}

func (p *signedPeer) state() NodeState {
	p.mu.Lock()
	defer p.mu.Unlock()
	return *p.st.Clone()
}

func (p *signedPeer) set(mode string, change func(*NodeState)) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode = mode
	if change != nil {
		change(&p.st)
	}
}

func (p *signedPeer) pollCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.polls
}

// waitPolls waits until the peer was polled n more times.
func (p *signedPeer) waitPolls(t *testing.T, n int) {
	t.Helper()
	start := p.pollCount()
	deadline := time.Now().Add(10 * time.Second)
	for p.pollCount() < start+n {
		if time.Now().After(deadline) {
			t.Fatalf("peer polled %d times in 10s, want %d", p.pollCount()-start, n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (p *signedPeer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.mu.Lock()
	p.polls++
	mode, st := p.mode, *p.st.Clone()
	p.mu.Unlock()
	var body []byte
	switch mode {
	case "ok":
		rec := httptest.NewRecorder()
		p.h.ServeHTTP(rec, r)
		body = rec.Body.Bytes()
		p.mu.Lock()
		if p.captured == nil {
			p.captured = bytes.Clone(body)
		}
		p.mu.Unlock()
	case "unsigned": // the lab's fake document: "active, healthy"
		body, _ = json.Marshal(st)
	case "wrongkey":
		attacker, _ := NewKeyring(testKey(0xee))
		body, _ = attacker.Seal(st, time.Now())
	case "forged": // a genuine document, edited
		st.VIPs[netip198] = VIPState{State: StateDraining, Healthy: true}
		body, _ = p.ring.Seal(st, time.Now())
		body = bytes.Replace(body, []byte(`"draining"`), []byte(`"active"`), 1)
	case "stale":
		body, _ = p.ring.Seal(st, time.Now().Add(-time.Hour))
	case "future":
		body, _ = p.ring.Seal(st, time.Now().Add(time.Hour))
	case "replay":
		p.mu.Lock()
		body = p.captured
		p.mu.Unlock()
	case "garbage":
		body = []byte("\x00\x01 garbage {")
	case "huge100m": // streamed: the server itself stays small
		chunk := bytes.Repeat([]byte("x"), 64<<10)
		for range 100 << 20 / len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
		return
	case "hang":
		<-r.Context().Done()
		return
	}
	w.Write(body)
}

var netip198 = netip.MustParseAddr("198.51.100.10")

// startSourcePoller runs a signature-checking Poller over members with a
// fresh Membership until the test ends.
func startSourcePoller(t *testing.T, members []Member, opts PollOptions) (<-chan peerReport, *Membership) {
	t.Helper()
	if opts.Membership == nil {
		opts.Membership = NewMembership()
	}
	return startPoller(t, members, opts), opts.Membership
}

func memberView(t *testing.T, m *Membership, name string) MemberView {
	t.Helper()
	for _, v := range m.Views() {
		if v.Name == name {
			return v
		}
	}
	t.Fatalf("no view of %s", name)
	return MemberView{}
}

// Every attack on a member's document makes the poller count it failed and
// say why, per member and reason; none is ever believed.
func TestPollerRefusesAttacks(t *testing.T) {
	for _, tt := range []struct {
		mode   string
		reason Reason
	}{
		{"unsigned", ReasonUnsigned},
		{"wrongkey", ReasonWrongKey},
		{"forged", ReasonForged},
		{"stale", ReasonStale},
		{"future", ReasonFuture},
		{"replay", ReasonReplayed},
		{"garbage", ReasonInvalid},
		{"huge100m", ReasonInvalid},
	} {
		t.Run(tt.mode, func(t *testing.T) {
			checkNoGoroutineLeak(t)
			ring := mustKeyring(t, testKey(1))
			peer, url := newSignedPeer(t, "n2", ring)
			reports, members := startSourcePoller(t, []Member{{Name: "n2", URL: url}}, PollOptions{
				Interval: 10 * time.Millisecond, Timeout: time.Second, Rise: 2, Fall: 3,
				Verifier: NewVerifier(ring, VerifierOptions{}),
			})
			if r := nextPeerReport(t, reports); r.St == nil || r.St.Generation != 1 {
				t.Fatalf("first report %+v, want n2 up", r)
			}
			peer.set(tt.mode, nil)
			if diff := cmp.Diff(peerReport{"n2", nil}, nextPeerReport(t, reports)); diff != "" {
				t.Fatalf("report after %s (-want +got):\n%s", tt.mode, diff)
			}
			v := memberView(t, members, "n2")
			if v.Up || v.Rejected[tt.reason] < 3 || v.Signature != string(tt.reason) || v.LastError == "" {
				t.Errorf("view after %s: %+v, want failed with %d+ %s rejections", tt.mode, v, 3, tt.reason)
			}
			if v.KeyID != KeyID(testKey(1)) || v.Generation != 0 {
				t.Errorf("view keeps key %q, generation %d", v.KeyID, v.Generation)
			}
			// Back to the real document (a new generation: the replay mark
			// stays): up again.
			peer.set("ok", func(st *NodeState) { st.Generation = 2 })
			if r := nextPeerReport(t, reports); r.St == nil || r.St.Generation != 2 {
				t.Fatalf("report after recovery %+v, want n2 up at generation 2", r)
			}
			if v := memberView(t, members, "n2"); v.Signature != "ok" || !v.Up {
				t.Errorf("view after recovery: %+v", v)
			}
		})
	}
}

// The lab's first finding: with n2's vipd stopped, a fake document at its
// state URL saying "active, healthy" was believed on the first poll. Now no
// fake is ever reported up.
func TestPollerNeverBelievesFakeFromStart(t *testing.T) {
	for _, mode := range []string{"unsigned", "wrongkey", "forged", "stale", "future"} {
		t.Run(mode, func(t *testing.T) {
			ring := mustKeyring(t, testKey(1))
			peer, url := newSignedPeer(t, "n2", ring)
			peer.set(mode, nil)
			reports, _ := startSourcePoller(t, []Member{{Name: "n2", URL: url}}, PollOptions{
				Interval: 10 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 3,
				Verifier: NewVerifier(ring, VerifierOptions{}),
			})
			if diff := cmp.Diff(peerReport{"n2", nil}, nextPeerReport(t, reports)); diff != "" {
				t.Fatalf("report (-want +got):\n%s", diff)
			}
			peer.waitPolls(t, 10)
			select {
			case r := <-reports:
				t.Fatalf("fake document reported: %+v", r)
			default:
			}
		})
	}
}

// A peer whose generation goes backwards (the lab's 1e18 to 5) is refused
// as a replay, even freshly signed with the right key.
func TestPollerGenerationBackwards(t *testing.T) {
	ring := mustKeyring(t, testKey(1))
	peer, url := newSignedPeer(t, "n2", ring)
	peer.set("ok", func(st *NodeState) { st.Generation = 1e18 })
	reports, members := startSourcePoller(t, []Member{{Name: "n2", URL: url}}, PollOptions{
		Interval: 10 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 2,
		Verifier: NewVerifier(ring, VerifierOptions{}),
	})
	if r := nextPeerReport(t, reports); r.St == nil || r.St.Generation != 1e18 {
		t.Fatalf("first report %+v", r)
	}
	peer.set("ok", func(st *NodeState) { st.Generation = 5 })
	if r := nextPeerReport(t, reports); r.St != nil {
		t.Fatalf("generation 5 after 1e18 reported: %+v", r.St)
	}
	if v := memberView(t, members, "n2"); v.Rejected[ReasonReplayed] < 2 {
		t.Errorf("view %+v, want replayed rejections", v)
	}
}

// Garbage and a 100 MB body cost a bounded read each: memory stays flat.
func TestPollerHugeBodyFlatMemory(t *testing.T) {
	ring := mustKeyring(t, testKey(1))
	peer, url := newSignedPeer(t, "n2", ring)
	peer.set("huge100m", nil)
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	reports, _ := startSourcePoller(t, []Member{{Name: "n2", URL: url}}, PollOptions{
		Interval: 20 * time.Millisecond, Timeout: 2 * time.Second, Rise: 1, Fall: 3,
		Verifier: NewVerifier(ring, VerifierOptions{}),
	})
	if r := nextPeerReport(t, reports); r.St != nil {
		t.Fatalf("100 MB document reported up")
	}
	peer.waitPolls(t, 3)
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	polls := peer.pollCount()
	// Each poll reads at most maxStateBody+1 bytes (io.ReadAll grows its
	// buffer to ~2x); the server side writes a reused 64 KiB chunk.
	if per := (after.TotalAlloc - before.TotalAlloc) / uint64(polls); per > 6*maxStateBody {
		t.Errorf("allocated %d bytes per poll of a 100 MB body, want under %d", per, 6*maxStateBody)
	}
	t.Logf("%d polls of a 100 MB body: %.1f MiB allocated per poll", polls, float64(after.TotalAlloc-before.TotalAlloc)/float64(polls)/(1<<20))
}

// Key rotation in the documented order (docs/cluster.md): add the new key
// as second everywhere, make it first everywhere, remove the old one. Each
// step reaches the members one at a time, polls run all along, and fall is
// 1, so a single refused document would fail a member: none is refused.
func TestPollerKeyRotationNoFlap(t *testing.T) {
	old, next := testKey(1), testKey(2)
	names := []string{"n1", "n2", "n3"}
	var peers []*signedPeer
	var members []Member
	for _, n := range names {
		p, url := newSignedPeer(t, n, mustKeyring(t, old))
		peers = append(peers, p)
		members = append(members, Member{Name: n, URL: url})
	}
	// The poller's node is a member too: its keyring is rotated with the
	// others, as the same key file on every node.
	self := mustKeyring(t, old)
	reports, membership := startSourcePoller(t, members, PollOptions{
		Interval: 5 * time.Millisecond, Timeout: time.Second, Rise: 1, Fall: 1,
		Verifier: NewVerifier(self, VerifierOptions{}),
	})
	up := 0
	for up < len(names) {
		if r := nextPeerReport(t, reports); r.St != nil {
			up++
		}
	}
	settle := func() {
		for _, p := range peers {
			p.waitPolls(t, 3)
		}
	}
	steps := [][][]byte{{old, next}, {next, old}, {next}}
	for _, keys := range steps {
		// Within a step the order does not matter: this node takes it
		// between two of its peers.
		for _, ring := range []*Keyring{peers[0].ring, self, peers[1].ring, peers[2].ring} {
			if err := ring.Set(keys...); err != nil {
				t.Fatal(err)
			}
			settle()
		}
	}
	settle()
	for _, v := range membership.Views() {
		if len(v.Rejected) != 0 || v.Misses != 0 || !v.Up || v.Signature != "ok" {
			t.Errorf("%s during the rotation: %+v", v.Name, v)
		}
		if v.KeyID != KeyID(next) {
			t.Errorf("%s signs with %s, want the new key %s", v.Name, v.KeyID, KeyID(next))
		}
	}
	select {
	case r := <-reports:
		t.Errorf("a report during the rotation: %+v", r)
	default:
	}

	// The same steps out of order (a member signing with a key this node
	// does not hold yet) are seen at once: the check above is not blind.
	if err := peers[0].ring.Set(testKey(3), next); err != nil {
		t.Fatal(err)
	}
	if r := nextPeerReport(t, reports); r.Node != "n1" || r.St != nil {
		t.Fatalf("report after signing with an unknown key: %+v", r)
	}
	if v := memberView(t, membership, "n1"); v.Rejected[ReasonWrongKey] == 0 {
		t.Errorf("n1 view %+v, want wrong-key rejections", v)
	}
}
