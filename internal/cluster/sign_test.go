package cluster

import (
	"bytes"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// t0 is the tests' "now".
var t0 = time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)

func mustKeyring(t testing.TB, keys ...[]byte) *Keyring {
	t.Helper()
	r, err := NewKeyring(keys...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func seal(t testing.TB, r *Keyring, st NodeState, at time.Time) []byte {
	t.Helper()
	b, err := r.Seal(st, at)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func docState(node string, gen uint64, state ServeState) NodeState {
	return NodeState{Node: node, Generation: gen, VIPs: map[netip.Addr]VIPState{
		netip.MustParseAddr("198.51.100.10"): {State: state, Healthy: true},
	}}
}

// The envelope is the wire format between versions of vipd, and the MAC
// input must not change by accident: both are pinned here (the signature
// was checked independently: HMAC-SHA256 with 32 bytes of 0x01 over
// "vipd node state v1\x00" | be32 len("n1") | "n1" | be64 ts | doc).
func TestSealFormat(t *testing.T) {
	r := mustKeyring(t, testKey(1))
	got := string(seal(t, r, docState("n1", 7, StateActive), t0))
	want := `{"v":1,"node":"n1","ts":1796212800000000000,"key":"75874146",` +
		`"sig":"855056b9870a82a99033c7847cae1d987de0b5669188c1c1250ef920c5c817e4",` +
		`"doc":{"node":"n1","generation":7,"vips":{"198.51.100.10":{"state":"active","healthy":true}}}}`
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("(-want +got):\n%s", d)
	}
}

func TestVerify(t *testing.T) {
	ours := mustKeyring(t, testKey(1))
	theirs := mustKeyring(t, testKey(9))
	skew := 5 * time.Second
	good := docState("n2", 10, StateActive)

	// forgeKeyID signs with another key but claims ours: only the MAC can
	// tell.
	forgeKeyID := func() []byte {
		b := seal(t, theirs, good, t0)
		return bytes.Replace(b, []byte(KeyID(testKey(9))), []byte(KeyID(testKey(1))), 1)
	}
	tamper := func() []byte {
		b := seal(t, ours, docState("n2", 10, StateDraining), t0)
		return bytes.Replace(b, []byte(`"draining"`), []byte(`"active"`), 1)
	}
	plain, _ := json.Marshal(good)

	tests := []struct {
		name    string
		member  string
		data    []byte
		maxAge  time.Duration
		wantErr error
	}{
		{"good", "n2", seal(t, ours, good, t0), 0, nil},
		{"good, signer clock ahead within skew", "n2", seal(t, ours, good, t0.Add(skew)), 0, nil},
		{"good, signed skew ago", "n2", seal(t, ours, good, t0.Add(-skew)), 0, nil},
		{"good, stored and refreshed within max age", "n2", seal(t, ours, good, t0.Add(-skew-30*time.Second)), 30 * time.Second, nil},
		{"unsigned plain document", "n2", plain, 0, ErrUnsigned},
		{"unsigned envelope", "n2", []byte(`{"v":1,"node":"n2","ts":1,"doc":{"node":"n2"}}`), 0, ErrUnsigned},
		{"garbage", "n2", []byte("\x00\xffnot json"), 0, ErrBadDocument},
		{"truncated", "n2", seal(t, ours, good, t0)[:40], 0, ErrBadDocument},
		{"unknown version", "n2", bytes.Replace(seal(t, ours, good, t0), []byte(`{"v":1,`), []byte(`{"v":2,`), 1), 0, ErrBadDocument},
		{"wrong key", "n2", seal(t, theirs, good, t0), 0, ErrWrongKey},
		{"forged with our key id", "n2", forgeKeyID(), 0, ErrForged},
		{"tampered document", "n2", tamper(), 0, ErrForged},
		{"tampered timestamp", "n2", bytes.Replace(seal(t, ours, good, t0), []byte(`"ts":1796`), []byte(`"ts":1795`), 1), 0, ErrForged},
		{"bad signature hex", "n2", bytes.Replace(seal(t, ours, good, t0), []byte(`"sig":"`), []byte(`"sig":"zz`), 1), 0, ErrForged},
		{"another member's document", "n2", seal(t, ours, docState("n3", 10, StateActive), t0), 0, ErrWrongNode},
		{"stale", "n2", seal(t, ours, good, t0.Add(-skew-time.Millisecond)), 0, ErrStale},
		{"stale beyond max age", "n2", seal(t, ours, good, t0.Add(-skew-31*time.Second)), 30 * time.Second, ErrStale},
		{"future", "n2", seal(t, ours, good, t0.Add(skew+time.Millisecond)), 0, ErrFuture},
		{"signed but invalid document", "n2", seal(t, ours, NodeState{Node: "n2", VIPs: map[netip.Addr]VIPState{netip.MustParseAddr("fe80::1%eth0"): {State: StateActive}}}, t0), 0, ErrBadDocument},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := NewVerifier(ours, VerifierOptions{MaxSkew: skew, Now: func() time.Time { return t0 }})
			got, err := v.Verify(tt.member, tt.data, tt.maxAge)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Verify = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if got != nil {
					t.Errorf("refused document returned %+v", got)
				}
				if r, ok := ReasonOf(err); !ok || r == "" {
					t.Errorf("ReasonOf(%v) = %q, %t", err, r, ok)
				}
				return
			}
			if d := cmp.Diff(&good, got.State); d != "" {
				t.Errorf("document (-want +got):\n%s", d)
			}
			if got.KeyID != KeyID(testKey(1)) || got.Time.IsZero() || got.Unsigned {
				t.Errorf("signed = %+v", got)
			}
		})
	}
}

