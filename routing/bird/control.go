package bird

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
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

// read reads one reply: a final error line (codes 8000 and up) is the
// error, an empty final "0000" line is left out.
func (cc *controlConn) read(ctx context.Context) ([]replyLine, error) {
	out, err := cc.readAll(ctx)
	if err != nil || len(out) == 0 {
		return out, err
	}
	last := out[len(out)-1]
	switch {
	case last.code >= 8000:
		return out[:len(out)-1], fmt.Errorf("%s", last.text)
	case last.code == 0 && last.text == "":
		return out[:len(out)-1], nil
	}
	return out, nil
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

// Reply codes of `configure` (BIRD's doc/reply_codes).
const (
	codeReconfigured   = 3  // Reconfigured
	codeReconfigQueued = 4  // Reconfiguration in progress
	codeReconfigBusy   = 5  // Reconfiguration already in progress, queueing new config
	codeShuttingDown   = 6  // Reconfiguration ignored, shutting down
	codeNothingToDo    = 19 // Nothing to do
	codeConfigOK       = 20 // Configuration OK (configure check)
)

// configureSocket asks the BIRD on socket to read file: `configure "file"`
// or, with check, `configure check "file"` (parse it with the running
// daemon's own parser and user, apply nothing). It talks to the control
// socket itself, so every failure says what failed: the socket
// (ErrSocketMissing, ErrBirdDown, ErrSocketPermission), BIRD unable to read
// the file as the user it runs as (ErrBirdCannotRead), or a line BIRD
// refuses (a *ConfigError, which errorAt turns into ErrIgnoreMTUUnsupported
// when the line is `ignoremtu`).
func configureSocket(ctx context.Context, socket, file string, check bool) (ConfigureResult, error) {
	cc, err := dialControl(ctx, socket)
	if err != nil {
		return "", err
	}
	defer cc.Close()
	cmd := "configure"
	if check {
		cmd += " check"
	}
	if file != "" {
		cmd += " " + strconv.Quote(file)
	}
	if dl, ok := ctx.Deadline(); ok {
		_ = cc.c.SetDeadline(dl)
	}
	if _, err := cc.c.Write([]byte(cmd + "\n")); err != nil {
		return "", fmt.Errorf("sending %q to bird on %s: %w", cmd, socket, err)
	}
	lines, err := cc.readAll(ctx)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			// The socket's deadline is ctx's: BIRD may still take the
			// file, so the outcome is unknown.
			return "", fmt.Errorf("waiting for bird on %s to answer %q: %w", socket, cmd, context.DeadlineExceeded)
		}
		return "", fmt.Errorf("reading bird's answer to %q on %s: %w", cmd, socket, err)
	}
	return configureResult(file, lines)
}

// configureResult reads the reply to `configure [check] "file"`.
func configureResult(file string, lines []replyLine) (ConfigureResult, error) {
	var other []string
	for _, l := range lines {
		switch {
		case l.code == 2: // Reading configuration from FILE
			continue
		case l.code == codeReconfigured, l.code == codeNothingToDo:
			return Reconfigured, nil
		case l.code == codeReconfigQueued:
			return ReconfigInProgress, nil
		case l.code == codeReconfigBusy:
			return ReconfigQueued, nil
		case l.code == codeConfigOK:
			return ConfigOK, nil
		case l.code == codeShuttingDown:
			return "", fmt.Errorf("bird did not read %s: %w", file, ErrBirdShuttingDown)
		case l.code >= 8000:
			return "", configureError(file, l.text)
		}
		other = append(other, l.text)
	}
	if len(other) == 0 {
		return "", errors.New("empty reply from bird to configure")
	}
	return "", fmt.Errorf("unexpected reply from bird to configure: %s", strings.Join(other, "; "))
}

// configureError names the cause of BIRD's refusal to take file: a line of
// it (*ConfigError), or a file it cannot open ("FILE: Permission denied",
// "FILE: No such file or directory").
func configureError(file, text string) error {
	ce, isLine := parseConfigError(text)
	switch {
	case strings.HasSuffix(text, "Permission denied"):
		// "FILE: Permission denied", or an include it cannot open:
		// "MAIN:3:1 Unable to open included file FILE: Permission denied".
		return fmt.Errorf("bird: %s: %w", text, ErrBirdCannotRead)
	case strings.HasSuffix(text, "No such file or directory"):
		return fmt.Errorf("bird: %s: %w", text, ErrBirdNoFile)
	case isLine:
		return ce
	}
	if file == "" {
		return fmt.Errorf("bird refused its configuration: %s", text)
	}
	return fmt.Errorf("bird refused %s: %s", file, text)
}

// readAll reads one reply like read, but keeps the final line whatever
// its code, errors included (configure answers with an 8002 line).
func (cc *controlConn) readAll(ctx context.Context) ([]replyLine, error) {
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
		c, err := strconv.Atoi(l[:4])
		if err != nil {
			return out, fmt.Errorf("unexpected line %q", l)
		}
		code = c
		out = append(out, replyLine{code, l[5:]})
		if l[4] == ' ' {
			return out, nil
		}
	}
}
