// Package hostport joins and splits "host:port" strings as the net
// package does, without importing net, so that pure packages (the xDS
// plan, the catalog) can handle addresses and still import no I/O
// package. The fuzz test holds both functions to net's behaviour.
package hostport

import (
	"strconv"
	"strings"
)

// Join is net.JoinHostPort: host:port, with an IPv6 host in brackets.
func Join(host, port string) string {
	if strings.IndexByte(host, ':') >= 0 {
		return "[" + host + "]:" + port
	}
	return host + ":" + port
}

// Error is a malformed address, worded as net.AddrError's message.
type Error struct {
	Addr, Reason string
}

func (e *Error) Error() string {
	if e.Addr == "" {
		return e.Reason
	}
	return "address " + e.Addr + ": " + e.Reason
}

// Split is net.SplitHostPort: it splits "host:port", "[host]:port" or
// "[host%zone]:port" into host and port. The port is not checked.
func Split(hostport string) (host, port string, err error) {
	const (
		missingPort   = "missing port in address"
		tooManyColons = "too many colons in address"
	)
	addrErr := func(why string) (string, string, error) {
		return "", "", &Error{Addr: hostport, Reason: why}
	}
	j, k := 0, 0
	i := strings.LastIndexByte(hostport, ':')
	if i < 0 {
		return addrErr(missingPort)
	}
	if hostport[0] == '[' {
		end := strings.IndexByte(hostport, ']')
		if end < 0 {
			return addrErr("missing ']' in address")
		}
		switch end + 1 {
		case len(hostport):
			return addrErr(missingPort) // there can't be a ':' behind the ']' now
		case i:
			// The expected result.
		default:
			if hostport[end+1] == ':' {
				return addrErr(tooManyColons)
			}
			return addrErr(missingPort)
		}
		host = hostport[1:end]
		j, k = 1, end+1 // there can't be a '[' resp. ']' before these positions
	} else {
		host = hostport[:i]
		if strings.IndexByte(host, ':') >= 0 {
			return addrErr(tooManyColons)
		}
	}
	if strings.IndexByte(hostport[j:], '[') >= 0 {
		return addrErr("unexpected '[' in address")
	}
	if strings.IndexByte(hostport[k:], ']') >= 0 {
		return addrErr("unexpected ']' in address")
	}
	return host, hostport[i+1:], nil
}

// SplitPort is Split with the port read as a number from 0 to 65535.
func SplitPort(hostport string) (host string, port uint32, err error) {
	host, p, err := Split(hostport)
	if err != nil {
		return "", 0, err
	}
	n, err := strconv.ParseUint(p, 10, 16)
	if err != nil {
		return "", 0, &Error{Addr: hostport, Reason: "port " + strconv.Quote(p) + " is not a number from 0 to 65535"}
	}
	return host, uint32(n), nil
}
