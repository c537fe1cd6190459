package cluster

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// The data-path probe policy (docs/cluster.md, "Data-path probes"): every
// probe interval this node probes every member's underlay address on the
// GUE port, the probe answered by the member's XDP program, and demotes (not
// primary in any row, still a second hop) a member whose GUE path fails
// while its node-state document says it serves. The policy is kept apart
// from the sending (a ProbeFunc) and the clock so that it is tested with
// fakes.

// Probe defaults, as [cluster] documents them.
const (
	DefaultProbeInterval  = time.Second
	DefaultProbeFailures  = 3
	DefaultProbeSuccesses = 2
)

// Probe states as status shows them.
const (
	ProbeOK      = "ok"      // the last probes were answered
	ProbeFailing = "failing" // probe_failures probes in a row went unanswered
	ProbeOff     = "off"     // not probed: probes off, or the member is down by its state
	ProbePending = "pending" // no verdict yet
)

// ReasonProbeAll is reported instead of demoting when the probes would
// demote every member: the fault is more likely here or in the probe than
// in every member at once (fail open, like GLB's healthcheck).
const ReasonProbeAll = "probe failing to every member; not demoting"

// ProbeSelfReason is the demotion reason of this node itself.
const ProbeSelfReason = "GUE path to this node failing"

// ProbeReason is the demotion reason of member name.
func ProbeReason(name string) string { return "GUE path to " + name + " failing" }

// ProbeTarget is one member to probe.
type ProbeTarget struct {
	Name string
	Addr netip.Addr
}

// ProbeFunc sends one probe to t and returns the round trip; an error is
// a failed probe. It returns when ctx ends at the latest.
type ProbeFunc func(ctx context.Context, t ProbeTarget) (time.Duration, error)

// ProbeResult is the outcome of one probe.
type ProbeResult struct {
	RTT time.Duration
	Err error
}

// ProbeView is what this node knows of the GUE path to one member (this
// node included), as status shows it.
type ProbeView struct {
	Name string
	Self bool
	// State is ProbeOK, ProbeFailing, ProbeOff or ProbePending.
	State string
	// Since is when the probes started failing (State failing).
	Since time.Time
	// RTT is the last answered probe's round trip.
	RTT time.Duration
	// LastError is why the last probe failed ("" after an answer).
	LastError string
	// Failures counts the unanswered probes since vipd started.
	Failures uint64
	// Demoted is why the member is not a primary ("" when it is not
	// demoted).
	Demoted string
}

// ProbeStatus is the probe views and the policy's overall verdict.
type ProbeStatus struct {
	// Members are the views in name order, this node included.
	Members []ProbeView
	// Note is ReasonProbeAll while the probes fail open, else "".
	Note string
}

type probeMember struct {
	fails, oks int
	failing    bool
	firstFail  time.Time // first failure of the current run
	since      time.Time
	rtt        time.Duration
	lastErr    string
	total      uint64
	probed     bool // a result was taken while the member was up
}

// ProbePolicy turns probe results into demotions: a member is failing
// after failures unanswered probes in a row and recovers after successes
// answered ones in a row (hysteresis, so one lost packet does not move
// tables). Only members up by their state (their document accepted) are
// judged: a member down by its state is left to the state. This node is
// not probed directly (a probe to its own address never leaves it): it is
// failing when every probe to at least two up peers fails, since they
// cannot all have lost their GUE path at once while their documents are
// fresh; then this node alone is demoted, not the peers. Every probe to a
// single up peer failing is not told apart from this node's own fault,
// and a demotion of every member is never made: the policy then demotes
// nothing and says ReasonProbeAll. It is safe for concurrent use; the
// daemon keeps one for its life, so a reload that restarts the prober
// keeps every run and demotion.
type ProbePolicy struct {
	mu                  sync.Mutex
	self                string
	failures, successes int
	members             map[string]*probeMember
	demoted             map[string]string
	note                string
}

