package cluster

import (
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// MemberView is the latest this node knows of one member, as status shows
// it.
type MemberView struct {
	Name string
	// Up: the member's document is current (after rise good polls); false
	// once it failed (fall misses in a row).
	Up bool
	// Generation of the member's last document while Up.
	Generation uint64
	// RestartUntil is set while the member's last document says its vipd
	// is restarting for an upgrade (NodeState.RestartUntil): it is kept Up,
	// as that document has it, until then.
	RestartUntil time.Time

	// Signature is the signature status of the member's last document: "ok"
	// (verified), "unsigned" (accepted without a signature: no cluster key
	// on this node, or AllowUnsigned during a rollout), or the Reason the
	// last document was refused ("forged", "stale", ...). Empty before any
	// document.
	Signature string
	// KeyID names the key that signed the last accepted document.
	KeyID string
	// Rejected counts the member's refused documents by reason since this
	// node started.
	Rejected map[Reason]uint64
	// Misses counts polls that got no document at all (refused, timeout,
	// bad status); the etcd backend has none.
	Misses uint64
	// LastError is why the last poll or document failed ("" after a good
	// one).
	LastError string

	// SignedAt is when the member signed its last accepted document, by the
	// member's clock; LastSeen is when this node accepted it, by its own.
	SignedAt, LastSeen time.Time
	// Lag is how long ago, when the view was taken, this node last accepted
	// a document from the member: the age of what it knows.
	Lag time.Duration
	// Revision is the etcd revision of the member's document (0 with the
	// poll backend).
	Revision int64

	// Digests are the member's published digests (nil if none).
	Digests *Digests
	// Differs names what differs from this node's own digests (empty when
	// they agree or this node has none set).
	Differs Differences
}

// BackendStatus is the state of the source of member states.
type BackendStatus struct {
	// Backend is "poll" or "etcd".
	Backend string
	// Connected: the etcd watch is live and its member has a leader (always
	// true for poll).
	Connected bool
	// Frozen: the etcd quorum is lost or unreachable; the member views are
	// the last snapshot, kept (never flushed) until it is back.
	Frozen bool
	// Revision is the etcd revision of the current snapshot.
	Revision int64
	// Since is when Connected or Frozen last changed.
	Since time.Time
	// Err says why the backend is frozen or disconnected.
	Err string
}

// Observation is one outcome of fetching a member's document, as a Source
// reports it to Membership.Observe.
type Observation struct {
	// Doc is the document accepted (nil when Err is set).
	Doc *Signed
	// Err is why nothing was accepted: a refused document (ReasonOf) or a
	// member not heard (connection error, timeout, status).
	Err error
	// Revision is the etcd revision of the document (0 for poll).
	Revision int64
}

// MembershipOption configures a Membership.
type MembershipOption func(*Membership)

// WithLogger has the membership log a line when a member's digests start or
// stop differing from this node's.
func WithLogger(log hclog.Logger) MembershipOption {
	return func(m *Membership) { m.log = log.Named("members") }
}

// WithClock sets the clock Lag and LastSeen are taken from (tests).
func WithClock(now func() time.Time) MembershipOption {
	return func(m *Membership) { m.now = now }
}

// Membership keeps the latest of every member heard of: its state (from the
// source's reports), the outcome of its documents (signature status,
// rejections by reason, lag), and how its digests compare with this node's.
// It outlives sources: a reload that restarts the poller, or a switch of
// backend, keeps the views and counters. It is safe for concurrent use.
type Membership struct {
	log hclog.Logger
	now func() time.Time

	mu      sync.Mutex
	members map[string]*MemberView
	local   *Digests
	backend BackendStatus
}

// NewMembership returns an empty Membership.
func NewMembership(opts ...MembershipOption) *Membership {
	m := &Membership{log: hclog.NewNullLogger(), now: time.Now, members: map[string]*MemberView{}}
	for _, o := range opts {
		o(m)
	}
	return m
}

// viewLocked returns node's view, creating it. Caller must hold mu.
func (m *Membership) viewLocked(node string) *MemberView {
	v, ok := m.members[node]
	if !ok {
		v = &MemberView{Name: node}
		m.members[node] = v
	}
	return v
}

// Record takes one state report: st is the member's document, or nil when
// it failed.
func (m *Membership) Record(node string, st *NodeState) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.viewLocked(node)
	v.Up = st != nil
	v.Generation, v.RestartUntil = 0, time.Time{}
	if st != nil {
		v.Generation, v.RestartUntil = st.Generation, st.RestartUntil
	}
}

