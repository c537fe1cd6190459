package dataplane

// Counter is a number of packets and their bytes.
type Counter struct {
	Packets uint64
	// Bytes are those of the VIP packet as the client sent it (the inner
	// IP packet): no L2 header, no encapsulation.
	Bytes uint64
}

// VIPCounters are the dataplane's counters of one VIP on this node, summed
// over CPUs, since the VIP was last programmed or bound after a time
// without either.
type VIPCounters struct {
	// Encapsulated: sent to a backend by this director.
	Encapsulated Counter
	// Local: delivered to this node's stack, as the local primary or
	// decapsulated as a backend.
	Local Counter
	// SecondChance: sent on to the secondary (a second-chance forward,
	// or the local primary's segment of a flow the secondary holds).
	SecondChance Counter
	// LoopGuard: GUE for the VIP dropped because it is not bound here.
	LoopGuard Counter
}

// Memory is what the dataplane's maps take in the kernel (locked memory)
// and how much of each limit is in use.
type Memory struct {
	// Total is the sum of Maps and TableBytes, in bytes.
	Total uint64
	// Maps are the program's maps, forwarding tables excluded.
	Maps []MapMemory
	// Tables is the number of stored forwarding tables (MaxTables), and
	// TableBytes their memory together.
	Tables     int
	TableBytes uint64
	// VIPs are the addresses programmed or bound (MaxVIPs), VIPKeys the
	// `vips` entries (MaxVIPKeys), Backends the backend slots in use
	// (MaxBackends).
	VIPs, VIPKeys, Backends int
}

// MapMemory is one map's memory.
type MapMemory struct {
	Name       string
	MaxEntries uint32
	Bytes      uint64
}
