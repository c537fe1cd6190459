package cluster

import (
	"cmp"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"iter"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Digest is a 128-bit digest (SHA-256, truncated) of part of the cluster
// configuration or of a forwarding table. It detects accidental divergence
// between members; it is not what authenticates a document (the signature
// is). Its text form is 32 hex digits.
type Digest [16]byte

// String returns the digest in hex.
func (d Digest) String() string { return hex.EncodeToString(d[:]) }

// Short returns the first 8 hex digits, enough to tell digests apart by eye
// in status output.
func (d Digest) Short() string { return d.String()[:8] }

// IsZero reports whether d is the zero digest ("none").
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler: exactly 32 hex digits.
func (d *Digest) UnmarshalText(b []byte) error {
	if len(b) != 2*len(d) {
		return fmt.Errorf("digest %q: want %d hex digits", b, 2*len(d))
	}
	var out Digest
	if _, err := hex.Decode(out[:], b); err != nil {
		return fmt.Errorf("digest %q: %w", b, err)
	}
	*d = out
	return nil
}

// ClusterSpec is the part of the configuration every member must share:
// it decides the forwarding tables, so two members that differ in it build
// different tables for the same view. The daemon fills it from its config;
// order does not matter (members, VIPs and services are sorted before
// digesting).
type ClusterSpec struct {
	// Seed seeds rendezvous hashing.
	Seed uint64
	// Table names how tables are built.
	Table TableSpec
	// Members are every [[cluster.member]], this node included.
	Members []MemberSpec
	// VIPs are every configured VIP with its services.
	VIPs []VIPSpec
}

// TableSpec are the table parameters.
type TableSpec struct {
	// Rows per table (dataplane.TableRows).
	Rows int
	// Algorithm names the table build and its version, so members whose
	// vipd builds tables differently from the same inputs are told apart
	// (for example "rendezvous-v1", "weighted-rendezvous-v1").
	Algorithm string
	// SlowStart is the slow start ramp ([cluster] slow_start; zero: off):
	// members that ramp differently build different tables during a ramp.
	SlowStart time.Duration
}

// MemberSpec is one member as the table build sees it.
type MemberSpec struct {
	Name       string
	UnderlayV4 netip.Addr
	UnderlayV6 netip.Addr
	// Weight is the configured weight; 0 is the default weight (so a
	// cluster without weights keeps the digests it had before them).
	Weight uint32
}

// VIPSpec is one VIP as the dataplane sees it: its address and services.
type VIPSpec struct {
	Addr     netip.Addr
	Services []Service
}

// Service is one (protocol, port) of a VIP: IP protocol number (6 TCP, 17
// UDP) and port (0: any).
type Service struct {
	Proto uint8
	Port  uint16
}

// Section names of Digests.Sections, which are also the words
// CompareDigests uses for them.
const (
	SectionMembers = "members"
	SectionSeed    = "seed"
	SectionTable   = "table"
	SectionVIPs    = "vips"
)

// Digests is what a member publishes so its peers can check it shares their
// configuration and built the same tables.
type Digests struct {
	// Config covers every section: equal Config digests, same cluster
	// configuration.
	Config Digest `json:"config"`
	// Sections has one digest per section (SectionMembers, ...), so a
	// difference can be named.
	Sections map[string]Digest `json:"sections,omitempty"`
	// VIPs has, per VIP, the digest of its services and of the forwarding
	// table this member built for it.
	VIPs map[netip.Addr]VIPDigests `json:"vips,omitempty"`
	// TablesAt is the etcd revision of the view the tables were built from
	// (0 with the poll backend, where every director switches at its own
	// poll). Table digests are compared only between equal TablesAt.
	TablesAt int64 `json:"tables_at,omitempty"`
}

// VIPDigests are one VIP's entries in Digests.
type VIPDigests struct {
	Services Digest `json:"services"`
	// Table is the digest of the member's table for the VIP (TableDigest);
	// zero when it has none programmed.
	Table Digest `json:"table,omitzero"`
}

// Clone returns a deep copy of d (nil for nil).
func (d *Digests) Clone() *Digests {
	if d == nil {
		return nil
	}
	c := *d
	c.Sections = maps.Clone(d.Sections)
	c.VIPs = maps.Clone(d.VIPs)
	return &c
}

// Equal reports whether d and o are the same (both nil counts).
func (d *Digests) Equal(o *Digests) bool {
	if d == nil || o == nil {
		return d == o
	}
	return d.Config == o.Config && d.TablesAt == o.TablesAt &&
		maps.Equal(d.Sections, o.Sections) && maps.Equal(d.VIPs, o.VIPs)
}

// SetTable records the digest of the table built for addr (zero: none).
// The VIP must be in the spec the digests were made from; others are
// ignored (a VIP on its way out has no place in the comparison).
func (d *Digests) SetTable(addr netip.Addr, t Digest) {
	if v, ok := d.VIPs[addr]; ok {
		v.Table = t
		d.VIPs[addr] = v
	}
}

// digestVersion starts every hashed input, so a change of encoding changes
// every digest instead of colliding with the old one.
const digestVersion = "vipd-digest-v1"

// newSectionHash returns a hash with the domain of one section written.
func newSectionHash(section string) hash.Hash {
	h := sha256.New()
	writeString(h, digestVersion)
	writeString(h, section)
	return h
}

func sum(h hash.Hash) (d Digest) {
	copy(d[:], h.Sum(nil))
	return d
}

func writeString(h hash.Hash, s string) {
	var n [4]byte
	binary.BigEndian.PutUint32(n[:], uint32(len(s)))
	h.Write(n[:])
	h.Write([]byte(s))
}

func writeUint(h hash.Hash, v uint64) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	h.Write(b[:])
}

