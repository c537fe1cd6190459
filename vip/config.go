package vip

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/vipd/vipd/internal/cluster"
	"github.com/vipd/vipd/internal/fielderr"
)

// DrainPolicy is what a draining VIP does with its route. The state machine
// alone applies it: the advertisers announce what they are given.
type DrainPolicy uint8

// Drain policies.
const (
	// DrainWithdraw withdraws the route of a draining VIP (the default).
	DrainWithdraw DrainPolicy = iota
	// DrainDeprefer keeps announcing a draining VIP with Route.Draining
	// set, so routers prefer other nodes but may still use this one.
	DrainDeprefer
)

var drainPolicyWords = [...]string{DrainWithdraw: "withdraw", DrainDeprefer: "deprefer"}

// ParseDrainPolicy parses "withdraw" or "deprefer".
func ParseDrainPolicy(s string) (DrainPolicy, error) {
	for p, w := range drainPolicyWords {
		if s == w {
			return DrainPolicy(p), nil
		}
	}
	return 0, fmt.Errorf("drain policy %q: want %q or %q", s, DrainWithdraw, DrainDeprefer)
}

// String returns the policy's word.
func (p DrainPolicy) String() string {
	if int(p) < len(drainPolicyWords) {
		return drainPolicyWords[p]
	}
	return "DrainPolicy(" + strconv.Itoa(int(p)) + ")"
}

func (p DrainPolicy) valid() bool { return int(p) < len(drainPolicyWords) }

