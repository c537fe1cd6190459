package bird

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/vipd/vipd/routing"
)

// TestConfigureResult reads the replies of BIRD 2.0.12 to `configure` and
// `configure check` over the control socket, and names each failure's
// cause.
func TestConfigureResult(t *testing.T) {
	const f = "/etc/bird/bird.conf"
	reading := replyLine{2, "Reading configuration from " + f}
	tests := []struct {
		name  string
		lines []replyLine
		want  ConfigureResult
		err   error  // errors.Is
		text  string // or the whole error text
		isCfg bool   // a *ConfigError
	}{
		{name: "reconfigured", lines: []replyLine{reading, {3, "Reconfigured"}}, want: Reconfigured},
		{name: "in progress", lines: []replyLine{reading, {4, "Reconfiguration in progress"}}, want: ReconfigInProgress},
		{name: "queued", lines: []replyLine{reading, {5, "Reconfiguration already in progress, queueing new config"}}, want: ReconfigQueued},
		{name: "check ok", lines: []replyLine{reading, {20, "Configuration OK"}}, want: ConfigOK},
		{name: "syntax error", lines: []replyLine{reading, {8002, f + ":3:43 syntax error, unexpected CF_SYM_UNDEFINED"}},
			text: f + ":3:43: syntax error, unexpected CF_SYM_UNDEFINED", isCfg: true},
		{name: "cannot read", lines: []replyLine{reading, {8002, f + ": Permission denied"}}, err: ErrBirdCannotRead},
		{name: "include cannot be read", lines: []replyLine{reading, {8002, f + ":3:1 Unable to open included file /etc/bird/vipd.conf: Permission denied"}},
			err: ErrBirdCannotRead},
		{name: "no file", lines: []replyLine{reading, {8002, f + ": No such file or directory"}}, err: ErrBirdNoFile},
		{name: "shutting down", lines: []replyLine{{6, "Reconfiguration ignored, shutting down"}}, err: ErrBirdShuttingDown},
		{name: "empty", text: "empty reply from bird to configure"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := configureResult(f, tc.lines)
			if got != tc.want {
				t.Errorf("result %q, want %q", got, tc.want)
			}
			switch {
			case tc.err != nil && !errors.Is(err, tc.err):
				t.Errorf("error %v, want %v", err, tc.err)
			case tc.text != "" && (err == nil || err.Error() != tc.text):
				t.Errorf("error %v, want %q", err, tc.text)
			case tc.err == nil && tc.text == "" && err != nil:
				t.Errorf("error %v, want none", err)
			}
			var ce *ConfigError
			if errors.As(err, &ce) != tc.isCfg {
				t.Errorf("error %v: a *ConfigError: %v, want %v", err, !tc.isCfg, tc.isCfg)
			}
		})
	}
}

// TestStatePeers: what status shows of BIRD: the daemon, each protocol
// of vipd's (up, disabled, missing, alone) and each neighbour, with the
// reason of each one that carries no route, and the per-family reasons
// Exported gives a VIP with no session.
func TestStatePeers(t *testing.T) {
	now := time.Date(2026, 12, 2, 4, 0, 0, 0, time.Local)
	lines := []replyLine{
		{2002, "Name       Proto      Table      State  Since         Info"},
		{1002, "vipd_device Device    ---        up     03:57:14.219  "},
		{1002, "ospf_v2    OSPF       master4    up     03:57:14.219  Running"},
		{1006, "  Channel ipv4"},
		{1006, "    State:          UP"},
		{1006, "    Routes:         3 imported, 2 exported, 1 preferred"},
		{1002, "ospf_v3    OSPF       master6    down   03:59:00.000  "},
		{1006, "  Channel ipv6"},
		{1002, "ops        OSPF       master4    up     2026-12-01 10:00:00  Alone"},
	}
	protos := parseProtocolsAll(lines, now)
	if len(protos) != 3 || protos[0].Exported != 2 || protos[1].Version != 3 || !protos[1].Disabled() ||
		protos[0].Since != time.Date(2026, 12, 2, 3, 57, 14, 219e6, time.Local) {
		t.Fatalf("parseProtocolsAll = %+v", protos)
	}
	protos[0].Neighbors = []Neighbor{
		{Protocol: "ospf_v2", RouterID: "192.0.2.1", State: "Full/DR", Interface: "up0", Address: "192.0.2.1"},
		{Protocol: "ospf_v2", RouterID: "192.0.2.2", State: "ExStart/BDR", Interface: "up0", Address: "192.0.2.2"},
	}
	s := State{At: now, Version: "2.0.12", Running: true, Started: now.Add(-time.Hour),
		Protocols: []ProtocolState{protos[0], protos[1], {Name: "ospf_v3b", Version: 3, Missing: true, State: "missing"}}}
	var got []string
	for _, p := range s.peers([]MTUMismatch{{Protocol: "ospf_v2", Neighbor: "192.0.2.2", Interface: "up0", Remote: 3000, Local: 1500}}) {
		got = append(got, strings.Join([]string{string(p.Kind), p.Name, p.State, map[bool]string{true: "up", false: "down"}[p.Up], p.LastError}, "|"))
	}
	want := []string{
		"daemon|bird|up 2.0.12|up|",
		"instance|ospf_v2|up running|up|",
		"|ospf_v2 192.0.2.1|full/dr|up|",
		"|ospf_v2 192.0.2.2|exstart/bdr|down|adjacency in ExStart/BDR: MTU mismatch (remote 3000, local 1500): make the MTUs match, or set ignore_mtu on both ends (a patched BIRD here, the router's MTU-ignore option there)",
		"instance|ospf_v3|disabled|down|ospf_v3 is disabled in bird (birdc enable ospf_v3)",
		"instance|ospf_v3b|missing|down|ospf_v3b does not run in bird (bird runs another config than vipd's?)",
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("peers (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[int]string{6: "ospf_v3 is disabled in bird (birdc enable ospf_v3); ospf_v3b does not run in bird (bird runs another config than vipd's?)"},
		s.noSession()); d != "" {
		t.Errorf("noSession (-want +got):\n%s", d)
	}
	// The only v2 neighbour stuck: the reason names it and the likely cause.
	s.Protocols[0].Neighbors = s.Protocols[0].Neighbors[1:]
	if got := s.noSession()[4]; got != "ospf_v2: neighbour 192.0.2.2 on up0 in ExStart/BDR (usually an MTU mismatch with the router: vipctl doctor tells)" {
		t.Errorf("noSession[4] = %q", got)
	}
	s.Protocols[0].Neighbors = nil
	if got := s.noSession()[4]; got != "ospf_v2 has no OSPF neighbour (no router heard on its interfaces)" {
		t.Errorf("noSession[4] = %q", got)
	}
	if p := (State{At: now, Version: "2.0.12"}).peers(nil)[0]; p.Up || p.Kind != routing.PeerDaemon || p.LastError == "" {
		t.Errorf("a BIRD shutting down: %+v, want down with a reason", p)
	}
}
