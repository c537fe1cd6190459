package cluster

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"
)

// The signed document, as served over HTTP and stored in etcd:
//
//	{"v":1,"node":"n1","ts":1764633600123456789,"key":"3fa9c2d1",
//	 "sig":"<64 hex digits>","doc":{...the NodeState...}}
//
// sig is HMAC-SHA256 with the key named by key (KeyID) over macInput(node,
// ts, doc): the member name, the signing time (Unix nanoseconds) and the
// exact bytes of doc. A verifier uses those bytes as received, so nothing
// between signer and verifier may re-encode the document.
type envelope struct {
	V    int             `json:"v"`
	Node string          `json:"node"`
	TS   int64           `json:"ts"`
	Key  string          `json:"key"`
	Sig  string          `json:"sig"`
	Doc  json.RawMessage `json:"doc"`
}

// envelopeVersion is the "v" this vipd writes and reads.
const envelopeVersion = 1

// macDomain starts every MAC input: a signature over anything else made
// with the cluster key can never pass for a node state.
const macDomain = "vipd node state v1\x00"

func macInput(node string, ts int64, doc []byte) []byte {
	b := make([]byte, 0, len(macDomain)+4+len(node)+8+len(doc))
	b = append(b, macDomain...)
	b = binary.BigEndian.AppendUint32(b, uint32(len(node)))
	b = append(b, node...)
	b = binary.BigEndian.AppendUint64(b, uint64(ts))
	return append(b, doc...)
}

func mac(key, input []byte) []byte {
	m := hmac.New(sha256.New, key)
	m.Write(input)
	return m.Sum(nil)
}

// Seal encodes st and signs it with the signing key at time now, for
// serving or storing.
func (r *Keyring) Seal(st NodeState, now time.Time) ([]byte, error) {
	doc, err := json.Marshal(st)
	if err != nil {
		return nil, fmt.Errorf("encoding node state: %w", err)
	}
	node, err := json.Marshal(st.Node)
	if err != nil {
		return nil, fmt.Errorf("encoding node name: %w", err)
	}
	ks := r.cur.Load()
	ts := now.UnixNano()
	sig := mac(ks.keys[0], macInput(st.Node, ts, doc))
	// Written by hand so doc is embedded byte for byte as signed.
	b := make([]byte, 0, len(doc)+len(node)+160)
	b = append(b, `{"v":`...)
	b = strconv.AppendInt(b, envelopeVersion, 10)
	b = append(b, `,"node":`...)
	b = append(b, node...)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"key":"`...)
	b = append(b, ks.ids[0]...)
	b = append(b, `","sig":"`...)
	b = hex.AppendEncode(b, sig)
	b = append(b, `","doc":`...)
	b = append(b, doc...)
	b = append(b, '}')
	return b, nil
}

// Signed is a document that passed verification.
type Signed struct {
	State *NodeState
	// Time is when the member signed it, by the member's clock.
	Time time.Time
	// KeyID names the key that signed it.
	KeyID string
	// Unsigned: accepted without a signature (no cluster key on this node,
	// or VerifierOptions.AllowUnsigned); Time and KeyID are zero.
	Unsigned bool
}

// Default verifier bounds.
const (
	// DefaultMaxSkew is the clock-skew tolerance: how far a signature's
	// time may be ahead of this node's clock, and how old a document signed
	// at request time may be. NTP keeps servers within milliseconds; 10 s
	// also tolerates a host whose NTP has just started, and bounds how long
	// a captured document can be replayed to a node that has not seen it.
	DefaultMaxSkew = 10 * time.Second
)

// VerifierOptions tune a Verifier.
type VerifierOptions struct {
	// MaxSkew: clock-skew tolerance (default DefaultMaxSkew).
	MaxSkew time.Duration
	// Now is the clock (default time.Now); tests set it.
	Now func() time.Time
	// AllowUnsigned accepts documents without a signature, for the one step
	// of turning signing on in a running cluster while some members have no
	// key yet (docs/cluster.md). Signed documents are still verified.
	AllowUnsigned bool
}

// Verifier checks signed node-state documents and remembers, per member,
// the newest one it accepted, so an older one (a replay) is refused. It
// outlives the sources that use it, so a reload that restarts the poller
// keeps that memory. It is safe for concurrent use.
type Verifier struct {
	keys          *Keyring
	maxSkew       time.Duration
	now           func() time.Time
	allowUnsigned bool

	mu   sync.Mutex
	last map[string]accepted // newest document accepted per member
}

// accepted marks the newest document accepted from a member.
type accepted struct {
	gen uint64
	ts  int64
}

