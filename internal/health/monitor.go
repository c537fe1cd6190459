package health

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"slices"
	"sync"

	"github.com/hashicorp/go-hclog"
)

// Monitor runs the local service checks of every VIP and keeps them in line
// with the configuration: Set starts the checks of new VIPs, stops those of
// removed VIPs and restarts a check whose config changed (it starts over,
// unhealthy until rise successes). An unchanged check keeps running and
// keeps its state across Set calls, so a config reload does not flap it.
//
// Reports go through one goroutine: report is never called concurrently,
// one VIP's reports arrive in order, and once Set has replaced or removed a
// check, none of the old check's reports follows a report of the new one.
// A report of a removed VIP may still arrive just after Set returns; the
// caller ignores reports of VIPs it no longer has. Set never waits for a
// report, so report may block on (or call) the caller's event loop that
// calls Set. Monitor is safe for concurrent use.
type Monitor struct {
	log     hclog.Logger
	report  ReportFunc
	observe ObserveFunc // guarded by mu

	mu      sync.Mutex
	want    map[netip.Addr]CheckConfig // guarded by mu
	running map[netip.Addr]*monitored  // guarded by mu
	// runCtx is Run's context while Run runs (nil otherwise): Set starts
	// checks under it, so Run's end stops them all.
	runCtx context.Context // guarded by mu
	queue  []queuedReport  // guarded by mu
	wake   chan struct{}   // one pending wake-up for Run's delivery loop
	wg     sync.WaitGroup  // running checker goroutines
	// seeds are verdicts a check of the VIP starts from instead of
	// "checking" (SeedHealthy), used by its first checker only.
	seeds map[netip.Addr]string // guarded by mu
}

// SeedHealthy makes the first check started for each VIP in healthy start
// healthy, with the given reason, instead of unhealthy until rise
// successes: the verdict of the vipd before an upgrade restart, whose
// service kept running. The check then goes on as ever (fall failures
// make it unhealthy). Call it before Set.
func (m *Monitor) SeedHealthy(healthy map[netip.Addr]string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.seeds = maps.Clone(healthy)
}

type monitored struct {
	cfg     CheckConfig
	checker *Checker
	cancel  context.CancelFunc
}

type queuedReport struct {
	from    *monitored
	vip     netip.Addr
	healthy bool
	reason  string
}

// ErrRunning is returned by Run when the Monitor already runs.
var ErrRunning = errors.New("monitor already running")

// NewMonitor returns a Monitor with no checks. Set gives it some; Run runs
// them.
func NewMonitor(log hclog.Logger, report ReportFunc) *Monitor {
	return &Monitor{
		log:     log,
		report:  report,
		want:    map[netip.Addr]CheckConfig{},
		running: map[netip.Addr]*monitored{},
		wake:    make(chan struct{}, 1),
	}
}

// Set makes the checked VIPs exactly checks. It may be called before or
// while Run runs, from any goroutine, including from report.
func (m *Monitor) Set(checks map[netip.Addr]CheckConfig) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.want = make(map[netip.Addr]CheckConfig, len(checks))
	for v, c := range checks {
		c.Command = slices.Clone(c.Command)
		m.want[v] = c
	}
	if m.runCtx != nil {
		m.applyLocked()
	}
}

// SetObserver makes every check started from now on hand each probe's
// result and duration to fn (metrics). Call it before Set and Run.
func (m *Monitor) SetObserver(fn ObserveFunc) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.observe = fn
}

// Status returns the current health of vip's check and whether vip has one.
func (m *Monitor) Status(vip netip.Addr) (healthy bool, reason string, ok bool) {
	m.mu.Lock()
	r := m.running[vip]
	m.mu.Unlock()
	if r == nil {
		return false, "", false
	}
	healthy, reason = r.checker.Status()
	return healthy, reason, true
}

// Run runs the checks until ctx is done, then stops them and waits for them.
// It returns ctx's error, or ErrRunning if Run is already running.
func (m *Monitor) Run(ctx context.Context) error {
	m.mu.Lock()
	if m.runCtx != nil {
		m.mu.Unlock()
		return ErrRunning
	}
	m.runCtx = ctx
	m.applyLocked()
	m.mu.Unlock()

	for {
		select {
		case <-ctx.Done():
			m.mu.Lock()
			for v, r := range m.running {
				r.cancel()
				delete(m.running, v)
			}
			m.runCtx = nil
			m.queue = nil
			m.mu.Unlock()
			m.wg.Wait()
			return ctx.Err()
		case <-m.wake:
			m.deliver()
		}
	}
}

// deliver hands the queued reports to report, in order, dropping those of
// checks that were replaced or removed since.
func (m *Monitor) deliver() {
	for {
		m.mu.Lock()
		if len(m.queue) == 0 {
			m.mu.Unlock()
			return
		}
		q := m.queue[0]
		m.queue = m.queue[1:]
		current := m.running[q.vip] == q.from
		m.mu.Unlock()
		if current {
			m.report(q.vip, q.healthy, q.reason)
		}
	}
}

// applyLocked starts and stops checks to match want. Caller must hold mu.
func (m *Monitor) applyLocked() {
	for v, r := range m.running {
		if cfg, ok := m.want[v]; !ok || !sameCheck(cfg, r.cfg) {
			r.cancel()
			delete(m.running, v)
		}
	}
	for v, cfg := range m.want {
		if _, ok := m.running[v]; ok {
			continue
		}
		ctx, cancel := context.WithCancel(m.runCtx)
		r := &monitored{cfg: cfg, cancel: cancel}
		r.checker = NewChecker(m.log, v, cfg, func(v netip.Addr, healthy bool, reason string) {
			m.enqueue(queuedReport{from: r, vip: v, healthy: healthy, reason: reason})
		})
		r.checker.observer = m.observe
		if reason, ok := m.seeds[v]; ok && cfg.WithDefaults().Type != TypeNone {
			r.checker.startHealthy(reason)
			delete(m.seeds, v)
		}
		m.running[v] = r
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			r.checker.Run(ctx)
		}()
	}
}

// enqueue queues a report for delivery without ever blocking the checker.
func (m *Monitor) enqueue(q queuedReport) {
	m.mu.Lock()
	if m.runCtx != nil {
		m.queue = append(m.queue, q)
	}
	m.mu.Unlock()
	select {
	case m.wake <- struct{}{}:
	default: // a wake-up is pending; it will see this report too
	}
}

func sameCheck(a, b CheckConfig) bool {
	a, b = a.WithDefaults(), b.WithDefaults()
	return a.Type == b.Type && a.Target == b.Target && a.URL == b.URL &&
		slices.Equal(a.Command, b.Command) && a.Interval == b.Interval &&
		a.Timeout == b.Timeout && a.Rise == b.Rise && a.Fall == b.Fall
}
