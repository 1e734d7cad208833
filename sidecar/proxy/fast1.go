package proxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/fedmesh/fedmesh/sidecar/tracing"
)

// The fast path: plain HTTP/1.1 requests, from the app to the client
// sidecar and from the client sidecar to the server sidecar, forwarded by
// a purpose-built HTTP/1.1 forwarder instead of net/http's server,
// httputil.ReverseProxy and net/http's transport. A connection's
// goroutine reads a request head into the connection's buffer, parses
// what the mesh needs (h1parse.go), writes the upstream request head and
// a small body with one write (one TLS record between sidecars) on a
// pooled connection, and streams the response back the same way: no
// http.Request, no http.Header, no goroutine per request.
//
// It serves keep-alive HTTP/1.1 with bodies of known length or chunked,
// outbound (the proxy listener, service-port listeners, captured
// connections) to a service without a route in force whose endpoints
// are all in the sidecar's cluster (reached over pooled mTLS HTTP/1.1),
// and inbound to the app over HTTP/1.1 on a port without request-level
// authorization or rate limits. Any other request is handed to net/http,
// with the connection it came on and the bytes read so far (see
// h1Request.fallback and the fallback reasons below); the connection
// stays with net/http from then on. Refused heads are answered 400 or
// 431 and counted (fedmesh_sidecar_http1_refused_total).

// headTimeout bounds the read of a request head once its first byte has
// come (net/http's ReadHeaderTimeout in serve.go and inbound.go).
const headTimeout = 30 * time.Second

// waitSlice is how often a request waiting for its response checks that
// its client is still there (net/http's server reads in the background
// for the same purpose).
const waitSlice = 250 * time.Millisecond

// Fallback reasons found by the handlers, beside the parser's: the
// reason label of fedmesh_sidecar_http1_fallback_total.
const (
	fallbackGRPC       = "grpc"
	fallbackNoService  = "no_service"
	fallbackRoutes     = "routes"
	fallbackUpstream   = "upstream" // an endpoint in another cluster, a TCP or gRPC port, not configured yet
	fallbackPolicy     = "policy"   // inbound request authorization or rate limit
	fallbackH2C        = "app_h2c"
	fallbackIdentity   = "identity"
	fallbackUnknownSNI = "unknown_sni"
)

// errClientGone is a request whose client left before its response.
var errClientGone = errors.New("client went away")

// outcome tells the connection loop what to do after a request.
type outcome int

const (
	next     outcome = iota // read the next request
	closeNow                // close the connection
	fallBack                // hand the connection to net/http
)

// fastConn is one downstream connection the fast path serves, with its
// buffers and the state of its current request; it belongs to the
// goroutine serving the connection.
type fastConn struct {
	p    *Proxy
	conn net.Conn
	dir  string // "outbound" or "inbound"
	br   *bufio.Reader
	bw   *bufio.Writer
	head []byte
	req  h1Request
	resp h1Response
	// body holds a request body read ahead so that it can be replayed.
	body []byte
	// call is the current request's record (outbound and inbound).
	call call
	// code and written are the status and body bytes sent to the
	// client; errHeader the X-Fedmesh-Error sent, "" when none.
	code      int
	written   int64
	errHeader string
	// trace holds the request's trace headers while a tracer is
	// configured, nil otherwise.
	trace http.Header
	// closeAfter: the connection closes after the current response.
	closeAfter bool
}

var (
	readers = sync.Pool{New: func() any { return bufio.NewReaderSize(nil, 4<<10) }}
	writers = sync.Pool{New: func() any { return bufio.NewWriterSize(nil, 8<<10) }}
)

