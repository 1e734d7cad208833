package main

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
	"time"
)

// runServe accepts mutual TLS and serves the three modes until a signal
// or -lifetime.
func runServe(args []string) error {
	fs := flag.NewFlagSet("serve", flag.ExitOnError)
	tf := addTLSFlags(fs)
	listen := fs.String("listen", "127.0.0.1:19000", "listen address")
	lifetime := fs.Duration("lifetime", 10*time.Minute, "stop after this long at the latest")
	_ = fs.Parse(args)
	cert, pool, err := tf.load()
	if err != nil {
		return err
	}
	cfg := &tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientCAs:    pool,
		ClientAuth:   tls.RequireAndVerifyClientCert,
		MinVersion:   tls.VersionTLS13,
	}
	ln, err := net.Listen("tcp", *listen)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *lifetime)
	defer cancel()
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex // guards conns
		conns = map[net.Conn]struct{}{}
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		<-ctx.Done()
		ln.Close()
		mu.Lock()
		for c := range conns {
			c.Close()
		}
		mu.Unlock()
	}()
	fmt.Fprintf(os.Stderr, "tlsload: serving on %s\n", ln.Addr())
	for {
		c, err := ln.Accept()
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				continue
			}
			// Out of descriptors and similar: back off a little.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		mu.Lock()
		conns[c] = struct{}{}
		mu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			handle(tls.Server(c, cfg))
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return nil
}

func handle(c *tls.Conn) {
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		return
	}
	mode := make([]byte, 1)
	if _, err := io.ReadFull(c, mode); err != nil {
		return
	}
	// Held and measuring connections live up to the server's lifetime.
	_ = c.SetDeadline(time.Time{})
	switch mode[0] {
	case 'E':
		_, _ = io.Copy(c, c)
	case 'D':
		n, _ := io.Copy(io.Discard, c)
		_ = binary.Write(c, binary.BigEndian, uint64(n))
	case 'C':
		_, _ = c.Write([]byte{'k'})
	}
}

// dialMode dials addr, completes the handshake and sends the mode byte.
func dialMode(d *net.Dialer, addr string, cfg *tls.Config, mode byte) (*tls.Conn, error) {
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		return nil, err
	}
	c := tls.Client(raw, cfg)
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	if err := c.Handshake(); err != nil {
		c.Close()
		return nil, err
	}
	if _, err := c.Write([]byte{mode}); err != nil {
		c.Close()
		return nil, err
	}
	_ = c.SetDeadline(time.Time{})
	return c, nil
}
