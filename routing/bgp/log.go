package bgp

import (
	"fmt"
	"net/netip"
	"sort"

	"github.com/hashicorp/go-hclog"
	gobgplog "github.com/osrg/gobgp/v3/pkg/log"
)

// logAdapter makes an hclog.Logger usable as GoBGP's logger. GoBGP calls
// Fatal and Panic on errors it considers unrecoverable; library code must not
// exit the process, so both are logged as errors and return. Warnings and
// errors about a peer (GoBGP's "Key" field is the neighbor address) are also
// recorded as that peer's last error for status.
type logAdapter struct {
	log     hclog.Logger
	peerErr func(peer netip.Addr, msg string)
}

var _ gobgplog.Logger = (*logAdapter)(nil)

func (l *logAdapter) args(fields gobgplog.Fields) []any {
	keys := make([]string, 0, len(fields))
	for k := range fields {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	out := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		name := k
		if k == "Key" {
			name = "peer" // the project's key for a neighbor
		}
		out = append(out, name, fields[k])
	}
	return out
}

func (l *logAdapter) record(msg string, fields gobgplog.Fields) {
	if l.peerErr == nil {
		return
	}
	key, _ := fields["Key"].(string)
	addr, err := netip.ParseAddr(key)
	if err != nil {
		return
	}
	if e, ok := fields["Error"]; ok {
		if es, ok := e.(error); ok {
			msg += ": " + es.Error()
		} else if es, ok := e.(string); ok {
			msg += ": " + es
		}
	}
	l.peerErr(addr, msg)
}

// Panic logs at error level; it does not panic.
func (l *logAdapter) Panic(msg string, fields gobgplog.Fields) {
	l.record(msg, fields)
	l.log.Error("gobgp: "+msg, l.args(fields)...)
}

// Fatal logs at error level; it does not exit.
func (l *logAdapter) Fatal(msg string, fields gobgplog.Fields) {
	l.record(msg, fields)
	l.log.Error("gobgp: "+msg, l.args(fields)...)
}

// Error logs at error level.
func (l *logAdapter) Error(msg string, fields gobgplog.Fields) {
	l.record(msg, fields)
	l.log.Error(msg, l.args(fields)...)
}

// Warn logs at warn level.
func (l *logAdapter) Warn(msg string, fields gobgplog.Fields) {
	l.record(msg, fields)
	l.log.Warn(msg, l.args(fields)...)
}

// Info logs at info level. A session going down is logged at info level by
// GoBGP; its reason becomes the peer's last error.
func (l *logAdapter) Info(msg string, fields gobgplog.Fields) {
	if msg == "Peer Down" {
		l.record(fmt.Sprintf("session down: %v", fields["Reason"]), fields)
	}
	l.log.Info(msg, l.args(fields)...)
}

// Debug logs at debug level.
func (l *logAdapter) Debug(msg string, fields gobgplog.Fields) {
	l.log.Debug(msg, l.args(fields)...)
}

// SetLevel sets the hclog level.
func (l *logAdapter) SetLevel(level gobgplog.LogLevel) {
	switch level {
	case gobgplog.PanicLevel, gobgplog.FatalLevel, gobgplog.ErrorLevel:
		l.log.SetLevel(hclog.Error)
	case gobgplog.WarnLevel:
		l.log.SetLevel(hclog.Warn)
	case gobgplog.InfoLevel:
		l.log.SetLevel(hclog.Info)
	case gobgplog.DebugLevel:
		l.log.SetLevel(hclog.Debug)
	default:
		l.log.SetLevel(hclog.Trace)
	}
}

// GetLevel maps the hclog level; GoBGP skips building debug messages when
// the level is below debug.
func (l *logAdapter) GetLevel() gobgplog.LogLevel {
	switch {
	case l.log.IsTrace():
		return gobgplog.TraceLevel
	case l.log.IsDebug():
		return gobgplog.DebugLevel
	case l.log.IsInfo():
		return gobgplog.InfoLevel
	case l.log.IsWarn():
		return gobgplog.WarnLevel
	default:
		return gobgplog.ErrorLevel
	}
}
