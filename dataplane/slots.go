package dataplane

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// addrFilterSlot is the slot of addr in the vip_filter bitmap (bpf/vipd.h):
// XOR of the address's four little-endian 32-bit words (IPv4: the first
// word, the rest 0), folded to 16 bits.
func addrFilterSlot(addr netip.Addr) uint32 {
	var b [16]byte
	if addr.Is4() {
		a4 := addr.As4()
		copy(b[:], a4[:])
	} else {
		b = addr.As16()
	}
	f := binary.LittleEndian.Uint32(b[0:]) ^ binary.LittleEndian.Uint32(b[4:]) ^
		binary.LittleEndian.Uint32(b[8:]) ^ binary.LittleEndian.Uint32(b[12:])
	return (f ^ f>>16) & 0xffff
}

// slotKey identifies the content of one `backends` entry: VIPs that share a
// backend node share its slot.
type slotKey struct {
	addr  netip.Addr
	local bool
}

// backendSlots allocates indexes of the global `backends` map with
// reference counts: a slot is held by every VIP whose table uses it, keeps
// its index while held (tables point at it), and is freed when unused.
// Not safe for concurrent use: the Dataplane's mutex guards it.
type backendSlots struct {
	refs  []int
	keys  []slotKey
	byKey map[slotKey]uint32
}

func newBackendSlots(n int) backendSlots {
	return backendSlots{refs: make([]int, n), keys: make([]slotKey, n), byKey: map[slotKey]uint32{}}
}

// acquire takes a reference on the slot of k, allocating the lowest free
// slot if k has none; fresh is true when the caller must write the entry.
func (s *backendSlots) acquire(k slotKey) (slot uint32, fresh bool, err error) {
	if i, ok := s.byKey[k]; ok {
		s.refs[i]++
		return i, false, nil
	}
	for i, r := range s.refs {
		if r == 0 {
			s.refs[i] = 1
			s.keys[i] = k
			s.byKey[k] = uint32(i)
			return uint32(i), true, nil
		}
	}
	return 0, false, fmt.Errorf("%w (%d)", ErrTooManyBackends, len(s.refs))
}

// adopt records a slot found in pinned state with one reference.
func (s *backendSlots) adopt(slot uint32, k slotKey) {
	if s.refs[slot] == 0 {
		s.keys[slot] = k
		s.byKey[k] = slot
	}
	s.refs[slot]++
}

// release drops a reference; freed is true when the slot became unused and
// the caller should clear the entry.
func (s *backendSlots) release(slot uint32) (freed bool) {
	if s.refs[slot] == 0 {
		return false
	}
	s.refs[slot]--
	if s.refs[slot] > 0 {
		return false
	}
	delete(s.byKey, s.keys[slot])
	s.keys[slot] = slotKey{}
	return true
}

// inUse reports the number of referenced slots.
func (s *backendSlots) inUse() int { return len(s.byKey) }

// ids hands out the indexes of a fixed-size space (per-VIP counters, table
// slots), lowest-first after the last one taken, so taking n of them costs
// O(n) overall rather than O(n^2). Not safe for concurrent use.
type ids struct {
	used []bool
	next int
}

func newIDs(n int) ids { return ids{used: make([]bool, n)} }

// peek finds a free index without taking it.
func (a *ids) peek() (int, bool) {
	for i := range a.used {
		j := (a.next + i) % len(a.used)
		if !a.used[j] {
			return j, true
		}
	}
	return 0, false
}

func (a *ids) take(i int) {
	a.used[i] = true
	a.next = (i + 1) % len(a.used)
}

func (a *ids) free(i int) { a.used[i] = false }
