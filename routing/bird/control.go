package bird

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"time"
)

// controlConn is a connection to BIRD's control socket, speaking the
// protocol birdc speaks: one command line out, reply lines "CODE-text"
// (more follow), " text" (continues the previous code) and "CODE text"
// (the last); codes 8000 and up are errors. Exported reads 10,000 routes
// through it without a birdc process and tells why BIRD cannot be reached.
type controlConn struct {
	c  net.Conn
	rd *bufio.Reader
}

// replyLine is one line of a reply: its code (that of the line it
// continues, for a continuation) and its text.
type replyLine struct {
	code int
	text string
}

// dialControl connects to the BIRD control socket and reads its greeting.
// The error says why it failed: ErrSocketMissing, ErrBirdDown or
// ErrSocketPermission, each naming the socket.
func dialControl(ctx context.Context, socket string) (*controlConn, error) {
	var d net.Dialer
	c, err := d.DialContext(ctx, "unix", socket)
	if err != nil {
		return nil, classifyDial(socket, err)
	}
	cc := &controlConn{c: c, rd: bufio.NewReaderSize(c, 64<<10)}
	if _, err := cc.read(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("reading the greeting of bird on %s: %w", socket, err)
	}
	return cc, nil
}

// classifyDial names the cause of a failed connection to socket.
func classifyDial(socket string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOENT):
		return fmt.Errorf("connecting to %s: %w", socket, ErrSocketMissing)
	case errors.Is(err, syscall.ECONNREFUSED):
		return fmt.Errorf("connecting to %s: %w", socket, ErrBirdDown)
	case errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM):
		return fmt.Errorf("connecting to %s: %w", socket, ErrSocketPermission)
	}
	return fmt.Errorf("connecting to bird on %s: %w", socket, err)
}

func (cc *controlConn) Close() error { return cc.c.Close() }

// cmd sends one command and returns its reply, without the final line
// when that is an empty "0000". A reply with an error code is an error
// carrying BIRD's text.
func (cc *controlConn) cmd(ctx context.Context, line string) ([]replyLine, error) {
	if dl, ok := ctx.Deadline(); ok {
		_ = cc.c.SetDeadline(dl)
	} else {
		_ = cc.c.SetDeadline(time.Time{})
	}
	if _, err := cc.c.Write([]byte(line + "\n")); err != nil {
		return nil, fmt.Errorf("sending %q to bird: %w", line, err)
	}
	out, err := cc.read(ctx)
	if err != nil {
		return nil, fmt.Errorf("bird answering %q: %w", line, err)
	}
	return out, nil
}

// read reads one reply.
func (cc *controlConn) read(ctx context.Context) ([]replyLine, error) {
	var out []replyLine
	code := 0
	for {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		raw, err := cc.rd.ReadString('\n')
		if err != nil {
			return out, err
		}
		l := strings.TrimRight(raw, "\n")
		if strings.HasPrefix(l, " ") {
			out = append(out, replyLine{code, l[1:]})
			continue
		}
		if len(l) < 5 || (l[4] != '-' && l[4] != ' ') {
			return out, fmt.Errorf("unexpected line %q", l)
		}
		c := 0
		for _, ch := range l[:4] {
			if ch < '0' || ch > '9' {
				return out, fmt.Errorf("unexpected line %q", l)
			}
			c = c*10 + int(ch-'0')
		}
		code = c
		text := l[5:]
		if l[4] == '-' {
			out = append(out, replyLine{code, text})
			continue
		}
		if code >= 8000 {
			return out, fmt.Errorf("%s", text)
		}
		if code != 0 || text != "" {
			out = append(out, replyLine{code, text})
		}
		return out, nil
	}
}

// texts joins the reply's texts as birdc would print them.
func texts(lines []replyLine) string {
	var b strings.Builder
	for _, l := range lines {
		b.WriteString(l.text)
		b.WriteByte('\n')
	}
	return b.String()
}
