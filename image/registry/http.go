package registry

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// A small HTTP/1.1 client over net and crypto/tls: net/http would add
// 2.5 MB to the arm64 binary for features a registry client does not use.
// One request per connection ("Connection: close"); bodies with a
// Content-Length, chunked, or until the connection closes; redirects
// followed to http and https only. Every size the server controls has a
// limit: the status line and headers (maxHeaderBytes, maxHeaders), chunk
// size lines, and (by the callers) bodies.

// Limits of what a server may send.
const (
	maxHeaderBytes = 64 << 10 // status line, headers and chunk trailers
	maxHeaders     = 128
	maxChunkLine   = 4096 // a chunk's size line, a trailer line
	maxRedirects   = 5
	dialTimeout    = 30 * time.Second
	// ioTimeout is how long a connection may make no progress.
	ioTimeout = 60 * time.Second
)

// The slow floor: a connection that receives fewer than slowBytes in a
// window of slowWindow is dropped (errTooSlow). ioTimeout alone lets a
// registry that sends a byte a minute hold a pull — and the update
// waiting on it, a SIGHUP reload's included, which no client can
// cancel — for good. A link of some 20 bytes a second or more passes.
var (
	slowWindow       = 60 * time.Second
	slowBytes  int64 = 1 << 10
)

// errTooSlow ends a connection under the slow floor.
var errTooSlow = errors.New("the registry sends too slowly")

// endpoint is how to reach one registry host.
type endpoint struct {
	host     string // "HOST[:PORT]" as the reference names it
	insecure bool   // plain HTTP
	tls      *tls.Config
}

// request is one HTTP request.
type request struct {
	method string
	url    *url.URL
	header [][2]string
	body   io.Reader
	length int64 // Content-Length of body; -1: no body
}

// response is an HTTP response whose body the caller reads and closes.
type response struct {
	status int
	header map[string][]string // keys lowercased
	body   io.ReadCloser
	url    *url.URL // after redirects
}

// get returns a header's first value.
func (r *response) get(key string) string {
	if v := r.header[strings.ToLower(key)]; len(v) > 0 {
		return v[0]
	}
	return ""
}

// deadlineConn gives each read and write ioTimeout to make progress, and
// holds the connection's reads to the slow floor.
type deadlineConn struct {
	net.Conn
	window time.Time // when the reads' current window began
	got    int64     // bytes read in it
}

func (c *deadlineConn) Read(p []byte) (int, error) {
	if c.window.IsZero() {
		c.window = time.Now()
	}
	c.SetReadDeadline(time.Now().Add(ioTimeout))
	n, err := c.Conn.Read(p)
	c.got += int64(n)
	if since := time.Since(c.window); since >= slowWindow {
		if c.got < slowBytes && err == nil {
			return n, fmt.Errorf("%w: %d bytes in %s, under the floor of %d bytes a %s", errTooSlow, c.got, since.Round(time.Millisecond), slowBytes, slowWindow)
		}
		c.window, c.got = time.Now(), 0
	}
	return n, err
}

func (c *deadlineConn) Write(p []byte) (int, error) {
	c.SetWriteDeadline(time.Now().Add(ioTimeout))
	return c.Conn.Write(p)
}

// dial connects to u's host with TLS unless u is http.
func dial(ctx context.Context, u *url.URL, cfg *tls.Config) (net.Conn, error) {
	host := u.Host
	if u.Port() == "" {
		port := "443"
		if u.Scheme == "http" {
			port = "80"
		}
		host = net.JoinHostPort(u.Hostname(), port)
	}
	d := net.Dialer{Timeout: dialTimeout}
	conn, err := d.DialContext(ctx, "tcp", host)
	if err != nil {
		return nil, err
	}
	if u.Scheme == "http" {
		return &deadlineConn{Conn: conn}, nil
	}
	c := cfg.Clone()
	c.ServerName = u.Hostname()
	tc := tls.Client(conn, c)
	hctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	if err := tc.HandshakeContext(hctx); err != nil {
		conn.Close()
		return nil, fmt.Errorf("TLS handshake with %s: %w", host, err)
	}
	return &deadlineConn{Conn: tc}, nil
}