// serveFast serves the HTTP/1.1 requests of conn with handle until the
// connection ends (or ctx does), or a request is for net/http: then conn
// goes to handoff with every byte read from it so far to be read again.
func (p *Proxy) serveFast(ctx context.Context, conn net.Conn, dir string, handle func(*fastConn) outcome, handoff func(net.Conn)) {
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	fc := &fastConn{p: p, conn: conn, dir: dir}
	fc.br = readers.Get().(*bufio.Reader)
	fc.br.Reset(conn)
	fc.bw = writers.Get().(*bufio.Writer)
	fc.bw.Reset(conn)
	defer func() {
		fc.br.Reset(nil)
		readers.Put(fc.br)
		fc.bw.Reset(nil)
		writers.Put(fc.bw)
	}()
	for {
		if _, err := fc.br.Peek(1); err != nil {
			conn.Close()
			return
		}
		buffered, _ := fc.br.Peek(fc.br.Buffered())
		deadline := !bytes.Contains(buffered, []byte("\r\n\r\n"))
		if deadline {
			_ = conn.SetReadDeadline(time.Now().Add(headTimeout))
		}
		head, err := readHead(fc.br, fc.head)
		fc.head = head
		if deadline {
			_ = conn.SetReadDeadline(time.Time{})
		}
		if err == nil {
			err = parseRequestHead(head, &fc.req)
		}
		if err != nil {
			if fc.refuse(err) {
				lingerClose(conn)
			}
			conn.Close()
			return
		}
		out := fallBack
		if fc.req.fallback == "" {
			out = handle(fc)
			// The end of the response leaves after the request is
			// recorded (metrics, access log), as with net/http, whose
			// handlers return before it flushes.
			if err := fc.bw.Flush(); err != nil {
				out = closeNow
			}
		}
		switch {
		case out == fallBack:
			p.m.http1Fallback.WithLabelValues(dir, fc.req.fallback).Inc()
			p.log.Debug("request handed to net/http", "direction", dir, "reason", fc.req.fallback)
			handoff(fc.replay())
			return
		case out == closeNow || fc.closeAfter:
			conn.Close()
			return
		}
	}
}

// refuse answers a head the parser refused, counts it and reports
// whether it did.
func (fc *fastConn) refuse(err error) bool {
	var he *h1Error
	if !errors.As(err, &he) {
		return false
	}
	fc.p.m.http1Refused.WithLabelValues(fc.dir, he.reason).Inc()
	fc.p.log.Debug("refused an HTTP/1.1 request head", "direction", fc.dir, "reason", he.reason, "remote", fc.conn.RemoteAddr())
	fc.closeAfter = true
	fc.writeError(he.status, "", "fedmesh: bad request head: "+he.reason)
	_ = fc.bw.Flush()
	return true
}

// lingerClose ends the sending side of conn and reads what the client
// still sends for a moment, so that closing a connection with unread
// bytes does not reset it before the client reads the answer (as
// net/http's closeWriteAndWait).
func lingerClose(conn net.Conn) {
	if cw, ok := conn.(interface{ CloseWrite() error }); ok {
		_ = cw.CloseWrite()
	}
	_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	_, _ = io.CopyN(io.Discard, conn, 256<<10)
}

// replay returns the connection with the head just read and whatever
// was read after it, to be read again by net/http.
func (fc *fastConn) replay() net.Conn {
	rest, _ := fc.br.Peek(fc.br.Buffered())
	pre := make([]byte, 0, len(fc.head)+len(rest))
	pre = append(append(pre, fc.head...), rest...)
	return &prefixConn{Conn: fc.conn, pre: pre}
}

// begin fills what the current request says about itself into ri.
func (fc *fastConn) begin(ri *requestInfo, reporter string, now time.Time) {
	req := &fc.req
	fc.code, fc.written, fc.errHeader, fc.trace = 0, 0, "", nil
	fc.closeAfter = req.close
	fc.body = fc.body[:0]
	ri.start = now
	ri.reporter = reporter
	ri.method = methodString(req.method)
	ri.authority = req.authority
	ri.path = req.path
	ri.protocol = "http"
	if req.contentLength >= 0 {
		ri.bytesIn = req.contentLength
	}
}

// end fills the outcome into ri once the response is sent.
func (fc *fastConn) end(ri *requestInfo, now time.Time) {
	ri.duration = now.Sub(ri.start)
	ri.code = fc.status()
	ri.bytesOut = fc.written
	if ri.flags == "" {
		ri.flags = flagNone
	}
}

// status is the status sent, 200 when none was (as statusRecorder).
func (fc *fastConn) status() int {
	if fc.code == 0 {
		return http.StatusOK
	}
	return fc.code
}

