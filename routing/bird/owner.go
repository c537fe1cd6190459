package bird

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// fileMode is the mode of every file vipd writes for BIRD: a BIRD config
// may hold OSPF passwords, so it is not world-readable.
const fileMode = 0o640

// BIRD runs as a user of its own (Debian: `bird -u bird -g bird`) and reads
// its configuration, includes too, with that user's rights, while vipd runs
// as root. So every file vipd writes for BIRD gets the owner and group of
// the directory it is written to, mode 0640: in Debian's /etc/bird
// (bird:bird 0750) that is bird:bird 0640, exactly what the bird2 package
// gives its own bird.conf; an include directory of the operator's (say
// root:bird 0750) gives root:bird 0640. A directory BIRD cannot read
// cannot hold a file it can, so the rule needs no knowledge of BIRD's user;
// when it does not work out, `configure` says so (ErrBirdCannotRead).

// dirOwner returns the owner and group of dir.
func dirOwner(dir string) (uid, gid int, err error) {
	fi, err := os.Stat(dir)
	if err != nil {
		return 0, 0, fmt.Errorf("reading the owner of %s: %w", dir, err)
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return -1, -1, nil // not a unix stat: leave ownership alone
	}
	return int(st.Uid), int(st.Gid), nil
}

// own gives f (in directory dir) the owner and group of dir and mode 0640.
// A vipd that may not change owners (not root, no CAP_CHOWN) keeps its own:
// the file is then readable by BIRD only if BIRD runs as vipd's user or
// group, and a `configure` that fails says why (ErrBirdCannotRead).
func own(f *os.File, dir string) error {
	if err := f.Chmod(fileMode); err != nil {
		return fmt.Errorf("setting the mode of %s: %w", f.Name(), err)
	}
	uid, gid, err := dirOwner(dir)
	if err != nil {
		return err
	}
	if uid < 0 {
		return nil
	}
	fi, err := f.Stat()
	if err != nil {
		return fmt.Errorf("reading the owner of %s: %w", f.Name(), err)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) == uid && int(st.Gid) == gid {
		return nil
	}
	if err := f.Chown(uid, gid); err != nil && !errors.Is(err, os.ErrPermission) && !errors.Is(err, syscall.EPERM) {
		return fmt.Errorf("giving %s the owner of %s: %w", f.Name(), filepath.Base(dir), err)
	}
	return nil
}
