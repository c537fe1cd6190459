package cluster

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
)

// Key sizes and counts.
const (
	// KeySize is the size of a key GenerateKey makes, and the smallest a
	// key file may hold: HMAC-SHA256 gains nothing from longer keys and
	// loses strength with shorter ones.
	KeySize = 32
	// maxKeySize bounds a key (HMAC hashes longer keys first anyway).
	maxKeySize = 64
	// MaxKeys is how many keys a keyring holds: the signing key and, during
	// a rotation, one more that is still accepted.
	MaxKeys = 2
	// maxKeyFile bounds a key file; a real one is a few lines.
	maxKeyFile = 4096
)

// GenerateKey returns a new random cluster key of KeySize bytes.
func GenerateKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, fmt.Errorf("generating a cluster key: %w", err)
	}
	return k, nil
}

// FormatKeyFile returns the key file holding keys, first the signing key:
// one key per line in hex, after a comment saying so.
func FormatKeyFile(keys ...[]byte) []byte {
	var b bytes.Buffer
	b.WriteString("# vipd cluster keys: one per line, hex. The first signs; every key is\n")
	b.WriteString("# accepted. Mode 0600. See docs/cluster.md for rotation.\n")
	for _, k := range keys {
		fmt.Fprintf(&b, "%s\n", hex.EncodeToString(k))
	}
	return b.Bytes()
}

// LoadKeyFile reads the cluster keys from path: one key per line, in hex
// (at least KeySize bytes), blank lines and lines starting with # ignored,
// one or two keys, the first being the signing key. The file must be a
// regular file owned by root or by this process's user, and not readable or
// writable by group or others (mode 0600 or stricter): a key others can read
// lets them sign node states.
func LoadKeyFile(path string) ([][]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("opening cluster key file: %w", err)
	}
	defer f.Close()
	// Checked on the open file, not the path: nothing can swap it between
	// the check and the read.
	fi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("checking cluster key file %s: %w", path, err)
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: %s is not a regular file", ErrBadKey, path)
	}
	if perm := fi.Mode().Perm(); perm&0o077 != 0 {
		return nil, fmt.Errorf("%w: %s has mode %#o: group and others must have no access (chmod 600)", ErrBadKey, path, perm)
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && st.Uid != 0 && int(st.Uid) != os.Geteuid() {
		return nil, fmt.Errorf("%w: %s is owned by uid %d, not root or uid %d", ErrBadKey, path, st.Uid, os.Geteuid())
	}
	data, err := io.ReadAll(io.LimitReader(f, maxKeyFile+1))
	if err != nil {
		return nil, fmt.Errorf("reading cluster key file %s: %w", path, err)
	}
	if len(data) > maxKeyFile {
		return nil, fmt.Errorf("%w: %s is larger than %d bytes", ErrBadKey, path, maxKeyFile)
	}
	keys, err := ParseKeyFile(data)
	if err != nil {
		return nil, fmt.Errorf("parsing cluster key file %s: %w", path, err)
	}
	return keys, nil
}

// ParseKeyFile parses the contents of a key file (see LoadKeyFile); errors
// name the line but never echo a key.
func ParseKeyFile(data []byte) ([][]byte, error) {
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(data))
	for line := 1; sc.Scan(); line++ {
		s := strings.TrimSpace(sc.Text())
		if s == "" || strings.HasPrefix(s, "#") {
			continue
		}
		k, err := hex.DecodeString(s)
		if err != nil {
			return nil, fmt.Errorf("%w: line %d: not hex", ErrBadKey, line)
		}
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		keys = append(keys, k)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrBadKey, err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: no key in the file", ErrBadKey)
	}
	return keys, nil
}

func checkKey(k []byte) error {
	if len(k) < KeySize || len(k) > maxKeySize {
		return fmt.Errorf("%w: %d bytes, want %d to %d", ErrBadKey, len(k), KeySize, maxKeySize)
	}
	return nil
}

// KeyID names a key without revealing it: 8 hex digits of a hash of the
// key. Status shows which key each member signs with, so an operator can
// tell when a rotation step has reached every member.
func KeyID(key []byte) string {
	h := sha256.New()
	h.Write([]byte("vipd cluster key id\x00"))
	h.Write(key)
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// keySet is one immutable generation of a Keyring.
type keySet struct {
	keys [][]byte
	ids  []string
}

func newKeySet(keys [][]byte) (*keySet, error) {
	if len(keys) == 0 || len(keys) > MaxKeys {
		return nil, fmt.Errorf("%w: %d keys, want 1 or %d (signing key first)", ErrBadKey, len(keys), MaxKeys)
	}
	ks := &keySet{}
	for i, k := range keys {
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		id := KeyID(k)
		for j, prev := range ks.keys {
			if subtle.ConstantTimeCompare(prev, k) == 1 || ks.ids[j] == id {
				return nil, fmt.Errorf("%w: key %d repeats key %d", ErrBadKey, i+1, j+1)
			}
		}
		ks.keys = append(ks.keys, bytes.Clone(k))
		ks.ids = append(ks.ids, id)
	}
	return ks, nil
}

// lookup returns the key with id, or nil.
func (ks *keySet) lookup(id string) []byte {
	for i, kid := range ks.ids {
		if kid == id {
			return ks.keys[i]
		}
	}
	return nil
}

// Keyring holds the cluster keys: the first signs, every one verifies. Set
// replaces them at run time (a reload during a key rotation), so the
// signing handler, the poller and the etcd backend sharing one Keyring all
// switch at once, without a restart. It is safe for concurrent use.
type Keyring struct {
	cur atomic.Pointer[keySet]
}

// NewKeyring returns a keyring with keys (one or two, signing key first).
func NewKeyring(keys ...[]byte) (*Keyring, error) {
	r := &Keyring{}
	if err := r.Set(keys...); err != nil {
		return nil, err
	}
	return r, nil
}

// Set replaces the keys (one or two, signing key first). On error the old
// keys stay.
func (r *Keyring) Set(keys ...[]byte) error {
	ks, err := newKeySet(keys)
	if err != nil {
		return err
	}
	r.cur.Store(ks)
	return nil
}

// IDs returns the key ids, the signing key's first.
func (r *Keyring) IDs() []string {
	return append([]string(nil), r.cur.Load().ids...)
}