// The lab's findings: a generation going backwards (1e18 to 5) was
// accepted, and so would be the same document served again. Both are
// replays now; so is an older copy of the current generation.
func TestVerifyReplay(t *testing.T) {
	r := mustKeyring(t, testKey(1))
	now := t0
	v := NewVerifier(r, VerifierOptions{Now: func() time.Time { return now }})
	verify := func(data []byte) error {
		_, err := v.Verify("n2", data, 0)
		return err
	}
	old := seal(t, r, docState("n2", 5, StateActive), now)
	now = now.Add(time.Second)
	high := seal(t, r, docState("n2", 1e18, StateActive), now)
	if err := verify(high); err != nil {
		t.Fatal(err)
	}
	if err := verify(old); !errors.Is(err, ErrReplayed) || !strings.Contains(err.Error(), "generation 5 after 1000000000000000000") {
		t.Errorf("generation going backwards: %v", err)
	}
	if err := verify(high); !errors.Is(err, ErrReplayed) {
		t.Errorf("the same signed document again: %v", err)
	}
	older := seal(t, r, docState("n2", 1e18, StateActive), now.Add(-time.Millisecond))
	if err := verify(older); !errors.Is(err, ErrReplayed) {
		t.Errorf("same generation, older signature: %v", err)
	}
	// The same generation signed later (a poll of an unchanged member), and
	// then a new generation, pass.
	now = now.Add(time.Second)
	if err := verify(seal(t, r, docState("n2", 1e18, StateActive), now)); err != nil {
		t.Errorf("same generation, newer signature: %v", err)
	}
	now = now.Add(time.Second)
	if err := verify(seal(t, r, docState("n2", 1e18+1, StateDraining), now)); err != nil {
		t.Errorf("next generation: %v", err)
	}
	// Refused documents do not move the mark: another member is separate.
	if _, err := v.Verify("n3", seal(t, r, docState("n3", 5, StateActive), now), 0); err != nil {
		t.Errorf("another member: %v", err)
	}
}

// A key rotation, as Keyring.Set does it at run time: documents signed with
// either key pass while both are held; once the old key is gone, its
// documents are refused as wrong-key.
func TestVerifyRotation(t *testing.T) {
	old, next := testKey(1), testKey(2)
	ring := mustKeyring(t, old)
	now := t0
	v := NewVerifier(ring, VerifierOptions{Now: func() time.Time { return now }})
	signOld, signNew := mustKeyring(t, old), mustKeyring(t, next, old)
	step := func(signer *Keyring, want error) {
		t.Helper()
		now = now.Add(time.Second)
		if _, err := v.Verify("n2", seal(t, signer, docState("n2", 1, StateActive), now), 0); !errors.Is(err, want) {
			t.Errorf("Verify = %v, want %v", err, want)
		}
	}
	step(signNew, ErrWrongKey) // the new key before it is accepted
	if err := ring.Set(old, next); err != nil {
		t.Fatal(err)
	}
	step(signOld, nil)
	step(signNew, nil)
	if err := ring.Set(next, old); err != nil {
		t.Fatal(err)
	}
	step(signOld, nil)
	step(signNew, nil)
	if err := ring.Set(next); err != nil {
		t.Fatal(err)
	}
	step(signNew, nil)
	step(signOld, ErrWrongKey)
}

