package bird

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/routing"
)

// State is what the BIRD vipd drives says about itself and about vipd's
// OSPF protocols, read over its control socket: whether it runs, each
// protocol's state, and each neighbour's. Peers, Exported and the doctor
// read it; its reasons say why a family has no Full adjacency.
type State struct {
	// At is when it was read (BIRD's clock, when it said).
	At time.Time
	// Version is BIRD's version from its greeting ("2.0.12").
	Version string
	// Running is false when BIRD says it is shutting down.
	Running bool
	// Started is BIRD's last (re)start.
	Started time.Time
	// Protocols are vipd's OSPF protocols (mode full: those it
	// configures, in config order; mode include: every OSPF protocol
	// BIRD runs), each with its neighbours.
	Protocols []ProtocolState
}

// ProtocolState is one OSPF protocol of BIRD.
type ProtocolState struct {
	Name string
	// Version is 2 (IPv4) or 3 (IPv6); 0 when unknown.
	Version int
	// Missing: vipd configures it, but BIRD does not run it (BIRD runs
	// another file).
	Missing bool
	// State is BIRD's word ("up", "down", "start", "flush"), Info its
	// note ("Running", "Alone", "Error: ..."); down with no note is a
	// protocol disabled by `birdc disable` or `disabled yes`.
	State, Info string
	// Since is when it entered State (zero if BIRD printed no time).
	Since time.Time
	// Exported counts the routes BIRD exports to it.
	Exported  int
	Neighbors []Neighbor
}

// Up reports whether the protocol runs.
func (p ProtocolState) Up() bool { return p.State == "up" }

// Disabled reports whether the protocol was stopped on purpose.
func (p ProtocolState) Disabled() bool { return p.State == "down" && p.Info == "" }

// Full returns the neighbours in state Full: routes flow to them.
func (p ProtocolState) Full() []Neighbor {
	var out []Neighbor
	for _, n := range p.Neighbors {
		if strings.HasPrefix(n.State, "Full") {
			out = append(out, n)
		}
	}
	return out
}

// Why says why the protocol has no Full adjacency ("" when it has one).
func (p ProtocolState) Why() string {
	switch {
	case p.Missing:
		return p.Name + " does not run in bird (bird runs another config than vipd's?)"
	case p.Disabled():
		return p.Name + " is disabled in bird (birdc enable " + p.Name + ")"
	case !p.Up() && p.Info != "":
		return p.Name + " is " + p.State + ": " + p.Info
	case !p.Up():
		return p.Name + " is " + p.State
	case len(p.Full()) > 0:
		return ""
	case len(p.Neighbors) == 0:
		return p.Name + " has no OSPF neighbour (no router heard on its interfaces)"
	}
	var parts []string
	for _, n := range p.Neighbors {
		parts = append(parts, fmt.Sprintf("%s on %s in %s%s", n.RouterID, n.Interface, n.State, neighborHint(n)))
	}
	return p.Name + ": neighbour " + strings.Join(parts, ", ")
}

// neighborHint explains a neighbour state that lasts.
func neighborHint(n Neighbor) string {
	switch {
	case n.Stuck():
		return " (usually an MTU mismatch with the router: vipctl doctor tells)"
	case strings.HasPrefix(n.State, "Init"):
		return " (the router does not hear this node's hellos)"
	}
	return ""
}

// family returns 4 or 6, the address family the protocol carries.
func (p ProtocolState) family() int {
	if p.Version == 3 {
		return 6
	}
	return 4
}

// ReadState reads the state of the BIRD that cfg drives. A BIRD that
// cannot be reached is an error wrapping ErrSocketMissing, ErrBirdDown or
// ErrSocketPermission.
func ReadState(ctx context.Context, cfg Config) (State, error) {
	cfg = cfg.WithDefaults()
	cc, err := dialControl(ctx, cfg.Socket)
	if err != nil {
		return State{}, err
	}
	defer cc.Close()
	return readState(ctx, cc, cfg)
}

