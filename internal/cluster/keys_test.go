package cluster

import (
	"bytes"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testKey returns a fixed key made of b (tests need stable keys).
func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, KeySize) }

func TestParseKeyFile(t *testing.T) {
	k1, k2 := hex.EncodeToString(testKey(1)), hex.EncodeToString(testKey(2))
	tests := []struct {
		name    string
		file    string
		want    int // keys
		wantErr string
	}{
		{"one key", k1 + "\n", 1, ""},
		{"two keys, comments, blanks, CRLF", "# rotation\n\n" + k1 + "\r\n  " + k2 + "  \n", 2, ""},
		{"upper case hex", strings.ToUpper(k1), 1, ""},
		{"64-byte key", k1 + k2, 1, ""},
		{"empty", "", 0, "no key"},
		{"only comments", "# nothing\n", 0, "no key"},
		{"not hex", k1[:62] + "zz\n", 0, "line 1: not hex"},
		{"odd length", k1[:63] + "\n", 0, "line 1: not hex"},
		{"short key", k1[:62] + "\n", 0, "line 1: bad cluster key: 31 bytes"},
		{"long key", k1 + k2 + "00\n", 0, "65 bytes"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			keys, err := ParseKeyFile([]byte(tt.file))
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error = %v, want ErrBadKey with %q", err, tt.wantErr)
				}
				// An error never echoes key material.
				if strings.Contains(strings.ToLower(err.Error()), k1[:16]) {
					t.Errorf("error %q shows the key", err)
				}
				return
			}
			if err != nil || len(keys) != tt.want {
				t.Fatalf("got %d keys, %v; want %d", len(keys), err, tt.want)
			}
			if !bytes.Equal(keys[0], testKey(1)) && tt.name != "64-byte key" {
				t.Errorf("first key = %x", keys[0])
			}
		})
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, mode os.FileMode, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := FormatKeyFile(testKey(1), testKey(2))
	keys, err := LoadKeyFile(write("ok", 0o600, good))
	if err != nil || len(keys) != 2 || !bytes.Equal(keys[0], testKey(1)) || !bytes.Equal(keys[1], testKey(2)) {
		t.Fatalf("LoadKeyFile(0600) = %x, %v", keys, err)
	}
	if _, err := LoadKeyFile(write("ro", 0o400, good)); err != nil {
		t.Errorf("LoadKeyFile(0400) = %v", err)
	}
	for _, mode := range []os.FileMode{0o644, 0o640, 0o604, 0o660, 0o610} {
		p := write("loose", mode, good)
		if _, err := LoadKeyFile(p); !errors.Is(err, ErrBadKey) || !strings.Contains(err.Error(), "chmod 600") {
			t.Errorf("LoadKeyFile(%#o) = %v, want a mode error", mode, err)
		}
	}
	if _, err := LoadKeyFile(dir); !errors.Is(err, ErrBadKey) {
		t.Errorf("LoadKeyFile(directory) = %v", err)
	}
	if _, err := LoadKeyFile(filepath.Join(dir, "absent")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadKeyFile(absent) = %v", err)
	}
	if _, err := LoadKeyFile(write("big", 0o600, bytes.Repeat([]byte("#\n"), maxKeyFile))); !errors.Is(err, ErrBadKey) {
		t.Errorf("LoadKeyFile(big) = %v", err)
	}
	if _, err := LoadKeyFile(write("three", 0o600, FormatKeyFile(testKey(1), testKey(2), testKey(3)))); err != nil {
		t.Errorf("parsing three keys = %v (NewKeyring refuses them, not the parser)", err)
	}
}

func TestKeyring(t *testing.T) {
	if _, err := NewKeyring(); !errors.Is(err, ErrBadKey) {
		t.Errorf("no key: %v", err)
	}
	if _, err := NewKeyring(testKey(1), testKey(2), testKey(3)); !errors.Is(err, ErrBadKey) {
		t.Errorf("three keys: %v", err)
	}
	if _, err := NewKeyring(testKey(1), testKey(1)); !errors.Is(err, ErrBadKey) {
		t.Errorf("a key twice: %v", err)
	}
	if _, err := NewKeyring(testKey(1)[:16]); !errors.Is(err, ErrBadKey) {
		t.Errorf("short key: %v", err)
	}
	r, err := NewKeyring(testKey(1), testKey(2))
	if err != nil {
		t.Fatal(err)
	}
	want := []string{KeyID(testKey(1)), KeyID(testKey(2))}
	if got := r.IDs(); len(got) != 2 || got[0] != want[0] || got[1] != want[1] || want[0] == want[1] || len(want[0]) != 8 {
		t.Errorf("IDs = %v, want %v", got, want)
	}
	if err := r.Set(); err == nil {
		t.Error("Set() with no key succeeded")
	}
	if got := r.IDs(); got[0] != want[0] {
		t.Errorf("a failed Set changed the keys: %v", got)
	}
	k, err := GenerateKey()
	if err != nil || len(k) != KeySize {
		t.Fatalf("GenerateKey = %x, %v", k, err)
	}
	parsed, err := ParseKeyFile(FormatKeyFile(k))
	if err != nil || !bytes.Equal(parsed[0], k) {
		t.Errorf("FormatKeyFile does not parse back: %v", err)
	}
}
