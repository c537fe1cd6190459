package health

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/vipd/vipd/vip"
)

// maxStateBody bounds a peer's state document; a real one is a few KiB.
const maxStateBody = 1 << 20

// jitterFraction spreads polls over ±10% of the interval so the directors of
// a cluster do not poll in lockstep.
const jitterFraction = 0.1

// Peer is one cluster member to poll.
type Peer struct {
	Name string // cluster member name; the document's "node" must match
	URL  string // full URL of the member's state document (".../state")
}

// PollOptions tune the poller. A zero field takes the default of the same
// name in CheckConfig (interval 2s, timeout 1s, rise 2, fall 3).
type PollOptions struct {
	Interval time.Duration
	Timeout  time.Duration
	Rise     int // consecutive good polls before a peer counts (again)
	Fall     int // consecutive misses before a peer counts as failed
}

func (o PollOptions) withDefaults() PollOptions {
	c := CheckConfig{Interval: o.Interval, Timeout: o.Timeout, Rise: o.Rise, Fall: o.Fall}.WithDefaults()
	return PollOptions{Interval: c.Interval, Timeout: c.Timeout, Rise: c.Rise, Fall: c.Fall}
}

// PeerReportFunc receives a peer's state: st is nil when the peer has
// failed (fall misses in a row), otherwise a document the caller may keep
// (the poller never touches it again).
type PeerReportFunc func(node string, st *vip.NodeState)

// Poller polls the state document of every cluster member.
//
// Per peer: nothing is reported until the peer is decided. After fall
// consecutive misses (unreachable, timeout, non-200, invalid document) it
// reports nil once; after rise consecutive good polls it reports the
// document; while up it reports every document whose generation or content
// changed. Peers are polled concurrently; one peer's reports arrive in order,
// and report is never called concurrently, so it may be a plain send to the
// controller's event loop. It should not block for long: it holds up every
// other peer's reports.
type Poller struct {
	log     hclog.Logger
	members []Peer
	opts    PollOptions
	report  PeerReportFunc
	client  *http.Client

	reportMu sync.Mutex // serialises report calls
}

// NewPoller returns a Poller for members. Run starts it.
func NewPoller(log hclog.Logger, members []Peer, opts PollOptions, report PeerReportFunc) *Poller {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // peers are on the underlay, never behind a proxy
	tr.MaxIdleConnsPerHost = 1
	return &Poller{
		log:     log.Named("peers"),
		members: append([]Peer(nil), members...),
		opts:    opts.withDefaults(),
		report:  report,
		client: &http.Client{
			Transport: tr,
			// A state URL that redirects is misconfigured: fail, don't follow.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Run polls until ctx is done, then waits for every poll goroutine to end and
// closes idle connections. It returns ctx's error.
func (p *Poller) Run(ctx context.Context) error {
	var wg sync.WaitGroup
	for _, m := range p.members {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p.runPeer(ctx, m)
		}()
	}
	wg.Wait()
	p.client.CloseIdleConnections()
	return ctx.Err()
}

// peerState is what runPeer remembers about one peer.
type peerState struct {
	h        hysteresis
	last     *vip.NodeState // last document reported, nil if none
	lastGood *vip.NodeState // last valid document fetched
}

func (p *Poller) runPeer(ctx context.Context, m Peer) {
	log := p.log.With("peer", m.Name)
	ps := peerState{h: hysteresis{rise: p.opts.Rise, fall: p.opts.Fall}}
	t := time.NewTimer(0) // first poll at once
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		st, err := p.fetch(ctx, m)
		if ctx.Err() != nil {
			return // cut short by shutdown: not a miss
		}
		if err != nil {
			log.Debug("poll failed", "reason", err)
		} else {
			ps.lastGood = st
		}
		if rep, ok := ps.next(err == nil); ok {
			if rep == nil {
				log.Warn("peer failed", "state", "failed", "reason", err)
			} else if ps.last == nil {
				log.Info("peer up", "state", "up", "generation", rep.Generation)
			}
			ps.last = rep
			p.emit(m.Name, rep)
		}
		t.Reset(jitter(p.opts.Interval))
	}
}

// next records one poll and returns what to report, if anything.
func (ps *peerState) next(ok bool) (st *vip.NodeState, report bool) {
	changed := ps.h.observe(ok)
	switch {
	case changed && ps.h.level == levelDown:
		ps.lastGood = nil
		return nil, true
	case changed && ps.h.level == levelUp:
		return clone(ps.lastGood), true
	case ps.h.level == levelUp && ok && !sameState(ps.last, ps.lastGood):
		return clone(ps.lastGood), true
	}
	return nil, false
}

func (p *Poller) emit(node string, st *vip.NodeState) {
	p.reportMu.Lock()
	defer p.reportMu.Unlock()
	p.report(node, st)
}

// fetch gets and validates one peer's document.
func (p *Poller) fetch(ctx context.Context, m Peer) (*vip.NodeState, error) {
	ctx, cancel := context.WithTimeout(ctx, p.opts.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("building request for %s: %w", m.URL, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("polling %s: %w", m.URL, err)
	}
	defer resp.Body.Close()
	// Read at most one byte past the limit to detect an oversized document.
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxStateBody+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", m.URL, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("polling %s: status %s", m.URL, resp.Status)
	}
	if len(body) > maxStateBody {
		return nil, fmt.Errorf("reading %s: document larger than %d bytes", m.URL, maxStateBody)
	}
	st, err := DecodeNodeState(body, m.Name)
	if err != nil {
		return nil, fmt.Errorf("decoding state from %s: %w", m.URL, err)
	}
	return st, nil
}

// Errors of DecodeNodeState.
var (
	// ErrWrongNode: the document is about another node than the one polled
	// (a swapped URL in the config).
	ErrWrongNode = errors.New("wrong node")
	// ErrBadDocument: the document is not a valid node state.
	ErrBadDocument = errors.New("invalid node state")
)

// DecodeNodeState parses and validates a state document. Unknown fields are
// ignored (a newer peer may add some). If node is not empty, the document's
// node name must equal it.
func DecodeNodeState(data []byte, node string) (*vip.NodeState, error) {
	var st vip.NodeState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadDocument, err)
	}
	if st.Node == "" {
		return nil, fmt.Errorf("%w: missing node name", ErrBadDocument)
	}
	if node != "" && st.Node != node {
		return nil, fmt.Errorf("%w: document is from %q, expected %q", ErrWrongNode, st.Node, node)
	}
	for addr, v := range st.VIPs {
		if !addr.IsValid() {
			return nil, fmt.Errorf("%w: empty vip address", ErrBadDocument)
		}
		if addr.Zone() != "" || addr.Is4In6() {
			return nil, fmt.Errorf("%w: vip %s: not a plain IPv4 or IPv6 address", ErrBadDocument, addr)
		}
		switch v.State {
		case vip.StateActive, vip.StateDraining, vip.StateInactive:
		default:
			return nil, fmt.Errorf("%w: vip %s: unknown state %q", ErrBadDocument, addr, v.State)
		}
	}
	if st.VIPs == nil {
		st.VIPs = map[netip.Addr]vip.NodeVIPState{}
	}
	return &st, nil
}

func sameState(a, b *vip.NodeState) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Node == b.Node && a.Generation == b.Generation && maps.Equal(a.VIPs, b.VIPs)
}

func clone(st *vip.NodeState) *vip.NodeState {
	if st == nil {
		return nil
	}
	c := *st
	c.VIPs = maps.Clone(st.VIPs)
	return &c
}

func jitter(d time.Duration) time.Duration {
	f := 1 + jitterFraction*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}
