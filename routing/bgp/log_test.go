package bgp

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/hashicorp/go-hclog"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// TestLogAdapter: GoBGP's Fatal and Panic never exit or panic, fields keep
// their values with "Key" renamed "peer", and warnings about a peer become
// its last error.
func TestLogAdapter(t *testing.T) {
	var buf bytes.Buffer
	got := map[netip.Addr]string{}
	l := &logAdapter{
		log:     hclog.New(&hclog.LoggerOptions{Output: &buf, Level: hclog.Info}),
		peerErr: func(p netip.Addr, msg string) { got[p] = msg },
	}
	l.Fatal("failed to create routing policy", gobgplog.Fields{"Topic": "Policy"})
	l.Panic("impossible", nil)
	l.Warn("sent notification", gobgplog.Fields{"Key": "10.0.0.254", "Error": errors.New("hold timer expired")})
	l.Info("Peer Down", gobgplog.Fields{"Key": "2001:db8::fe", "Reason": "dying"})
	l.Info("Peer Up", gobgplog.Fields{"Key": "10.0.0.9"})
	l.Debug("not shown", nil)

	want := map[netip.Addr]string{
		netip.MustParseAddr("10.0.0.254"):   "sent notification: hold timer expired",
		netip.MustParseAddr("2001:db8::fe"): "session down: dying",
	}
	if d := cmp.Diff(want, got, cmpNet); d != "" {
		t.Errorf("peer errors (-want +got):\n%s", d)
	}
	out := buf.String()
	for _, s := range []string{"[ERROR] gobgp: failed to create routing policy: Topic=Policy", "[ERROR] gobgp: impossible", "peer=10.0.0.254"} {
		if !strings.Contains(out, s) {
			t.Errorf("log lacks %q:\n%s", s, out)
		}
	}
	if strings.Contains(out, "not shown") {
		t.Errorf("debug line logged at info level:\n%s", out)
	}
	if l.GetLevel() != gobgplog.InfoLevel {
		t.Errorf("GetLevel() = %v, want info", l.GetLevel())
	}
}