// roundTrip sends req on a new connection and reads the response head.
func roundTrip(ctx context.Context, req *request, cfg *tls.Config) (*response, error) {
	conn, err := dial(ctx, req.url, cfg)
	if err != nil {
		return nil, err
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	fail := func(err error) (*response, error) {
		stop()
		conn.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	w := bufio.NewWriterSize(conn, 32<<10)
	writeHead(w, req)
	if req.length >= 0 && req.body != nil {
		n, err := io.Copy(w, io.LimitReader(req.body, req.length))
		if err == nil && n != req.length {
			err = fmt.Errorf("request body: %d bytes, not %d", n, req.length)
		}
		if err != nil {
			return fail(err)
		}
	}
	if err := w.Flush(); err != nil {
		return fail(err)
	}
	br := bufio.NewReaderSize(conn, 32<<10)
	resp, err := readHead(br)
	if err != nil {
		return fail(err)
	}
	resp.url = req.url
	body, err := bodyReader(br, resp, req.method)
	if err != nil {
		return fail(err)
	}
	resp.body = &connBody{r: body, conn: conn, stop: stop}
	return resp, nil
}

// writeHead writes the request line and headers.
func writeHead(w *bufio.Writer, req *request) {
	path := req.url.EscapedPath()
	if path == "" {
		path = "/"
	}
	if req.url.RawQuery != "" {
		path += "?" + req.url.RawQuery
	}
	fmt.Fprintf(w, "%s %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: berth\r\nConnection: close\r\n", req.method, path, req.url.Host)
	for _, h := range req.header {
		fmt.Fprintf(w, "%s: %s\r\n", h[0], h[1])
	}
	if req.length >= 0 {
		fmt.Fprintf(w, "Content-Length: %d\r\n", req.length)
	}
	w.WriteString("\r\n")
}

// readLine reads one CRLF- or LF-terminated line, charging its bytes to
// budget.
func readLine(br *bufio.Reader, budget *int) (string, error) {
	var line []byte
	for {
		chunk, err := br.ReadSlice('\n')
		*budget -= len(chunk)
		if *budget < 0 {
			return "", errors.New("response header or chunk line over its size limit")
		}
		line = append(line, chunk...)
		if err == bufio.ErrBufferFull {
			continue
		}
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", fmt.Errorf("reading the response header: %w", err)
		}
		return strings.TrimRight(string(line), "\r\n"), nil
	}
}

// readHead reads the status line and headers, skipping 1xx responses.
func readHead(br *bufio.Reader) (*response, error) {
	budget := maxHeaderBytes
	for {
		line, err := readLine(br, &budget)
		if err != nil {
			return nil, err
		}
		proto, rest, _ := strings.Cut(line, " ")
		code, _, _ := strings.Cut(rest, " ")
		status, err := strconv.Atoi(code)
		if !strings.HasPrefix(proto, "HTTP/1.") || err != nil || status < 100 || status > 999 {
			return nil, fmt.Errorf("malformed status line %s", quoted(line))
		}
		resp := &response{status: status, header: make(map[string][]string)}
		if err := readHeaders(br, &budget, resp.header); err != nil {
			return nil, err
		}
		if status >= 200 {
			return resp, nil
		}
	}
}

// readHeaders reads header lines until the empty line.
func readHeaders(br *bufio.Reader, budget *int, into map[string][]string) error {
	for n := 0; ; n++ {
		line, err := readLine(br, budget)
		if err != nil {
			return err
		}
		if line == "" {
			return nil
		}
		if n >= maxHeaders {
			return fmt.Errorf("response has over %d header lines", maxHeaders)
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" || strings.ContainsAny(k, " \t") {
			return fmt.Errorf("malformed header line %s", quoted(line))
		}
		k = strings.ToLower(k)
		into[k] = append(into[k], strings.TrimSpace(v))
	}
}

// bodyReader frames the response body.
func bodyReader(br *bufio.Reader, resp *response, method string) (io.Reader, error) {
	if method == "HEAD" || resp.status == 204 || resp.status == 304 {
		return strings.NewReader(""), nil
	}
	if te := resp.get("Transfer-Encoding"); te != "" {
		if !strings.EqualFold(te, "chunked") {
			return nil, fmt.Errorf("unsupported Transfer-Encoding %s", quoted(te))
		}
		return &chunkedReader{br: br}, nil
	}
	if cl := resp.header["content-length"]; len(cl) > 0 {
		n, err := strconv.ParseInt(cl[0], 10, 64)
		if err != nil || n < 0 || len(cl) > 1 && cl[1] != cl[0] {
			return nil, fmt.Errorf("malformed Content-Length %s", quoted(strings.Join(cl, ",")))
		}
		return &exactReader{r: io.LimitReader(br, n), left: n}, nil
	}
	return br, nil // until the server closes the connection
}

// exactReader turns an early end of a Content-Length body into an error.
type exactReader struct {
	r    io.Reader
	left int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.left == 0 {
		return 0, io.EOF
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	if err == io.EOF && e.left > 0 {
		err = fmt.Errorf("body ended %d bytes short of its Content-Length: %w", e.left, io.ErrUnexpectedEOF)
	}
	return n, err
}

// chunkedReader decodes a chunked body.
type chunkedReader struct {
	br   *bufio.Reader
	left int64 // of the current chunk
	done bool
	err  error
}

func (c *chunkedReader) Read(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	if c.left == 0 {
		if c.err = c.next(); c.err != nil {
			return 0, c.err
		}
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.br.Read(p)
	c.left -= int64(n)
	if err == io.EOF {
		err = io.ErrUnexpectedEOF
	}
	if c.left == 0 && err == nil {
		var rest string
		if rest, err = c.line(); err == nil && rest != "" {
			err = fmt.Errorf("malformed chunk: %s after its data, want CRLF", quoted(rest))
		}
		c.err = err
	}
	return n, err
}

// next reads the next chunk's size line; after the last chunk, the
// trailers, then io.EOF.
func (c *chunkedReader) next() error {
	if c.done {
		return io.EOF
	}
	line, err := c.line()
	if err != nil {
		return err
	}
	size, _, _ := strings.Cut(line, ";")
	n, perr := strconv.ParseInt(strings.TrimSpace(size), 16, 64)
	if perr != nil || n < 0 || len(size) > 16 {
		return fmt.Errorf("malformed chunk size %s", quoted(line))
	}
	if n > 0 {
		c.left = n
		return nil
	}
	c.done = true
	for range maxHeaders {
		l, err := c.line()
		if err != nil {
			return err
		}
		if l == "" {
			return io.EOF
		}
	}
	return fmt.Errorf("chunked body has over %d trailer lines", maxHeaders)
}

func (c *chunkedReader) line() (string, error) {
	budget := maxChunkLine
	return readLine(c.br, &budget)
}

// connBody closes the connection with the body.
type connBody struct {
	r    io.Reader
	conn net.Conn
	stop func() bool
}

func (b *connBody) Read(p []byte) (int, error) { return b.r.Read(p) }
func (b *connBody) Close() error {
	b.stop()
	return b.conn.Close()
}

// readAll reads a whole body of at most limit bytes and closes it.
func readAll(resp *response, limit int64, what string) ([]byte, error) {
	defer resp.body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: over the limit of %d bytes", what, limit)
	}
	return b, nil
}

// truncate shortens what a server sent for an error message, to 80
// bytes cut between characters, and escapes its control characters and
// invalid bytes (\xNN, \u00NN): the message reaches terminals (berth
// pull's stderr, berth ps, the console), where a hostile registry's body
// could otherwise set the title, clear the screen or forge a line.
func truncate(s string) string {
	cut, more := cut80(s)
	var b strings.Builder
	for i, r := range cut {
		switch {
		case r == utf8.RuneError && !strings.HasPrefix(cut[i:], "\uFFFD"):
			fmt.Fprintf(&b, "\\x%02x", cut[i])
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\x%02x", r)
		case r >= 0x80 && r <= 0x9f:
			fmt.Fprintf(&b, "\\u%04x", r)
		default:
			b.WriteRune(r)
		}
	}
	if more {
		b.WriteString("…")
	}
	return b.String()
}

// quoted is what a server sent, cut as truncate cuts it, in Go's quoted
// form (strconv.Quote): for the messages that show it between quotes,
// each control byte, invalid byte and quote escaped once.
func quoted(s string) string {
	cut, more := cut80(s)
	q := strconv.Quote(cut)
	if more {
		q += "…"
	}
	return q
}

// cut80 is s's first 80 bytes, cut before the character that crosses
// them, and whether anything was left out.
func cut80(s string) (string, bool) {
	for i := range s {
		if i >= 80 {
			return s[:i], true
		}
	}
	return s, false
}

// errRedirect is wrapped by refused redirects.
var errRedirect = errors.New("refused redirect")

// follow returns where a redirect response points, or nil when resp is
// not one; it refuses schemes other than http and https, and https to
// http.
func follow(resp *response) (*url.URL, error) {
	switch resp.status {
	case 301, 302, 303, 307, 308:
	default:
		return nil, nil
	}
	loc := resp.get("Location")
	u, err := resp.url.Parse(loc)
	if err != nil || loc == "" {
		return nil, fmt.Errorf("%w: malformed Location %s", errRedirect, quoted(loc))
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return nil, fmt.Errorf("%w to %s: only http and https are followed", errRedirect, quoted(loc))
	}
	if resp.url.Scheme == "https" && u.Scheme == "http" {
		return nil, fmt.Errorf("%w from https to %s", errRedirect, quoted(loc))
	}
	u.Fragment = ""
	return u, nil
}