// NewVerifier returns a Verifier that accepts documents signed with any key
// of keys (read at each call, so Keyring.Set takes effect at once).
func NewVerifier(keys *Keyring, opts VerifierOptions) *Verifier {
	if opts.MaxSkew <= 0 {
		opts.MaxSkew = DefaultMaxSkew
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Verifier{keys: keys, maxSkew: opts.MaxSkew, now: opts.Now, allowUnsigned: opts.AllowUnsigned,
		last: map[string]accepted{}}
}

// MaxSkew returns the clock-skew tolerance.
func (v *Verifier) MaxSkew() time.Duration { return v.maxSkew }

// Verify checks data, a signed document fetched for member, and returns it
// decoded. maxAge is how old a signature may be on top of the skew
// tolerance: 0 for a document signed when it was requested (the poller),
// the refresh bound for a stored one (etcd). The checks, in order:
//
//   - not JSON, or not an envelope of a known version: ErrBadDocument;
//   - no signature: ErrUnsigned;
//   - signed with a key id that is not ours: ErrWrongKey;
//   - the signature does not match: ErrForged;
//   - signed for another member: ErrWrongNode;
//   - signed more than the skew tolerance in the future: ErrFuture;
//   - signed longer ago than skew + maxAge: ErrStale;
//   - the document is not a valid node state of member: ErrBadDocument,
//     ErrWrongNode;
//   - its generation is below, or its signing time not after, the last one
//     accepted from member: ErrReplayed.
//
// A document that passes becomes member's newest.
func (v *Verifier) Verify(member string, data []byte, maxAge time.Duration) (*Signed, error) {
	if len(data) > maxStateBody {
		return nil, fmt.Errorf("%w: %d bytes, more than %d", ErrBadDocument, len(data), maxStateBody)
	}
	var env envelope
	if err := json.Unmarshal(data, &env); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadDocument, err)
	}
	if env.Sig == "" {
		if v.allowUnsigned {
			return decodeUnsigned(data, member)
		}
		return nil, fmt.Errorf("%w: no signature (is the cluster key configured on %s?)", ErrUnsigned, member)
	}
	if env.V != envelopeVersion {
		return nil, fmt.Errorf("%w: envelope version %d, want %d", ErrBadDocument, env.V, envelopeVersion)
	}
	ks := v.keys.cur.Load()
	key := ks.lookup(env.Key)
	if key == nil {
		return nil, fmt.Errorf("%w: key id %q, ours are %s", ErrWrongKey, env.Key, strings.Join(ks.ids, ", "))
	}
	sig, err := hex.DecodeString(env.Sig)
	if err != nil || !hmac.Equal(sig, mac(key, macInput(env.Node, env.TS, env.Doc))) {
		return nil, fmt.Errorf("%w: key id %s", ErrForged, env.Key)
	}
	if env.Node != member {
		return nil, fmt.Errorf("%w: document is from %q, expected %q", ErrWrongNode, env.Node, member)
	}
	signed, now := time.Unix(0, env.TS), v.now()
	if d := signed.Sub(now); d > v.maxSkew {
		return nil, fmt.Errorf("%w: signed %s ahead of this node's clock, tolerance %s", ErrFuture, d.Round(time.Millisecond), v.maxSkew)
	}
	if age := now.Sub(signed); age > v.maxSkew+maxAge {
		return nil, fmt.Errorf("%w: signed %s ago, bound %s", ErrStale, age.Round(time.Millisecond), v.maxSkew+maxAge)
	}
	st, err := DecodeNodeState(env.Doc, member)
	if err != nil {
		return nil, err
	}
	v.mu.Lock()
	defer v.mu.Unlock()
	if last, ok := v.last[member]; ok {
		if st.Generation < last.gen {
			return nil, fmt.Errorf("%w: generation %d after %d", ErrReplayed, st.Generation, last.gen)
		}
		if env.TS <= last.ts {
			return nil, fmt.Errorf("%w: signed at %s, not after the last accepted (%s)", ErrReplayed,
				signed.UTC().Format(time.RFC3339Nano), time.Unix(0, last.ts).UTC().Format(time.RFC3339Nano))
		}
	}
	v.last[member] = accepted{gen: st.Generation, ts: env.TS}
	return &Signed{State: st, Time: signed, KeyID: env.Key}, nil
}

// decodeUnsigned decodes a document without verifying it: a plain node
// state, or the document inside an envelope (a member that signs, read by
// one that has no key yet). Only for nodes that run without a cluster key
// or allow unsigned documents.
func decodeUnsigned(data []byte, member string) (*Signed, error) {
	var env envelope
	if err := json.Unmarshal(data, &env); err == nil && env.Sig != "" && env.Doc != nil {
		if env.Node != member {
			return nil, fmt.Errorf("%w: document is from %q, expected %q", ErrWrongNode, env.Node, member)
		}
		data = env.Doc
	}
	st, err := DecodeNodeState(data, member)
	if err != nil {
		return nil, err
	}
	return &Signed{State: st, Unsigned: true}, nil
}
