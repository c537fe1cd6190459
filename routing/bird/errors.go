package bird

import "errors"

// Sentinel errors. (A route for a prefix that is not a configured VIP is
// refused with routing.ErrUnknownPrefix; after Close or Abandon the
// advertiser returns routing.ErrClosed.)
var (
	// ErrIgnoreMTUUnsupported: ignore_mtu is set but the installed BIRD
	// rejects the ignoremtu keyword.
	ErrIgnoreMTUUnsupported = errors.New("ignore_mtu = true needs a BIRD with the ignoremtu patch " +
		"(routing/bird/patch/bird-2.0-ignoremtu.patch); stock BIRD rejects `ignoremtu yes;`. " +
		"Build one with `make bird-ignoremtu` (scripts/bird-ignoremtu.sh) and point " +
		"routing.bird.bird/birdc at it, or set ignore_mtu = false and make the MTUs match")
)
