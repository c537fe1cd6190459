// Package health runs local service checks (TCP connect, HTTP GET, command)
// with rise/fall hysteresis, serves this node's state to its peers and polls
// the peers' states.
package health

import "time"

// CheckConfig is a local service check ([vip.check] in vipd.toml).
type CheckConfig struct {
	Type     string        `toml:"type"`    // "tcp" | "http" | "command" | "none"
	Target   string        `toml:"target"`  // tcp: host:port
	URL      string        `toml:"url"`     // http: URL; 2xx is healthy
	Command  []string      `toml:"command"` // command: argv; exit 0 is healthy
	Interval time.Duration `toml:"interval"`
	Timeout  time.Duration `toml:"timeout"`
	Rise     int           `toml:"rise"`
	Fall     int           `toml:"fall"`
}

// Validate checks the section. Errors are fielderr errors with key paths
// relative to the section.
func (c *CheckConfig) Validate() error {
	return nil // filled in by the health work
}
