package dataplane

import (
	"bytes"
	"encoding/binary"
	"maps"
	"math/rand/v2"
	"testing"

	"github.com/cilium/ebpf"
)

// stagesProgram loads the VIPD_STAGES build of the program (bpf/vipd.c,
// test-only) onto the rig's maps, with its knobs (stop_stage,
// bench_no_vip_cache, no_fast_parse) set as given and the rest at 0.
func (r *rig) stagesProgram(t testing.TB, knobs map[string]uint32) *ebpf.Program {
	t.Helper()
	spec, err := loadVipdstages()
	must(t, err)
	for name, v := range knobs {
		must(t, spec.Variables[name].Set(v))
	}
	o := r.objs
	repl := map[string]*ebpf.Map{"vips4": o.Vips4, "vips6": o.Vips6, "tables": o.Tables, "backends": o.Backends,
		"vip_addrs": o.VipAddrs, "members4": o.Members4, "members6": o.Members6, "directors": o.Directors, "config": o.Config,
		"vip_filter": o.VipFilter, "stats": o.Stats, "vip_stats": o.VipStats, "nh_cache": o.NhCache,
		"vip_cache": o.VipCache, "icmp_limit": o.IcmpLimit, "trust_cache": o.TrustCache}
	coll, err := ebpf.NewCollectionWithOptions(spec, ebpf.CollectionOptions{MapReplacements: repl})
	must(t, err)
	t.Cleanup(coll.Close)
	return coll.Programs["vipd_xdp"]
}

// TestFastParseMatchesGeneral holds the fast parse (bpf/vipd.c, process:
// TCP or UDP in IPv4 without options or fragments, or in IPv6 without
// extension headers) to the general parse it short-cuts. Every frame of a
// corpus goes through the program as built, which takes the fast parse,
// and through the same source with the fast parse switched off
// (no_fast_parse), on the same maps: the verdicts and the frames out must
// be identical, frame by frame, and so must every counter, summed over
// the corpus. The corpus is the fuzz seeds, random frames, and mutations
// aimed at the fast parse's edges: IHL, fragment bits, protocol and next
// header, IP length against the frame, truncated L4 headers, this node's
// GUE port, and VIPs' ports and TCP flags.
func TestFastParseMatchesGeneral(t *testing.T) {
	r := newRig(t)
	// "Too big" answers must not run out of tokens in one pass and not
	// the other.
	r.setConfig(t, func(c *vipdDpConfig) { c.IcmpRate = 1_000_000 })
	general := r.stagesProgram(t, map[string]uint32{"no_fast_parse": 1})
	corpus := fastParseCorpus(t)

	type result struct {
		code uint32
		out  []byte
	}
	pass := func(prog *ebpf.Program) ([]result, map[vipdStat]uint64, map[string][4]Counter) {
		stats0, vips0 := r.stats(t), r.vipCounters(t)
		res := make([]result, len(corpus))
		for i, in := range corpus {
			res[i].code, res[i].out = r.run(t, prog, in)
		}
		stats, vips := r.stats(t), r.vipCounters(t)
		ds := map[vipdStat]uint64{}
		for s, n := range stats {
			if d := n - stats0[s]; d != 0 {
				ds[s] = d
			}
		}
		dv := map[string][4]Counter{}
		for a, c := range vips {
			was := vips0[a]
			var d [4]Counter
			for i := range c {
				d[i] = Counter{Packets: c[i].Packets - was[i].Packets, Bytes: c[i].Bytes - was[i].Bytes}
			}
			if d != ([4]Counter{}) {
				dv[a.String()] = d
			}
		}
		return res, ds, dv
	}
	fast, fastStats, fastVIPs := pass(r.objs.VipdXdp)
	slow, slowStats, slowVIPs := pass(general)

	fastPath := 0
	for i, in := range corpus {
		if fast[i].code != slow[i].code || !bytes.Equal(fast[i].out, slow[i].out) {
			t.Fatalf("frame %d: fast parse %s, general %s\n in % x\nfast % x\n gen % x",
				i, verdictNames[fast[i].code], verdictNames[slow[i].code], in, fast[i].out, slow[i].out)
		}
		if takesFastParse(in) {
			fastPath++
		}
	}
	if !maps.Equal(fastStats, slowStats) {
		t.Errorf("counters differ over the corpus:\nfast    %v\ngeneral %v", fastStats, slowStats)
	}
	if !maps.Equal(fastVIPs, slowVIPs) {
		t.Errorf("per-VIP counters differ over the corpus:\nfast    %v\ngeneral %v", fastVIPs, slowVIPs)
	}
	// The corpus must exercise both sides of the fork, and the director
	// and the backend behind each.
	if fastPath < len(corpus)/4 || len(corpus)-fastPath < len(corpus)/4 {
		t.Errorf("%d of %d frames fit the fast parse: the corpus leans to one side", fastPath, len(corpus))
	}
	for _, s := range []vipdStat{vipdStatSTAT_DIRECTOR_TX, vipdStatSTAT_DIRECTOR_LOCAL_PASS, vipdStatSTAT_PASS_NON_VIP, vipdStatSTAT_PASS_SHORT_L4, vipdStatSTAT_BACKEND_DECAP} {
		if fastStats[s] == 0 {
			t.Errorf("no frame of the corpus counted %v", s)
		}
	}
	t.Logf("%d frames, %d fit the fast parse; counters %v", len(corpus), fastPath, fastStats)
}

