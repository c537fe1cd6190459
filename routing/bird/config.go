// Package bird implements routing.Advertiser by generating a BIRD 2 OSPF
// configuration that lists the announced VIP routes explicitly and having
// BIRD read it over its control socket.
//
// VIP routes are a generated `protocol static` list (vipd_vip4, vipd_vip6)
// exported into OSPF (v2 for IPv4, v3 for IPv6); they never come from
// addresses bound on lo, so binding and advertising stay independent. The
// generated file is either a complete bird.conf (mode "full") or an include
// file with only the VIP routes (mode "include") for an operator's own
// bird.conf, whose OSPF export filters select them by protocol name.
//
// An apply renders the file, has `bird -p` check it, writes it atomically
// (temp file, fsync, rename) with the owner and group of its directory,
// mode 0640 (BIRD runs as a user of its own and must read it), and sends
// `configure` on BIRD's control socket with a timeout. If BIRD refuses the
// file, the last good one is put back: a rejected config never replaces the
// running one. Every failure names its cause: BIRD not reachable
// (ErrSocketMissing, ErrBirdDown, ErrSocketPermission: the new file then
// stays for BIRD's next start), BIRD unable to read the file
// (ErrBirdCannotRead), an option the running BIRD lacks
// (ErrIgnoreMTUUnsupported), or the line it refuses (*ConfigError).
// SetRoutes calls coalesce within a bounded debounce window (<= 200 ms).
//
// The OSPF option ignore_mtu emits `ignoremtu yes;`, which only a BIRD built
// with patch/bird-2.0-ignoremtu.patch accepts (scripts/bird-ignoremtu.sh
// builds one); New asks the running daemon (or, when none runs, the binary)
// and refuses with ErrIgnoreMTUUnsupported otherwise.
//
// Exported reads back, over BIRD's control socket, the VIP routes BIRD
// exports to each OSPF protocol with a Full adjacency, and says why a family
// has none; Peers shows BIRD itself, each protocol and each neighbour with
// its state (ReadState); Diagnose explains, for the doctor, every protocol
// or neighbour that carries no route. Resync renders, writes and
// reconfigures again when the routes disagree with what was asked.
//
// BIRD is a daemon of its own: when vipd crashes, exits for an upgrade or
// restarts, BIRD keeps running the last file vipd wrote and keeps
// announcing its routes, so OSPF mode needs no graceful restart. The next
// vipd reads that file back (New) and knows what BIRD announces before its
// first apply. The Guard bounds how long that lasts when no vipd comes
// back (routing.bird.guard_timeout).
package bird

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/fielderr"
)

// Config is the [routing.bird] section of vipd.toml. The TOML tags are the
// schema; internal/config decodes the section into it (unknown keys are
// rejected there) and calls Validate. VIPs is filled by the config loader
// from the [[vip]] sections.
type Config struct {
	// Mode "full" writes a complete bird.conf; "include" writes only the VIP
	// routes, for an operator's own bird.conf to include.
	Mode       string     `toml:"mode"`
	ConfigFile string     `toml:"config_file"` // file vipd writes
	Socket     string     `toml:"socket"`      // birdc control socket
	Bird       string     `toml:"bird"`        // bird binary, for bird -p (default "bird")
	Birdc      string     `toml:"birdc"`       // default "birdc"
	RouterID   netip.Addr `toml:"router_id"`   // default: the node's router id
	// DrainMetric is the OSPF external metric of a route announced as
	// draining (routing.Route.Draining); 0 announces it with the largest
	// metric. Whether a draining VIP is announced at all is the drain
	// policy ([routing.bird] drain), which internal/config parses for the
	// state machine (and requires drain_metric with "deprefer"): the
	// advertiser never consults it.
	DrainMetric uint32        `toml:"drain_metric"`
	Debounce    time.Duration `toml:"debounce"` // default 50ms, at most 200ms
	// Timeout bounds one `birdc configure` (default 10s).
	Timeout time.Duration `toml:"timeout"`
	// LogFile, in full mode, makes BIRD log everything there, so that the
	// doctor can find "MTU mismatch" lines (ScanMTUMismatches).
	LogFile string `toml:"log_file"`
	// GuardTimeout is how long BIRD may announce this node's VIPs
	// without a vipd before the guard (`vipctl bird-guard`) withdraws
	// them (default DefaultGuardTimeout). vipd itself does not use it.
	GuardTimeout time.Duration `toml:"guard_timeout"`
	OSPF         []OSPF        `toml:"ospf"`

	VIPs []VIPRoute `toml:"-"`
}

