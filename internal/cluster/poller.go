package cluster

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/internal/health"
)

// maxStateBody bounds a peer's state document; a real one is a few KiB.
const maxStateBody = 1 << 20

// jitterFraction spreads polls over ±10% of the interval so the directors of
// a cluster do not poll in lockstep.
const jitterFraction = 0.1

// Member is one cluster member to poll.
type Member struct {
	Name string // cluster member name; the document's "node" must match
	URL  string // full URL of the member's state document (".../state")
}

// PollOptions tune the poller. A zero field takes the default of the same
// name in health.CheckConfig (interval 2s, timeout 1s, rise 2, fall 3): a
// member's state is debounced like a local service check.
type PollOptions struct {
	Interval time.Duration
	Timeout  time.Duration
	Rise     int // consecutive good polls before a peer counts (again)
	Fall     int // consecutive misses before a peer counts as failed

	// Verifier checks every document's signature; a refused document
	// (unsigned, forged, replayed, stale, wrong key) is a miss. Nil accepts
	// documents unverified (a node without a cluster key).
	Verifier *Verifier
	// Membership, if set, records every poll's outcome and every report
	// (signature status, rejections by reason, lag, digests).
	Membership *Membership
}

func (o PollOptions) withDefaults() PollOptions {
	c := health.CheckConfig{Interval: o.Interval, Timeout: o.Timeout, Rise: o.Rise, Fall: o.Fall}.WithDefaults()
	o.Interval, o.Timeout, o.Rise, o.Fall = c.Interval, c.Timeout, c.Rise, c.Fall
	return o
}

// ReportFunc receives a member's state: st is nil when the member has
// failed (fall misses in a row), otherwise a document the caller may keep
// (the poller never touches it again).
type ReportFunc func(node string, st *NodeState)

// Poller polls the state document of every cluster member: the Source of
// backend "poll".
//
// Per peer: nothing is reported until the peer is decided. After fall
// consecutive misses (unreachable, timeout, non-200, invalid or refused
// document) it reports nil once; after rise consecutive good polls it
// reports the document; while up it reports every document whose
// generation or content changed. Each report is an Update of one member.
// Peers are polled concurrently; one peer's reports arrive in order, and
// the consumer is never called concurrently, so it may be a plain send to
// the controller's event loop. It should not block for long: it holds up
// every other peer's reports.
type Poller struct {
	log     hclog.Logger
	members []Member
	opts    PollOptions
	consume Consumer
	client  *http.Client

	reportMu sync.Mutex // serialises consume calls
}

// NewPoller returns a Poller for members that reports each member's state
// to report. Run starts it.
func NewPoller(log hclog.Logger, members []Member, opts PollOptions, report ReportFunc) *Poller {
	return NewPollSource(log, members, opts, PerMember(report))
}