// NewProbePolicy returns a policy for node self (failures and successes 0
// are their defaults).
func NewProbePolicy(self string, failures, successes int) *ProbePolicy {
	if failures <= 0 {
		failures = DefaultProbeFailures
	}
	if successes <= 0 {
		successes = DefaultProbeSuccesses
	}
	return &ProbePolicy{self: self, failures: failures, successes: successes,
		members: map[string]*probeMember{}, demoted: map[string]string{}}
}

// SetThresholds changes the hysteresis (a reload); members keep their
// runs.
func (p *ProbePolicy) SetThresholds(failures, successes int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if failures > 0 {
		p.failures = failures
	}
	if successes > 0 {
		p.successes = successes
	}
}

// Reset forgets every run and demotion (probes turned off).
func (p *ProbePolicy) Reset() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.members, p.demoted, p.note = map[string]*probeMember{}, map[string]string{}, ""
}

// Demoted returns the current demotions.
func (p *ProbePolicy) Demoted() map[string]string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return maps.Clone(p.demoted)
}

// Note returns ReasonProbeAll while the probes fail open, else "".
func (p *ProbePolicy) Note() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.note
}

// Round takes one round of results at now (peer name -> outcome; this node
// is not in it) and which members are up by their state, and returns the
// members demoted (name -> reason) after it. The map is the policy's own
// copy; changed says whether it differs from the previous round's.
func (p *ProbePolicy) Round(now time.Time, results map[string]ProbeResult, up map[string]bool) (demoted map[string]string, changed bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for name, r := range results {
		pm := p.members[name]
		if pm == nil {
			pm = &probeMember{}
			p.members[name] = pm
		}
		if r.Err != nil {
			pm.total++
			pm.lastErr = r.Err.Error()
		} else {
			pm.rtt, pm.lastErr = r.RTT, ""
		}
		if !up[name] {
			// Down by its state: the state decides, not the probe. Its
			// run starts afresh when it comes back.
			pm.fails, pm.oks, pm.failing, pm.probed = 0, 0, false, false
			continue
		}
		pm.probed = true
		if r.Err != nil {
			if pm.fails == 0 {
				pm.firstFail = now
			}
			pm.fails++
			pm.oks = 0
			if !pm.failing && pm.fails >= p.failures {
				pm.failing, pm.since = true, pm.firstFail
			}
			continue
		}
		pm.oks++
		pm.fails = 0
		if pm.failing && pm.oks >= p.successes {
			pm.failing = false
		}
	}
	// Members no longer probed (removed, or without an address) are
	// forgotten.
	for name := range p.members {
		if _, ok := results[name]; !ok {
			delete(p.members, name)
		}
	}

	next := map[string]string{}
	var upPeers, failing int
	for name, pm := range p.members {
		if !up[name] || !pm.probed {
			continue
		}
		upPeers++
		if pm.failing {
			failing++
			next[name] = ProbeReason(name)
		}
	}
	p.note = ""
	switch {
	case failing > 0 && failing == upPeers && upPeers >= 2:
		// Every up peer fails: the fault is this node's own path.
		next = map[string]string{p.self: ProbeSelfReason}
	case failing > 0 && failing == upPeers:
		// One peer: this node's fault or the peer's, no telling; and
		// demoting it would leave only this node, which is as unproven.
		next = map[string]string{}
		p.note = ReasonProbeAll
	}
	changed = !maps.Equal(next, p.demoted)
	p.demoted = next
	return maps.Clone(next), changed
}