// startTrace opens the request's span with start (a Tracer's StartClient
// or StartServer) on a copy of its trace headers, which replace the
// request's own upstream (writeRequest).
func (fc *fastConn) startTrace(t *tracing.Tracer, start func(*tracing.Tracer, http.Header) tracing.Span) tracing.Span {
	if t == nil {
		return tracing.Span{}
	}
	fc.trace = http.Header{}
	for _, h := range fc.req.headers {
		if isTraceHeader(h.name) {
			k := http.CanonicalHeaderKey(string(h.name))
			fc.trace[k] = append(fc.trace[k], string(h.value))
		}
	}
	return start(t, fc.trace)
}

// isTraceHeader reports whether a header carries trace context (the
// headers sidecar/tracing reads and replaces).
func isTraceHeader(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	switch name[0] | 0x20 {
	case 't':
		return eqFold(name, "traceparent") || eqFold(name, "tracestate")
	case 'b':
		return eqFold(name, "b3")
	case 'x':
		return hasPrefixFold(name, "x-b3-")
	}
	return false
}

// methodString returns the method as a string, without allocating for
// the common ones.
func methodString(m []byte) string {
	switch string(m) {
	case http.MethodGet:
		return http.MethodGet
	case http.MethodPost:
		return http.MethodPost
	case http.MethodPut:
		return http.MethodPut
	case http.MethodDelete:
		return http.MethodDelete
	case http.MethodHead:
		return http.MethodHead
	case http.MethodPatch:
		return http.MethodPatch
	case http.MethodOptions:
		return http.MethodOptions
	}
	return string(m)
}

// readBody reads the current request's body ahead into fc.body when it
// has a known length of at most max, so that it can be sent again; it
// reports whether the request can be replayed (no body, or read ahead).
func (fc *fastConn) readBody(max int64) (bool, error) {
	req := &fc.req
	fc.body = fc.body[:0]
	switch {
	case req.chunked || req.contentLength > max:
		return false, nil
	case req.contentLength <= 0:
		return true, nil
	}
	n := int(req.contentLength)
	if cap(fc.body) < n {
		fc.body = make([]byte, n)
	}
	fc.body = fc.body[:n]
	if _, err := io.ReadFull(fc.br, fc.body); err != nil {
		return false, err
	}
	return true, nil
}

// bodyUnread reports whether the current request's body may not have
// been read whole (the connection cannot carry another request then).
func (fc *fastConn) bodyUnread() bool {
	req := &fc.req
	return req.chunked || (req.contentLength > 0 && int64(len(fc.body)) != req.contentLength)
}

// skipHeader says which request headers writeRequest leaves out.
type skipHeader func(name []byte) bool

// writeRequest writes the current request on uc: its request line with
// target, Host authority, its end-to-end headers but those skip names,
// extra (already formatted lines), its framing and its body (read ahead,
// or streamed from the client), with one write when it fits uc's buffer.
func (fc *fastConn) writeRequest(uc *upConn, target []byte, extra []byte, skip skipHeader) error {
	req := &fc.req
	bw := uc.bw
	bw.Write(req.method)
	bw.WriteByte(' ')
	bw.Write(target)
	bw.WriteString(" HTTP/1.1\r\nHost: ")
	bw.WriteString(req.authority)
	bw.WriteString("\r\n")
	for _, h := range req.headers {
		if hopByHopRequest(h.name) || (skip != nil && skip(h.name)) || (fc.trace != nil && isTraceHeader(h.name)) {
			continue
		}
		bw.Write(h.name)
		bw.WriteString(": ")
		bw.Write(h.value)
		bw.WriteString("\r\n")
	}
	for k, vs := range fc.trace {
		for _, v := range vs {
			bw.WriteString(k)
			bw.WriteString(": ")
			bw.WriteString(v)
			bw.WriteString("\r\n")
		}
	}
	bw.Write(extra)
	switch {
	case req.chunked:
		bw.WriteString("Transfer-Encoding: chunked\r\n\r\n")
		n, err := copyChunked(bw, fc.br)
		fc.call.info.bytesIn = n
		if err != nil {
			return &errClientBody{err}
		}
	case req.contentLength >= 0:
		bw.WriteString("Content-Length: ")
		var num [20]byte
		bw.Write(strconv.AppendInt(num[:0], req.contentLength, 10))
		bw.WriteString("\r\n\r\n")
		if int64(len(fc.body)) == req.contentLength {
			bw.Write(fc.body)
		} else if _, err := copyN(bw, fc.br, req.contentLength); err != nil {
			return &errClientBody{err}
		}
	default:
		bw.WriteString("\r\n")
	}
	return bw.Flush()
}

