package metrics

import (
	"net/netip"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Check results, the result label of vipd_health_checks_total.
const (
	CheckSuccess = "success"
	CheckFailure = "failure"
)

// checkBuckets span a check's life: a local TCP connect takes well under a
// millisecond, an HTTP check or a command tens of milliseconds, and a
// check that times out its (default 1s) timeout.
var checkBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

// Checks records every local service check's result and duration, per
// VIP, as the checks run: vipd_health_checks_total{vip,result} and the
// histogram vipd_health_check_duration_seconds{vip}. It is a
// prometheus.Collector, safe for concurrent use.
type Checks struct {
	total *prometheus.CounterVec
	took  *prometheus.HistogramVec

	mu   sync.Mutex
	vips map[netip.Addr]bool // VIPs with series
	// keep is the last Retain's set (nil: every VIP): a check stopped by a
	// reload may still finish a probe afterwards, which must not bring
	// its series back.
	keep map[netip.Addr]bool
}

// NewChecks returns an empty Checks.
func NewChecks() *Checks {
	return &Checks{
		total: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vipd_health_checks_total",
			Help: "Local service checks run for the VIP, by result (success, failure).",
		}, []string{"vip", "result"}),
		took: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vipd_health_check_duration_seconds",
			Help:    "How long the VIP's local service checks took (a timed-out check takes its timeout).",
			Buckets: checkBuckets,
		}, []string{"vip"}),
		vips: map[netip.Addr]bool{},
	}
}

// Observe records one check of vip (health.ObserveFunc).
func (c *Checks) Observe(vip netip.Addr, ok bool, took time.Duration) {
	a := vip.String()
	result := CheckFailure
	if ok {
		result = CheckSuccess
	}
	c.mu.Lock()
	if c.keep != nil && !c.keep[vip] {
		c.mu.Unlock()
		return
	}
	if !c.vips[vip] {
		c.vips[vip] = true
		// Both results from the first check on: rate() of the one that
		// has not happened yet is 0, not absent.
		c.total.WithLabelValues(a, CheckSuccess)
		c.total.WithLabelValues(a, CheckFailure)
	}
	c.mu.Unlock()
	c.total.WithLabelValues(a, result).Inc()
	c.took.WithLabelValues(a).Observe(took.Seconds())
}

// Retain drops the series of every VIP not in keep (VIPs a reload
// removed) and ignores their checks from now on.
func (c *Checks) Retain(keep map[netip.Addr]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.keep = make(map[netip.Addr]bool, len(keep))
	for v := range keep {
		c.keep[v] = true
	}
	for v := range c.vips {
		if !keep[v] {
			l := prometheus.Labels{"vip": v.String()}
			c.total.DeletePartialMatch(l)
			c.took.DeletePartialMatch(l)
			delete(c.vips, v)
		}
	}
}

// Describe implements prometheus.Collector.
func (c *Checks) Describe(ch chan<- *prometheus.Desc) {
	c.total.Describe(ch)
	c.took.Describe(ch)
}

// Collect implements prometheus.Collector.
func (c *Checks) Collect(ch chan<- prometheus.Metric) {
	c.total.Collect(ch)
	c.took.Collect(ch)
}
