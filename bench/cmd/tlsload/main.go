// Command tlsload is the TLS end of the gateway benchmark
// (scripts/bench-gateway.sh): a mutual-TLS server standing in for a
// workload's sidecar, and the clients that measure a hop in front of it.
// Every measurement is bounded in time and count and prints key=value
// lines.
//
//	tlsload serve -listen 127.0.0.1:19000 -cert S.crt -key S.key -ca bundle.crt
//	tlsload throughput -addr HOP -sni SNI -cert C.crt -key C.key -ca bundle.crt -duration 5s
//	tlsload latency    -addr HOP ... -duration 5s
//	tlsload connrate   -addr HOP ... -duration 5s -workers 16
//	tlsload hold       -addr HOP ... -n 9000 -watch-pid PID
//
// After the handshake the client's first byte picks what the server does:
// 'E' echoes until EOF, 'D' discards until EOF and answers the byte count
// (8 bytes, big endian), 'C' answers one byte and closes.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: tlsload serve|throughput|latency|connrate|hold [flags]")
		os.Exit(2)
	}
	var err error
	switch cmd, args := os.Args[1], os.Args[2:]; cmd {
	case "serve":
		err = runServe(args)
	case "throughput":
		err = runThroughput(args)
	case "latency":
		err = runLatency(args)
	case "connrate":
		err = runConnRate(args)
	case "hold":
		err = runHold(args)
	default:
		err = fmt.Errorf("unknown command %q", cmd)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "tlsload:", err)
		os.Exit(1)
	}
}

// tlsFlags are the certificate flags every command takes.
type tlsFlags struct {
	cert, key, ca *string
}

func addTLSFlags(fs *flag.FlagSet) tlsFlags {
	return tlsFlags{
		cert: fs.String("cert", "", "certificate chain (PEM)"),
		key:  fs.String("key", "", "private key (PEM)"),
		ca:   fs.String("ca", "", "trust bundle (PEM) to verify the peer"),
	}
}

func (f tlsFlags) load() (tls.Certificate, *x509.CertPool, error) {
	if *f.cert == "" || *f.key == "" || *f.ca == "" {
		return tls.Certificate{}, nil, errors.New("-cert, -key and -ca are required")
	}
	cert, err := tls.LoadX509KeyPair(*f.cert, *f.key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pem, err := os.ReadFile(*f.ca)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return tls.Certificate{}, nil, fmt.Errorf("%s: no certificates", *f.ca)
	}
	return cert, pool, nil
}

// clientFlags are the flags of the measuring commands.
type clientFlags struct {
	tls      tlsFlags
	addr     *string
	sni      *string
	duration *time.Duration
}

func addClientFlags(fs *flag.FlagSet) clientFlags {
	return clientFlags{
		tls:      addTLSFlags(fs),
		addr:     fs.String("addr", "", "address to dial (the hop, or the server for the direct baseline)"),
		sni:      fs.String("sni", "", "server name to send"),
		duration: fs.Duration("duration", 5*time.Second, "how long to measure (at most 60s)"),
	}
}

func (f clientFlags) config() (*tls.Config, error) {
	if *f.addr == "" || *f.sni == "" {
		return nil, errors.New("-addr and -sni are required")
	}
	if *f.duration <= 0 || *f.duration > time.Minute {
		return nil, fmt.Errorf("-duration %s: want (0, 1m]", *f.duration)
	}
	cert, pool, err := f.tls.load()
	if err != nil {
		return nil, err
	}
	// No session cache: every connection is a full handshake.
	return &tls.Config{
		Certificates: []tls.Certificate{cert},
		RootCAs:      pool,
		ServerName:   *f.sni,
		MinVersion:   tls.VersionTLS13,
	}, nil
}