// errClientBody is a request body the client did not send whole.
type errClientBody struct{ err error }

func (e *errClientBody) Error() string { return "reading the request body: " + e.err.Error() }
func (e *errClientBody) Unwrap() error { return e.err }

// hopByHopRequest reports whether a request header stays on its hop:
// the framing and connection headers (written anew), proxy credentials,
// and X-Forwarded-* and Forwarded, which httputil.ReverseProxy's Rewrite
// drops too.
func hopByHopRequest(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	switch name[0] | 0x20 {
	case 'h':
		return eqFold(name, "host")
	case 'c':
		return eqFold(name, "content-length") || eqFold(name, "connection")
	case 't':
		return eqFold(name, "transfer-encoding")
	case 'k':
		return eqFold(name, "keep-alive")
	case 'p':
		return eqFold(name, "proxy-connection") || eqFold(name, "proxy-authorization")
	case 'f':
		return eqFold(name, "forwarded")
	case 'x':
		return eqFold(name, "x-forwarded-for") || eqFold(name, "x-forwarded-host") || eqFold(name, "x-forwarded-proto")
	}
	return false
}

// hopByHopResponse reports whether a response header stays on its hop.
func hopByHopResponse(name []byte) bool {
	if len(name) == 0 {
		return false
	}
	switch name[0] | 0x20 {
	case 'c':
		return eqFold(name, "content-length") || eqFold(name, "connection")
	case 't':
		return eqFold(name, "transfer-encoding") || eqFold(name, "te")
	case 'k':
		return eqFold(name, "keep-alive")
	case 'p':
		return eqFold(name, "proxy-connection") || eqFold(name, "proxy-authenticate")
	case 'u':
		return eqFold(name, "upgrade")
	}
	return false
}

