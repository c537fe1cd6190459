// Package etcd is the etcd backend of the cluster state ([cluster] backend
// = "etcd"): each vipd keeps its signed node-state document under a lease
// in etcd, at Prefix + its member name, and watches the prefix. The member
// states reach the consumer as one cluster.Update per etcd revision, so
// every director switches to the tables of the same revision, and each
// watch event is verified like a polled document (signature, freshness,
// replay). A crashed node's lease expires, its key goes, and its peers
// report it failed. Losing the etcd quorum (or every endpoint) freezes the
// last snapshot, never flushes it, and shows in the membership's backend
// status until a fresh read succeeds again.
//
// It is the same cluster.Source as the poller: the daemon swaps one for the
// other. docs/cluster.md describes both.
package etcd

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"go.etcd.io/etcd/api/v3/mvccpb"
	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"

	"github.com/vipd/vipd/internal/cluster"
)

// Defaults of Config.
const (
	// DefaultPrefix is where the node states live: DefaultPrefix + name.
	DefaultPrefix = "/vipd/nodes/"
	// DefaultLeaseTTL: a node whose vipd died is dropped by its peers this
	// long after its last keepalive (etcd checks expiry twice a second).
	DefaultLeaseTTL = 5 * time.Second
	// DefaultRefresh: each node signs and writes its document anew this
	// often, so a stored signature is never older than MaxAge.
	DefaultRefresh         = 30 * time.Second
	DefaultDialTimeout     = 5 * time.Second
	DefaultRequestTimeout  = 3 * time.Second
	minLeaseTTL            = 2 * time.Second
	maxAgeRefreshes        = 3 // a stored document may be this many refreshes old
	retryMin, retryMax     = 200 * time.Millisecond, 5 * time.Second
	statusBackend          = "etcd"
	selfEventQueue         = 16
	maxUnknownKeysReported = 8
)

// ErrConfig: the backend's configuration is unusable.
var ErrConfig = errors.New("invalid etcd backend config")

// Config is the etcd backend's configuration.
type Config struct {
	// Self is this node's member name; its document is kept at Prefix+Self.
	Self string
	// Members are the member names whose keys are read (this node
	// included); a key under Prefix for any other name is ignored.
	Members []string
	// Endpoints are the etcd client URLs.
	Endpoints []string
	// Prefix is the key prefix (default DefaultPrefix); it must end in "/".
	Prefix string
	// LeaseTTL (whole seconds, at least 2 s; default DefaultLeaseTTL).
	LeaseTTL time.Duration
	// Refresh is how often the document is signed and written anew
	// (default DefaultRefresh); documents older than MaxAge() are stale.
	Refresh time.Duration
	// DialTimeout and RequestTimeout bound connecting and each request.
	DialTimeout, RequestTimeout time.Duration
	// TLS, Username and Password authenticate to etcd (optional).
	TLS                *tls.Config
	Username, Password string
	// Keys signs this node's document; Verifier checks the members'. Both
	// are required: etcd is shared storage, and a document is trusted for
	// its signature, never for where it was found.
	Keys     *cluster.Keyring
	Verifier *cluster.Verifier
	// Membership, if set, records every document's outcome, every report,
	// and the backend state (connected, frozen, revision).
	Membership *cluster.Membership
	// Dialer, if set, opens the connections to etcd (tests dial from a
	// network namespace).
	Dialer func(ctx context.Context, addr string) (net.Conn, error)
}

// MaxAge is how old a stored signature may be, on top of the verifier's
// clock-skew tolerance.
func (c Config) MaxAge() time.Duration { return maxAgeRefreshes * c.Refresh }

