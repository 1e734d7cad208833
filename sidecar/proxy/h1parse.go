package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"

	"golang.org/x/net/http/httpguts"
)

// The fast path's HTTP/1.1 parser (fast1.go serves what it parses). It
// reads a request or response head into a buffer the connection owns
// and parses it in place: the header names and values are slices of
// that buffer, valid until the next head is read. It is strict where a
// lenient parser lets two HTTP/1.1 implementations disagree on where a
// message ends (request smuggling):
//
//   - every line ends in CRLF; a bare LF anywhere in a head is refused;
//   - a request with both Content-Length and Transfer-Encoding, with
//     Content-Length values that differ, or with a transfer coding other
//     than one "chunked" is refused;
//   - obsolete line folding, a header line without a colon, a name that
//     is not a token and a value with control characters are refused;
//   - a head longer than maxHeadBytes or with more than maxHeaders
//     lines is refused with 431.
//
// What it accepts, net/http's server accepts too and reads the same way
// (FuzzParseRequestHead checks it). Requests the fast path leaves to
// net/http (see h1Request.fallback) are recognized, not refused.

// Limits of a head read by the fast path (Envoy's defaults are 60 KiB
// and 100 headers).
const (
	maxHeadBytes = 64 << 10
	maxHeaders   = 100
)

// h1Error is a head the fast path refuses: status is what the client
// gets (400 or 431), reason the label of the counter that counts it.
type h1Error struct {
	status int
	reason string
}

func (e *h1Error) Error() string { return "http/1.1 parse: " + e.reason }

// Refusal reasons, the reason label of
// fedmesh_sidecar_http1_refused_total.
var (
	errBareLF         = &h1Error{http.StatusBadRequest, "bare_lf"}
	errHeadTooLarge   = &h1Error{http.StatusRequestHeaderFieldsTooLarge, "head_too_large"}
	errTooManyHeaders = &h1Error{http.StatusRequestHeaderFieldsTooLarge, "too_many_headers"}
	errRequestLine    = &h1Error{http.StatusBadRequest, "request_line"}
	errStatusLine     = &h1Error{http.StatusBadGateway, "status_line"}
	errHeaderLine     = &h1Error{http.StatusBadRequest, "header_line"}
	errObsFold        = &h1Error{http.StatusBadRequest, "obs_fold"}
	errContentLength  = &h1Error{http.StatusBadRequest, "content_length"}
	errCLAndTE        = &h1Error{http.StatusBadRequest, "content_length_and_transfer_encoding"}
	errTransferCoding = &h1Error{http.StatusBadRequest, "transfer_encoding"}
	errHost           = &h1Error{http.StatusBadRequest, "host"}
	errTarget         = &h1Error{http.StatusBadRequest, "target"}
	errChunk          = &h1Error{http.StatusBadRequest, "chunk"}
	errHeadIncomplete = errors.New("http/1.1 head ends before its empty line")
	errBodyIncomplete = errors.New("http/1.1 body ends early")
)

// h1Header is one header line of a head: slices of the head's buffer.
type h1Header struct{ name, value []byte }

// h1Message is what a request head and a response head share: their
// headers and framing.
type h1Message struct {
	headers []h1Header
	// contentLength is the body's length, -1 when the head gives none
	// (chunked, or a response read until the connection closes).
	contentLength int64
	chunked       bool
	// close: the sender closes the connection after this message
	// (Connection: close, or HTTP/1.0 without keep-alive).
	close bool
	// hop: a hop-by-hop header other than Connection, Keep-Alive and
	// Transfer-Encoding was sent (Upgrade, TE, Trailer, a header named
	// in Connection): the message needs more than the fast path does.
	hop bool
}

// h1Request is a parsed request head.
type h1Request struct {
	h1Message
	method, target []byte
	// authority is the Host header, or the host of an absolute-form
	// target; path the target's path, unescaped as net/http's URL.Path.
	authority, path string
	// fallback, when not "", names why net/http serves this request
	// instead of the fast path.
	fallback string
	// contentType is the Content-Type header (for gRPC detection).
	contentType []byte
}

// h1Response is a parsed response head.
type h1Response struct {
	h1Message
	status int
	// statusLine is the line as received, without CRLF.
	statusLine []byte
}

