package cluster

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// The rollout that turns signing on (docs/cluster.md): a node without a
// key serves plain documents and reads its peers' envelopes unverified
// while unsigned documents are allowed; the same Keyring and Verifier take
// the key and the stricter option in place, keeping the replay memory.
func TestRolloutInPlace(t *testing.T) {
	keys := &Keyring{}
	if !keys.Empty() || keys.IDs() != nil {
		t.Fatal("the zero Keyring is not empty")
	}
	if _, err := keys.Seal(docState("n1", 1, StateActive), t0); !errors.Is(err, ErrBadKey) {
		t.Errorf("Seal with no key: %v, want ErrBadKey", err)
	}
	now := t0
	v := NewVerifier(keys, VerifierOptions{Now: func() time.Time { return now }, AllowUnsigned: true})
	peer := mustKeyring(t, testKey(1))

	// No key here: a peer's envelope is read unverified, a plain one too.
	got, err := v.Verify("n2", seal(t, peer, docState("n2", 5, StateActive), now), 0)
	if err != nil || !got.Unsigned || got.State.Generation != 5 {
		t.Fatalf("envelope without a key: %+v, %v", got, err)
	}
	h := NewHandler(func() NodeState { return docState("n1", 3, StateActive) }, SignWith(keys, func() time.Time { return now }))
	if body := get(t, h); body[0] != '{' || contains(body, `"sig"`) {
		t.Errorf("no key: served %s, want the plain document", body)
	}

	// The key arrives (a reload): documents are signed and verified.
	if err := keys.Set(testKey(1)); err != nil {
		t.Fatal(err)
	}
	if body := get(t, h); !contains(body, `"sig"`) {
		t.Errorf("with a key: served %s, want an envelope", body)
	}
	now = now.Add(time.Second)
	if got, err := v.Verify("n2", seal(t, peer, docState("n2", 6, StateActive), now), 0); err != nil || got.Unsigned {
		t.Fatalf("signed with the key: %+v, %v", got, err)
	}
	// Unsigned still allowed, then refused once the option is turned off.
	if _, err := v.Verify("n2", []byte(`{"node":"n2","generation":7,"vips":{}}`), 0); err != nil {
		t.Errorf("unsigned while allowed: %v", err)
	}
	v.SetOptions(2*time.Second, false)
	if _, err := v.Verify("n2", []byte(`{"node":"n2","generation":8,"vips":{}}`), 0); !errors.Is(err, ErrUnsigned) {
		t.Errorf("unsigned once disallowed: %v, want ErrUnsigned", err)
	}
	if v.MaxSkew() != 2*time.Second {
		t.Errorf("MaxSkew %s after SetOptions", v.MaxSkew())
	}
	// The replay memory survived: the generation-6 document is refused.
	if _, err := v.Verify("n2", seal(t, peer, docState("n2", 5, StateActive), now.Add(time.Second)), 0); !errors.Is(err, ErrReplayed) {
		t.Errorf("older generation after the changes: %v, want ErrReplayed", err)
	}
	keys.Clear()
	if _, err := v.Verify("n2", seal(t, peer, docState("n2", 9, StateActive), now.Add(time.Second)), 0); !errors.Is(err, ErrWrongKey) {
		t.Errorf("no key and unsigned refused: %v, want ErrWrongKey", err)
	}
}

func get(t *testing.T, h http.Handler) string {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", StatePath, nil))
	b, _ := io.ReadAll(rec.Result().Body)
	return string(b)
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// After Reset an older document of a member is accepted again (a switch
// of backends), and the replay check resumes from it.
func TestVerifierReset(t *testing.T) {
	keys := mustKeyring(t, testKey(1))
	now := t0
	v := NewVerifier(keys, VerifierOptions{Now: func() time.Time { return now }})
	older := seal(t, keys, docState("n2", 5, StateActive), now.Add(-time.Second))
	if _, err := v.Verify("n2", seal(t, keys, docState("n2", 6, StateActive), now), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify("n2", older, 0); !errors.Is(err, ErrReplayed) {
		t.Fatalf("older document before Reset: %v, want ErrReplayed", err)
	}
	v.Reset()
	if _, err := v.Verify("n2", older, 0); err != nil {
		t.Errorf("older document after Reset: %v", err)
	}
	if _, err := v.Verify("n2", older, 0); !errors.Is(err, ErrReplayed) {
		t.Errorf("the same document again after Reset: %v, want ErrReplayed", err)
	}
}