// NewPollSource returns a Poller for members that hands its reports to
// consume, as the etcd backend does. Run starts it.
func NewPollSource(log hclog.Logger, members []Member, opts PollOptions, consume Consumer) *Poller {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.Proxy = nil // peers are on the underlay, never behind a proxy
	tr.MaxIdleConnsPerHost = 1
	return &Poller{
		log:     log.Named("peers"),
		members: slices.Clone(members),
		opts:    opts.withDefaults(),
		consume: consume,
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
	h        health.Hysteresis
	last     *NodeState // last document reported, nil if none
	lastGood *NodeState // last valid document fetched
	// holdUntil is when the hold of a restarting peer ends: its last
	// reported document's RestartUntil, bounded by MaxRestartHold from when
	// it was received (zero: no hold).
	holdUntil time.Time
	held      bool // a miss was held: log the end of the hold once
}

// holding reports whether a miss at now is held: the peer is up and its
// last document said it is restarting until after now.
func (ps *peerState) holding(now time.Time) bool {
	return ps.last != nil && ps.h.Level == health.LevelUp && now.Before(ps.holdUntil)
}

// reported records rep, received at now, as the last document reported.
func (ps *peerState) reported(rep *NodeState, now time.Time) {
	ps.last = rep
	ps.holdUntil = time.Time{}
	if rep != nil && !rep.RestartUntil.IsZero() {
		ps.holdUntil = rep.RestartUntil
		if limit := now.Add(MaxRestartHold); limit.Before(ps.holdUntil) {
			ps.holdUntil = limit
		}
	}
}

func (p *Poller) runPeer(ctx context.Context, m Member) {
	log := p.log.With("peer", m.Name)
	ps := peerState{h: health.Hysteresis{Rise: p.opts.Rise, Fall: p.opts.Fall}}
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
		now := time.Now()
		if err != nil {
			log.Debug("poll failed", "reason", err)
			if ps.holding(now) {
				// An upgrade restart: the peer's XDP program, routes and
				// addresses stay as its last document says; failing it
				// would move its rows away and back.
				if !ps.held {
					log.Info("peer restarting: kept as its last document says", "until", ps.holdUntil.Format(time.RFC3339), "reason", err)
					ps.held = true
				}
				t.Reset(jitter(p.opts.Interval))
				continue
			}
		} else {
			ps.lastGood = st
			if ps.held && st.RestartUntil.IsZero() {
				log.Info("peer restarted", "generation", st.Generation)
			}
		}
		if ps.held && (err == nil || !ps.holding(now)) {
			ps.held = false
		}
		if rep, ok := ps.next(err == nil); ok {
			if rep == nil {
				log.Warn("peer failed", "state", "failed", "reason", err)
			} else if ps.last == nil {
				log.Info("peer up", "state", "up", "generation", rep.Generation)
			} else if !rep.RestartUntil.IsZero() && ps.last.RestartUntil.IsZero() {
				log.Info("peer is restarting for an upgrade", "until", rep.RestartUntil.Format(time.RFC3339))
			}
			ps.reported(rep, now)
			p.emit(m.Name, rep)
		}
		t.Reset(jitter(p.opts.Interval))
	}
}

// next records one poll and returns what to report, if anything.
func (ps *peerState) next(ok bool) (st *NodeState, report bool) {
	changed := ps.h.Observe(ok)
	switch {
	case changed && ps.h.Level == health.LevelDown:
		ps.lastGood = nil
		return nil, true
	case changed && ps.h.Level == health.LevelUp:
		return ps.lastGood.Clone(), true
	case ps.h.Level == health.LevelUp && ok && !ps.last.Equal(ps.lastGood):
		return ps.lastGood.Clone(), true
	}
	return nil, false
}

func (p *Poller) emit(node string, st *NodeState) {
	if p.opts.Membership != nil {
		p.opts.Membership.Record(node, st)
	}
	p.reportMu.Lock()
	defer p.reportMu.Unlock()
	p.consume(Update{States: map[string]*NodeState{node: st}})
}

// fetch gets, verifies and decodes one peer's document, and records the
// outcome in the membership.
func (p *Poller) fetch(ctx context.Context, m Member) (*NodeState, error) {
	body, err := p.get(ctx, m)
	var doc *Signed
	if err == nil {
		if p.opts.Verifier != nil {
			doc, err = p.opts.Verifier.Verify(m.Name, body, 0)
		} else {
			doc, err = decodeUnsigned(body, m.Name)
		}
		if err != nil {
			err = fmt.Errorf("decoding state from %s: %w", m.URL, err)
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err() // cut short by shutdown: not an outcome
	}
	if p.opts.Membership != nil {
		p.opts.Membership.Observe(m.Name, Observation{Doc: doc, Err: err})
	}
	if err != nil {
		return nil, err
	}
	return doc.State, nil
}

// get fetches one peer's document, bounded in time and size.
func (p *Poller) get(ctx context.Context, m Member) ([]byte, error) {
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
		return nil, fmt.Errorf("reading %s: %w: document larger than %d bytes", m.URL, ErrBadDocument, maxStateBody)
	}
	return body, nil
}

func jitter(d time.Duration) time.Duration {
	f := 1 + jitterFraction*(2*rand.Float64()-1)
	return time.Duration(float64(d) * f)
}