// readHead appends the next head (the start line, the header lines and
// the empty line, CRLFs included) from br to buf[:0] and returns it. It
// fails with errHeadTooLarge beyond maxHeadBytes, io.EOF when br ends
// before the head's first byte and errHeadIncomplete when it ends inside
// the head.
func readHead(br *bufio.Reader, buf []byte) ([]byte, error) {
	buf = buf[:0]
	lineStart := 0
	for {
		frag, err := br.ReadSlice('\n')
		buf = append(buf, frag...)
		if len(buf) > maxHeadBytes {
			return buf, errHeadTooLarge
		}
		switch {
		case err == bufio.ErrBufferFull:
			continue
		case err == io.EOF && len(buf) == 0:
			return buf, io.EOF
		case err == io.EOF:
			return buf, errHeadIncomplete
		case err != nil:
			return buf, err
		}
		line := buf[lineStart:]
		if len(line) <= 2 && (len(line) == 1 || line[0] == '\r') {
			// "\r\n", or a bare "\n" the parser refuses.
			return buf, nil
		}
		lineStart = len(buf)
	}
}

// nextLine cuts the first line off head: the line without its CRLF and
// the rest. A line ending in a bare LF is errBareLF.
func nextLine(head []byte) (line, rest []byte, err error) {
	i := bytes.IndexByte(head, '\n')
	if i < 0 {
		return nil, nil, errHeadIncomplete
	}
	if i == 0 || head[i-1] != '\r' {
		return nil, nil, errBareLF
	}
	line = head[:i-1]
	if bytes.IndexByte(line, '\r') >= 0 {
		return nil, nil, errHeaderLine
	}
	return line, head[i+1:], nil
}

// parseRequestHead parses head (from readHead) into req, reusing its
// header slice. A refused head is an *h1Error.
func parseRequestHead(head []byte, req *h1Request) error {
	hs := req.headers[:0]
	*req = h1Request{}
	req.headers = hs
	req.contentLength = -1
	line, rest, err := nextLine(head)
	if err != nil {
		return err
	}
	sp1 := bytes.IndexByte(line, ' ')
	if sp1 <= 0 {
		return errRequestLine
	}
	req.method = line[:sp1]
	sp2 := bytes.IndexByte(line[sp1+1:], ' ')
	if sp2 <= 0 {
		return errRequestLine
	}
	req.target = line[sp1+1 : sp1+1+sp2]
	proto := line[sp1+1+sp2+1:]
	for _, c := range req.method {
		if !httpguts.IsTokenRune(rune(c)) {
			return errRequestLine
		}
	}
	switch string(proto) {
	case "HTTP/1.1":
	case "HTTP/1.0":
		req.fallback = "http/1.0"
	case "HTTP/2.0":
		req.fallback = "h2c"
	default:
		req.fallback = "version"
	}
	for _, c := range req.target {
		if c <= ' ' || c == 0x7f {
			return errTarget
		}
	}
	if err := req.parseHeaders(rest); err != nil {
		return err
	}
	if req.fallback != "" {
		return nil
	}
	if err := req.parseTarget(); err != nil {
		return err
	}
	return nil
}

// parseHeaders reads the header lines of a request head.
func (req *h1Request) parseHeaders(rest []byte) error {
	var cl []byte
	var host []byte
	hosts, tes := 0, 0
	err := parseHeaderLines(rest, &req.h1Message, func(name, value []byte) error {
		switch {
		case eqFold(name, "host"):
			hosts++
			host = value
		case eqFold(name, "content-length"):
			if cl != nil && !bytes.Equal(cl, value) {
				return errContentLength
			}
			cl = value
		case eqFold(name, "transfer-encoding"):
			tes++
			if tes > 1 || !eqFold(value, "chunked") {
				return errTransferCoding
			}
			req.chunked = true
		case eqFold(name, "connection"):
			return req.connectionTokens(value)
		case eqFold(name, "expect"):
			if req.fallback == "" {
				req.fallback = "expect"
			}
		case eqFold(name, "upgrade"), eqFold(name, "te"), eqFold(name, "trailer"), eqFold(name, "http2-settings"):
			req.hop = true
		case eqFold(name, "content-type"):
			req.contentType = value
		}
		return nil
	})
	if err != nil {
		return err
	}
	if cl != nil {
		if req.chunked {
			return errCLAndTE
		}
		n, ok := parseContentLength(cl)
		if !ok {
			return errContentLength
		}
		req.contentLength = n
	}
	if req.fallback != "" {
		// net/http judges the Host of what it serves.
		return nil
	}
	if hosts != 1 || !httpguts.ValidHostHeader(string(host)) {
		return errHost
	}
	req.authority = string(host)
	if req.hop && req.fallback == "" {
		req.fallback = "hop_by_hop"
	}
	return nil
}