func (c Config) withDefaults() (Config, error) {
	if c.Prefix == "" {
		c.Prefix = DefaultPrefix
	}
	if c.LeaseTTL == 0 {
		c.LeaseTTL = DefaultLeaseTTL
	}
	if c.Refresh == 0 {
		c.Refresh = DefaultRefresh
	}
	if c.DialTimeout == 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = DefaultRequestTimeout
	}
	var errs []error
	if c.Self == "" || !slices.Contains(c.Members, c.Self) {
		errs = append(errs, fmt.Errorf("self %q is not among the members %v", c.Self, c.Members))
	}
	for _, m := range c.Members {
		if m == "" || strings.Contains(m, "/") {
			errs = append(errs, fmt.Errorf("member name %q cannot be a key", m))
		}
	}
	if len(c.Endpoints) == 0 {
		errs = append(errs, errors.New("no endpoints"))
	}
	if !strings.HasSuffix(c.Prefix, "/") {
		errs = append(errs, fmt.Errorf("prefix %q must end in /", c.Prefix))
	}
	if c.LeaseTTL < minLeaseTTL || c.LeaseTTL%time.Second != 0 {
		errs = append(errs, fmt.Errorf("lease ttl %s: want whole seconds, at least %s", c.LeaseTTL, minLeaseTTL))
	}
	if c.Refresh < c.LeaseTTL {
		errs = append(errs, fmt.Errorf("refresh %s is shorter than the lease ttl %s", c.Refresh, c.LeaseTTL))
	}
	if c.Keys == nil || c.Verifier == nil {
		errs = append(errs, errors.New("keys and verifier are required"))
	}
	if err := errors.Join(errs...); err != nil {
		return c, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	return c, nil
}

// Backend keeps this node's document in etcd and watches everyone's: the
// cluster.Source of backend "etcd". Run runs it; Publish hands it this
// node's latest document.
type Backend struct {
	log     hclog.Logger
	cfg     Config
	consume cluster.Consumer
	members map[string]bool

	mu      sync.Mutex
	pending *cluster.NodeState // latest document to publish, nil before the first

	publishCh chan struct{}  // Publish -> publisher: pending changed
	selfCh    chan selfEvent // watcher -> publisher: this node's key as etcd has it
	lostCh    chan error     // publisher -> watcher: the lease keepalive stopped
}

// selfEvent is this node's key as the watcher saw it.
type selfEvent struct {
	rev     int64 // ModRevision, or the revision of the delete
	value   []byte
	deleted bool
}

// New checks cfg and returns a Backend; it connects when Run starts.
func New(log hclog.Logger, cfg Config, consume cluster.Consumer) (*Backend, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	b := &Backend{
		log:       log.Named("etcd"),
		cfg:       cfg,
		consume:   consume,
		members:   map[string]bool{},
		publishCh: make(chan struct{}, 1),
		selfCh:    make(chan selfEvent, selfEventQueue),
		lostCh:    make(chan error, 1),
	}
	for _, m := range cfg.Members {
		b.members[m] = true
	}
	return b, nil
}

// Publish makes st this node's document: it is signed and written at once
// (or as soon as etcd takes writes again), then rewritten every Refresh.
// Only the latest document counts; Publish never blocks.
func (b *Backend) Publish(st cluster.NodeState) {
	c := st.Clone()
	b.mu.Lock()
	b.pending = c
	b.mu.Unlock()
	select {
	case b.publishCh <- struct{}{}:
	default:
	}
}

func (b *Backend) pendingState() *cluster.NodeState {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.pending
}

// Run connects to etcd, publishes this node's document and watches the
// members' until ctx is done; it returns ctx's error, or an error if the
// client cannot be built. It never revokes the lease: a vipd restarting
// for an upgrade overwrites its key before the lease runs out, and a
// stopped one is dropped by its peers when it does.
func (b *Backend) Run(ctx context.Context) error {
	ccfg := clientv3.Config{
		Endpoints:   b.cfg.Endpoints,
		DialTimeout: b.cfg.DialTimeout,
		TLS:         b.cfg.TLS,
		Username:    b.cfg.Username,
		Password:    b.cfg.Password,
		Logger:      zap.NewNop(), // errors reach hclog through the backend
		// Without keepalive pings a dead endpoint is noticed only when a
		// request times out. etcd answers pings more often than every 5 s
		// (--grpc-keepalive-min-time), or on a connection without streams,
		// with GOAWAY "too_many_pings": ping only where a watch or a
		// keepalive runs, and not too often.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 3 * time.Second,
	}
	if b.cfg.Dialer != nil {
		ccfg.DialOptions = append(ccfg.DialOptions, grpc.WithContextDialer(b.cfg.Dialer))
	}
	cli, err := clientv3.New(ccfg)
	if err != nil {
		return fmt.Errorf("creating etcd client for %v: %w", b.cfg.Endpoints, err)
	}
	defer cli.Close()
	b.setStatus(cluster.BackendStatus{Backend: statusBackend, Frozen: true, Err: "connecting"})

	var wg sync.WaitGroup
	wg.Go(func() { b.publishLoop(ctx, cli) })
	b.watchLoop(ctx, cli)
	wg.Wait()
	return ctx.Err()
}

