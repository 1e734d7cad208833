package gateway

import (
	"errors"
	"fmt"
	"io"
)

// TLS record and handshake constants (RFC 8446 section 5.1 and 4).
const (
	recordTypeHandshake   = 22
	handshakeClientHello  = 1
	recordHeaderLen       = 5
	maxRecordPayload      = 1 << 14 // 16 KiB plaintext record limit
	extServerName         = 0
	extALPN               = 16
	serverNameTypeHost    = 0
	defaultMaxHelloLength = 16 << 10
)

// Errors of ReadClientHello; each is a refusal reason of the gateway.
var (
	// ErrNotTLS: the first byte is not a TLS handshake record.
	ErrNotTLS = errors.New("not a TLS handshake")
	// ErrHelloTooLarge: the ClientHello is longer than the limit.
	ErrHelloTooLarge = errors.New("ClientHello too large")
	// ErrMalformedHello: the bytes are not a well-formed ClientHello.
	ErrMalformedHello = errors.New("malformed ClientHello")
	// ErrNoSNI: the ClientHello carries no server name.
	ErrNoSNI = errors.New("ClientHello has no server name")
)

// ClientHello is what the gateway reads of a TLS ClientHello: the server
// name and ALPN protocols, and every byte it consumed from the connection,
// which it replays to the endpoint unchanged.
type ClientHello struct {
	ServerName string
	ALPN       []string
	// Raw holds the TLS records read, in order, headers included.
	Raw []byte
}

// ReadClientHello reads TLS records from r until it holds a whole
// ClientHello handshake message (which may span several records, and each
// record may arrive in many small reads), then parses it. It reads no byte
// past the records that carry the hello, and at most max bytes of handshake
// message (defaultMaxHelloLength when max <= 0). Errors wrap ErrNotTLS,
// ErrHelloTooLarge, ErrMalformedHello or ErrNoSNI, or are the reader's.
func ReadClientHello(r io.Reader, max int) (*ClientHello, error) {
	if max <= 0 {
		max = defaultMaxHelloLength
	}
	var raw, msg []byte
	need := -1 // handshake message length incl. its 4-byte header, once known
	for need < 0 || len(msg) < need {
		var hdr [recordHeaderLen]byte
		if _, err := io.ReadFull(r, hdr[:1]); err != nil {
			return nil, err
		}
		if hdr[0] != recordTypeHandshake {
			if len(raw) == 0 {
				return nil, fmt.Errorf("%w: first byte 0x%02x", ErrNotTLS, hdr[0])
			}
			return nil, fmt.Errorf("%w: record type %d inside the hello", ErrMalformedHello, hdr[0])
		}
		if _, err := io.ReadFull(r, hdr[1:]); err != nil {
			return nil, eofIsMalformed(err)
		}
		if hdr[1] != 3 {
			return nil, fmt.Errorf("%w: record version %d.%d", ErrNotTLS, hdr[1], hdr[2])
		}
		n := int(hdr[3])<<8 | int(hdr[4])
		if n == 0 || n > maxRecordPayload {
			return nil, fmt.Errorf("%w: record length %d", ErrMalformedHello, n)
		}
		if len(msg)+n > max+4 {
			return nil, fmt.Errorf("%w: more than %d bytes", ErrHelloTooLarge, max)
		}
		raw = append(raw, hdr[:]...)
		start := len(raw)
		raw = append(raw, make([]byte, n)...)
		if _, err := io.ReadFull(r, raw[start:]); err != nil {
			return nil, eofIsMalformed(err)
		}
		msg = append(msg, raw[start:]...)
		if need < 0 && len(msg) >= 4 {
			if msg[0] != handshakeClientHello {
				return nil, fmt.Errorf("%w: handshake type %d, not ClientHello", ErrMalformedHello, msg[0])
			}
			need = 4 + (int(msg[1])<<16 | int(msg[2])<<8 | int(msg[3]))
			if need-4 > max {
				return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrHelloTooLarge, need-4, max)
			}
		}
	}
	if len(msg) != need {
		// A record that carries the end of the hello and more (another
		// handshake message) is not something a client sends first.
		return nil, fmt.Errorf("%w: %d bytes after the ClientHello", ErrMalformedHello, len(msg)-need)
	}
	h, err := parseClientHello(msg[4:need])
	if err != nil {
		return nil, err
	}
	h.Raw = raw
	if h.ServerName == "" {
		return h, ErrNoSNI
	}
	return h, nil
}

func eofIsMalformed(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: connection closed inside the hello", ErrMalformedHello)
	}
	return err
}

