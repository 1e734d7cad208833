package gateway

// This file holds the data path of a routed connection: the splice of
// client and endpoint bytes, with idle timeouts and half-closes.

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// splice copies both directions until both are done, passing half-closes
// along, and closes both connections. It returns the bytes copied from
// client to endpoint and back, and adds them to inBytes and outBytes (when
// not nil) as they are copied.
func (g *Gateway) splice(client, up net.Conn, inBytes, outBytes prometheus.Counter) (in, out int64) {
	var last atomic.Int64
	last.Store(time.Now().UnixNano())
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		in = g.copyIdle(up, client, &last, inBytes)
	}()
	go func() {
		defer wg.Done()
		out = g.copyIdle(client, up, &last, outBytes)
	}()
	wg.Wait()
	client.Close()
	up.Close()
	return in, out
}

// copyIdle copies src to dst. An idle connection holds no buffer: it
// waits until src is readable (waitReadable), then reads what is there into
// a pooled buffer and writes it on, so ten thousand quiet connections cost
// goroutine stacks, not copy buffers or splice pipes. A wait longer than the
// idle timeout ends the copy unless the other direction moved bytes
// meanwhile. At EOF it half-closes dst's write side, so the peer sees the
// end while the other direction goes on.
func (g *Gateway) copyIdle(dst, src net.Conn, last *atomic.Int64, counted prometheus.Counter) int64 {
	var n int64
	for {
		src.SetReadDeadline(time.Now().Add(g.cfg.IdleTimeout))
		err := waitReadable(src)
		var k int
		if err == nil {
			bp := copyBufs.Get().(*[]byte)
			k, err = src.Read(*bp)
			if k > 0 {
				last.Store(time.Now().UnixNano())
				if _, werr := dst.Write((*bp)[:k]); werr != nil {
					copyBufs.Put(bp)
					src.Close()
					return n
				}
				n += int64(k)
				if counted != nil {
					counted.Add(float64(k))
				}
			}
			copyBufs.Put(bp)
		}
		if err == nil {
			continue
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			if time.Since(time.Unix(0, last.Load())) < g.cfg.IdleTimeout {
				continue // the other direction is alive
			}
			g.metrics.idleClosed.Inc()
			dst.Close()
			src.Close()
			return n
		}
		if errors.Is(err, io.EOF) {
			if cw, ok := dst.(interface{ CloseWrite() error }); ok {
				cw.CloseWrite()
			} else {
				dst.Close()
			}
			return n
		}
		dst.Close()
		return n
	}
}

var copyBufs = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// waitReadable blocks until c has bytes (or EOF, or an error) to read,
// honouring c's read deadline, without holding a buffer. It peeks one byte
// with MSG_PEEK, so nothing is consumed. Connections that expose no file
// descriptor return at once, and the caller's Read blocks instead.
func waitReadable(c net.Conn) error {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	var b [1]byte
	// The callback returns false while the socket has nothing to read,
	// which makes the runtime wait for readiness (and the deadline). Data,
	// EOF or a socket error return true: the caller's Read reports them.
	return rc.Read(func(fd uintptr) bool {
		_, _, e := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return e != syscall.EAGAIN && e != syscall.EWOULDBLOCK && e != syscall.EINTR
	})
}
