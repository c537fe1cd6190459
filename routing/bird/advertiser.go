package bird

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/vipd/vipd/routing"
)

// Advertiser implements routing.Advertiser with a generated BIRD
// configuration.
// It is safe for concurrent use: SetRoutes calls are handed to one goroutine
// (run) that owns the file, BIRD and the applied state.
type Advertiser struct {
	cfg Config
	log hclog.Logger

	// vipMu guards vips and r, which SetVIPs replaces on a config reload.
	vipMu sync.RWMutex
	vips  map[netip.Prefix]bool
	r     *renderer

	reqs     chan request
	stop     chan struct{}
	stopOnce sync.Once
	done     chan struct{}

	// mu guards live and liveSure: run writes them, Routes reads them.
	mu       sync.Mutex
	live     []routing.Route // routes in effect at BIRD (best knowledge)
	liveSure bool            // live was set by a successful apply

	// Owned by the run goroutine.
	lastGood  []byte // contents of the last file BIRD accepted
	haveGood  bool
	fileArg   string // file passed to `birdc configure` ("" = BIRD's own)
	lastApply ApplyStats
}

// ApplyStats times the steps of the last apply (for benchmarks and logs).
type ApplyStats struct {
	Render, Check, Configure time.Duration
}

type request struct {
	routes []routing.Route
	// resync asks for the routes in effect to be applied again even if
	// nothing changed (routes is unused).
	resync bool
	reply  chan result
}

type result struct {
	routes []routing.Route
	err    error
}

var _ routing.Advertiser = (*Advertiser)(nil)

// New validates cfg, checks that the BIRD it drives supports every option
// used (ignore_mtu needs a patched BIRD: ErrIgnoreMTUUnsupported; the
// running daemon is asked, or the binary when none runs yet), adopts
// the routes of an existing generated file, and starts the apply loop. It
// does not touch BIRD until the first SetRoutes. Call Close to stop.
func New(ctx context.Context, cfg Config, log hclog.Logger) (*Advertiser, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("validating routing.bird: %w", err)
	}
	cfg = cfg.WithDefaults()
	if log == nil {
		log = hclog.NewNullLogger()
	}
	if err := checkIgnoreMTU(ctx, cfg); err != nil {
		return nil, err
	}
	a := &Advertiser{
		cfg:  cfg,
		log:  log.Named("bird"),
		vips: make(map[netip.Prefix]bool, len(cfg.VIPs)),
		reqs: make(chan request),
		stop: make(chan struct{}),
		done: make(chan struct{}),
	}
	if cfg.Mode == ModeFull {
		a.fileArg = cfg.ConfigFile
	}
	r, err := newRenderer(cfg)
	if err != nil {
		return nil, err
	}
	a.r = r
	for _, v := range cfg.VIPs {
		a.vips[v.Prefix] = true
	}
	if data, err := os.ReadFile(cfg.ConfigFile); err == nil {
		a.lastGood, a.haveGood = data, true
		a.setLive(routesInFile(data), false)
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading %s: %w", cfg.ConfigFile, err)
	}
	go a.run()
	return a, nil
}

// Close withdraws every route (BIRD is reconfigured without them, which
// floods the withdrawal to the OSPF neighbours) and stops the apply loop.
// BIRD keeps running. Afterwards every method returns routing.ErrClosed.
func (a *Advertiser) Close(ctx context.Context) error {
	_, err := a.SetRoutes(ctx, nil)
	if errors.Is(err, routing.ErrClosed) {
		err = nil
	}
	a.stopLoop()
	if err != nil {
		return fmt.Errorf("withdrawing bird routes: %w", err)
	}
	return nil
}

// Abandon stops the apply loop and leaves BIRD and the file as they are:
// the routes stay announced for the next vipd (an upgrade exit). Pending
// SetRoutes calls return routing.ErrClosed.
func (a *Advertiser) Abandon() error {
	a.stopLoop()
	return nil
}

func (a *Advertiser) stopLoop() {
	a.stopOnce.Do(func() { close(a.stop) })
	<-a.done
}