// readState reads State over cc.
func readState(ctx context.Context, cc *controlConn, cfg Config) (State, error) {
	var s State
	lines, err := cc.cmd(ctx, "show status")
	if err != nil {
		return s, fmt.Errorf("asking bird for its status: %w", err)
	}
	s.parseStatus(lines)
	if s.At.IsZero() {
		s.At = time.Now()
	}
	lines, err = cc.cmd(ctx, "show protocols all")
	if err != nil {
		return s, fmt.Errorf("listing bird protocols: %w", err)
	}
	running := parseProtocolsAll(lines, s.At)
	if cfg.Mode == ModeInclude {
		s.Protocols = running
	} else {
		for _, o := range cfg.OSPF {
			i := slices.IndexFunc(running, func(p ProtocolState) bool { return p.Name == o.Name })
			if i < 0 {
				s.Protocols = append(s.Protocols, ProtocolState{Name: o.Name, Version: o.Version, Missing: true, State: "missing"})
				continue
			}
			p := running[i]
			if p.Version == 0 {
				p.Version = o.Version
			}
			s.Protocols = append(s.Protocols, p)
		}
	}
	if len(s.Protocols) == 0 {
		return s, nil
	}
	lines, err = cc.cmd(ctx, "show ospf neighbors")
	if err != nil {
		return s, fmt.Errorf("listing ospf neighbors: %w", err)
	}
	for _, n := range parseNeighbors(texts(lines)) {
		for i := range s.Protocols {
			if s.Protocols[i].Name == n.Protocol {
				s.Protocols[i].Neighbors = append(s.Protocols[i].Neighbors, n)
			}
		}
	}
	return s, nil
}

// parseStatus reads `show status`: the version line, "Current server time
// is ...", "Last reboot on ...", "Daemon is up and running".
func (s *State) parseStatus(lines []replyLine) {
	for _, l := range lines {
		t := strings.TrimSpace(l.text)
		switch {
		case strings.HasPrefix(t, "BIRD "):
			s.Version = strings.TrimPrefix(t, "BIRD ")
		case strings.HasPrefix(t, "Current server time is "):
			s.At = parseBirdTime(strings.TrimPrefix(t, "Current server time is "))
		case strings.HasPrefix(t, "Last reboot on "):
			s.Started = parseBirdTime(strings.TrimPrefix(t, "Last reboot on "))
		case t == "Daemon is up and running":
			s.Running = true
		}
	}
}

// parseBirdTime reads BIRD's "2026-12-02 03:57:14.219" (local time).
func parseBirdTime(v string) time.Time {
	for _, layout := range []string{"2006-01-02 15:04:05.000", "2006-01-02 15:04:05"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			return t
		}
	}
	return time.Time{}
}

// parseProtocolsAll reads the OSPF protocols of `show protocols all`:
//
//	ospf_v2    OSPF       master4    up     03:57:14.219  Running
//	  Channel ipv4
//	    State:          UP
//	    Routes:         3 imported, 2 exported, 1 preferred
//
// now (BIRD's clock) dates a Since given as a time of day.
func parseProtocolsAll(lines []replyLine, now time.Time) []ProtocolState {
	var out []ProtocolState
	var cur *ProtocolState
	for _, l := range lines {
		t := l.text
		if !strings.HasPrefix(t, " ") && !strings.HasPrefix(t, "\t") {
			cur = nil
			f := strings.Fields(t)
			if len(f) < 4 || f[1] != "OSPF" {
				continue
			}
			p := ProtocolState{Name: f[0], State: f[3]}
			switch {
			case strings.HasSuffix(f[2], "6"):
				p.Version = 3
			case strings.HasSuffix(f[2], "4"):
				p.Version = 2
			}
			rest := f[4:]
			if len(rest) > 0 {
				// Since: "03:57:14.219", or "2026-12-01 03:57:14" / "2026-12-01".
				since := rest[0]
				rest = rest[1:]
				if strings.Contains(since, "-") && len(rest) > 0 && strings.Contains(rest[0], ":") {
					since += " " + rest[0]
					rest = rest[1:]
				}
				p.Since = parseSince(since, now)
			}
			p.Info = strings.Join(rest, " ")
			out = append(out, p)
			cur = &out[len(out)-1]
			continue
		}
		if cur == nil {
			continue
		}
		f := strings.Fields(t)
		switch {
		case len(f) == 2 && f[0] == "Channel":
			switch f[1] {
			case "ipv6":
				cur.Version = 3
			case "ipv4":
				cur.Version = 2
			}
		case len(f) >= 4 && f[0] == "Routes:":
			// "Routes: 3 imported, 2 exported, 1 preferred"
			for i := 1; i+1 < len(f); i++ {
				if strings.HasPrefix(f[i+1], "exported") {
					cur.Exported, _ = strconv.Atoi(f[i])
				}
			}
		}
	}
	return out
}

