package gateway

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// realHello returns the bytes a crypto/tls client sends first, for the
// given server name and ALPN protocols.
func realHello(t testing.TB, serverName string, alpn []string) []byte {
	t.Helper()
	client, server := net.Pipe()
	defer server.Close()
	go func() {
		c := tls.Client(client, &tls.Config{ServerName: serverName, NextProtos: alpn, InsecureSkipVerify: true})
		c.SetDeadline(time.Now().Add(5 * time.Second))
		c.Handshake() // fails when server closes; only the hello matters
		client.Close()
	}()
	server.SetDeadline(time.Now().Add(5 * time.Second))
	h, err := ReadClientHello(server, 0)
	if err != nil && !errors.Is(err, ErrNoSNI) {
		t.Fatalf("reading a crypto/tls hello: %v", err)
	}
	return h.Raw
}

// stdlibView parses raw with crypto/tls's server and returns what its
// GetConfigForClient saw, or ok=false when crypto/tls rejects the hello.
func stdlibView(raw []byte) (name string, alpn []string, ok bool) {
	conn := &replayConn{r: bytes.NewReader(raw)}
	srv := tls.Server(conn, &tls.Config{
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			name, alpn, ok = h.ServerName, append([]string(nil), h.SupportedProtos...), true
			return nil, errors.New("stop after the hello")
		},
	})
	srv.Handshake()
	return name, alpn, ok
}

// replayConn is a net.Conn that reads from r and discards writes.
type replayConn struct {
	net.Conn
	r io.Reader
}

func (c *replayConn) Read(p []byte) (int, error)       { return c.r.Read(p) }
func (c *replayConn) Write(p []byte) (int, error)      { return len(p), nil }
func (c *replayConn) Close() error                     { return nil }
func (c *replayConn) SetDeadline(time.Time) error      { return nil }
func (c *replayConn) SetReadDeadline(time.Time) error  { return nil }
func (c *replayConn) SetWriteDeadline(time.Time) error { return nil }
func (c *replayConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *replayConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }

// oneByteReader hands out one byte per Read, as a connection whose hello
// arrives in many small TCP segments would.
type oneByteReader struct{ r io.Reader }

func (o oneByteReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestReadClientHelloRealHellos(t *testing.T) {
	tests := []struct {
		name string
		sni  string
		alpn []string
	}{
		{name: "fedmesh sni with h2", sni: "8080.echo.demo.svc.clusterset.local", alpn: []string{"h2", "http/1.1"}},
		{name: "no alpn", sni: "9090.db.prod.svc.clusterset.local"},
		{name: "tcp alpn", sni: "5432.pg.data.svc.clusterset.local", alpn: []string{"fedmesh-tcp"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw := realHello(t, tt.sni, tt.alpn)
			for _, r := range []struct {
				name string
				r    io.Reader
			}{
				{"whole", bytes.NewReader(raw)},
				{"one byte per read", oneByteReader{bytes.NewReader(raw)}},
			} {
				h, err := ReadClientHello(r.r, 0)
				if err != nil {
					t.Fatalf("%s: %v", r.name, err)
				}
				if diff := cmp.Diff(tt.sni, h.ServerName); diff != "" {
					t.Errorf("%s: server name (-want +got):\n%s", r.name, diff)
				}
				if diff := cmp.Diff(tt.alpn, h.ALPN); diff != "" {
					t.Errorf("%s: ALPN (-want +got):\n%s", r.name, diff)
				}
				if !bytes.Equal(h.Raw, raw) {
					t.Errorf("%s: Raw is not the bytes read", r.name)
				}
			}
		})
	}
}

// splitRecords re-frames a single-record hello into records of at most n
// payload bytes each, as TLS allows.
func splitRecords(raw []byte, n int) []byte {
	payload := raw[recordHeaderLen:]
	var out []byte
	for len(payload) > 0 {
		k := min(n, len(payload))
		out = append(out, recordTypeHandshake, raw[1], raw[2], byte(k>>8), byte(k))
		out = append(out, payload[:k]...)
		payload = payload[k:]
	}
	return out
}

func TestReadClientHelloAcrossRecords(t *testing.T) {
	raw := realHello(t, "8080.echo.demo.svc.clusterset.local", []string{"h2"})
	split := splitRecords(raw, 7)
	h, err := ReadClientHello(oneByteReader{bytes.NewReader(append(split, "trailing app data"...))}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if h.ServerName != "8080.echo.demo.svc.clusterset.local" || !bytes.Equal(h.Raw, split) {
		t.Errorf("got %q, raw equal %v", h.ServerName, bytes.Equal(h.Raw, split))
	}
	if name, _, ok := stdlibView(split); !ok || name != h.ServerName {
		t.Errorf("crypto/tls sees %q (ok %v) in the split hello", name, ok)
	}
}

func TestReadClientHelloRefusals(t *testing.T) {
	good := realHello(t, "8080.echo.demo.svc.clusterset.local", nil)
	noSNI := realHello(t, "", nil)
	truncated := good[:len(good)-10]
	badLen := append([]byte(nil), good...)
	badLen[3], badLen[4] = 0xff, 0xff // record length over 16 KiB
	notHello := append([]byte(nil), good...)
	notHello[5] = 2 // ServerHello
	tests := []struct {
		name string
		in   []byte
		max  int
		want error
	}{
		{name: "plaintext http", in: []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), want: ErrNotTLS},
		{name: "ssh banner", in: []byte("SSH-2.0-OpenSSH_9.0\r\n"), want: ErrNotTLS},
		{name: "no sni", in: noSNI, want: ErrNoSNI},
		{name: "truncated", in: truncated, want: ErrMalformedHello},
		{name: "record too long", in: badLen, want: ErrMalformedHello},
		{name: "not a client hello", in: notHello, want: ErrMalformedHello},
		{name: "over the limit", in: good, max: 64, want: ErrHelloTooLarge},
		{name: "empty", in: nil, want: io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadClientHello(bytes.NewReader(tt.in), tt.max)
			if !errors.Is(err, tt.want) {
				t.Errorf("error = %v, want %v", err, tt.want)
			}
		})
	}
}

