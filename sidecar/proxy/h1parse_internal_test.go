package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/http/httputil"
	"net/textproto"
	"strings"
	"testing"
)

func TestParseRequestHead(t *testing.T) {
	tests := []struct {
		name string
		head string
		// want* are checked when err is nil.
		err           *h1Error
		wantFallback  string
		wantAuthority string
		wantPath      string
		wantCL        int64
		wantChunked   bool
		wantClose     bool
	}{
		{name: "GET", head: "GET /a/b?x=1 HTTP/1.1\r\nHost: echo:8080\r\nUser-Agent: t\r\n\r\n", wantAuthority: "echo:8080", wantPath: "/a/b", wantCL: -1},
		{name: "POST with a length", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 12\r\n\r\n", wantAuthority: "h", wantPath: "/", wantCL: 12},
		{name: "equal lengths twice", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 3\r\n\r\n", wantAuthority: "h", wantPath: "/", wantCL: 3},
		{name: "chunked", head: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n", wantAuthority: "h", wantPath: "/", wantCL: -1, wantChunked: true},
		{name: "absolute form", head: "GET http://echo.demo:8080/p%20q?z HTTP/1.1\r\nHost: other\r\n\r\n", wantAuthority: "echo.demo:8080", wantPath: "/p q", wantCL: -1},
		{name: "escaped path", head: "GET /a%2Fb HTTP/1.1\r\nHost: h\r\n\r\n", wantAuthority: "h", wantPath: "/a/b", wantCL: -1},
		{name: "connection close", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Close\r\n\r\n", wantAuthority: "h", wantPath: "/", wantCL: -1, wantClose: true},
		{name: "HTTP/1.0 to net/http", head: "GET / HTTP/1.0\r\n\r\n", wantFallback: "http/1.0"},
		{name: "h2c preface to net/http", head: "PRI * HTTP/2.0\r\n\r\n", wantFallback: "h2c"},
		{name: "expect to net/http", head: "POST / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\n", wantFallback: "expect"},
		{name: "upgrade to net/http", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n", wantFallback: "hop_by_hop"},
		{name: "a header named in Connection to net/http", head: "GET / HTTP/1.1\r\nHost: h\r\nConnection: x-hop\r\nX-Hop: 1\r\n\r\n", wantFallback: "hop_by_hop"},
		{name: "CONNECT form to net/http", head: "CONNECT echo:8080 HTTP/1.1\r\nHost: echo:8080\r\n\r\n", wantFallback: "target_form"},
		{name: "asterisk to net/http", head: "OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n", wantFallback: "target_form"},

		{name: "length and chunked", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n", err: errCLAndTE},
		{name: "differing lengths", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", err: errContentLength},
		{name: "signed length", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: +3\r\n\r\n", err: errContentLength},
		{name: "length list", head: "POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n", err: errContentLength},
		{name: "two codings", head: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", err: errTransferCoding},
		{name: "chunked twice", head: "POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", err: errTransferCoding},
		{name: "bare LF in a header", head: "GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n", err: errBareLF},
		{name: "bare LF at the end", head: "GET / HTTP/1.1\r\nHost: h\r\n\n", err: errBareLF},
		{name: "bare CR", head: "GET / HTTP/1.1\r\nHost: h\rX: y\r\n\r\n", err: errHeaderLine},
		{name: "obs-fold", head: "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", err: errObsFold},
		{name: "space before colon", head: "GET / HTTP/1.1\r\nHost : h\r\n\r\n", err: errHeaderLine},
		{name: "no colon", head: "GET / HTTP/1.1\r\nHost: h\r\nX\r\n\r\n", err: errHeaderLine},
		{name: "control in a value", head: "GET / HTTP/1.1\r\nHost: h\r\nX: a\x01b\r\n\r\n", err: errHeaderLine},
		{name: "no host", head: "GET / HTTP/1.1\r\nX: y\r\n\r\n", err: errHost},
		{name: "two hosts", head: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", err: errHost},
		{name: "bad host", head: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", err: errHost},
		{name: "bad method", head: "G(T / HTTP/1.1\r\nHost: h\r\n\r\n", err: errRequestLine},
		{name: "double space", head: "GET  / HTTP/1.1\r\nHost: h\r\n\r\n", err: errRequestLine},
		{name: "bad escape", head: "GET /%zz HTTP/1.1\r\nHost: h\r\n\r\n", err: errTarget},
		{name: "too many headers", head: "GET / HTTP/1.1\r\nHost: h\r\n" + strings.Repeat("X: y\r\n", maxHeaders) + "\r\n", err: errTooManyHeaders},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var req h1Request
			err := parseRequestHead([]byte(tt.head), &req)
			if tt.err != nil {
				if err != tt.err {
					t.Fatalf("parse: %v, want %v", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatalf("parse: %v", err)
			}
			if req.fallback != tt.wantFallback {
				t.Fatalf("fallback %q, want %q", req.fallback, tt.wantFallback)
			}
			if tt.wantFallback != "" {
				return
			}
			if req.authority != tt.wantAuthority || req.path != tt.wantPath || req.contentLength != tt.wantCL || req.chunked != tt.wantChunked || req.close != tt.wantClose {
				t.Errorf("authority %q path %q length %d chunked %v close %v, want %q %q %d %v %v",
					req.authority, req.path, req.contentLength, req.chunked, req.close,
					tt.wantAuthority, tt.wantPath, tt.wantCL, tt.wantChunked, tt.wantClose)
			}
		})
	}
}

func TestReadHead(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		size    int
		want    string
		wantErr error
	}{
		{name: "one head of two", in: "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /2", size: 16, want: "GET / HTTP/1.1\r\nHost: h\r\n\r\n"},
		{name: "a line longer than the buffer", in: "GET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\n\r\n", size: 16, want: "GET /" + strings.Repeat("a", 100) + " HTTP/1.1\r\n\r\n"},
		{name: "nothing", in: "", size: 16, wantErr: io.EOF},
		{name: "cut short", in: "GET / HTTP/1.1\r\nHo", size: 16, wantErr: errHeadIncomplete},
		{name: "too large", in: "GET / HTTP/1.1\r\nX: " + strings.Repeat("a", maxHeadBytes) + "\r\n\r\n", size: 4096, wantErr: errHeadTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := readHead(bufio.NewReaderSize(strings.NewReader(tt.in), tt.size), nil)
			if err != tt.wantErr {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err == nil && string(got) != tt.want {
				t.Errorf("head %q, want %q", got, tt.want)
			}
		})
	}
}

func TestParseResponseHead(t *testing.T) {
	tests := []struct {
		name        string
		head        string
		wantErr     error
		wantStatus  int
		wantCL      int64
		wantChunked bool
		wantClose   bool
	}{
		{name: "length", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", wantStatus: 200, wantCL: 5},
		{name: "chunked", head: "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n", wantStatus: 404, wantCL: -1, wantChunked: true},
		{name: "to the close", head: "HTTP/1.0 200 OK\r\n\r\n", wantStatus: 200, wantCL: -1, wantClose: true},
		{name: "1.0 keep-alive", head: "HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n", wantStatus: 200, wantCL: 0},
		{name: "no reason", head: "HTTP/1.1 204\r\n\r\n", wantStatus: 204, wantCL: -1},
		{name: "close", head: "HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 0\r\n\r\n", wantStatus: 200, wantCL: 0, wantClose: true},
		{name: "differing lengths", head: "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n", wantErr: errContentLength},
		{name: "bad status", head: "HTTP/1.1 2x0 OK\r\n\r\n", wantErr: errStatusLine},
		{name: "HTTP/2", head: "HTTP/2 200\r\n\r\n", wantErr: errStatusLine},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var resp h1Response
			err := parseResponseHead([]byte(tt.head), &resp)
			if err != tt.wantErr {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			if resp.status != tt.wantStatus || resp.contentLength != tt.wantCL || resp.chunked != tt.wantChunked || resp.close != tt.wantClose {
				t.Errorf("status %d length %d chunked %v close %v, want %d %d %v %v", resp.status, resp.contentLength, resp.chunked, resp.close,
					tt.wantStatus, tt.wantCL, tt.wantChunked, tt.wantClose)
			}
		})
	}
}

func TestCopyChunked(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		wantN   int64
		wantErr error
	}{
		{name: "two chunks", in: "3\r\nabc\r\na;x=y\r\n0123456789\r\n0\r\n\r\n", wantN: 13},
		{name: "trailers", in: "1\r\na\r\n0\r\nX-T: 1\r\n\r\n", wantN: 1},
		{name: "bare LF", in: "3\nabc\r\n0\r\n\r\n", wantErr: errChunk},
		{name: "no CRLF after data", in: "3\r\nabcd\r\n0\r\n\r\n", wantErr: errChunk},
		{name: "bad size", in: "x\r\n", wantErr: errChunk},
		{name: "signed size", in: "-1\r\n", wantErr: errChunk},
		{name: "cut short", in: "5\r\nab", wantErr: errBodyIncomplete},
		{name: "folded trailer", in: "0\r\n x\r\n\r\n", wantErr: errChunk},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := bufio.NewWriter(&out)
			n, err := copyChunked(w, bufio.NewReader(strings.NewReader(tt.in)))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
			if err != nil {
				return
			}
			w.Flush()
			if n != tt.wantN || out.String() != tt.in {
				t.Errorf("copied %d bytes as %q, want %d as %q", n, out.String(), tt.wantN, tt.in)
			}
		})
	}
}

// FuzzParseRequestHead checks that every request head the fast path
// accepts, net/http reads alike: method, target, path, Host, framing,
// Connection: close and every header.
func FuzzParseRequestHead(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
		"POST /x?y HTTP/1.1\r\nHost: h:1\r\nContent-Length: 3\r\n\r\n",
		"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
		"GET http://a.b:80/c%20d HTTP/1.1\r\nHost: x\r\nX-A: 1\r\nX-A: 2\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		head, err := readHead(bufio.NewReaderSize(bytes.NewReader(in), 64), nil)
		if err != nil {
			return
		}
		var req h1Request
		if err := parseRequestHead(head, &req); err != nil || req.fallback != "" {
			return
		}
		r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(head)))
		if err != nil {
			t.Fatalf("the fast path accepts %q, net/http refuses it: %v", head, err)
		}
		if r.Method != string(req.method) || r.RequestURI != string(req.target) || r.URL.Path != req.path || r.Host != req.authority {
			t.Fatalf("%q: net/http reads %s %s (path %q, host %q), the fast path %s %s (path %q, host %q)",
				head, r.Method, r.RequestURI, r.URL.Path, r.Host, req.method, req.target, req.path, req.authority)
		}
		wantCL := r.ContentLength
		if !req.chunked && req.contentLength < 0 {
			wantCL = 0 // no body
		}
		gotCL := req.contentLength
		if !req.chunked && gotCL < 0 {
			gotCL = 0
		}
		chunked := len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked"
		if gotCL != wantCL || chunked != req.chunked || r.Close != req.close {
			t.Fatalf("%q: net/http reads length %d chunked %v close %v, the fast path %d %v %v", head, wantCL, chunked, r.Close, gotCL, req.chunked, req.close)
		}
		for _, h := range req.headers {
			name := textproto.CanonicalMIMEHeaderKey(string(h.name))
			switch name {
			case "Host", "Content-Length", "Transfer-Encoding", "Connection":
				continue
			}
			found := false
			for _, v := range r.Header[name] {
				found = found || v == string(h.value)
			}
			if !found {
				t.Fatalf("%q: header %s: %q, net/http has %q", head, name, h.value, r.Header[name])
			}
		}
	})
}

// FuzzParseResponseHead checks that every response head the fast path
// accepts, net/http reads with the same status and framing.
func FuzzParseResponseHead(f *testing.F) {
	for _, s := range []string{
		"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n",
		"HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n",
		"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\nContent-Length: 0\r\n\r\n",
		"HTTP/1.1 204\r\nConnection: close\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		head, err := readHead(bufio.NewReaderSize(bytes.NewReader(in), 64), nil)
		if err != nil {
			return
		}
		var resp h1Response
		if err := parseResponseHead(head, &resp); err != nil {
			return
		}
		r, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(head)), &http.Request{Method: http.MethodGet})
		if err != nil {
			t.Fatalf("the fast path accepts %q, net/http refuses it: %v", head, err)
		}
		chunked := len(r.TransferEncoding) == 1 && r.TransferEncoding[0] == "chunked"
		if r.StatusCode != resp.status || chunked != resp.chunked {
			t.Fatalf("%q: net/http reads status %d chunked %v, the fast path %d %v", head, r.StatusCode, chunked, resp.status, resp.chunked)
		}
		if !resp.chunked && resp.contentLength >= 0 && r.StatusCode >= 200 && r.StatusCode != 204 && r.StatusCode != 304 && r.ContentLength != resp.contentLength {
			t.Fatalf("%q: net/http reads length %d, the fast path %d", head, r.ContentLength, resp.contentLength)
		}
	})
}

// FuzzCopyChunked checks that a chunked body the fast path copies whole
// decodes with net/http's chunked reader to the bytes it counted, and
// that the copy is the input as it came.
func FuzzCopyChunked(f *testing.F) {
	for _, s := range []string{"3\r\nabc\r\n0\r\n\r\n", "1;x=y\r\na\r\n0\r\nT: 1\r\n\r\n", "0\r\n\r\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		var out bytes.Buffer
		w := bufio.NewWriter(&out)
		n, err := copyChunked(w, bufio.NewReader(bytes.NewReader(in)))
		if err != nil {
			return
		}
		w.Flush()
		if !bytes.HasPrefix(in, out.Bytes()) {
			t.Fatalf("copied %q, not a prefix of %q", out.Bytes(), in)
		}
		body, err := io.ReadAll(httputil.NewChunkedReader(bytes.NewReader(out.Bytes())))
		if err != nil {
			t.Fatalf("net/http cannot read %q, which the fast path copied: %v", out.Bytes(), err)
		}
		if int64(len(body)) != n {
			t.Fatalf("%q: net/http reads %d body bytes, the fast path counted %d", out.Bytes(), len(body), n)
		}
	})
}