// takesFastParse mirrors the fast parse's test (bpf/vipd.c, process), for
// the corpus's balance only.
func takesFastParse(f []byte) bool {
	l, et := 12, uint16(0)
	for tags := 0; ; tags++ {
		if len(f) < l+2 {
			return false
		}
		et = binary.BigEndian.Uint16(f[l:])
		if (et != 0x8100 && et != 0x88a8) || tags == 2 {
			break
		}
		l += 4
	}
	l += 2
	switch et {
	case 0x0800:
		if len(f) < l+40 || f[l] != 0x45 || binary.BigEndian.Uint16(f[l+6:])&0x3fff != 0 || (f[l+9] != 6 && f[l+9] != 17) {
			return false
		}
		end := l + int(binary.BigEndian.Uint16(f[l+2:]))
		return end <= len(f) && l+20+map[byte]int{6: 20, 17: 8}[f[l+9]] <= end
	case 0x86dd:
		if len(f) < l+60 || f[l]>>4 != 6 || (f[l+6] != 6 && f[l+6] != 17) {
			return false
		}
		end := l + 40 + int(binary.BigEndian.Uint16(f[l+4:]))
		return end <= len(f) && l+40+map[byte]int{6: 20, 17: 8}[f[l+6]] <= end
	}
	return false
}

// fastParseCorpus: the fuzz seeds, then deterministic mutations of them
// aimed at the fast parse's tests, and random frames.
func fastParseCorpus(t testing.TB) [][]byte {
	seeds := seedFrames(t)
	rng := rand.New(rand.NewPCG(7, 11))
	corpus := [][]byte{}
	for _, s := range seeds {
		if len(s) >= 14 && len(s) <= 1514 {
			corpus = append(corpus, s)
		}
	}
	for i := 0; len(corpus) < 6000; i++ {
		s := seeds[rng.IntN(len(seeds))]
		in := append([]byte(nil), s...)
		l := l2Len(in)
		if len(in) < l+40 {
			continue
		}
		v6 := in[l]>>4 == 6
		l4 := l + 20
		if v6 {
			l4 = l + 40
		}
		switch rng.IntN(12) {
		case 0: // IHL or version
			in[l] = []byte{0x45, 0x46, 0x44, 0x65, 0x60, 0x55}[rng.IntN(6)]
		case 1: // fragment bits: MF, DF, offsets
			if !v6 {
				binary.BigEndian.PutUint16(in[l+6:], []uint16{0, 0x4000, 0x2000, 0x6000, 0x0001, 0x4001, 0x1fff}[rng.IntN(7)])
			}
		case 2: // protocol or next header
			p := []byte{6, 17, 1, 58, 44, 0, 4, 41, 132}[rng.IntN(9)]
			if v6 {
				in[l+6] = p
			} else {
				in[l+9] = p
			}
		case 3: // IP length around the frame's and the L4 header's ends
			want := len(in) - l + rng.IntN(5) - 2
			if rng.IntN(2) == 0 {
				want = l4 - l + []int{0, 7, 8, 19, 20, 21}[rng.IntN(6)]
			}
			if v6 {
				binary.BigEndian.PutUint16(in[l+4:], uint16(max(want-40, 0)))
			} else {
				binary.BigEndian.PutUint16(in[l+2:], uint16(max(want, 0)))
			}
		case 4: // the frame cut inside or after the L4 header
			in = in[:min(len(in), l4+rng.IntN(24))]
		case 5: // TCP flags
			if len(in) > l4+13 {
				in[l4+13] = byte(rng.Uint32())
			}
		case 6: // ports: VIP ports, any port, this node's GUE port
			if len(in) >= l4+4 {
				binary.BigEndian.PutUint16(in[l4+2:], []uint16{80, 443, 53, 8080, testGUEPort, uint16(rng.Uint32())}[rng.IntN(6)])
			}
		case 7: // UDP to this node's GUE port, as a director would send it
			if v6 {
				in[l+6] = 17
				copy(in[l+24:l+40], node6.AsSlice())
			} else {
				in[l+9] = 17
				copy(in[l+16:l+20], node4.AsSlice())
			}
			if len(in) >= l4+4 {
				binary.BigEndian.PutUint16(in[l4+2:], testGUEPort)
			}
		default: // a few random bytes anywhere
			for range 1 + rng.IntN(3) {
				in[rng.IntN(len(in))] = byte(rng.Uint32())
			}
		}
		if len(in) >= 14 {
			corpus = append(corpus, in)
		}
		if i%8 == 0 { // and a random frame behind a plausible Ethernet header
			r := make([]byte, 14+rng.IntN(120))
			for j := range r {
				r[j] = byte(rng.Uint32())
			}
			binary.BigEndian.PutUint16(r[12:], []uint16{0x0800, 0x86dd, 0x8100}[rng.IntN(3)])
			corpus = append(corpus, r)
		}
	}
	return corpus
}