// plausibleHostName is the rule parseServerName applies to a host name,
// written apart from it: 1 to 255 bytes, each printable ASCII and no
// space.
func plausibleHostName(name string) bool {
	if len(name) == 0 || len(name) > 255 {
		return false
	}
	for i := 0; i < len(name); i++ {
		if name[i] <= ' ' || name[i] >= 0x7f {
			return false
		}
	}
	return true
}

func FuzzReadClientHello(f *testing.F) {
	f.Add(realHello(f, "8080.echo.demo.svc.clusterset.local", []string{"h2", "http/1.1"}))
	f.Add(realHello(f, "a.b", nil))
	f.Add(splitRecords(realHello(f, "1.x.y.svc.clusterset.local", []string{"fedmesh-tcp"}), 100))
	f.Add([]byte{22, 3, 1, 0, 4, 1, 0, 0, 0})
	f.Add([]byte("GET / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		const max = 4096
		h, err := ReadClientHello(bytes.NewReader(in), max)
		if h != nil && len(h.Raw) > max+recordHeaderLen*(max/1+1) {
			t.Fatalf("read %d bytes for a %d-byte limit", len(h.Raw), max)
		}
		if err == nil && (h.ServerName == "" || !bytes.Equal(h.Raw, in[:len(h.Raw)])) {
			t.Fatalf("accepted hello without a name or with bytes not read: %+v", h)
		}
		// Agreement with crypto/tls: whatever crypto/tls parses as a hello
		// with a server name, we read with the same name and protocols,
		// unless the name is one the gateway refuses on purpose: crypto/tls
		// takes any bytes (0x01, a space) and any length, the gateway only
		// a plausible DNS name (parseServerName).
		name, alpn, ok := stdlibView(in)
		if !ok || name == "" || len(in) > max {
			return
		}
		if !plausibleHostName(name) {
			if !errors.Is(err, ErrMalformedHello) {
				t.Fatalf("server name %q, which the gateway refuses: got %+v, %v; want ErrMalformedHello", name, h, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("crypto/tls reads server name %q, we fail: %v", name, err)
		}
		if h.ServerName != name {
			t.Fatalf("server name %q, crypto/tls says %q", h.ServerName, name)
		}
		if len(alpn) == 0 {
			alpn = nil
		}
		if diff := cmp.Diff(alpn, h.ALPN); diff != "" {
			t.Fatalf("ALPN differs from crypto/tls (-tls +ours):\n%s", diff)
		}
	})
}
