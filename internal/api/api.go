// Package api is vipd's control interface: JSON over HTTP on a unix socket
// (mode 0600, so only root or the socket's owner may drive vipd). vipd serves
// it with Server; vipctl talks to it with Client.
package api

import (
	"net/netip"
	"time"

	"github.com/vipd/vipd/vip"
)

// DefaultSocket is where vipd listens unless the config says otherwise.
const DefaultSocket = "/run/vipd/vipd.sock"

// Status is the answer to GET /v1/status.
type Status struct {
	Node       string          `json:"node"`
	Phase      string          `json:"phase"`
	Stopping   bool            `json:"stopping,omitempty"`
	Generation uint64          `json:"generation"`
	Config     string          `json:"config"`
	Started    time.Time       `json:"started"`
	Routing    string          `json:"routing"`
	VIPs       []vip.VIPStatus `json:"vips"`
	Peers      []Peer          `json:"peers,omitempty"`
	Members    []Member        `json:"members,omitempty"`
	Dataplane  *Dataplane      `json:"dataplane,omitempty"`
}

// Peer is one routing session (a BGP neighbor, or BIRD's view).
type Peer struct {
	Name      string        `json:"name"`
	State     string        `json:"state"`
	Uptime    time.Duration `json:"uptime,omitempty"`
	Routes    int           `json:"routes_advertised"`
	LastError string        `json:"last_error,omitempty"`
}

// Member is a cluster member as this node's poller sees it.
type Member struct {
	Name       string `json:"name"`
	Up         bool   `json:"up"`
	Generation uint64 `json:"generation,omitempty"`
}

// Dataplane is the XDP side of the status.
type Dataplane struct {
	Interface string            `json:"interface"`
	Mode      string            `json:"mode"`
	Counters  map[string]uint64 `json:"counters,omitempty"`
	Error     string            `json:"error,omitempty"`
}

// DrainRequest is the body of POST /v1/drain and /v1/undrain. A zero VIP
// means the whole node.
type DrainRequest struct {
	VIP *netip.Addr `json:"vip,omitempty"`
}

// VIP is one configured VIP (GET /v1/vips).
type VIP struct {
	Name     string   `json:"name,omitempty"`
	Addr     string   `json:"address"`
	Services []string `json:"services"`
	Check    string   `json:"check,omitempty"`
}

// Error is the body of every non-2xx answer.
type Error struct {
	Error string `json:"error"`
}