// OSPF is one OSPF instance ([[routing.bird.ospf]]): version 2 carries the
// IPv4 VIPs, version 3 the IPv6 ones.
type OSPF struct {
	Name      string `toml:"name"`    // BIRD protocol name (default "ospf_v2"/"ospf_v3")
	Version   int    `toml:"version"` // 2 or 3
	ECMP      bool   `toml:"ecmp"`
	IgnoreMTU bool   `toml:"ignore_mtu"` // needs a BIRD with the ignoremtu patch
	Areas     []Area `toml:"area"`
}

// Area is one OSPF area.
type Area struct {
	ID         string      `toml:"id"` // "0", a number or a dotted quad
	Interfaces []Interface `toml:"interface"`
}

// Interface is one OSPF interface pattern.
type Interface struct {
	Name       string `toml:"name"` // interface name or BIRD pattern ("eth*")
	Type       string `toml:"type"` // "ptp" | "broadcast" (default: BIRD's choice)
	Cost       uint32 `toml:"cost"`
	Hello      uint32 `toml:"hello"`          // seconds
	Dead       uint32 `toml:"dead"`           // seconds
	Retransmit uint32 `toml:"retransmit"`     // seconds
	AuthType   string `toml:"authentication"` // "none" | "simple" | "cryptographic"
	Password   string `toml:"password"`
	BFD        bool   `toml:"bfd"`
	Stub       bool   `toml:"stub"`
	// Priority is the router priority on a broadcast link (0-255; BIRD's
	// default 1 when unset). 0 keeps a node from ever becoming the
	// designated router of the switches' segment.
	Priority *int `toml:"priority"`
}

// RouteAttrs are per-VIP OSPF attributes ([vip.ospf]).
type RouteAttrs struct {
	Metric uint32 `toml:"metric"` // OSPF external metric (default 20)
	Type   int    `toml:"type"`   // external type 1 or 2 (default 2)
	Tag    uint32 `toml:"tag"`
}

// VIPRoute is a configured VIP the advertiser may announce.
type VIPRoute struct {
	Prefix netip.Prefix
	Attrs  RouteAttrs
}

// Modes and defaults.
const (
	ModeFull    = "full"
	ModeInclude = "include"

	DefaultSocket   = "/run/bird/bird.ctl"
	DefaultDebounce = 50 * time.Millisecond
	MaxDebounce     = 200 * time.Millisecond
	DefaultTimeout  = 10 * time.Second
	DefaultMetric   = 20

	// maxMetric is the largest OSPF external metric (24 bits).
	maxMetric = 1<<24 - 1
)

// Names of the generated static protocols holding the VIP routes. In include
// mode the operator's OSPF export filters select them by name, e.g.
// `export where proto = "vipd_vip4";`.
const (
	StaticV4 = "vipd_vip4"
	StaticV6 = "vipd_vip6"
)

var (
	birdName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	// quotable is what may appear between double quotes in bird.conf.
	quotable = regexp.MustCompile(`^[^"\\\n\r\x00]+$`)
)

