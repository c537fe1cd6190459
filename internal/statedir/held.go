package statedir

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Held reports whether a vipd holds the state directory at path (its lock
// file is flocked), without taking the lock: it looks the lock file up in
// /proc/locks, so a vipd starting at that moment never finds the lock
// taken by the question. The BIRD guard (vipctl bird-guard) and `vipctl
// bird-config --unless-running` ask it. A directory or lock file that does
// not exist is not held.
func Held(path string) (bool, error) {
	held, err := LockHeld(filepath.Join(path, lockFile))
	if err != nil {
		return false, fmt.Errorf("looking at the lock of state directory %s: %w", path, err)
	}
	return held, nil
}

// LockHeld reports whether a process holds an flock on file, without
// taking it (see Held). A file that does not exist is not held.
func LockHeld(file string) (bool, error) {
	fi, err := os.Stat(file)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return false, fmt.Errorf("%s: no inode", file)
	}
	// /proc/locks: "1: FLOCK  ADVISORY  WRITE 8618 fe:00:9977876 0 EOF",
	// the device as major:minor in hex, the inode in decimal.
	id := fmt.Sprintf("%02x:%02x:%d", unix.Major(uint64(st.Dev)), unix.Minor(uint64(st.Dev)), st.Ino)
	f, err := os.Open("/proc/locks")
	if err != nil {
		return false, fmt.Errorf("reading /proc/locks: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		// A blocked waiter's line starts "1: -> FLOCK": not a holder.
		if len(fields) >= 6 && fields[1] == "FLOCK" && fields[5] == id {
			return true, nil
		}
	}
	if err := sc.Err(); err != nil {
		return false, fmt.Errorf("reading /proc/locks: %w", err)
	}
	return false, nil
}