func (b *Backend) setStatus(s cluster.BackendStatus) {
	if b.cfg.Membership != nil {
		b.cfg.Membership.SetBackend(s)
	}
}

// ---- watcher: the members' documents -> Updates ----

// entry is what the watcher knows of one member.
type entry struct {
	rev    int64              // ModRevision of its key as last seen, 0: absent
	state  *cluster.NodeState // accepted document; nil: absent, refused or stale
	signed time.Time          // when state was signed
}

// view is the watcher's snapshot: one goroutine owns it.
type view struct {
	known     map[string]*entry
	rev       int64     // revision of the snapshot
	liveSince time.Time // when the current watch started (staleness clock)
	unknown   int       // keys under the prefix for no member, reported so far
	frozen    bool      // frozen, and said so
}

func (b *Backend) watchLoop(ctx context.Context, cli *clientv3.Client) {
	v := &view{known: map[string]*entry{}}
	first := true
	delay := retryMin
	for ctx.Err() == nil {
		if err := b.resync(ctx, cli, v, first); err != nil {
			if ctx.Err() != nil {
				return
			}
			b.freeze(v, err)
			if !sleep(ctx, jitter(delay)) {
				return
			}
			delay = min(2*delay, retryMax)
			continue
		}
		first, delay = false, retryMin
		b.thaw(v)
		err := b.watch(ctx, cli, v)
		if ctx.Err() != nil {
			return
		}
		if errors.Is(err, rpctypes.ErrCompacted) {
			// The history we would resume from is gone: read everything
			// again. Not a loss of quorum, nothing to freeze.
			b.log.Debug("watch compacted, reading the prefix again", "revision", v.rev)
			continue
		}
		b.freeze(v, err)
	}
}

// freeze keeps the snapshot as it is and says so.
func (b *Backend) freeze(v *view, err error) {
	if !v.frozen {
		b.log.Warn("etcd unavailable: keeping the last member states", "revision", v.rev, "reason", err)
		v.frozen = true
	}
	b.setStatus(cluster.BackendStatus{Backend: statusBackend, Frozen: true, Revision: v.rev, Err: err.Error()})
}

func (b *Backend) thaw(v *view) {
	if v.frozen {
		b.log.Info("etcd available: member states current", "revision", v.rev)
		v.frozen = false
	}
	// A keepalive lost before this read is old news: the read just proved
	// the quorum, and the publisher resumes or replaces the lease.
	select {
	case <-b.lostCh:
	default:
	}
	b.poke()
	v.liveSince = time.Now()
	b.setStatus(cluster.BackendStatus{Backend: statusBackend, Connected: true, Revision: v.rev})
}

// resync reads the whole prefix (a linearizable read: it fails without a
// quorum) and reports what changed since the snapshot. The first one
// reports every member: its document, or nil when absent or refused.
func (b *Backend) resync(ctx context.Context, cli *clientv3.Client, v *view, first bool) error {
	rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	resp, err := cli.Get(rctx, b.cfg.Prefix, clientv3.WithPrefix())
	if err != nil {
		return fmt.Errorf("reading %s: %w", b.cfg.Prefix, err)
	}
	changed := map[string]*cluster.NodeState{}
	seen := map[string]bool{}
	for _, kv := range resp.Kvs {
		name, ok := b.memberOf(v, kv.Key)
		if !ok {
			continue
		}
		seen[name] = true
		if name == b.cfg.Self {
			b.toPublisher(selfEvent{rev: kv.ModRevision, value: kv.Value})
			continue
		}
		b.put(v, name, kv, changed)
	}
	if !seen[b.cfg.Self] {
		b.toPublisher(selfEvent{rev: resp.Header.Revision, deleted: true})
	}
	for name := range b.members {
		if name == b.cfg.Self || seen[name] {
			continue
		}
		b.remove(v, name, changed)
	}
	if first {
		for name := range b.members {
			if name != b.cfg.Self {
				changed[name] = v.known[name].state
			}
		}
	}
	v.rev = resp.Header.Revision
	b.emit(v, changed)
	return nil
}