// writeAddr writes a family byte and 16 bytes (all zero for no address),
// so an IPv4 address and its IPv4-mapped IPv6 form differ.
func writeAddr(h hash.Hash, a netip.Addr) {
	fam := byte(0)
	switch {
	case a.Is4():
		fam = 4
	case a.Is6():
		fam = 6
	}
	b := a.As16()
	if !a.IsValid() {
		b = [16]byte{}
	}
	h.Write([]byte{fam})
	h.Write(b[:])
}

// ComputeDigests returns the configuration digests of spec; table digests
// are zero until SetTable.
func ComputeDigests(spec ClusterSpec) *Digests {
	d := &Digests{Sections: map[string]Digest{}, VIPs: map[netip.Addr]VIPDigests{}}

	members := slices.Clone(spec.Members)
	slices.SortFunc(members, func(a, b MemberSpec) int { return strings.Compare(a.Name, b.Name) })
	h := newSectionHash(SectionMembers)
	writeUint(h, uint64(len(members)))
	for _, m := range members {
		writeString(h, m.Name)
		writeAddr(h, m.UnderlayV4)
		writeAddr(h, m.UnderlayV6)
		writeUint(h, uint64(m.Weight))
	}
	d.Sections[SectionMembers] = sum(h)

	h = newSectionHash(SectionSeed)
	writeUint(h, spec.Seed)
	d.Sections[SectionSeed] = sum(h)

	h = newSectionHash(SectionTable)
	writeUint(h, uint64(spec.Table.Rows))
	writeString(h, spec.Table.Algorithm)
	if spec.Table.SlowStart != 0 {
		// Only when set: a cluster without slow start keeps its digest.
		writeUint(h, uint64(spec.Table.SlowStart))
	}
	d.Sections[SectionTable] = sum(h)

	vips := slices.Clone(spec.VIPs)
	slices.SortFunc(vips, func(a, b VIPSpec) int { return a.Addr.Compare(b.Addr) })
	all := newSectionHash(SectionVIPs)
	writeUint(all, uint64(len(vips)))
	for _, v := range vips {
		svc := servicesDigest(v.Services)
		d.VIPs[v.Addr] = VIPDigests{Services: svc}
		writeAddr(all, v.Addr)
		all.Write(svc[:])
	}
	d.Sections[SectionVIPs] = sum(all)

	h = newSectionHash("config")
	for _, s := range []string{SectionMembers, SectionSeed, SectionTable, SectionVIPs} {
		ds := d.Sections[s]
		writeString(h, s)
		h.Write(ds[:])
	}
	d.Config = sum(h)
	return d
}

// servicesDigest digests a VIP's services, sorted and without duplicates.
func servicesDigest(services []Service) Digest {
	s := slices.Clone(services)
	slices.SortFunc(s, func(a, b Service) int {
		return cmp.Or(cmp.Compare(a.Proto, b.Proto), cmp.Compare(a.Port, b.Port))
	})
	s = slices.Compact(s)
	h := newSectionHash("services")
	writeUint(h, uint64(len(s)))
	for _, v := range s {
		h.Write([]byte{v.Proto})
		writeUint(h, uint64(v.Port))
	}
	return sum(h)
}

// noBackend stands for a row index outside the backends list.
const noBackend = ^uint32(0)

// TableDigest digests a forwarding table as built: rows of (primary,
// secondary) indexes into backends, each backend named by its member name.
// Indexes are mapped to the backends' rank in name order first, so two
// directors that list the same backends in another order but built the
// same rows get the same digest. An index outside backends is hashed as
// "none" rather than refused: the digest reports, it does not validate.
func TableDigest(backends []string, rows iter.Seq2[uint32, uint32]) Digest {
	order := make([]int, len(backends))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return strings.Compare(backends[a], backends[b]) })
	rank := make([]uint32, len(backends))
	h := newSectionHash("table")
	writeUint(h, uint64(len(backends)))
	for r, i := range order {
		rank[i] = uint32(r)
		writeString(h, backends[i])
	}
	rankOf := func(i uint32) uint32 {
		if int(i) < len(rank) {
			return rank[i]
		}
		return noBackend
	}
	// Rows go through a buffer: one Write per row would cost more than the
	// hashing itself (65536 rows per table).
	buf := make([]byte, 0, 4096)
	n := uint64(0)
	for p, s := range rows {
		buf = binary.BigEndian.AppendUint32(buf, rankOf(p))
		buf = binary.BigEndian.AppendUint32(buf, rankOf(s))
		n++
		if len(buf) == cap(buf) {
			h.Write(buf)
			buf = buf[:0]
		}
	}
	h.Write(buf)
	writeUint(h, n)
	return sum(h)
}

