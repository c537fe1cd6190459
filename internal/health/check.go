// Package health runs this node's local service checks (TCP connect, HTTP
// GET, command) with rise/fall hysteresis. What the other nodes of the
// cluster publish, and polling it, is package cluster's.
//
// The package decides nothing about VIPs: it reports through callbacks
// (service healthy or not) and the controller in package vip acts on the
// reports.
package health

import (
	"errors"
	"net"
	"net/url"
	"strconv"
	"time"

	"github.com/vipd/vipd/internal/fielderr"
)

// Check types.
const (
	TypeTCP     = "tcp"
	TypeHTTP    = "http"
	TypeCommand = "command"
	TypeNone    = "none"
)

// Defaults for a zero field of CheckConfig (and of cluster.PollOptions).
const (
	DefaultInterval = 2 * time.Second
	DefaultTimeout  = 1 * time.Second
	DefaultRise     = 2
	DefaultFall     = 3
)

// CheckConfig is a local service check ([vip.check] in vipd.toml).
//
// A zero Interval, Timeout, Rise or Fall means the default (see WithDefaults).
// Type is required: a VIP whose service should not be checked says
// type = "none" explicitly, so a forgotten check is a config error rather than
// a silently healthy backend.
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

// WithDefaults returns c with every zero timing field set to its default.
func (c CheckConfig) WithDefaults() CheckConfig {
	if c.Interval == 0 {
		c.Interval = DefaultInterval
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	if c.Rise == 0 {
		c.Rise = DefaultRise
	}
	if c.Fall == 0 {
		c.Fall = DefaultFall
	}
	return c
}

// Validate checks the section. Errors are fielderr errors with key paths
// relative to the section ("type", "target", "timeout", ...), joined with
// errors.Join when there are several.
func (c *CheckConfig) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fielderr.New(path, format, args...))
	}

	switch c.Type {
	case TypeTCP:
		if c.Target == "" {
			add("target", "missing: a tcp check needs target = \"host:port\"")
		} else if err := validateHostPort(c.Target); err != nil {
			add("target", "%v", err)
		}
	case TypeHTTP:
		if c.URL == "" {
			add("url", "missing: an http check needs url = \"http://host:port/path\"")
		} else if err := validateURL(c.URL); err != nil {
			add("url", "%v", err)
		}
	case TypeCommand:
		if len(c.Command) == 0 || c.Command[0] == "" {
			add("command", "missing: a command check needs command = [\"/path/to/check\", \"arg\"...]")
		}
	case TypeNone:
	case "":
		add("type", "missing: one of tcp, http, command, none")
	default:
		add("type", "unknown check type %q: one of tcp, http, command, none", c.Type)
	}
	// A field set for another type is almost always a mistake (a copied
	// section whose type was changed): say so instead of ignoring it.
	if c.Target != "" && c.Type != TypeTCP {
		add("target", "only used by type tcp, not %q", c.Type)
	}
	if c.URL != "" && c.Type != TypeHTTP {
		add("url", "only used by type http, not %q", c.Type)
	}
	if len(c.Command) > 0 && c.Type != TypeCommand {
		add("command", "only used by type command, not %q", c.Type)
	}

	d := c.WithDefaults()
	if d.Interval < 0 {
		add("interval", "must be positive, got %v", c.Interval)
	}
	if d.Timeout < 0 {
		add("timeout", "must be positive, got %v", c.Timeout)
	}
	if d.Interval > 0 && d.Timeout > 0 && d.Timeout >= d.Interval {
		add("timeout", "%v must be shorter than interval %v", d.Timeout, d.Interval)
	}
	if d.Rise < 1 {
		add("rise", "must be at least 1, got %d", c.Rise)
	}
	if d.Fall < 1 {
		add("fall", "must be at least 1, got %d", c.Fall)
	}
	return errors.Join(errs...)
}

func validateHostPort(hp string) error {
	host, port, err := net.SplitHostPort(hp)
	if err != nil {
		return err
	}
	if host == "" {
		return errors.New("missing host in " + strconv.Quote(hp))
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return errors.New("bad port " + strconv.Quote(port) + " in " + strconv.Quote(hp))
	}
	return nil
}

func validateURL(s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return err
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return errors.New("scheme must be http or https in " + strconv.Quote(s))
	}
	if u.Host == "" {
		return errors.New("missing host in " + strconv.Quote(s))
	}
	return nil
}