// watch follows the prefix from the snapshot's revision until an error.
func (b *Backend) watch(ctx context.Context, cli *clientv3.Client, v *view) error {
	// RequireLeader: a member that lost its leader cancels the watch
	// instead of serving it silently from a minority.
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wch := cli.Watch(wctx, b.cfg.Prefix, clientv3.WithPrefix(), clientv3.WithRev(v.rev+1))
	tick := time.NewTicker(b.cfg.Refresh / 2)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-b.lostCh:
			return err
		case <-tick.C:
			b.expireStale(v)
		case resp, ok := <-wch:
			if !ok {
				return errors.New("watch closed")
			}
			if err := resp.Err(); err != nil {
				return fmt.Errorf("watching %s: %w", b.cfg.Prefix, err)
			}
			if len(resp.Events) == 0 {
				continue
			}
			changed := map[string]*cluster.NodeState{}
			for _, ev := range resp.Events {
				kv := ev.Kv
				v.rev = max(v.rev, kv.ModRevision)
				name, ok := b.memberOf(v, kv.Key)
				if !ok {
					continue
				}
				deleted := ev.Type == mvccpb.DELETE
				if name == b.cfg.Self {
					b.toPublisher(selfEvent{rev: kv.ModRevision, value: kv.Value, deleted: deleted})
					continue
				}
				if deleted {
					b.remove(v, name, changed)
				} else {
					b.put(v, name, kv, changed)
				}
			}
			b.setStatus(cluster.BackendStatus{Backend: statusBackend, Connected: true, Revision: v.rev})
			b.emit(v, changed)
		}
	}
}

// memberOf returns the member a key belongs to.
func (b *Backend) memberOf(v *view, key []byte) (string, bool) {
	name, ok := strings.CutPrefix(string(key), b.cfg.Prefix)
	if ok && b.members[name] {
		return name, true
	}
	if v.unknown < maxUnknownKeysReported {
		v.unknown++
		b.log.Warn("ignoring a key for no member of the cluster", "key", string(key))
	}
	return "", false
}

// put verifies a member's new document and records what changed.
func (b *Backend) put(v *view, name string, kv *mvccpb.KeyValue, changed map[string]*cluster.NodeState) {
	e := v.entry(name)
	if kv.ModRevision == e.rev {
		return // the same version, already judged
	}
	e.rev = kv.ModRevision
	signed, err := b.cfg.Verifier.Verify(name, kv.Value, b.cfg.MaxAge())
	if b.cfg.Membership != nil {
		b.cfg.Membership.Observe(name, cluster.Observation{Doc: signed, Err: err, Revision: kv.ModRevision})
	}
	if err != nil {
		// A refused document is a failed member, as a refused poll is
		// a miss: with a watch there is no second sample to wait for.
		b.log.Warn("refusing member document", "peer", name, "revision", kv.ModRevision, "reason", err)
		b.set(e, name, nil, time.Time{}, changed)
		return
	}
	b.set(e, name, signed.State, signed.Time, changed)
}

func (b *Backend) remove(v *view, name string, changed map[string]*cluster.NodeState) {
	e := v.entry(name)
	e.rev = 0
	b.set(e, name, nil, time.Time{}, changed)
}