func TestVerifyAllowUnsigned(t *testing.T) {
	r := mustKeyring(t, testKey(1))
	v := NewVerifier(r, VerifierOptions{AllowUnsigned: true, Now: func() time.Time { return t0 }})
	plain, _ := json.Marshal(docState("n2", 3, StateActive))
	got, err := v.Verify("n2", plain, 0)
	if err != nil || !got.Unsigned || got.State.Generation != 3 {
		t.Fatalf("unsigned with AllowUnsigned = %+v, %v", got, err)
	}
	// Signed documents are still verified.
	if _, err := v.Verify("n2", seal(t, mustKeyring(t, testKey(9)), docState("n2", 4, StateActive), t0), 0); !errors.Is(err, ErrWrongKey) {
		t.Errorf("wrong key with AllowUnsigned = %v", err)
	}
	// A node with no key reads a signing member's document unverified.
	got, err = decodeUnsigned(seal(t, r, docState("n2", 5, StateDraining), t0), "n2")
	if err != nil || !got.Unsigned || got.State.VIPs[netip.MustParseAddr("198.51.100.10")].State != StateDraining {
		t.Errorf("decodeUnsigned(envelope) = %+v, %v", got, err)
	}
	if _, err := decodeUnsigned(seal(t, r, docState("n3", 5, StateDraining), t0), "n2"); !errors.Is(err, ErrWrongNode) {
		t.Errorf("decodeUnsigned(another member's envelope) = %v", err)
	}
}

func TestReasonOf(t *testing.T) {
	for _, r := range Reasons() {
		if r == "" {
			t.Error("empty reason")
		}
	}
	if _, ok := ReasonOf(errors.New("connection refused")); ok {
		t.Error("a connection error has a rejection reason")
	}
	if r, ok := ReasonOf(ErrStale); !ok || r != ReasonStale {
		t.Errorf("ReasonOf(ErrStale) = %q, %t", r, ok)
	}
}

func BenchmarkSealVerify(b *testing.B) {
	r := mustKeyring(b, testKey(1))
	st := docState("n2", 1, StateActive)
	v := NewVerifier(r, VerifierOptions{})
	for b.Loop() {
		st.Generation++
		data, err := r.Seal(st, time.Now())
		if err != nil {
			b.Fatal(err)
		}
		if _, err := v.Verify("n2", data, 0); err != nil {
			b.Fatal(err)
		}
	}
}

// The envelope parser takes bytes from the network and from etcd: it must
// never panic, and nothing but a document signed with our key may pass.
func FuzzVerify(f *testing.F) {
	r := mustKeyring(f, testKey(1))
	good, _ := r.Seal(docState("n2", 3, StateActive), t0)
	f.Add(good)
	f.Add([]byte(`{"v":1,"node":"n2","ts":1,"key":"75874146","sig":"00","doc":{}}`))
	f.Add([]byte(`{"node":"n2","generation":1}`))
	f.Add([]byte(`{"v":1,"sig":"x","doc":null}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		v := NewVerifier(r, VerifierOptions{MaxSkew: time.Hour, Now: func() time.Time { return t0 }})
		got, err := v.Verify("n2", data, 0)
		if err != nil {
			if got != nil {
				t.Fatalf("error %v with a document", err)
			}
			if _, ok := ReasonOf(err); !ok {
				t.Fatalf("refusal without a reason: %v", err)
			}
			return
		}
		// Accepted: it must be exactly a document we signed, modulo JSON
		// the envelope parser tolerates around the signed bytes.
		var env envelope
		if json.Unmarshal(data, &env) != nil || env.Node != "n2" || got.State.Node != "n2" || got.Unsigned {
			t.Fatalf("accepted %q as %+v", data, got)
		}
		if !bytes.Contains(good, env.Doc) {
			t.Fatalf("accepted a document that was never signed: %s", env.Doc)
		}
	})
}

func FuzzParseKeyFile(f *testing.F) {
	f.Add(FormatKeyFile(testKey(1), testKey(2)))
	f.Add([]byte("# x\n\n00"))
	f.Fuzz(func(t *testing.T, data []byte) {
		keys, err := ParseKeyFile(data)
		if err != nil {
			return
		}
		for _, k := range keys {
			if len(k) < KeySize || len(k) > maxKeySize {
				t.Fatalf("accepted a %d-byte key", len(k))
			}
		}
	})
}