// Status returns the views of every member probed and of this node.
// probing is false when probes are off (every view then says so).
func (p *ProbePolicy) Status(up map[string]bool, probing bool) ProbeStatus {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := ProbeStatus{Note: p.note}
	selfView := ProbeView{Name: p.self, Self: true, State: ProbeOK, Demoted: p.demoted[p.self]}
	if selfView.Demoted != "" {
		selfView.State = ProbeFailing
	}
	if !probing {
		selfView.State = ProbeOff
		st.Note = ""
	}
	st.Members = append(st.Members, selfView)
	for _, name := range slices.Sorted(maps.Keys(p.members)) {
		pm := p.members[name]
		v := ProbeView{Name: name, RTT: pm.rtt, LastError: pm.lastErr, Failures: pm.total, Demoted: p.demoted[name]}
		switch {
		case !probing || !up[name]:
			v.State = ProbeOff
		case pm.failing:
			v.State, v.Since = ProbeFailing, pm.since
		case pm.oks > 0 || pm.fails > 0:
			v.State = ProbeOK
		default:
			v.State = ProbePending
		}
		st.Members = append(st.Members, v)
	}
	slices.SortFunc(st.Members, func(a, b ProbeView) int {
		if a.Name < b.Name {
			return -1
		}
		if a.Name > b.Name {
			return 1
		}
		return 0
	})
	return st
}

// ProberConfig configures a Prober.
type ProberConfig struct {
	// Interval between rounds; Timeout of each probe (below Interval).
	Interval, Timeout time.Duration
	// Targets returns the members to probe this round (this node left
	// out) and which members are up by their state (Membership).
	Targets func() ([]ProbeTarget, map[string]bool)
	// Probe sends one probe.
	Probe ProbeFunc
	// Demote is called with the complete set of demoted members whenever
	// it changes (the daemon turns it into one cluster.Update).
	Demote func(map[string]string)
}

// Prober runs the probe rounds: every Interval it probes every target
// concurrently, feeds the results to its ProbePolicy, logs a line when a
// member is demoted or restored, and reports the demotions.
type Prober struct {
	log    hclog.Logger
	cfg    ProberConfig
	policy *ProbePolicy
}

// NewProber returns a Prober deciding with policy (Run starts it).
func NewProber(log hclog.Logger, cfg ProberConfig, policy *ProbePolicy) *Prober {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultProbeInterval
	}
	if cfg.Timeout <= 0 || cfg.Timeout >= cfg.Interval {
		cfg.Timeout = cfg.Interval * 8 / 10
	}
	return &Prober{log: log.Named("probe"), cfg: cfg, policy: policy}
}

// Run probes until ctx ends. It leaves the demotions as they are: the
// policy outlives it (a restart keeps them); lifting them when probes are
// turned off is the caller's (ProbePolicy.Reset, then Demote).
func (p *Prober) Run(ctx context.Context) {
	t := time.NewTicker(p.cfg.Interval)
	defer t.Stop()
	for {
		p.round(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// round runs one round.
func (p *Prober) round(ctx context.Context) {
	targets, up := p.cfg.Targets()
	results := make(map[string]ProbeResult, len(targets))
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, tg := range targets {
		wg.Go(func() {
			pctx, cancel := context.WithTimeout(ctx, p.cfg.Timeout)
			defer cancel()
			rtt, err := p.cfg.Probe(pctx, tg)
			mu.Lock()
			results[tg.Name] = ProbeResult{RTT: rtt, Err: err}
			mu.Unlock()
		})
	}
	wg.Wait()
	if ctx.Err() != nil {
		return
	}
	last, oldNote := p.policy.Demoted(), p.policy.Note()
	demoted, changed := p.policy.Round(time.Now(), results, up)
	for _, name := range slices.Sorted(maps.Keys(demoted)) {
		if last[name] == "" {
			args := []any{"peer", name, "reason", demoted[name]}
			if err := results[name].Err; err != nil {
				args = append(args, "error", err)
			}
			p.log.Warn("member demoted: not a primary in this node's tables", args...)
		}
	}
	for _, name := range slices.Sorted(maps.Keys(last)) {
		if demoted[name] == "" {
			p.log.Info("member restored: GUE path answers", "peer", name)
		}
	}
	if note := p.policy.Note(); note != oldNote && note != "" {
		p.log.Warn(note)
	}
	if changed {
		p.cfg.Demote(demoted)
	}
}
