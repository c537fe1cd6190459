package health

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// ReportFunc receives a local service check's result for a VIP. Checkers call
// it from their own goroutine, so it should hand the result to the controller's
// event loop and return quickly.
type ReportFunc func(vip netip.Addr, healthy bool, reason string)

// ObserveFunc receives every probe's result and how long it took (a probe
// that timed out took its timeout), for metrics. Checkers call it from
// their own goroutine; it must return quickly. A check of type none runs
// no probe and is never observed.
type ObserveFunc func(vip netip.Addr, ok bool, took time.Duration)

// Checker runs one VIP's local service check with rise/fall hysteresis.
//
// A Checker starts unhealthy ("checking (0/2)") and becomes healthy after
// rise consecutive successes; a healthy Checker becomes unhealthy after fall
// consecutive failures. It reports the start state once when Run begins and
// then only changes of healthy. Status is safe for concurrent use.
type Checker struct {
	log    hclog.Logger
	vip    netip.Addr
	cfg    CheckConfig
	report ReportFunc
	// observer, if set before Run, sees every probe.
	observer ObserveFunc

	mu      sync.Mutex
	h       Hysteresis // guarded by mu
	reason  string     // guarded by mu
	everUp  bool       // guarded by mu
	lastErr string     // guarded by mu: description of the last failure
}

// NewChecker returns a Checker for vip. cfg should have passed Validate; an
// invalid cfg makes Run report unhealthy with the validation error. Zero
// timing fields take their defaults.
func NewChecker(log hclog.Logger, vip netip.Addr, cfg CheckConfig, report ReportFunc) *Checker {
	cfg = cfg.WithDefaults()
	c := &Checker{
		log:    log.Named("check").With("vip", vip),
		vip:    vip,
		cfg:    cfg,
		report: report,
		h:      Hysteresis{Rise: cfg.Rise, Fall: cfg.Fall, Level: LevelDown},
	}
	c.reason = c.reasonLocked()
	return c
}

// startHealthy makes a Checker that has not run start healthy, for reason:
// a verdict carried over (Monitor.SeedHealthy).
func (c *Checker) startHealthy(reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.h.Level, c.h.oks = LevelUp, c.h.Rise
	c.everUp, c.reason = true, reason
}

// Status returns the current health and its reason, including progress
// ("checking (1/2)") that is not reported as a change.
func (c *Checker) Status() (healthy bool, reason string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.h.Level == LevelUp, c.reason
}

// Run checks every interval until ctx is done. The first check runs at once.
func (c *Checker) Run(ctx context.Context) {
	if err := c.cfg.Validate(); err != nil {
		c.setReason(fmt.Sprintf("invalid check: %v", err))
		_, reason := c.Status()
		c.log.Error("not checking", "reason", reason)
		c.report(c.vip, false, reason)
		return
	}
	p, desc, cleanup, err := newProbe(c.cfg)
	if err != nil { // unreachable after Validate, kept for safety
		c.report(c.vip, false, err.Error())
		return
	}
	defer cleanup()

	if c.cfg.Type == TypeNone {
		c.mu.Lock()
		c.h.Level, c.everUp, c.reason = LevelUp, true, desc
		c.mu.Unlock()
		c.report(c.vip, true, desc)
		<-ctx.Done()
		return
	}

	healthy, reason := c.Status()
	c.report(c.vip, healthy, reason)

	t := time.NewTicker(c.cfg.Interval)
	defer t.Stop()
	for {
		pctx, cancel := context.WithTimeout(ctx, c.cfg.Timeout)
		start := time.Now()
		err := p(pctx)
		took := time.Since(start)
		cancel()
		if ctx.Err() != nil {
			return // the check was cut short by shutdown: not a result
		}
		if c.observer != nil {
			c.observer(c.vip, err == nil, took)
		}
		if healthy, reason, changed := c.observe(desc, err); changed {
			c.log.Info("service health changed", "state", stateWord(healthy), "reason", reason)
			c.report(c.vip, healthy, reason)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (c *Checker) setReason(r string) {
	c.mu.Lock()
	c.reason = r
	c.mu.Unlock()
}

// observe records one probe result and returns the new health, its reason
// and whether health changed.
func (c *Checker) observe(desc string, err error) (healthy bool, reason string, changed bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.lastErr = desc + ": " + describe(err, c.cfg.Timeout)
	}
	changed = c.h.Observe(err == nil)
	if c.h.Level == LevelUp {
		c.everUp = true
	}
	if changed && c.h.Level == LevelUp {
		c.reason = fmt.Sprintf("%s: ok (%d/%d successes)", desc, c.h.oks, c.cfg.Rise)
	} else {
		c.reason = c.reasonLocked()
	}
	return c.h.Level == LevelUp, c.reason, changed
}

// reasonLocked explains the current state. Caller must hold mu.
func (c *Checker) reasonLocked() string {
	h := &c.h
	switch {
	case h.Level == LevelUp && h.fails == 0:
		return c.reason // the "ok" reason set when it came up
	case h.Level == LevelUp:
		return fmt.Sprintf("healthy, but %s (%d/%d failures)", c.lastErr, h.fails, h.Fall)
	case h.fails > 0 && c.everUp:
		return fmt.Sprintf("%s (%d/%d failures)", c.lastErr, h.fails, h.Fall)
	case h.fails > 0:
		return fmt.Sprintf("checking (0/%d): %s", h.Rise, c.lastErr)
	default:
		return fmt.Sprintf("checking (%d/%d)", h.oks, h.Rise)
	}
}

func stateWord(healthy bool) string {
	if healthy {
		return "healthy"
	}
	return "unhealthy"
}
