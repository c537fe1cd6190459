package cluster

import "errors"

// Errors of this package. A document that is refused for one of them is
// counted in the member's view under the matching Reason (ReasonOf).
var (
	// ErrWrongNode: the document is about another node than the one polled
	// (a swapped URL in the config, or another member's document served at
	// this member's URL or key).
	ErrWrongNode = errors.New("wrong node")
	// ErrBadDocument: the document is not a valid node state.
	ErrBadDocument = errors.New("invalid node state")
	// ErrUnsigned: a signed document was required and this one carries no
	// signature.
	ErrUnsigned = errors.New("unsigned document")
	// ErrWrongKey: the document is signed with a key this node does not hold
	// (its key id is none of ours).
	ErrWrongKey = errors.New("signed with an unknown key")
	// ErrForged: the key id is ours but the signature does not match the
	// document: it was altered, or made without the key.
	ErrForged = errors.New("signature does not match")
	// ErrStale: the signature's timestamp is older than the freshness bound.
	ErrStale = errors.New("stale signature")
	// ErrFuture: the signature's timestamp is further in the future than
	// the clock-skew tolerance.
	ErrFuture = errors.New("signature from the future")
	// ErrReplayed: the document is older than one already accepted from the
	// member (its generation went backwards, or its timestamp is not newer).
	ErrReplayed = errors.New("replayed document")
	// ErrBadKey: a cluster key or key file is unusable.
	ErrBadKey = errors.New("bad cluster key")
)

// Reason names why a member's document was refused, as counted per member
// and shown in status.
type Reason string

// Rejection reasons.
const (
	ReasonInvalid   Reason = "invalid"
	ReasonWrongNode Reason = "wrong-node"
	ReasonUnsigned  Reason = "unsigned"
	ReasonWrongKey  Reason = "wrong-key"
	ReasonForged    Reason = "forged"
	ReasonStale     Reason = "stale"
	ReasonFuture    Reason = "future"
	ReasonReplayed  Reason = "replayed"
)

// Reasons lists every rejection reason, in a fixed order (for metrics that
// want a series per reason from the start).
func Reasons() []Reason {
	return []Reason{ReasonInvalid, ReasonWrongNode, ReasonUnsigned, ReasonWrongKey,
		ReasonForged, ReasonStale, ReasonFuture, ReasonReplayed}
}

// ReasonOf returns the rejection reason of err, and false when err is not a
// refused document (a connection error, a timeout, a bad status: the
// member was not heard at all).
func ReasonOf(err error) (Reason, bool) {
	for _, m := range []struct {
		err error
		r   Reason
	}{
		{ErrUnsigned, ReasonUnsigned},
		{ErrWrongKey, ReasonWrongKey},
		{ErrForged, ReasonForged},
		{ErrStale, ReasonStale},
		{ErrFuture, ReasonFuture},
		{ErrReplayed, ReasonReplayed},
		{ErrWrongNode, ReasonWrongNode},
		{ErrBadDocument, ReasonInvalid},
	} {
		if errors.Is(err, m.err) {
			return m.r, true
		}
	}
	return "", false
}