// MarshalText implements encoding.TextMarshaler.
func (p DrainPolicy) MarshalText() ([]byte, error) {
	if !p.valid() {
		return nil, fmt.Errorf("marshaling %s: not a drain policy", p)
	}
	return []byte(p.String()), nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (p *DrainPolicy) UnmarshalText(b []byte) error {
	v, err := ParseDrainPolicy(string(b))
	if err != nil {
		return err
	}
	*p = v
	return nil
}

// VIPConfig is one VIP this node serves.
type VIPConfig struct {
	Addr     netip.Addr
	Services []Service
}

// Member is one node of the cluster, this node included.
type Member struct {
	Name string
	// Addr4 and Addr6 are the member's underlay addresses (GUE
	// destinations) for IPv4 and IPv6 VIPs; either may be invalid (absent),
	// and the member then serves no VIP of that family.
	Addr4, Addr6 netip.Addr
	// Weight is the member's configured weight (Backend.Weight; zero:
	// DefaultWeight).
	Weight uint32
}

// Config is what the controller is told to do. It is immutable once given to
// New or Reload.
type Config struct {
	Node          string // this node's member name
	VIPs          []VIPConfig
	Members       []Member      // includes this node
	WithdrawGrace time.Duration // routers converge after a withdraw
	TableGrace    time.Duration // peers stop sending after we publish inactive
	DrainTimeout  time.Duration // max wait for idle while draining
	// RemoveTimeout is DrainTimeout for a VIP removed by a reload: it is
	// drained like any other before it goes, and waits at most this long
	// for its flows to end.
	RemoveTimeout time.Duration
	DrainPolicy   DrainPolicy // DrainWithdraw (the default) or DrainDeprefer
	// VerifyInterval is how often the routing daemon is read back to
	// check the claims (Advertiser.Exported); zero: never (the world stays
	// unknown). VerifySettle is how long after a route changes a read must
	// start to be compared with it: what the daemon exports may lag the
	// call that changed it.
	VerifyInterval time.Duration
	VerifySettle   time.Duration
	// LoCheckInterval is how often the addresses on lo are read back
	// when Deps.LoChanges did not signal (events lost to an overflow, or
	// no subscription at all); zero: only when it signals.
	LoCheckInterval time.Duration
	// PeerWait is how long a starting controller waits for every other
	// member's state before it changes a table or announces anything with
	// what it has. A director that does not know its peers would build a
	// table of itself alone: once it attracts traffic (a fresh start, or
	// routes kept by graceful restart) it would take over, and reset, the
	// flows the other backends own. Zero: do not wait. The poller reports
	// every member (state, or failed after fall misses) within about
	// poll_interval * max(rise, fall) + poll_timeout.
	PeerWait time.Duration
	// SlowStart ramps the weight of a member that becomes primary for a
	// VIP (it joins, returns, undrains or recovers) up to its configured
	// weight over this long, in SlowStartSteps table rebuilds, from the
	// time the member publishes (cluster.VIPState.RampFrom). Zero: off.
	SlowStart time.Duration
	// Digests are this node's cluster-configuration digests
	// (cluster.ComputeDigests), published in the node-state document with
	// the digest of each VIP's table filled in; nil publishes none.
	Digests *cluster.Digests
}

// Validate reports every problem of c, each as a *fielderr.Error naming the
// item ("vips[2].addr").
func (c Config) Validate() error {
	var errs []error
	add := func(path, format string, args ...any) { errs = append(errs, fielderr.New(path, format, args...)) }
	if c.Node == "" {
		add("node", "must not be empty")
	}
	names := map[string]bool{}
	for i, m := range c.Members {
		p := "members[" + strconv.Itoa(i) + "]"
		switch {
		case m.Name == "":
			add(p+".name", "must not be empty")
		case names[m.Name]:
			add(p+".name", "duplicate member %q", m.Name)
		}
		names[m.Name] = true
		if m.Addr4.IsValid() && !m.Addr4.Is4() {
			add(p+".addr4", "%s is not an IPv4 address", m.Addr4)
		}
		if m.Addr6.IsValid() && (!m.Addr6.Is6() || m.Addr6.Is4In6()) {
			add(p+".addr6", "%s is not an IPv6 address", m.Addr6)
		}
		if !m.Addr4.IsValid() && !m.Addr6.IsValid() {
			add(p, "needs an IPv4 or IPv6 underlay address")
		}
	}
	if c.Node != "" && !names[c.Node] {
		add("node", "%q is not listed in members", c.Node)
	}
	seen := map[netip.Addr]bool{}
	for i, v := range c.VIPs {
		p := "vips[" + strconv.Itoa(i) + "]"
		switch {
		case !v.Addr.IsValid() || v.Addr.IsUnspecified():
			add(p+".addr", "must be a unicast address")
		case v.Addr.Is4In6() || v.Addr.Zone() != "":
			add(p+".addr", "%s: use a plain IPv4 or IPv6 address", v.Addr)
		case seen[v.Addr]:
			add(p+".addr", "duplicate VIP %s", v.Addr)
		}
		seen[v.Addr] = true
		for j, s := range v.Services {
			if s.Proto != ProtoTCP && s.Proto != ProtoUDP {
				add(p+".services["+strconv.Itoa(j)+"].proto", "%d is neither TCP (6) nor UDP (17)", s.Proto)
			}
		}
	}
	for path, d := range map[string]time.Duration{
		"withdraw_grace": c.WithdrawGrace, "table_grace": c.TableGrace, "drain_timeout": c.DrainTimeout,
		"remove_timeout": c.RemoveTimeout, "verify_interval": c.VerifyInterval, "verify_settle": c.VerifySettle,
		"lo_check_interval": c.LoCheckInterval,
	} {
		if d < 0 {
			add(path, "must not be negative")
		}
	}
	if !c.DrainPolicy.valid() {
		add("drain_policy", "%s is neither %q nor %q", c.DrainPolicy, DrainWithdraw, DrainDeprefer)
	}
	slices.SortFunc(errs, func(a, b error) int { return strings.Compare(a.Error(), b.Error()) })
	return errors.Join(errs...)
}

// vip returns the configuration of addr, or nil.
func (c Config) vip(addr netip.Addr) *VIPConfig {
	for i := range c.VIPs {
		if c.VIPs[i].Addr == addr {
			return &c.VIPs[i]
		}
	}
	return nil
}

func (c Config) deprefer() bool { return c.DrainPolicy == DrainDeprefer }