// WithDefaults returns a copy of c with defaults filled in: mode full,
// socket, binaries, debounce, timeout and OSPF instance names.
func (c Config) WithDefaults() Config {
	if c.Mode == "" {
		c.Mode = ModeFull
	}
	if c.Socket == "" {
		c.Socket = DefaultSocket
	}
	if c.Bird == "" {
		c.Bird = "bird"
	}
	if c.Birdc == "" {
		c.Birdc = "birdc"
	}
	if c.Debounce == 0 {
		c.Debounce = DefaultDebounce
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	c.OSPF = slices.Clone(c.OSPF)
	for i := range c.OSPF {
		if c.OSPF[i].Name == "" {
			c.OSPF[i].Name = fmt.Sprintf("ospf_v%d", c.OSPF[i].Version)
		}
	}
	// VIP route attributes get their defaults when rendered (withDefaults).
	return c
}

// WithDefaults returns the attributes with the defaults the renderer
// applies where a field is zero (metric DefaultMetric, external type 2).
func (a RouteAttrs) WithDefaults() RouteAttrs {
	if a.Metric == 0 {
		a.Metric = DefaultMetric
	}
	if a.Type == 0 {
		a.Type = 2
	}
	return a
}

// Validate checks the section. Errors are fielderr errors with key paths
// relative to the section ("ospf[0].area[0].interface[1].type"), joined with
// errors.Join. Whether the installed BIRD supports ignore_mtu is a runtime
// question answered by New (ProbeIgnoreMTU), not here.
func (c *Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) {
		errs = append(errs, fielderr.New(path, format, args...))
	}
	switch c.Mode {
	case "", ModeFull, ModeInclude:
	default:
		add("mode", "must be %q or %q, not %q", ModeFull, ModeInclude, c.Mode)
	}
	if c.ConfigFile == "" {
		add("config_file", "is required: the file vipd writes for BIRD")
	} else if !quotable.MatchString(c.ConfigFile) {
		add("config_file", "must not contain quotes, backslashes or newlines")
	}
	full := c.Mode != ModeInclude
	if full && c.RouterID.IsValid() && !c.RouterID.Is4() {
		add("router_id", "must be an IPv4 address (BIRD router ids are 32-bit), not %s", c.RouterID)
	}
	if c.LogFile != "" && !quotable.MatchString(c.LogFile) {
		add("log_file", "must not contain quotes, backslashes or newlines")
	}
	if c.DrainMetric > maxMetric {
		add("drain_metric", "must be at most %d (24-bit OSPF metric)", maxMetric)
	}
	if c.Debounce < 0 || c.Debounce > MaxDebounce {
		add("debounce", "must be between 0 and %s, not %s", MaxDebounce, c.Debounce)
	}
	if c.Timeout < 0 {
		add("timeout", "must not be negative")
	}
	if c.GuardTimeout < 0 {
		add("guard_timeout", "must not be negative")
	}
	if full && len(c.OSPF) == 0 {
		add("ospf", "at least one OSPF instance is required in mode %q", ModeFull)
	}
	if !full && len(c.OSPF) > 0 {
		add("ospf", "OSPF instances are configured in your own bird.conf in mode %q; remove them here", ModeInclude)
	}
	names := map[string]int{}
	versions := map[int]bool{}
	for i, o := range c.OSPF {
		errs = append(errs, o.validate(fmt.Sprintf("ospf[%d]", i), names, i)...)
		versions[o.Version] = true
	}
	if full {
		for _, v := range c.VIPs {
			if v.Prefix.Addr().Is4() && !versions[2] {
				add("ospf", "IPv4 VIP %s needs an OSPF version 2 instance", v.Prefix)
				break
			}
		}
		for _, v := range c.VIPs {
			if v.Prefix.Addr().Is6() && !versions[3] {
				add("ospf", "IPv6 VIP %s needs an OSPF version 3 instance", v.Prefix)
				break
			}
		}
	}
	for _, v := range c.VIPs {
		if !v.Prefix.IsValid() || v.Prefix != v.Prefix.Masked() {
			errs = append(errs, fmt.Errorf("VIP %s: not a valid masked prefix", v.Prefix))
			continue
		}
		for _, err := range fielderr.All(v.Attrs.Validate()) {
			errs = append(errs, fmt.Errorf("VIP %s: %w", v.Prefix, err))
		}
	}
	return errors.Join(errs...)
}

// Validate checks one VIP's [vip.ospf] table; paths are relative to it.
func (a RouteAttrs) Validate() error {
	var errs []error
	if a.Metric > maxMetric {
		errs = append(errs, fielderr.New("metric", "must be at most %d (24-bit OSPF metric)", maxMetric))
	}
	if a.Type != 0 && a.Type != 1 && a.Type != 2 {
		errs = append(errs, fielderr.New("type", "must be 1 or 2, not %d", a.Type))
	}
	return errors.Join(errs...)
}

