package bird

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/hashicorp/go-hclog"
)

// BIRD is a daemon of its own: when vipd dies, BIRD keeps announcing the
// routes of the last file vipd wrote, while nothing programs the dataplane
// or follows the service's health any more. BGP mode bounds that with the
// graceful-restart time (the routers drop stale routes after it); OSPF has
// nothing of the kind, so a guard does it: a small process next to BIRD
// (`vipctl bird-guard`) that watches whether a vipd holds the node's state
// directory and, once none has for Timeout (routing.bird.guard_timeout),
// rewrites the file without any VIP route and reconfigures BIRD. An upgrade
// restart or a crash that vipd comes back from within the timeout changes
// nothing (the routes stay, as before); a vipd that does not come back
// stops attracting traffic after at most Timeout plus one Interval.
//
// Why a separate process and not BIRD or the service manager: BIRD has no
// notion of a route that expires unless refreshed, and a route tied to
// something that dies with vipd (a BFD session, an interface of vipd's)
// would be withdrawn at once, flapping every upgrade restart. systemd's
// ExecStopPost runs at once too and exists only under systemd. The guard
// is one more process that may die: its own unit restarts it, and the
// doctor says when none runs (GuardLockFile).

// GuardConfig is what the guard needs to know.
type GuardConfig struct {
	// Bird is the [routing.bird] section of the vipd it guards: the file
	// to rewrite (in full mode with its OSPF protocols) and BIRD's socket.
	Bird Config
	// Timeout is how long no vipd may hold the state directory before the
	// routes are withdrawn (DefaultGuardTimeout when zero).
	Timeout time.Duration
	// Interval is how often the guard looks (default 500ms).
	Interval time.Duration
	// Held reports whether a vipd holds the node's state directory now
	// (statedir.Held).
	Held func() (bool, error)
}

// DefaultGuardTimeout bounds how long BIRD announces a node's VIPs without
// a vipd when routing.bird.guard_timeout is not set.
const DefaultGuardTimeout = 60 * time.Second

// Guard withdraws a node's VIP routes from BIRD when its vipd has been
// gone for longer than the timeout. Run runs it; it owns nothing else.
type Guard struct {
	cfg GuardConfig
	log hclog.Logger
	r   *renderer
	now func() time.Time

	// gone is when the guard last saw no vipd after seeing one (or
	// started); zero while a vipd runs.
	gone time.Time
	// withdrawn is set once the file announces nothing (withdrawn or
	// found so) since vipd left; cleared when a vipd runs again.
	withdrawn bool
	// lastErr is the last failure, logged once until it changes.
	lastErr string
}

// NewGuard validates cfg.
func NewGuard(cfg GuardConfig, log hclog.Logger) (*Guard, error) {
	if err := cfg.Bird.Validate(); err != nil {
		return nil, fmt.Errorf("validating routing.bird: %w", err)
	}
	if cfg.Held == nil {
		return nil, errors.New("guard: no way to tell whether vipd runs (Held is nil)")
	}
	cfg.Bird = cfg.Bird.WithDefaults()
	if cfg.Timeout == 0 {
		cfg.Timeout = DefaultGuardTimeout
	}
	if cfg.Interval == 0 {
		cfg.Interval = 500 * time.Millisecond
	}
	if log == nil {
		log = hclog.NewNullLogger()
	}
	r, err := newRenderer(cfg.Bird)
	if err != nil {
		return nil, err
	}
	return &Guard{cfg: cfg, log: log.Named("bird-guard"), r: r, now: time.Now}, nil
}

// Run watches until ctx ends. The clock starts when Run does if no vipd
// runs then: a guard started at boot before vipd gives it the timeout to
// come up.
func (g *Guard) Run(ctx context.Context) error {
	g.log.Info("guarding", "file", g.cfg.Bird.ConfigFile, "socket", g.cfg.Bird.Socket, "timeout", g.cfg.Timeout)
	t := time.NewTicker(g.cfg.Interval)
	defer t.Stop()
	for {
		g.Step(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Step looks once and acts: the whole guard, one tick at a time.
func (g *Guard) Step(ctx context.Context) {
	held, err := g.cfg.Held()
	if err != nil {
		g.failed("cannot tell whether vipd runs", err)
		return
	}
	now := g.now()
	if held {
		if !g.gone.IsZero() || g.withdrawn {
			g.log.Info("vipd runs again", "withdrawn", g.withdrawn)
		}
		g.gone, g.withdrawn, g.lastErr = time.Time{}, false, ""
		return
	}
	if g.gone.IsZero() {
		g.gone = now
		g.log.Info("no vipd holds the state directory: the routes stay until the timeout", "timeout", g.cfg.Timeout)
	}
	if g.withdrawn || now.Sub(g.gone) < g.cfg.Timeout {
		return
	}
	n, err := g.withdraw(ctx)
	if err != nil {
		g.failed("withdrawing the VIP routes failed", err)
		return
	}
	g.withdrawn, g.lastErr = true, ""
	if n > 0 {
		g.log.Warn("no vipd for longer than the timeout: withdrew the node's VIP routes from bird",
			"routes", n, "gone_for", now.Sub(g.gone).Round(time.Millisecond))
	}
}

// Withdrawn reports whether the guard has withdrawn (or found nothing to
// withdraw) since vipd left.
func (g *Guard) Withdrawn() bool { return g.withdrawn }

func (g *Guard) failed(what string, err error) {
	if err.Error() != g.lastErr {
		g.log.Error(what, "error", err)
		g.lastErr = err.Error()
	}
}

// withdraw rewrites the file without VIP routes and has BIRD read it. It
// returns how many routes the file announced; none means nothing to do.
// Unless a vipd started meanwhile: then it leaves the file to it. A BIRD
// that is not running is not an error: the file is right for its start.
func (g *Guard) withdraw(ctx context.Context) (int, error) {
	file := g.cfg.Bird.ConfigFile
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		data = nil
	} else if err != nil {
		return 0, fmt.Errorf("reading %s: %w", file, err)
	}
	n := len(routesInFile(data))
	if n == 0 && data != nil {
		return 0, nil
	}
	empty, err := g.r.render(nil)
	if err != nil {
		return 0, err
	}
	// The last look before writing: a vipd that started meanwhile owns
	// the file. (One that starts between this look and the configure
	// reads a file about to be emptied; its first apply, or its check of
	// the claims against BIRD, puts its routes back.)
	if held, err := g.cfg.Held(); err != nil || held {
		return 0, err
	}
	if err := WriteAtomic(file, empty); err != nil {
		return 0, err
	}
	ctx, cancel := context.WithTimeout(ctx, g.cfg.Bird.Timeout)
	defer cancel()
	arg := ""
	if g.cfg.Bird.Mode == ModeFull {
		arg = file
	}
	if _, err := configureSocket(ctx, g.cfg.Bird.Socket, arg, false); err != nil {
		if unreachable(err) {
			g.log.Info("bird is not running: the file it will read announces nothing", "file", file)
			return n, nil
		}
		return 0, fmt.Errorf("reconfiguring bird: %w", err)
	}
	return n, nil
}

// GuardLockFile is the file in vipd's state directory that a running
// guard holds an flock on (a second guard refuses to start), so that the
// doctor can tell whether one runs.
const GuardLockFile = "bird-guard.lock"
