package config

import "time"

// The data-path probe of [cluster] (docs/cluster.md, "Data-path probes"):
// probe, probe_interval, probe_timeout, probe_failures, probe_successes.

// Probe defaults and bounds.
const (
	DefaultProbeInterval  = time.Second
	DefaultProbeTimeout   = 500 * time.Millisecond
	DefaultProbeFailures  = 3
	DefaultProbeSuccesses = 2
	minProbeInterval      = 100 * time.Millisecond
	maxProbeInterval      = time.Minute
)

// probe validates the probe keys of [cluster].
func (p *parser) probe(r *rawCluster, c *Cluster) {
	c.ProbeFailures = p.count("cluster.probe_failures", r.ProbeFailures, DefaultProbeFailures)
	c.ProbeSuccesses = p.count("cluster.probe_successes", r.ProbeSuccesses, DefaultProbeSuccesses)
	if r.ProbeInterval == "0" || r.ProbeInterval == "0s" {
		c.ProbeInterval = 0
	} else {
		c.ProbeInterval = p.duration("cluster.probe_interval", r.ProbeInterval, DefaultProbeInterval)
		if c.ProbeInterval < minProbeInterval || c.ProbeInterval > maxProbeInterval {
			p.errorf("cluster.probe_interval", "%s is out of range %s-%s (or 0s: off)", c.ProbeInterval, minProbeInterval, maxProbeInterval)
			c.ProbeInterval = DefaultProbeInterval
		}
	}
	c.ProbeTimeout = p.duration("cluster.probe_timeout", r.ProbeTimeout, DefaultProbeTimeout)
	if r.Probe != nil && !*r.Probe {
		c.ProbeInterval = 0
	}
	if c.ProbeInterval > 0 && c.ProbeTimeout >= c.ProbeInterval {
		p.errorf("cluster.probe_timeout", "%s must be shorter than probe_interval %s", c.ProbeTimeout, c.ProbeInterval)
	}
}

// probeOf is the probe settings, as config.Diff compares them.
func probeOf(c Cluster) any {
	return [4]any{c.ProbeInterval, c.ProbeTimeout, c.ProbeFailures, c.ProbeSuccesses}
}
