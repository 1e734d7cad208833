package proxy

import (
	"net/http"
	"net/http/httputil"
	"sync"
)

// flushInterval is the FlushInterval of both reverse proxies. Zero lets
// httputil.ReverseProxy flush after every write exactly when a response
// streams (no Content-Length, or text/event-stream; gRPC is such a
// response), and write a response of known length as the writer's buffer
// fills and at its end: HEADERS and DATA with END_STREAM leave in one TLS
// record. A negative interval would flush known-length responses too, and
// to do so ReverseProxy arms a timer per request whose goroutine flushes
// the headers on their own while the body copy waits for its lock: two
// more goroutine hand-offs, two more writes and a lone END_STREAM frame
// per request, which cost most of the sidecar pair's latency.
const flushInterval = 0

// copyBufferSize is the size of the buffers a reverse proxy copies
// response bodies through (httputil's own default).
const copyBufferSize = 32 << 10

// bufferPool lends the reverse proxies their copy buffers, which they
// would otherwise allocate for every request. It keeps array pointers so
// that neither Get nor Put allocates.
type bufferPool struct{ p sync.Pool }

var _ httputil.BufferPool = (*bufferPool)(nil)

func newBufferPool() *bufferPool {
	return &bufferPool{p: sync.Pool{New: func() any { return new([copyBufferSize]byte) }}}
}

// Get returns a buffer of copyBufferSize bytes.
func (b *bufferPool) Get() []byte { return b.p.Get().(*[copyBufferSize]byte)[:] }

// Put returns a buffer obtained from Get.
func (b *bufferPool) Put(buf []byte) {
	if cap(buf) < copyBufferSize {
		return
	}
	b.p.Put((*[copyBufferSize]byte)(buf[:copyBufferSize]))
}

// forwarder returns a reverse proxy with the sidecar's flush policy and
// pooled buffers.
func (p *Proxy) forwarder(rewrite func(*httputil.ProxyRequest), rt http.RoundTripper, fail func(http.ResponseWriter, *http.Request, error)) *httputil.ReverseProxy {
	return &httputil.ReverseProxy{
		Rewrite:       rewrite,
		Transport:     rt,
		FlushInterval: flushInterval,
		BufferPool:    p.buffers,
		ErrorHandler:  fail,
		ErrorLog:      p.errorLog,
	}
}

// forward serves r through rp. A reverse proxy whose upstream fails in
// the middle of a body aborts the handler with http.ErrAbortHandler; as
// responses of known length are not flushed as they go (flushInterval),
// forward first flushes what is buffered. The client then sees the
// response begin and break, as the upstream sent it, never a stream reset
// without a response, which a client sidecar would take for a failure
// before the response and retry.
func forward(rp http.Handler, w *statusRecorder, r *http.Request) {
	defer func() {
		if v := recover(); v != nil {
			if v == http.ErrAbortHandler && w.code != 0 {
				w.Flush()
			}
			panic(v)
		}
	}()
	rp.ServeHTTP(w, r)
}
