package dataplane

import (
	"errors"
	"net/netip"
	"testing"
)

func TestBackendSlots(t *testing.T) {
	s := newBackendSlots(3)
	a := slotKey{addr: netip.MustParseAddr("10.0.0.1")}
	b := slotKey{addr: netip.MustParseAddr("10.0.0.2")}
	aLocal := slotKey{addr: a.addr, local: true}
	c := slotKey{addr: netip.MustParseAddr("2001:db8::3")}
	d := slotKey{addr: netip.MustParseAddr("2001:db8::4")}

	type step struct {
		op        string // acquire | release
		key       slotKey
		slot      uint32
		wantSlot  uint32
		wantFresh bool // acquire: new slot; release: freed
		wantErr   error
	}
	for i, st := range []step{
		{op: "acquire", key: a, wantSlot: 0, wantFresh: true},
		{op: "acquire", key: b, wantSlot: 1, wantFresh: true},
		{op: "acquire", key: a, wantSlot: 0},                       // shared
		{op: "acquire", key: aLocal, wantSlot: 2, wantFresh: true}, // other flags, other slot
		{op: "acquire", key: c, wantErr: ErrTooManyBackends},
		{op: "release", slot: 0},                              // a still held once
		{op: "release", slot: 0, wantFresh: true},             // freed
		{op: "release", slot: 0},                              // double release is harmless
		{op: "acquire", key: c, wantSlot: 0, wantFresh: true}, // lowest free slot reused
		{op: "release", slot: 1, wantFresh: true},
		{op: "acquire", key: d, wantSlot: 1, wantFresh: true},
		{op: "acquire", key: b, wantErr: ErrTooManyBackends},
	} {
		switch st.op {
		case "acquire":
			slot, fresh, err := s.acquire(st.key)
			if !errors.Is(err, st.wantErr) {
				t.Fatalf("step %d: acquire(%v) error %v, want %v", i, st.key, err, st.wantErr)
			}
			if err == nil && (slot != st.wantSlot || fresh != st.wantFresh) {
				t.Fatalf("step %d: acquire(%v) = %d, %v; want %d, %v", i, st.key, slot, fresh, st.wantSlot, st.wantFresh)
			}
		case "release":
			if freed := s.release(st.slot); freed != st.wantFresh {
				t.Fatalf("step %d: release(%d) freed = %v, want %v", i, st.slot, freed, st.wantFresh)
			}
		}
	}
	if got := s.inUse(); got != 3 {
		t.Errorf("inUse = %d, want 3", got)
	}
}

func TestParseAttachMode(t *testing.T) {
	for _, tc := range []struct {
		in      string
		want    AttachMode
		wantErr bool
	}{
		{"", AttachAuto, false},
		{"auto", AttachAuto, false},
		{"native", AttachNative, false},
		{"generic", AttachGeneric, false},
		{"skb", AttachAuto, true},
		{"Native", AttachAuto, true},
	} {
		got, err := ParseAttachMode(tc.in)
		if got != tc.want || (err != nil) != tc.wantErr {
			t.Errorf("ParseAttachMode(%q) = %q, %v", tc.in, got, err)
		}
		var u AttachMode
		if uerr := u.UnmarshalText([]byte(tc.in)); u != tc.want || (uerr != nil) != tc.wantErr {
			t.Errorf("UnmarshalText(%q) = %q, %v", tc.in, u, uerr)
		}
		if tc.wantErr || tc.in == "" {
			continue
		}
		if b, err := got.MarshalText(); err != nil || string(b) != tc.in || got.String() != tc.in {
			t.Errorf("MarshalText(%s) = %q, %v; String = %q", got, b, err, got.String())
		}
	}
	if _, err := AttachMode(9).MarshalText(); err == nil || AttachMode(9).String() != "AttachMode(9)" {
		t.Errorf("an unknown attach mode marshals: %v, %s", err, AttachMode(9))
	}
	if err := (Options{Interface: "eth0", PinPath: "/sys/fs/bpf/x", Attach: 9}).validate(); err == nil {
		t.Error("Options with an unknown attach mode validate")
	}
	if (Options{}).guePort() != DefaultGUEPort || (Options{GUEPort: 6080}).guePort() != 6080 {
		t.Error("guePort does not default to DefaultGUEPort")
	}
	for _, tc := range []struct {
		mode        AttachMode
		autoGeneric bool
		want        AttachMode
	}{
		{AttachAuto, false, AttachNative},
		{AttachAuto, true, AttachGeneric},
		{AttachNative, true, AttachNative}, // an explicit mode wins
		{AttachGeneric, false, AttachGeneric},
	} {
		if got := tc.mode.effective(tc.autoGeneric); got != tc.want {
			t.Errorf("%s with autoGeneric=%v -> %s, want %s", tc.mode, tc.autoGeneric, got, tc.want)
		}
	}
}