// awaitResponse reads the response head of the request just written on
// uc into fc.resp, by deadline (zero: none). While it waits it checks
// every waitSlice that the client is still there, and gives up with
// errClientGone when it is not. 1xx responses other than 101 are passed
// to the client as they come.
func (fc *fastConn) awaitResponse(uc *upConn, deadline time.Time) error {
	for {
		for {
			slice := time.Now().Add(waitSlice)
			if !deadline.IsZero() && deadline.Before(slice) {
				slice = deadline
			}
			_ = uc.SetReadDeadline(slice)
			_, err := uc.br.Peek(1)
			if err == nil {
				break
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			if !deadline.IsZero() && !time.Now().Before(deadline) {
				return err
			}
			if fc.clientGone() {
				return errClientGone
			}
		}
		if deadline.IsZero() {
			_ = uc.SetReadDeadline(time.Time{})
		} else {
			_ = uc.SetReadDeadline(deadline)
		}
		head, err := readHead(uc.br, uc.head)
		uc.head = head
		if err != nil {
			return err
		}
		if err := parseResponseHead(head, &fc.resp); err != nil {
			return err
		}
		if fc.resp.status >= 200 {
			return nil
		}
		if fc.resp.status == http.StatusSwitchingProtocols {
			return errors.New("101 switching protocols to a request without upgrade")
		}
		// An informational response (103 Early Hints): pass it on.
		fc.bw.Write(head)
		if err := fc.bw.Flush(); err != nil {
			return errClientGone
		}
	}
}

// clientGone reports whether the client has closed its connection,
// waiting at most a moment: bytes it sent ahead (a pipelined request)
// stay buffered. (A deadline already past would fail the read before it
// is tried.)
func (fc *fastConn) clientGone() bool {
	_ = fc.conn.SetReadDeadline(time.Now().Add(100 * time.Microsecond))
	_, err := fc.br.Peek(1)
	_ = fc.conn.SetReadDeadline(time.Time{})
	return err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
}

// relayResponse sends the response whose head awaitResponse read from uc
// to the client, with extra header lines (already formatted), and
// reports whether uc can carry another request. The body goes as it
// came (a length, or chunks with their trailers); one read to the close
// of the connection goes out chunked. A head and a small body leave
// with one write, when the connection loop flushes them.
func (fc *fastConn) relayResponse(uc *upConn, extra []byte) (reusable bool, err error) {
	resp := &fc.resp
	bw := fc.bw
	fc.code = resp.status
	bw.WriteString("HTTP/1.1")
	bw.Write(resp.statusLine[8:])
	bw.WriteString("\r\n")
	for _, h := range resp.headers {
		if hopByHopResponse(h.name) || (resp.hop && listedInConnection(resp.headers, h.name)) {
			continue
		}
		bw.Write(h.name)
		bw.WriteString(": ")
		bw.Write(h.value)
		bw.WriteString("\r\n")
	}
	bw.Write(extra)
	noBody := resp.status == http.StatusNoContent || resp.status == http.StatusNotModified || methodString(fc.req.method) == http.MethodHead
	toClose := !noBody && !resp.chunked && resp.contentLength < 0
	switch {
	case noBody:
		if resp.contentLength >= 0 {
			writeContentLength(bw, resp.contentLength)
		}
	case resp.chunked || toClose:
		bw.WriteString("Transfer-Encoding: chunked\r\n")
	default:
		writeContentLength(bw, resp.contentLength)
	}
	if fc.closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	var n int64
	switch {
	case noBody:
	case resp.chunked:
		n, err = copyChunked(bw, uc.br)
	case toClose:
		n, err = copyToClose(bw, uc.br)
	default:
		n, err = copyN(bw, uc.br, resp.contentLength)
	}
	fc.written = n
	if err != nil {
		// The client sees the response begin and break, as the upstream
		// sent it; the connection cannot carry another.
		_ = bw.Flush()
		fc.closeAfter = true
		return false, err
	}
	// The connection loop flushes what is left (serveFast).
	return !resp.close && !toClose, nil
}

// listedInConnection reports whether a Connection header of headers
// names name (a hop-by-hop header of the sender's choosing).
func listedInConnection(headers []h1Header, name []byte) bool {
	for _, h := range headers {
		if !eqFold(h.name, "connection") {
			continue
		}
		for v := h.value; len(v) > 0; {
			var tok []byte
			tok, v, _ = bytes.Cut(v, []byte{','})
			if bytes.EqualFold(trimOWS(tok), name) {
				return true
			}
		}
	}
	return false
}

func writeContentLength(bw *bufio.Writer, n int64) {
	var num [20]byte
	bw.WriteString("Content-Length: ")
	bw.Write(strconv.AppendInt(num[:0], n, 10))
	bw.WriteString("\r\n")
}

// copyToClose copies a body delimited by the end of its connection as
// chunks.
func copyToClose(bw *bufio.Writer, src *bufio.Reader) (int64, error) {
	var n int64
	var num [16]byte
	for {
		if src.Buffered() == 0 {
			if err := bw.Flush(); err != nil {
				return n, err
			}
		}
		_, err := src.Peek(1)
		if err == nil {
			buf, _ := src.Peek(src.Buffered())
			bw.Write(strconv.AppendInt(num[:0], int64(len(buf)), 16))
			bw.WriteString("\r\n")
			bw.Write(buf)
			bw.WriteString("\r\n")
			_, _ = src.Discard(len(buf))
			n += int64(len(buf))
			continue
		}
		if err == io.EOF {
			_, werr := bw.WriteString("0\r\n\r\n")
			return n, werr
		}
		return n, err
	}
}

// writeError answers the current request with code, a header line
// (name: value, when name is not "") and a plain text body, as
// http.Error does; the connection loop flushes it.
func (fc *fastConn) writeError(code int, header, body string) {
	bw := fc.bw
	fc.code = code
	body += "\n"
	bw.WriteString("HTTP/1.1 ")
	var num [20]byte
	bw.Write(strconv.AppendInt(num[:0], int64(code), 10))
	bw.WriteByte(' ')
	bw.WriteString(http.StatusText(code))
	bw.WriteString("\r\nContent-Type: text/plain; charset=utf-8\r\nX-Content-Type-Options: nosniff\r\n")
	if header != "" {
		bw.WriteString(header)
		bw.WriteString("\r\n")
	}
	writeContentLength(bw, int64(len(body)))
	if fc.closeAfter {
		bw.WriteString("Connection: close\r\n")
	}
	bw.WriteString("\r\n")
	bw.WriteString(body)
	fc.written = int64(len(body))
}
