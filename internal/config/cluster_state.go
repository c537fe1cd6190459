package config

import (
	"fmt"
	"net/url"
	"path/filepath"
	"strings"
	"time"
)

// How member states travel and are trusted: [cluster] backend, key_file,
// allow_unsigned, max_clock_skew and [cluster.etcd] (docs/cluster.md).

// Bounds of the keys below.
const (
	minClockSkew    = time.Second
	maxClockSkew    = 5 * time.Minute
	minEtcdLeaseTTL = 2 * time.Second
)

// clusterState validates the backend and signing keys of [cluster].
// A cluster of one member has no peer documents to trust: it needs no key.
func (p *parser) clusterState(r *rawCluster, c *Cluster, members int) {
	switch r.Backend {
	case "", BackendPoll:
		c.Backend = BackendPoll
	case BackendEtcd:
		c.Backend = BackendEtcd
	default:
		p.errorf("cluster.backend", "%q: want %q or %q", r.Backend, BackendPoll, BackendEtcd)
	}
	c.AllowUnsigned = r.AllowUnsigned
	if r.KeyFile != "" {
		if !filepath.IsAbs(r.KeyFile) {
			p.errorf("cluster.key_file", "%q is not an absolute path", r.KeyFile)
		} else {
			c.KeyFile = filepath.Clean(r.KeyFile)
		}
	} else if !r.AllowUnsigned && (members > 1 || r.Backend == BackendEtcd) {
		p.errorf("cluster.key_file", "required: the cluster key signs every node-state document "+
			"(vipctl cluster keygen makes one); allow_unsigned = true runs without one during a rollout")
	}
	c.MaxClockSkew = p.duration("cluster.max_clock_skew", r.MaxClockSkew, DefaultMaxClockSkew)
	if c.MaxClockSkew < minClockSkew || c.MaxClockSkew > maxClockSkew {
		p.errorf("cluster.max_clock_skew", "%s is out of range %s-%s", c.MaxClockSkew, minClockSkew, maxClockSkew)
		c.MaxClockSkew = DefaultMaxClockSkew
	}
	if r.Etcd != nil {
		c.Etcd = p.etcd(r.Etcd)
	}
	if c.Backend != BackendEtcd {
		return
	}
	if r.Etcd == nil {
		p.errorf("cluster.backend", "%q needs a [cluster.etcd] section with its endpoints", BackendEtcd)
	}
	if r.KeyFile == "" && r.AllowUnsigned && members > 1 {
		// etcd is shared storage: a document is trusted for its
		// signature, never for where it was found.
		p.errorf("cluster.key_file", "required with backend %q (documents in etcd are always signed)", BackendEtcd)
	}
}

// etcd validates [cluster.etcd]; nil if it does not decode.
func (p *parser) etcd(prim *tomlPrim) *Etcd {
	var r rawEtcd
	if !p.decode(prim, "cluster.etcd", &r) {
		return nil
	}
	e := &Etcd{Prefix: DefaultEtcdPrefix, Username: r.Username, Password: r.Password}
	if len(r.Endpoints) == 0 {
		p.missing("cluster.etcd.endpoints")
	}
	seen := map[string]int{}
	for i, s := range r.Endpoints {
		path := fmt.Sprintf("cluster.etcd.endpoints[%d]", i)
		u, err := url.Parse(s)
		switch {
		case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" || u.Port() == "" ||
			(u.Path != "" && u.Path != "/"):
			p.errorf(path, "%q is not an etcd client URL (like \"https://192.0.2.21:2379\")", s)
		default:
			if j, dup := seen[u.Host]; dup {
				p.errorf(path, "%q duplicates cluster.etcd.endpoints[%d]", s, j)
				continue
			}
			seen[u.Host] = i
			e.Endpoints = append(e.Endpoints, s)
		}
	}
	if r.Prefix != "" {
		if !strings.HasPrefix(r.Prefix, "/") || !strings.HasSuffix(r.Prefix, "/") || len(r.Prefix) < 2 {
			p.errorf("cluster.etcd.prefix", "%q must start and end with \"/\" (like %q)", r.Prefix, DefaultEtcdPrefix)
		} else {
			e.Prefix = r.Prefix
		}
	}
	e.LeaseTTL = p.duration("cluster.etcd.lease_ttl", r.LeaseTTL, DefaultEtcdLeaseTTL)
	if e.LeaseTTL < minEtcdLeaseTTL || e.LeaseTTL%time.Second != 0 {
		p.errorf("cluster.etcd.lease_ttl", "%s: want whole seconds, at least %s", e.LeaseTTL, minEtcdLeaseTTL)
		e.LeaseTTL = DefaultEtcdLeaseTTL
	}
	e.DialTimeout = p.duration("cluster.etcd.dial_timeout", r.DialTimeout, DefaultEtcdDial)
	e.RequestTimeout = p.duration("cluster.etcd.request_timeout", r.RequestTimeout, DefaultEtcdRequest)
	if e.RequestTimeout >= e.LeaseTTL {
		p.errorf("cluster.etcd.request_timeout", "%s must be shorter than lease_ttl %s (a keepalive must fit)", e.RequestTimeout, e.LeaseTTL)
	}
	for _, f := range []struct {
		key string
		v   string
		dst *string
	}{{"ca_file", r.CAFile, &e.CAFile}, {"cert_file", r.CertFile, &e.CertFile}, {"key_file", r.KeyFile, &e.KeyFile}} {
		if f.v == "" {
			continue
		}
		if !filepath.IsAbs(f.v) {
			p.errorf("cluster.etcd."+f.key, "%q is not an absolute path", f.v)
			continue
		}
		*f.dst = filepath.Clean(f.v)
	}
	if (r.CertFile == "") != (r.KeyFile == "") {
		p.errorf("cluster.etcd.cert_file", "cert_file and key_file go together (the client certificate and its key)")
	}
	if r.Password != "" && r.Username == "" {
		p.errorf("cluster.etcd.password", "set without a username")
	}
	return e
}