// SetRoutes makes BIRD announce exactly routes (see routing.Advertiser).
// A prefix that is not a configured VIP is refused (the error names it) and
// the other routes are still applied. Calls arriving within the debounce
// window coalesce into one apply (the latest call's routes win, every
// caller gets that apply's result); the first call of a burst reaches BIRD
// after at most Debounce (<= 200 ms) plus an apply already running. On a
// failed apply the running configuration stays, and the routes it announces
// are returned with the error.
func (a *Advertiser) SetRoutes(ctx context.Context, routes []routing.Route) ([]routing.Route, error) {
	routes, refused := a.known(routes)
	got, err := a.setRoutes(ctx, routes)
	if refused != nil {
		err = errors.Join(refused, err)
	}
	return got, err
}

// known splits routes into those of configured VIPs and an error naming
// each of the others.
func (a *Advertiser) known(routes []routing.Route) ([]routing.Route, error) {
	a.vipMu.RLock()
	defer a.vipMu.RUnlock()
	var errs []error
	out := make([]routing.Route, 0, len(routes))
	for _, r := range routes {
		if !a.vips[r.Prefix] {
			errs = append(errs, fmt.Errorf("refusing to announce %s: %w", r.Prefix, routing.ErrUnknownPrefix))
			continue
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

func (a *Advertiser) setRoutes(ctx context.Context, routes []routing.Route) ([]routing.Route, error) {
	return a.send(ctx, request{routes: routes})
}

// send hands req to the apply loop and waits for its result.
func (a *Advertiser) send(ctx context.Context, req request) ([]routing.Route, error) {
	req.reply = make(chan result, 1)
	routes := req.routes
	if req.resync {
		routes = a.Routes()
	}
	select {
	case <-a.stop:
		return a.Routes(), routing.ErrClosed
	default:
	}
	select {
	case a.reqs <- req:
	case <-a.stop:
		return a.Routes(), routing.ErrClosed
	case <-ctx.Done():
		return a.Routes(), fmt.Errorf("setting bird routes: %w", ctx.Err())
	}
	select {
	case res := <-req.reply:
		return res.routes, res.err
	case <-ctx.Done():
		// The apply goes on and its outcome is unknown: report the routes
		// of both sides as possibly announced.
		return union(a.Routes(), announced(routes)), fmt.Errorf("setting bird routes: %w", ctx.Err())
	}
}

// Routes returns the routes BIRD announces as far as the advertiser knows:
// those of the last successful apply, or of the generated file found at
// start.
func (a *Advertiser) Routes() []routing.Route {
	a.mu.Lock()
	defer a.mu.Unlock()
	return slices.Clone(a.live)
}

func (a *Advertiser) setLive(routes []routing.Route, sure bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.live, a.liveSure = routes, sure
}

// union returns a plus the routes of b whose prefix is not in a.
func union(a, b []routing.Route) []routing.Route {
	out := slices.Clone(a)
	for _, r := range b {
		if !slices.ContainsFunc(out, func(o routing.Route) bool { return o.Prefix == r.Prefix }) {
			out = append(out, r)
		}
	}
	return out
}

func (a *Advertiser) run() {
	defer close(a.done)
	var batch []request
	var timer *time.Timer
	var fire <-chan time.Time
	for {
		select {
		case r := <-a.reqs:
			batch = append(batch, r)
			if fire == nil {
				timer = time.NewTimer(a.cfg.Debounce)
				fire = timer.C
			}
		case <-fire:
			fire = nil
			// The latest SetRoutes of the batch wins; a batch of Resync
			// calls only applies the routes in effect again.
			routes, _ := a.known(a.Routes())
			force := false
			for _, r := range batch {
				if r.resync {
					force = true
				} else {
					routes = r.routes
				}
			}
			res := a.apply(routes, len(batch), force)
			for _, r := range batch {
				// Each caller owns its slice.
				r.reply <- result{routes: slices.Clone(res.routes), err: res.err}
			}
			batch = nil
		case <-a.stop:
			if timer != nil {
				timer.Stop()
			}
			for _, r := range batch {
				r.reply <- result{routes: a.Routes(), err: routing.ErrClosed}
			}
			return
		}
	}
}

// apply renders routes, validates, installs and reloads; unless force, it
// does nothing when BIRD is known to run them already. Only run calls it.
func (a *Advertiser) apply(routes []routing.Route, coalesced int, force bool) result {
	want := announced(routes)
	a.mu.Lock()
	same := !force && a.liveSure && slices.Equal(want, a.live)
	a.mu.Unlock()
	if same {
		return result{routes: slices.Clone(want)}
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.cfg.Timeout)
	defer cancel()
	start := time.Now()
	a.vipMu.RLock()
	r := a.r
	a.vipMu.RUnlock()
	data, err := r.render(want)
	if err != nil {
		return result{routes: a.Routes(), err: err}
	}
	a.lastApply.Render = time.Since(start)
	res, err := a.install(ctx, data)
	if err != nil {
		a.log.Error(applyFailure(err), "reason", err.Error(), "file", a.cfg.ConfigFile, "socket", a.cfg.Socket)
		return result{routes: a.uncertain(want, err), err: err}
	}
	a.setLive(want, true)
	a.lastGood, a.haveGood = data, true
	a.log.Debug("bird reconfigured", "state", string(res), "routes", len(want),
		"coalesced", coalesced, "took", time.Since(start))
	return result{routes: slices.Clone(want)}
}

// uncertain is what apply returns on error: the live routes, plus the
// wanted ones when BIRD may have taken the new file (timeout), since a
// route whose state is unknown must be reported as announced.
func (a *Advertiser) uncertain(want []routing.Route, err error) []routing.Route {
	live := a.Routes()
	if !errors.Is(err, context.DeadlineExceeded) {
		return live
	}
	out := union(live, want)
	a.setLive(out, false)
	return slices.Clone(out)
}

// install writes data next to the config file, has `bird -p` check it,
// renames it into place and reloads BIRD; when BIRD refuses, the last good
// file is put back so a restart of BIRD runs what is running now.
func (a *Advertiser) install(ctx context.Context, data []byte) (ConfigureResult, error) {
	file := a.cfg.ConfigFile
	tmp, err := writeTemp(file, data)
	if err != nil {
		return "", err
	}
	t0 := time.Now()
	if err := Check(ctx, a.cfg.Bird, tmp); err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("checking generated config: %w", renameInError(err, tmp, file))
	}
	a.lastApply.Check = time.Since(t0)
	if err := replace(tmp, file); err != nil {
		return "", err
	}
	t0 = time.Now()
	res, cerr := configureSocket(ctx, a.cfg.Socket, a.fileArg, false)
	a.lastApply.Configure = time.Since(t0)
	if cerr == nil {
		return res, nil
	}
	if unreachable(cerr) {
		// BIRD did not refuse the file: it is not there to read it. The
		// new file stays, so a BIRD that starts now announces what vipd
		// wants now, not what it wanted before.
		return "", fmt.Errorf("reconfiguring bird: %w (the new file is in place for bird's next start)", cerr)
	}
	var ce *ConfigError
	switch {
	case errors.As(cerr, &ce) && lineHas(data, ce.Line, "ignoremtu"):
		cerr = fmt.Errorf("reconfiguring bird: the bird running on %s refuses ignoremtu: %w: %w",
			a.cfg.Socket, ce, ErrIgnoreMTUUnsupported)
	case errors.As(cerr, &ce):
		cerr = fmt.Errorf("reconfiguring bird: %w", &ConfigError{File: ce.File, Line: ce.Line, Col: ce.Col,
			Msg: ce.Msg + " (in the new version; the last good file is restored)"})
	default:
		cerr = fmt.Errorf("reconfiguring bird: %w", cerr)
	}
	if rerr := a.restore(); rerr != nil {
		return "", errors.Join(cerr, rerr)
	}
	return "", cerr
}

// unreachable reports whether err says BIRD could not be asked at all.
func unreachable(err error) bool {
	return errors.Is(err, ErrSocketMissing) || errors.Is(err, ErrBirdDown) || errors.Is(err, ErrSocketPermission)
}

// applyFailure is the log message of a failed apply: what failed, so that a
// BIRD that is down or cannot read the file is not taken for one that
// rejected it.
func applyFailure(err error) string {
	var ce *ConfigError
	switch {
	case errors.Is(err, ErrIgnoreMTUUnsupported):
		return "bird does not support ignore_mtu, keeping the running config"
	case errors.As(err, &ce):
		return "bird rejected the generated config, keeping the running one"
	case unreachable(err):
		return "bird cannot be reached: the generated config waits for it"
	case errors.Is(err, ErrBirdCannotRead), errors.Is(err, ErrBirdNoFile):
		return "bird cannot read the generated config"
	case errors.Is(err, context.DeadlineExceeded):
		return "bird did not answer in time: the generated config may or may not be running"
	}
	return "applying the generated config failed"
}

// lineHas reports whether line n (from 1) of data contains word.
func lineHas(data []byte, n int, word string) bool {
	lines := bytes.Split(data, []byte("\n"))
	return n >= 1 && n <= len(lines) && bytes.Contains(lines[n-1], []byte(word))
}

func (a *Advertiser) restore() error {
	file := a.cfg.ConfigFile
	if !a.haveGood {
		if err := os.Remove(file); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("removing rejected %s: %w", file, err)
		}
		return nil
	}
	tmp, err := writeTemp(file, a.lastGood)
	if err != nil {
		return fmt.Errorf("restoring last good %s: %w", file, err)
	}
	if err := replace(tmp, file); err != nil {
		return fmt.Errorf("restoring last good %s: %w", file, err)
	}
	return nil
}

// LastApply returns the step timings of the most recent apply. Call it only
// after SetRoutes has returned (it is not synchronised with a running apply).
func (a *Advertiser) LastApply() ApplyStats { return a.lastApply }

// writeTemp writes data to a fsynced temporary file in file's directory
// (so the rename is atomic) and returns its name.
func writeTemp(file string, data []byte) (string, error) {
	f, err := os.CreateTemp(filepath.Dir(file), "."+filepath.Base(file)+".vipd-*")
	if err != nil {
		return "", fmt.Errorf("creating temp file for %s: %w", file, err)
	}
	_, werr := f.Write(data)
	if werr == nil {
		werr = own(f, filepath.Dir(file))
	}
	if werr == nil {
		werr = f.Sync()
	}
	if cerr := f.Close(); werr == nil {
		werr = cerr
	}
	if werr != nil {
		os.Remove(f.Name())
		return "", fmt.Errorf("writing temp file for %s: %w", file, werr)
	}
	return f.Name(), nil
}

// replace renames tmp over file and fsyncs the directory.
func replace(tmp, file string) error {
	if err := os.Rename(tmp, file); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("renaming %s into place: %w", file, err)
	}
	d, err := os.Open(filepath.Dir(file))
	if err != nil {
		return fmt.Errorf("syncing directory of %s: %w", file, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("syncing directory of %s: %w", file, err)
	}
	return nil
}

var routeInFile = regexp.MustCompile(`(?m)^\s*route (\S+) blackhole .*?(# draining)?$`)

// routesInFile returns the VIP routes a generated file announces, so a
// restarted vipd knows what BIRD is announcing before its first apply.
func routesInFile(data []byte) []routing.Route {
	var out []routing.Route
	for _, m := range routeInFile.FindAllSubmatch(data, -1) {
		p, err := netip.ParsePrefix(string(m[1]))
		if err != nil {
			continue
		}
		out = append(out, routing.Route{Prefix: p, Draining: bytes.Equal(m[2], []byte("# draining"))})
	}
	return out
}

// WriteAtomic writes data to file the way an apply does: a temporary file
// in the same directory, fsync, rename, fsync of the directory. Readers see
// the old or the new file, never half of one (`vipctl bird-config -o`).
func WriteAtomic(file string, data []byte) error {
	tmp, err := writeTemp(file, data)
	if err != nil {
		return err
	}
	return replace(tmp, file)
}

// SetVIPs replaces the configured VIPs (a config reload, see
// routing.Advertiser): from now on only these may be announced, with these
// attributes (RouteAttrs; nil for the defaults). The routes announced now
// are rendered again so changed attributes reach BIRD; a route whose VIP is
// no longer listed is withdrawn at once.
func (a *Advertiser) SetVIPs(ctx context.Context, vips []routing.VIP) error {
	select {
	case <-a.stop:
		return routing.ErrClosed
	default:
	}
	cfg := a.cfg
	cfg.VIPs = make([]VIPRoute, 0, len(vips))
	for _, rv := range vips {
		v, err := vipRoute(rv)
		if err != nil {
			return fmt.Errorf("setting bird VIPs: %w", err)
		}
		if err := v.Attrs.Validate(); err != nil {
			return fmt.Errorf("setting bird VIPs: VIP %s: %w", v.Prefix, err)
		}
		cfg.VIPs = append(cfg.VIPs, v)
	}
	m := make(map[netip.Prefix]bool, len(cfg.VIPs))
	for _, v := range cfg.VIPs {
		m[v.Prefix] = true
	}
	// Under the lock: the drain metric is the renderer's (SetDrainMetric),
	// and a concurrent SetDrainMetric must not be lost.
	a.vipMu.Lock()
	cfg.DrainMetric = a.r.cfg.DrainMetric
	r, err := newRenderer(cfg)
	if err == nil {
		a.vips, a.r = m, r
	}
	a.vipMu.Unlock()
	if err != nil {
		return fmt.Errorf("setting bird VIPs: %w", err)
	}

	a.mu.Lock()
	a.liveSure = false // same routes, maybe new attributes: render again
	a.mu.Unlock()
	var keep []routing.Route
	for _, rt := range a.Routes() {
		if m[rt.Prefix] {
			keep = append(keep, rt)
		}
	}
	if _, err := a.SetRoutes(ctx, keep); err != nil {
		return fmt.Errorf("applying new VIP attributes: %w", err)
	}
	return nil
}

// SetDrainMetric changes the metric of draining routes at run time
// (drain_metric; 0 for the largest), as a fresh start with it would
// announce: the draining routes are rendered again and BIRD reconfigured;
// the others do not change. internal/config treats the key as needing a
// restart today; this is what a reload would call if it did not.
func (a *Advertiser) SetDrainMetric(ctx context.Context, metric uint32) error {
	if metric > maxMetric {
		return fmt.Errorf("setting the bird drain metric: %d is more than %d (24-bit OSPF metric)", metric, maxMetric)
	}
	select {
	case <-a.stop:
		return routing.ErrClosed
	default:
	}
	a.vipMu.Lock()
	cfg := a.r.cfg
	cfg.DrainMetric = metric
	r, err := newRenderer(cfg)
	if err == nil {
		a.r = r
	}
	a.vipMu.Unlock()
	if err != nil {
		return fmt.Errorf("setting the bird drain metric: %w", err)
	}
	a.mu.Lock()
	a.liveSure = false // same routes, maybe a new metric: render again
	a.mu.Unlock()
	if _, err := a.SetRoutes(ctx, a.Routes()); err != nil {
		return fmt.Errorf("applying the new drain metric: %w", err)
	}
	return nil
}

// vipRoute converts a routing.VIP, whose attributes must be RouteAttrs (or
// nil for the defaults).
func vipRoute(v routing.VIP) (VIPRoute, error) {
	switch a := v.Attrs.(type) {
	case nil:
		return VIPRoute{Prefix: v.Prefix}, nil
	case RouteAttrs:
		return VIPRoute{Prefix: v.Prefix, Attrs: a}, nil
	case *RouteAttrs:
		if a == nil {
			return VIPRoute{Prefix: v.Prefix}, nil
		}
		return VIPRoute{Prefix: v.Prefix, Attrs: *a}, nil
	}
	return VIPRoute{}, fmt.Errorf("VIP %s: %T: %w", v.Prefix, v.Attrs, routing.ErrAttrs)
}

// Peers implements routing.Advertiser with the state of the BIRD vipd
// drives (ReadState): BIRD itself ("bird": up with its version, or why it
// cannot be reached), each of vipd's OSPF protocols ("ospf_v2": up with a
// Full adjacency, disabled, down, or missing from BIRD's config) and each
// neighbour ("ospf_v2 192.0.2.1": full, or the state it is stuck in and
// why, with the MTU mismatch from routing.bird.log_file when BIRD logged
// one). A protocol or neighbour that is up counts the routes BIRD exports
// to it. Only a closed advertiser is an error: a BIRD that cannot be
// reached is the "bird" entry, down, saying why.
func (a *Advertiser) Peers(ctx context.Context) ([]routing.Peer, error) {
	select {
	case <-a.stop:
		return nil, routing.ErrClosed
	default:
	}
	st, err := ReadState(ctx, a.cfg)
	if err != nil {
		return []routing.Peer{{Kind: routing.PeerDaemon, Name: "bird", State: "down", LastError: err.Error()}}, nil
	}
	var mm []MTUMismatch
	if a.cfg.LogFile != "" && st.stuck() {
		mm, _ = scanLogFile(a.cfg.LogFile)
	}
	return st.peers(mm), nil
}