func (o OSPF) validate(path string, names map[string]int, idx int) []error {
	var errs []error
	add := func(p, format string, args ...any) {
		errs = append(errs, fielderr.New(path+p, format, args...))
	}
	if o.Version != 2 && o.Version != 3 {
		add(".version", "must be 2 (IPv4) or 3 (IPv6), not %d", o.Version)
	}
	name := o.Name
	if name == "" {
		name = fmt.Sprintf("ospf_v%d", o.Version)
	}
	switch {
	case !birdName.MatchString(name):
		add(".name", "%q is not a BIRD protocol name (letters, digits, underscore)", name)
	case strings.HasPrefix(name, "vipd_"):
		add(".name", "names starting with vipd_ are reserved for generated protocols")
	}
	if prev, ok := names[name]; ok {
		add(".name", "%q is already used by ospf[%d]", name, prev)
	} else {
		names[name] = idx
	}
	if len(o.Areas) == 0 {
		add(".area", "at least one area is required")
	}
	areas := map[uint32]bool{}
	for i, a := range o.Areas {
		ap := fmt.Sprintf("%s.area[%d]", path, i)
		id, err := parseAreaID(a.ID)
		if err != nil {
			errs = append(errs, fielderr.New(ap+".id", "%v", err))
		} else if areas[id] {
			errs = append(errs, fielderr.New(ap+".id", "area %s is listed twice", a.ID))
		}
		areas[id] = true
		if len(a.Interfaces) == 0 {
			errs = append(errs, fielderr.New(ap+".interface", "at least one interface is required"))
		}
		for j, ifc := range a.Interfaces {
			errs = append(errs, ifc.validate(fmt.Sprintf("%s.interface[%d]", ap, j), o.Version)...)
		}
	}
	return errs
}

func (ifc Interface) validate(path string, version int) []error {
	var errs []error
	add := func(p, format string, args ...any) {
		errs = append(errs, fielderr.New(path+p, format, args...))
	}
	if !quotable.MatchString(ifc.Name) {
		add(".name", "is required and must not contain quotes, backslashes or newlines")
	}
	switch ifc.Type {
	case "", "ptp", "broadcast":
	default:
		add(".type", "must be \"ptp\" or \"broadcast\", not %q", ifc.Type)
	}
	if ifc.Cost > 65535 {
		add(".cost", "must be at most 65535")
	}
	if ifc.Hello > 65535 {
		add(".hello", "must be between 1 and 65535 seconds")
	}
	if ifc.Dead == 1 {
		add(".dead", "must be greater than one second")
	}
	if ifc.Dead != 0 && ifc.Hello != 0 && ifc.Dead <= ifc.Hello {
		add(".dead", "must be greater than hello (%d)", ifc.Hello)
	}
	if ifc.Priority != nil && (*ifc.Priority < 0 || *ifc.Priority > 255) {
		add(".priority", "must be between 0 and 255, not %d", *ifc.Priority)
	}
	if ifc.Retransmit == 1 {
		add(".retransmit", "must be greater than one second")
	}
	switch ifc.AuthType {
	case "", "none":
		if ifc.Password != "" {
			add(".password", "is set but authentication is %q", "none")
		}
	case "simple":
		if version == 3 {
			add(".authentication", "OSPFv3 has no simple authentication; use \"cryptographic\"")
		}
		if ifc.Password == "" || len(ifc.Password) > 8 {
			add(".password", "simple authentication needs a password of 1 to 8 characters")
		}
	case "cryptographic":
		if ifc.Password == "" {
			add(".password", "cryptographic authentication needs a password")
		}
	default:
		add(".authentication", "must be \"none\", \"simple\" or \"cryptographic\", not %q", ifc.AuthType)
	}
	if ifc.Password != "" && !quotable.MatchString(ifc.Password) {
		add(".password", "must not contain quotes, backslashes or newlines")
	}
	return errs
}

// parseAreaID accepts "0", a decimal number or a dotted quad.
func parseAreaID(s string) (uint32, error) {
	if s == "" {
		return 0, errors.New("is required (\"0\" for the backbone)")
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		return uint32(n), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return 0, fmt.Errorf("%q is neither a number nor a dotted quad", s)
	}
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3]), nil
}