// connectionTokens reads a Connection header: close ends the connection
// after the message; any token but close and keep-alive nominates a
// header the fast path does not handle.
func (m *h1Message) connectionTokens(v []byte) error {
	for len(v) > 0 {
		var tok []byte
		tok, v, _ = bytes.Cut(v, []byte{','})
		tok = trimOWS(tok)
		switch {
		case len(tok) == 0:
		case eqFold(tok, "close"):
			m.close = true
		case eqFold(tok, "keep-alive"):
		default:
			m.hop = true
		}
	}
	return nil
}

// parseTarget reads the request target: origin form (/path?query) or
// absolute form (http://host/path), whose host wins over Host as in
// net/http. Other forms (*, authority) go to net/http.
func (req *h1Request) parseTarget() error {
	t := req.target
	if len(t) > 0 && t[0] == '/' && bytes.IndexByte(t, '%') < 0 && !(len(t) > 1 && t[1] == '/') {
		p := t
		if i := bytes.IndexByte(t, '?'); i >= 0 {
			p = t[:i]
		}
		req.path = string(p)
		return nil
	}
	if len(t) == 0 || (t[0] != '/' && !hasPrefixFold(t, "http://")) {
		req.fallback = "target_form"
		return nil
	}
	u, err := url.ParseRequestURI(string(t))
	if err != nil {
		return errTarget
	}
	req.path = u.Path
	if u.Host != "" {
		if !httpguts.ValidHostHeader(u.Host) {
			return errHost
		}
		req.authority = u.Host
	}
	return nil
}