// Observe takes the outcome of one fetch of node's document. It does not
// change Up: only Record (the source's decision, after rise and fall) does.
func (m *Membership) Observe(node string, o Observation) {
	m.mu.Lock()
	defer m.mu.Unlock()
	v := m.viewLocked(node)
	switch {
	case o.Doc != nil && o.Doc.Unsigned:
		v.Signature, v.KeyID, v.SignedAt = string(ReasonUnsigned), "", time.Time{}
	case o.Doc != nil:
		v.Signature, v.KeyID, v.SignedAt = "ok", o.Doc.KeyID, o.Doc.Time
	case o.Err != nil:
		v.LastError = o.Err.Error()
		if reason, ok := ReasonOf(o.Err); ok {
			if v.Rejected == nil {
				v.Rejected = map[Reason]uint64{}
			}
			v.Rejected[reason]++
			v.Signature = string(reason)
		} else {
			v.Misses++
		}
		return
	default:
		return
	}
	v.LastError = ""
	v.LastSeen = m.now()
	if o.Revision != 0 {
		v.Revision = o.Revision
	}
	v.Digests = o.Doc.State.Digests.Clone()
	m.compareLocked(v)
}

// SetLocal sets this node's own digests (nil: none, nothing is compared)
// and compares every member's with them.
func (m *Membership) SetLocal(d *Digests) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.local = d.Clone()
	for _, name := range slices.Sorted(maps.Keys(m.members)) {
		m.compareLocked(m.members[name])
	}
}

// compareLocked compares v's digests with this node's and logs a change.
// Caller must hold mu.
func (m *Membership) compareLocked(v *MemberView) {
	var d Differences
	// A member never heard of publishes nothing yet: it does not differ.
	if (v.Digests != nil || m.local != nil) && !v.LastSeen.IsZero() {
		d = CompareDigests(m.local, v.Digests)
	}
	old := v.Differs
	v.Differs = d
	if slices.Equal(old.Config, d.Config) && slices.Equal(old.Tables, d.Tables) {
		return
	}
	switch {
	case !d.Empty():
		m.log.Warn(d.Describe(v.Name), "peer", v.Name, "items", strings.Join(d.Items(), ", "))
	case !old.Empty():
		m.log.Info("member agrees again", "peer", v.Name)
	}
}

// Forget drops a member (removed from the cluster by a reload).
func (m *Membership) Forget(node string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.members, node)
}

// SetBackend records the state of the source of member states.
func (m *Membership) SetBackend(b BackendStatus) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if b.Connected != m.backend.Connected || b.Frozen != m.backend.Frozen || m.backend.Since.IsZero() {
		b.Since = m.now()
	} else {
		b.Since = m.backend.Since
	}
	m.backend = b
}

// Backend returns the state of the source of member states.
func (m *Membership) Backend() BackendStatus {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.backend
}

// Views returns every member heard of, in name order. The views are copies.
func (m *Membership) Views() []MemberView {
	m.mu.Lock()
	now := m.now()
	out := make([]MemberView, 0, len(m.members))
	for _, p := range m.members {
		v := *p
		v.Rejected = maps.Clone(v.Rejected)
		v.Digests = v.Digests.Clone()
		v.Differs = Differences{Config: slices.Clone(v.Differs.Config), Tables: slices.Clone(v.Differs.Tables)}
		if !v.LastSeen.IsZero() {
			v.Lag = now.Sub(v.LastSeen)
		}
		out = append(out, v)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b MemberView) int { return strings.Compare(a.Name, b.Name) })
	return out
}