// set records a member's state and whether it changed.
func (b *Backend) set(e *entry, name string, st *cluster.NodeState, signed time.Time, changed map[string]*cluster.NodeState) {
	was := e.state
	e.state, e.signed = st, signed
	if was.Equal(st) {
		return
	}
	if (was == nil) != (st == nil) {
		if st == nil {
			b.log.Warn("peer failed", "peer", name, "state", "failed")
		} else {
			b.log.Info("peer up", "peer", name, "state", "up", "generation", st.Generation)
		}
	}
	changed[name] = st
}

func (v *view) entry(name string) *entry {
	e, ok := v.known[name]
	if !ok {
		e = &entry{}
		v.known[name] = e
	}
	return e
}

// expireStale fails members whose document was not refreshed in time: a
// member that keeps its lease but no longer writes (or a document written
// without a lease, by someone else). The clock restarts with every watch,
// so an etcd outage does not age anyone.
func (b *Backend) expireStale(v *view) {
	bound := b.cfg.MaxAge() + b.cfg.Verifier.MaxSkew()
	now := time.Now()
	if now.Sub(v.liveSince) < bound {
		return
	}
	changed := map[string]*cluster.NodeState{}
	for name, e := range v.known {
		if e.state == nil || now.Sub(e.signed) <= bound {
			continue
		}
		err := fmt.Errorf("%w: document signed %s ago, not refreshed", cluster.ErrStale, now.Sub(e.signed).Round(time.Second))
		if b.cfg.Membership != nil {
			b.cfg.Membership.Observe(name, cluster.Observation{Err: err})
		}
		b.log.Warn("member document stale", "peer", name, "reason", err)
		b.set(e, name, nil, time.Time{}, changed)
	}
	b.emit(v, changed)
}

// emit hands the consumer what changed, at the snapshot's revision.
func (b *Backend) emit(v *view, changed map[string]*cluster.NodeState) {
	if len(changed) == 0 {
		return
	}
	if b.cfg.Membership != nil {
		for name, st := range changed {
			b.cfg.Membership.Record(name, st)
		}
	}
	b.consume(cluster.Update{Revision: v.rev, States: changed})
}

func (b *Backend) toPublisher(ev selfEvent) {
	select {
	case b.selfCh <- ev:
	default: // the publisher is behind; its refresh rewrites the key anyway
	}
}

// ---- publisher: this node's document -> etcd ----

// publisher is the publish loop's state; one goroutine owns it.
type publisher struct {
	lease    clientv3.LeaseID
	ka       <-chan *clientv3.LeaseKeepAliveResponse
	kaCancel context.CancelFunc
	// kaLost: the keepalive stopped (no quorum, no endpoint). The lease may
	// well live on: etcd does not expire leases without a quorum, and a new
	// leader extends them. Resuming it keeps the key; a new lease would
	// leave the key to be deleted when the old one runs out.
	kaLost     bool
	lastSealed []byte // the last value written (or being written)
	lastRev    int64  // revision of the last completed write
}

