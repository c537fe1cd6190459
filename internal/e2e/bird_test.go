package e2e

import (
	"bufio"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"
)

// birdCLI talks to the router's BIRD over its control socket, as birdc does,
// without a process per question: the 10 ms polls of the restart tests and
// the property test's samples ask often. Safe for concurrent use.
type birdCLI struct {
	path string

	mu   sync.Mutex
	conn net.Conn
	r    *bufio.Reader
}

func (b *birdCLI) close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.conn != nil {
		b.conn.Close()
		b.conn = nil
	}
}

// cmd runs one command and returns its reply, the reply codes stripped.
func (b *birdCLI) cmd(command string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for attempt := 0; ; attempt++ {
		out, err := b.cmdLocked(command)
		if err == nil || attempt == 1 {
			return out, err
		}
		// A broken connection (BIRD restarted, say): once more on a new one.
		if b.conn != nil {
			b.conn.Close()
			b.conn = nil
		}
	}
}

func (b *birdCLI) cmdLocked(command string) (string, error) {
	if b.conn == nil {
		c, err := net.DialTimeout("unix", b.path, time.Second)
		if err != nil {
			return "", fmt.Errorf("connecting to bird: %w", err)
		}
		b.conn, b.r = c, bufio.NewReader(c)
		if _, err := b.readReply(); err != nil { // the "0001 BIRD ready" greeting
			return "", err
		}
	}
	b.conn.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(b.conn, "%s\n", command); err != nil {
		return "", fmt.Errorf("asking bird %q: %w", command, err)
	}
	return b.readReply()
}

// readReply reads up to the line that ends a reply: a four-digit code
// followed by a space. Lines of a reply start with "CODE-" or, continuing
// the code above them, with a space.
func (b *birdCLI) readReply() (string, error) {
	var out strings.Builder
	for {
		line, err := b.r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("reading from bird: %w", err)
		}
		line = strings.TrimRight(line, "\n")
		if len(line) >= 5 && isCode(line[:4]) {
			text := line[5:]
			if line[4] == ' ' {
				if line[0] >= '8' {
					return "", fmt.Errorf("bird: %s", text)
				}
				if text != "" && line[:4] != "0000" && line[:4] != "0001" {
					out.WriteString(text + "\n")
				}
				return out.String(), nil
			}
			out.WriteString(text + "\n")
			continue
		}
		out.WriteString(strings.TrimPrefix(line, " ") + "\n")
	}
}

func isCode(s string) bool {
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// birdRoute is one route of the router's BIRD table, from one node's
// session.
type birdRoute struct {
	Prefix netip.Prefix
	// Proto is the BGP protocol, named after the node ("n2").
	Proto       string
	Best        bool
	Stale       bool
	ASPath      []uint32
	MED         *uint32
	Communities []string // "65000:100"
}

var (
	routeHeadRE = regexp.MustCompile(`^(\S+)?\s+unicast \[(\S+) [^\]]*\]( [*!])? \((\d+)(s?)[^)]*\)`)
	communityRE = regexp.MustCompile(`\((\d+),(\d+)\)`)
)

// parseRoutes reads the reply of "show route all".
func parseRoutes(text string) ([]birdRoute, error) {
	var (
		out    []birdRoute
		prefix netip.Prefix
	)
	for _, line := range strings.Split(text, "\n") {
		if m := routeHeadRE.FindStringSubmatch(line); m != nil {
			if m[1] != "" {
				p, err := netip.ParsePrefix(m[1])
				if err != nil {
					return nil, fmt.Errorf("bird route %q: %w", line, err)
				}
				prefix = p
			}
			out = append(out, birdRoute{Prefix: prefix, Proto: m[2], Best: m[3] == " *", Stale: m[5] == "s"})
			continue
		}
		if len(out) == 0 {
			continue
		}
		r := &out[len(out)-1]
		key, val, ok := strings.Cut(strings.TrimSpace(line), ": ")
		if !ok {
			continue
		}
		switch key {
		case "BGP.as_path":
			for _, f := range strings.Fields(val) {
				n, err := strconv.ParseUint(f, 10, 32)
				if err == nil {
					r.ASPath = append(r.ASPath, uint32(n))
				}
			}
		case "BGP.med":
			n, err := strconv.ParseUint(val, 10, 32)
			if err == nil {
				m := uint32(n)
				r.MED = &m
			}
		case "BGP.community":
			for _, m := range communityRE.FindAllStringSubmatch(val, -1) {
				r.Communities = append(r.Communities, m[1]+":"+m[2])
			}
		}
	}
	return out, nil
}

// birdProto is one protocol line of "show protocols".
type birdProto struct {
	Name, State, Info string
}

// established reports whether the BGP session is up.
func (p birdProto) established() bool { return strings.HasPrefix(p.Info, "Established") }

// parseProtocols reads the reply of "show protocols".
func parseProtocols(text string) map[string]birdProto {
	out := map[string]birdProto{}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 5 || f[1] != "BGP" {
			continue
		}
		// Name Proto Table State Since Info..., Since one field
		// ("02:04:18.104") or two ("2026-12-02 02:04:18").
		rest := f[5:]
		if len(rest) > 0 && strings.Contains(f[4], "-") && strings.Contains(rest[0], ":") {
			rest = rest[1:]
		}
		out[f[0]] = birdProto{Name: f[0], State: f[3], Info: strings.Join(rest, " ")}
	}
	return out
}