// cursor reads big-endian fields from a byte slice; any read past the end
// sets bad and returns zero values.
type cursor struct {
	b   []byte
	bad bool
}

func (c *cursor) bytes(n int) []byte {
	if c.bad || n < 0 || n > len(c.b) {
		c.bad = true
		return nil
	}
	v := c.b[:n]
	c.b = c.b[n:]
	return v
}

func (c *cursor) u8() int {
	b := c.bytes(1)
	if b == nil {
		return 0
	}
	return int(b[0])
}

func (c *cursor) u16() int {
	b := c.bytes(2)
	if b == nil {
		return 0
	}
	return int(b[0])<<8 | int(b[1])
}

// vec8 and vec16 read a vector with a one- or two-byte length prefix.
func (c *cursor) vec8() []byte  { return c.bytes(c.u8()) }
func (c *cursor) vec16() []byte { return c.bytes(c.u16()) }

// parseClientHello parses the body of a ClientHello handshake message (RFC
// 8446 section 4.1.2; TLS 1.2 hellos have the same layout).
func parseClientHello(body []byte) (*ClientHello, error) {
	c := &cursor{b: body}
	c.bytes(2)  // legacy_version
	c.bytes(32) // random
	if sid := c.vec8(); len(sid) > 32 {
		return nil, fmt.Errorf("%w: session id of %d bytes", ErrMalformedHello, len(sid))
	}
	if suites := c.vec16(); len(suites) == 0 || len(suites)%2 != 0 {
		return nil, fmt.Errorf("%w: cipher suites", ErrMalformedHello)
	}
	if comp := c.vec8(); len(comp) == 0 {
		return nil, fmt.Errorf("%w: compression methods", ErrMalformedHello)
	}
	if c.bad {
		return nil, fmt.Errorf("%w: truncated", ErrMalformedHello)
	}
	h := &ClientHello{}
	if len(c.b) == 0 {
		return h, nil // no extensions: no SNI
	}
	exts := &cursor{b: c.vec16()}
	if c.bad || len(c.b) != 0 {
		return nil, fmt.Errorf("%w: extensions length", ErrMalformedHello)
	}
	seen := map[int]bool{}
	for len(exts.b) > 0 && !exts.bad {
		typ := exts.u16()
		data := exts.vec16()
		if exts.bad {
			break
		}
		if seen[typ] {
			return nil, fmt.Errorf("%w: extension %d repeated", ErrMalformedHello, typ)
		}
		seen[typ] = true
		var err error
		switch typ {
		case extServerName:
			h.ServerName, err = parseServerName(data)
		case extALPN:
			h.ALPN, err = parseALPN(data)
		}
		if err != nil {
			return nil, err
		}
	}
	if exts.bad {
		return nil, fmt.Errorf("%w: truncated extension", ErrMalformedHello)
	}
	return h, nil
}

// parseServerName reads the server_name extension (RFC 6066 section 3):
// the host_name entry, which must be a plausible DNS name.
func parseServerName(data []byte) (string, error) {
	c := &cursor{b: data}
	list := &cursor{b: c.vec16()}
	if c.bad || len(c.b) != 0 {
		return "", fmt.Errorf("%w: server_name list", ErrMalformedHello)
	}
	name := ""
	for len(list.b) > 0 {
		typ := list.u8()
		v := list.vec16()
		if list.bad {
			return "", fmt.Errorf("%w: server_name entry", ErrMalformedHello)
		}
		if typ != serverNameTypeHost {
			continue
		}
		if name != "" {
			return "", fmt.Errorf("%w: two host names", ErrMalformedHello)
		}
		if len(v) == 0 || len(v) > 255 {
			return "", fmt.Errorf("%w: host name of %d bytes", ErrMalformedHello, len(v))
		}
		for _, b := range v {
			if b <= ' ' || b >= 0x7f {
				return "", fmt.Errorf("%w: host name has byte 0x%02x", ErrMalformedHello, b)
			}
		}
		name = string(v)
	}
	return name, nil
}

// parseALPN reads the application_layer_protocol_negotiation extension
// (RFC 7301 section 3.1).
func parseALPN(data []byte) ([]string, error) {
	c := &cursor{b: data}
	list := &cursor{b: c.vec16()}
	if c.bad || len(c.b) != 0 {
		return nil, fmt.Errorf("%w: ALPN list", ErrMalformedHello)
	}
	var protos []string
	for len(list.b) > 0 {
		p := list.vec8()
		if list.bad || len(p) == 0 {
			return nil, fmt.Errorf("%w: ALPN entry", ErrMalformedHello)
		}
		protos = append(protos, string(p))
	}
	return protos, nil
}