// TableBackend is one backend of a table as BuildDigest sees it.
type TableBackend struct {
	Name string
	// Primary: new flows may go to it; false: second hop only (draining).
	Primary bool
	// Weight is its weight in the build (vip.Backend.Weight) when the
	// weights differ; 0 for every backend when they are equal, which
	// builds the unweighted table whatever their value.
	Weight uint32
}

// BuildDigest digests a forwarding table by what it is built from: the VIP
// and its backends with their roles, in any order. The build is a pure
// function of these, the seed, the row count and the algorithm (all three
// in the configuration digest), so two members with equal configuration
// digests and equal build digests hold the same rows; it costs nothing,
// where TableDigest hashes every row again (65536 per table, as long as
// the build itself) on every table switch.
func BuildDigest(addr netip.Addr, backends []TableBackend) Digest {
	bs := slices.Clone(backends)
	slices.SortFunc(bs, func(a, b TableBackend) int { return strings.Compare(a.Name, b.Name) })
	// A weighted build is its own domain, so it never collides with an
	// unweighted one and the unweighted encoding stays as it was.
	weighted := slices.ContainsFunc(bs, func(b TableBackend) bool { return b.Weight != 0 })
	h := newSectionHash("build")
	if weighted {
		h = newSectionHash("build-weighted")
	}
	writeAddr(h, addr)
	writeUint(h, uint64(len(bs)))
	for _, b := range bs {
		writeString(h, b.Name)
		role := uint64(0)
		if b.Primary {
			role = 1
		}
		writeUint(h, role)
		if weighted {
			writeUint(h, uint64(b.Weight))
		}
	}
	return sum(h)
}

// Differences are what CompareDigests found between this node's digests
// and a member's.
type Differences struct {
	// Config names the configuration items that differ, like "seed",
	// "members", "vips 198.51.100.10 services", "vips 198.51.100.11
	// absent" (this node has the VIP, the member not) or "vips
	// 198.51.100.12 extra" (the member has it, this node not).
	Config []string
	// Tables names the VIPs whose tables differ, like "vips 198.51.100.10
	// table"; compared only when both built their tables from the same etcd
	// revision, or both poll (TablesAt 0), where a difference can be a
	// director that has not polled the latest change yet.
	Tables []string
}

// Empty reports whether nothing differs.
func (d Differences) Empty() bool { return len(d.Config) == 0 && len(d.Tables) == 0 }

// Items returns Config then Tables.
func (d Differences) Items() []string { return slices.Concat(d.Config, d.Tables) }

// Describe writes the differences as one log or status line: "member n2
// differs: vips 198.51.100.10 services, seed". It is "" when nothing
// differs.
func (d Differences) Describe(member string) string {
	if d.Empty() {
		return ""
	}
	return fmt.Sprintf("member %s differs: %s", member, strings.Join(d.Items(), ", "))
}

// ItemNoDigests is the difference reported for a member that publishes no
// digests (an older vipd).
const ItemNoDigests = "no digests published"

// CompareDigests names what differs between this node's digests (local) and
// a member's (remote). With no local digests nothing is compared.
func CompareDigests(local, remote *Digests) Differences {
	var out Differences
	if local == nil {
		return out
	}
	if remote == nil {
		out.Config = []string{ItemNoDigests}
		return out
	}
	if local.Config != remote.Config {
		for _, s := range []string{SectionMembers, SectionSeed, SectionTable} {
			if local.Sections[s] != remote.Sections[s] {
				out.Config = append(out.Config, s)
			}
		}
	}
	addrs := slices.SortedFunc(func(yield func(netip.Addr) bool) {
		for a := range local.VIPs {
			if !yield(a) {
				return
			}
		}
		for a := range remote.VIPs {
			if _, both := local.VIPs[a]; !both && !yield(a) {
				return
			}
		}
	}, netip.Addr.Compare)
	sameView := local.TablesAt == remote.TablesAt
	for _, a := range addrs {
		l, lok := local.VIPs[a]
		r, rok := remote.VIPs[a]
		switch {
		case !rok:
			out.Config = append(out.Config, fmt.Sprintf("vips %s absent", a))
		case !lok:
			out.Config = append(out.Config, fmt.Sprintf("vips %s extra", a))
		case l.Services != r.Services:
			out.Config = append(out.Config, fmt.Sprintf("vips %s services", a))
		}
		if lok && rok && sameView && !l.Table.IsZero() && !r.Table.IsZero() && l.Table != r.Table {
			out.Tables = append(out.Tables, fmt.Sprintf("vips %s table", a))
		}
	}
	// A config digest that differs with every section equal: a member whose
	// vipd digests differently (another version). Say so rather than
	// nothing.
	if local.Config != remote.Config && len(out.Config) == 0 {
		out.Config = []string{"config"}
	}
	return out
}