// parseSince reads the Since column: a time of day (today, by BIRD's
// clock) or a date with or without a time.
func parseSince(v string, now time.Time) time.Time {
	if t := parseBirdTime(v); !t.IsZero() {
		return t
	}
	for _, layout := range []string{"15:04:05.000", "15:04:05"} {
		if t, err := time.ParseInLocation(layout, v, time.Local); err == nil {
			y, m, d := now.Date()
			return time.Date(y, m, d, t.Hour(), t.Minute(), t.Second(), t.Nanosecond(), time.Local)
		}
	}
	if t, err := time.ParseInLocation("2006-01-02", v, time.Local); err == nil {
		return t
	}
	return time.Time{}
}

// peers turns a State into routing.Peers for status and metrics: BIRD
// itself ("bird"), each of vipd's OSPF protocols, each neighbour ("PROTO
// ROUTERID"). Up means: BIRD runs; the protocol is up with at least one
// Full neighbour; the neighbour is Full. A part that is not up says why
// in LastError.
func (s State) peers(mismatches []MTUMismatch) []routing.Peer {
	out := []routing.Peer{{
		Kind:   routing.PeerDaemon,
		Name:   "bird",
		State:  "up " + s.Version,
		Up:     s.Running,
		Uptime: since(s.At, s.Started),
	}}
	if !s.Running {
		out[0].State = "shutting down " + s.Version
		out[0].LastError = "bird is shutting down"
	}
	for _, p := range s.Protocols {
		full := p.Full()
		ps := routing.Peer{Kind: routing.PeerInstance, Name: p.Name, State: p.State, Up: p.Up() && len(full) > 0, LastError: p.Why()}
		switch {
		case p.Disabled():
			ps.State = "disabled"
		case p.Info != "":
			ps.State += " " + strings.ToLower(p.Info)
		}
		if p.Up() {
			ps.Uptime = since(s.At, p.Since)
			ps.Advertised = p.Exported
		}
		out = append(out, ps)
		for _, n := range p.Neighbors {
			addr, _ := netip.ParseAddr(n.Address)
			np := routing.Peer{Name: p.Name + " " + n.RouterID, Address: addr, State: strings.ToLower(n.State)}
			np.Up = strings.HasPrefix(n.State, "Full")
			if np.Up {
				np.Advertised = p.Exported
			} else {
				np.LastError = "adjacency in " + n.State + neighborHint(n)
				for _, m := range mismatches {
					if m.Neighbor == n.RouterID && m.Interface == n.Interface {
						np.LastError = fmt.Sprintf("adjacency in %s: MTU mismatch (remote %d, local %d): make the MTUs "+
							"match, or set ignore_mtu on both ends (a patched BIRD here, the router's MTU-ignore option there)",
							n.State, m.Remote, m.Local)
					}
				}
			}
			out = append(out, np)
		}
	}
	return out
}

func since(now, t time.Time) time.Duration {
	if t.IsZero() || now.Before(t) {
		return 0
	}
	return now.Sub(t)
}

// noSession says, per address family (4, 6), why no protocol of vipd's
// carrying it has a Full adjacency; a family with one, or that no
// protocol carries, is left out.
func (s State) noSession() map[int]string {
	full := map[int]bool{}
	why := map[int][]string{}
	for _, p := range s.Protocols {
		f := p.family()
		if len(p.Full()) > 0 && p.Up() {
			full[f] = true
			continue
		}
		why[f] = append(why[f], p.Why())
	}
	out := map[int]string{}
	for f, ws := range why {
		if !full[f] {
			out[f] = strings.Join(ws, "; ")
		}
	}
	return out
}

// stuck reports whether a neighbour of vipd's protocols is in ExStart.
func (s State) stuck() bool {
	for _, p := range s.Protocols {
		for _, n := range p.Neighbors {
			if n.Stuck() {
				return true
			}
		}
	}
	return false
}