func (b *Backend) publishLoop(ctx context.Context, cli *clientv3.Client) {
	var p publisher
	defer func() {
		if p.kaCancel != nil {
			p.kaCancel()
		}
	}()
	refresh := time.NewTimer(jitter(b.cfg.Refresh))
	defer refresh.Stop()
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	// Retries stay well inside the lease: a lease that outlived an outage
	// must be resumed before it runs out.
	maxDelay := min(retryMax, b.cfg.LeaseTTL/4)
	delay := retryMin
	due := false
	for {
		if due {
			if err := b.write(ctx, cli, &p); err != nil {
				if ctx.Err() != nil {
					return
				}
				b.log.Warn("publishing node state", "reason", err, "retry", delay)
				retry.Reset(jitter(delay))
				delay = min(2*delay, maxDelay)
			} else {
				due, delay = false, retryMin
				refresh.Reset(jitter(b.cfg.Refresh))
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-b.publishCh:
			due = true
		case <-refresh.C:
			due = b.pendingState() != nil
		case <-retry.C:
		case ev := <-b.selfCh:
			if p.overwritten(ev) {
				b.log.Warn("own key changed or gone in etcd: writing it again", "revision", ev.rev)
				if ev.deleted {
					p.dropLease() // expired or revoked: a put on it would fail
				}
				due = b.pendingState() != nil
			}
		case _, ok := <-p.ka:
			if !ok {
				err := fmt.Errorf("lease %x keepalive lost", int64(p.lease))
				b.log.Warn("etcd lease keepalive lost", "reason", err)
				p.kaCancel()
				p.ka, p.kaCancel, p.kaLost = nil, nil, true
				select {
				case b.lostCh <- err:
				default:
				}
				due = b.pendingState() != nil
			}
		}
	}
}

// overwritten reports whether etcd's copy of this node's key is not what
// this node last wrote: deleted (a lease that expired during a partition,
// or someone), or written by someone else.
func (p *publisher) overwritten(ev selfEvent) bool {
	if p.lastSealed == nil || ev.rev <= p.lastRev {
		return false // nothing written yet, or news older than our last write
	}
	return ev.deleted || string(ev.value) != string(p.lastSealed)
}

func (p *publisher) dropLease() {
	if p.kaCancel != nil {
		p.kaCancel()
	}
	p.lease, p.ka, p.kaCancel, p.kaLost = 0, nil, nil, false
}

// write signs the pending document and puts it under the lease: the
// current one, resumed if its keepalive stopped and it still lives, or a
// new one.
func (b *Backend) write(ctx context.Context, cli *clientv3.Client, p *publisher) error {
	st := b.pendingState()
	if st == nil {
		return nil
	}
	if p.lease != 0 && p.kaLost {
		rctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		_, err := cli.KeepAliveOnce(rctx, p.lease)
		cancel()
		switch {
		case errors.Is(err, rpctypes.ErrLeaseNotFound):
			b.log.Info("etcd lease expired: granting a new one", "lease", fmt.Sprintf("%x", int64(p.lease)))
			p.dropLease()
		case err != nil:
			return fmt.Errorf("renewing lease %x: %w", int64(p.lease), err)
		default:
			if err := b.keepAlive(ctx, cli, p, p.lease); err != nil {
				return err
			}
			b.log.Info("etcd lease resumed", "lease", fmt.Sprintf("%x", int64(p.lease)))
		}
	}
	if p.lease == 0 {
		gctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
		g, err := cli.Grant(gctx, int64(b.cfg.LeaseTTL/time.Second))
		cancel()
		if err != nil {
			return fmt.Errorf("granting a lease: %w", err)
		}
		if err := b.keepAlive(ctx, cli, p, g.ID); err != nil {
			return err
		}
	}
	sealed, err := b.cfg.Keys.Seal(*st, time.Now())
	if err != nil {
		return fmt.Errorf("signing node state: %w", err)
	}
	p.lastSealed = sealed
	pctx, cancel := context.WithTimeout(ctx, b.cfg.RequestTimeout)
	defer cancel()
	resp, err := cli.Put(pctx, b.cfg.Prefix+b.cfg.Self, string(sealed), clientv3.WithLease(p.lease))
	if err != nil {
		if errors.Is(err, rpctypes.ErrLeaseNotFound) {
			p.dropLease()
		}
		return fmt.Errorf("writing %s%s: %w", b.cfg.Prefix, b.cfg.Self, err)
	}
	p.lastRev = resp.Header.Revision
	return nil
}

// keepAlive keeps lease alive from now on.
func (b *Backend) keepAlive(ctx context.Context, cli *clientv3.Client, p *publisher, lease clientv3.LeaseID) error {
	kctx, kcancel := context.WithCancel(ctx)
	ka, err := cli.KeepAlive(kctx, lease)
	if err != nil {
		kcancel()
		return fmt.Errorf("keeping lease %x alive: %w", int64(lease), err)
	}
	p.lease, p.ka, p.kaCancel, p.kaLost = lease, ka, kcancel, false
	return nil
}

// poke has the publisher try a pending write now (etcd is back).
func (b *Backend) poke() {
	select {
	case b.publishCh <- struct{}{}:
	default:
	}
}

// ---- helpers ----

func jitter(d time.Duration) time.Duration {
	return time.Duration(float64(d) * (0.9 + 0.2*rand.Float64()))
}

// sleep waits d or until ctx is done; it reports whether d passed.
func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
