package daemon

import (
	"context"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/dataplane"
)

// trustDataplane is the rig's fake dataplane that also takes the trust
// boundary, recording every SetTrust.
type trustDataplane struct {
	*fakeDataplane
	mu  sync.Mutex
	set []dataplane.Trust
}

func (f *trustDataplane) SetTrust(_ context.Context, t dataplane.Trust) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.set = append(f.set, t)
	return nil
}

func (f *trustDataplane) calls() []dataplane.Trust {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]dataplane.Trust(nil), f.set...)
}

// TestTrustAtStartAndReload: the dataplane is given the members' underlay
// addresses and [dataplane] allowed_sources at start, and again on a reload
// that adds a member and a prefix.
func TestTrustAtStartAndReload(t *testing.T) {
	r := newIdleRig(t)
	tdp := &trustDataplane{fakeDataplane: r.dp}
	r.dpPart = tdp
	r.startNode(Options{}, vipA)
	r.waitAnnounced(vipA)

	addrs := func(ss ...string) []netip.Addr {
		var out []netip.Addr
		for _, s := range ss {
			out = append(out, netip.MustParseAddr(s))
		}
		return out
	}
	opts := cmp.Comparer(func(a, b netip.Addr) bool { return a == b })
	popts := cmp.Comparer(func(a, b netip.Prefix) bool { return a == b })
	want := []dataplane.Trust{{Members: addrs("192.0.2.11")}}
	if diff := cmp.Diff(want, tdp.calls(), opts, popts); diff != "" {
		t.Fatalf("SetTrust at start (-want +got):\n%s", diff)
	}

	text := nodeConfig(r.dir, r.port, vipA)
	n2 := "\n[[cluster.member]]\nname = \"n2\"\nunderlay_v4 = \"192.0.2.12\"\nunderlay_v6 = \"2001:db8::12\"\nstate_url = \"http://127.0.0.1:" +
		strconv.Itoa(freePort(t)) + "/state\"\n"
	text = strings.Replace(text, "\n[[vip]]", n2+"\n[[vip]]", 1)
	text = strings.Replace(text, "interface = \"eth0\"", "interface = \"eth0\"\nallowed_sources = [\"203.0.113.0/28\"]", 1)
	if err := os.WriteFile(r.path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(); err != nil {
		t.Fatal(err)
	}
	want = append(want, dataplane.Trust{Members: addrs("192.0.2.11", "192.0.2.12", "2001:db8::12"),
		Directors: []netip.Prefix{netip.MustParsePrefix("203.0.113.0/28")}})
	if diff := cmp.Diff(want, tdp.calls(), opts, popts); diff != "" {
		t.Errorf("SetTrust after the reload (-want +got):\n%s", diff)
	}

	// A reload refused for a restart-only change leaves the boundary alone.
	if err := os.WriteFile(r.path, []byte(strings.Replace(text, "seed = 1", "seed = 2", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := r.d.Reload(); err == nil {
		t.Fatal("a reload changing the seed succeeded")
	}
	if diff := cmp.Diff(want, tdp.calls(), opts, popts); diff != "" {
		t.Errorf("SetTrust after a refused reload (-want +got):\n%s", diff)
	}
}
