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

	// ErrSocketMissing: BIRD's control socket does not exist: BIRD is not
	// running, or routing.bird.socket names the wrong file.
	ErrSocketMissing = errors.New("bird control socket does not exist: is BIRD running, and is routing.bird.socket its -s socket?")
	// ErrBirdDown: the control socket exists but nobody listens on it:
	// BIRD died (a socket left behind by a killed BIRD).
	ErrBirdDown = errors.New("bird is not running: its control socket refuses connections")
	// ErrSocketPermission: vipd may not connect to BIRD's control socket.
	ErrSocketPermission = errors.New("permission denied on the bird control socket: run vipd as root or as a member of the socket's group")
	// ErrBirdCannotRead: BIRD, running as its own user, may not read the
	// file vipd wrote. vipd gives the files it writes the owner and group
	// of their directory, mode 0640: the directory must belong to BIRD's
	// user or group (Debian: /etc/bird is bird:bird).
	ErrBirdCannotRead = errors.New("permission denied: bird cannot read the file vipd wrote; vipd gives it the owner and group " +
		"of its directory (mode 0640), so that directory must belong to the user or group bird runs as " +
		"(chgrp bird DIR, or put routing.bird.config_file under /etc/bird)")
	// ErrBirdNoFile: BIRD does not find the file vipd wrote (BIRD sees
	// another filesystem, a private /tmp for instance).
	ErrBirdNoFile = errors.New("bird does not find the file vipd wrote (does bird see the same filesystem, no private /tmp?)")
	// ErrBirdShuttingDown: BIRD ignored a configure because it is stopping.
	ErrBirdShuttingDown = errors.New("bird is shutting down")
	// ErrGuardTimeout: the guard found no vipd for longer than
	// guard_timeout and withdrew the node's VIP routes.
	ErrGuardTimeout = errors.New("no vipd for longer than the guard timeout")
)