// parseResponseHead parses head (from readHead) into resp, reusing its
// header slice.
func parseResponseHead(head []byte, resp *h1Response) error {
	hs := resp.headers[:0]
	*resp = h1Response{}
	resp.headers = hs
	resp.contentLength = -1
	line, rest, err := nextLine(head)
	if err != nil {
		return err
	}
	resp.statusLine = line
	switch {
	case bytes.HasPrefix(line, []byte("HTTP/1.1 ")):
	case bytes.HasPrefix(line, []byte("HTTP/1.0 ")):
		resp.close = true
	default:
		return errStatusLine
	}
	code := line[9:]
	if len(code) < 3 || (len(code) > 3 && code[3] != ' ') {
		return errStatusLine
	}
	for _, c := range code[:3] {
		if c < '0' || c > '9' {
			return errStatusLine
		}
		resp.status = resp.status*10 + int(c-'0')
	}
	if resp.status < 100 {
		return errStatusLine
	}
	var cl []byte
	keepAlive := false
	err = parseHeaderLines(rest, &resp.h1Message, func(name, value []byte) error {
		switch {
		case eqFold(name, "content-length"):
			if cl != nil && !bytes.Equal(cl, value) {
				return errContentLength
			}
			cl = value
		case eqFold(name, "transfer-encoding"):
			if resp.chunked || !eqFold(value, "chunked") {
				return errTransferCoding
			}
			resp.chunked = true
		case eqFold(name, "connection"):
			if bytes.Contains(bytes.ToLower(value), []byte("keep-alive")) {
				keepAlive = true
			}
			return resp.connectionTokens(value)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if keepAlive && bytes.HasPrefix(line, []byte("HTTP/1.0 ")) {
		resp.close = false
	}
	if cl != nil && !resp.chunked {
		n, ok := parseContentLength(cl)
		if !ok {
			return errContentLength
		}
		resp.contentLength = n
	}
	return nil
}

// parseHeaderLines reads the header lines of a head (after its start
// line) into m.headers, calling each for every line.
func parseHeaderLines(rest []byte, m *h1Message, each func(name, value []byte) error) error {
	for {
		line, r, err := nextLine(rest)
		if err != nil {
			return err
		}
		rest = r
		if len(line) == 0 {
			if len(rest) != 0 {
				return errHeaderLine
			}
			return nil
		}
		if line[0] == ' ' || line[0] == '\t' {
			return errObsFold
		}
		if len(m.headers) == maxHeaders {
			return errTooManyHeaders
		}
		colon := bytes.IndexByte(line, ':')
		if colon <= 0 {
			return errHeaderLine
		}
		name, value := line[:colon], trimOWS(line[colon+1:])
		for _, c := range name {
			if !httpguts.IsTokenRune(rune(c)) {
				return errHeaderLine
			}
		}
		for _, c := range value {
			if (c < ' ' && c != '\t') || c == 0x7f {
				return errHeaderLine
			}
		}
		m.headers = append(m.headers, h1Header{name: name, value: value})
		if err := each(name, value); err != nil {
			return err
		}
	}
}

// parseContentLength reads a Content-Length value: decimal digits only,
// at most 18 of them.
func parseContentLength(v []byte) (int64, bool) {
	if len(v) == 0 || len(v) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range v {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	return n, true
}

// trimOWS removes optional white space (SP, HTAB) around a value.
func trimOWS(b []byte) []byte {
	for len(b) > 0 && (b[0] == ' ' || b[0] == '\t') {
		b = b[1:]
	}
	for len(b) > 0 && (b[len(b)-1] == ' ' || b[len(b)-1] == '\t') {
		b = b[:len(b)-1]
	}
	return b
}

// eqFold reports whether b equals the lower-case ASCII s, ignoring case.
func eqFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range len(b) {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// hasPrefixFold is bytes.HasPrefix ignoring ASCII case, for a
// lower-case prefix.
func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && eqFold(b[:len(prefix)], prefix)
}

// copyChunked copies a chunked body from src to dst as it is (chunk
// sizes, extensions, data and trailer lines), checking its framing:
// strict hex sizes, CRLF after every line and chunk. It returns the body
// bytes (chunk data) copied. What it has copied is flushed whenever src
// has to wait for more, so that a streamed body streams on.
func copyChunked(dst *bufio.Writer, src *bufio.Reader) (int64, error) {
	var n int64
	for {
		line, err := readChunkLine(dst, src)
		if err != nil {
			return n, err
		}
		size, ok := chunkSize(line)
		if !ok {
			return n, errChunk
		}
		if _, err := dst.Write(line); err != nil {
			return n, err
		}
		if size == 0 {
			break
		}
		m, err := copyN(dst, src, size)
		n += m
		if err != nil {
			return n, err
		}
		crlf, err := readChunkLine(dst, src)
		if err != nil {
			return n, err
		}
		if len(crlf) != 2 {
			return n, errChunk
		}
		if _, err := dst.Write(crlf); err != nil {
			return n, err
		}
	}
	// The trailer section, ended by an empty line.
	for {
		line, err := readChunkLine(dst, src)
		if err != nil {
			return n, err
		}
		if len(line) > 2 {
			colon := bytes.IndexByte(line, ':')
			if colon <= 0 || line[0] == ' ' || line[0] == '\t' {
				return n, errChunk
			}
		}
		if _, err := dst.Write(line); err != nil {
			return n, err
		}
		if len(line) == 2 {
			return n, nil
		}
	}
}

// readChunkLine reads one line of chunked framing, CRLF included; a bare
// LF or a line longer than 4 KiB is errChunk. It flushes dst first when
// src has nothing buffered.
func readChunkLine(dst *bufio.Writer, src *bufio.Reader) ([]byte, error) {
	if src.Buffered() == 0 {
		if err := dst.Flush(); err != nil {
			return nil, err
		}
	}
	line, err := src.ReadSlice('\n')
	switch {
	case err == bufio.ErrBufferFull:
		return nil, errChunk
	case err == io.EOF:
		return nil, errBodyIncomplete
	case err != nil:
		return nil, err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' || len(line) > 4<<10 {
		return nil, errChunk
	}
	return line, nil
}

// copyN copies n bytes from src to dst, flushing dst whenever src has
// to wait for more; a src that ends early is errBodyIncomplete.
func copyN(dst *bufio.Writer, src *bufio.Reader, n int64) (int64, error) {
	var done int64
	for done < n {
		if src.Buffered() == 0 {
			if err := dst.Flush(); err != nil {
				return done, err
			}
		}
		if _, err := src.Peek(1); err != nil {
			if err == io.EOF {
				err = errBodyIncomplete
			}
			return done, err
		}
		buf, _ := src.Peek(src.Buffered())
		if int64(len(buf)) > n-done {
			buf = buf[:n-done]
		}
		m, err := dst.Write(buf)
		_, _ = src.Discard(m)
		done += int64(m)
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

// chunkSize reads a chunk-size line (hex digits, then an optional
// ";extension", then CRLF).
func chunkSize(line []byte) (int64, bool) {
	line = line[:len(line)-2]
	if i := bytes.IndexByte(line, ';'); i >= 0 {
		for _, c := range line[i:] {
			if c < ' ' && c != '\t' || c == 0x7f {
				return 0, false
			}
		}
		line = trimOWS(line[:i])
	}
	if len(line) == 0 || len(line) > 15 {
		return 0, false
	}
	var n int64
	for _, c := range line {
		switch {
		case '0' <= c && c <= '9':
			n = n<<4 | int64(c-'0')
		case 'a' <= c && c <= 'f':
			n = n<<4 | int64(c-'a'+10)
		case 'A' <= c && c <= 'F':
			n = n<<4 | int64(c-'A'+10)
		default:
			return 0, false
		}
	}
	return n, true
}
