package kube

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// apiCluster is one "cluster": an etcd and a kube-apiserver, as processes
// on 127.0.0.1 with free ports.
type apiCluster struct {
	name  string
	dir   string
	url   string
	token string
	cfg   *rest.Config
	procs []*proc
}

// proc is a started process and a channel closed when it has exited.
type proc struct {
	cmd  *exec.Cmd
	done chan struct{}
	out  *lockedBuffer
}

// freePort asks the kernel for a free port on 127.0.0.1. The port is free
// when it returns; the process that binds it next is ours in practice.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// lockedBuffer is a bytes.Buffer safe for the process's writer goroutine
// and a reader.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.b.Len() > 1<<20 { // keep the tail only
		l.b.Reset()
	}
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startAPICluster starts etcd, then kube-apiserver, and waits until the
// API server is ready. On error everything started is stopped.
func startAPICluster(ctx context.Context, bin, name, root string) (_ *apiCluster, err error) {
	c := &apiCluster{name: name, dir: filepath.Join(root, name)}
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			c.stop()
		}
	}()
	start := func(path string, args ...string) error {
		cmd := exec.Command(path, args...)
		out := &lockedBuffer{}
		cmd.Stdout, cmd.Stderr = out, out
		// Killed with the test binary, whatever happens to it.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := cmd.Start(); err != nil {
			return fmt.Errorf("start %s: %w", filepath.Base(path), err)
		}
		p := &proc{cmd: cmd, done: make(chan struct{}), out: out}
		go func() { _ = cmd.Wait(); close(p.done) }()
		c.procs = append(c.procs, p)
		return nil
	}
	tail := func() string {
		var b strings.Builder
		for _, p := range c.procs {
			s := p.out.String()
			if len(s) > 3000 {
				s = s[len(s)-3000:]
			}
			b.WriteString(s)
		}
		return b.String()
	}

	etcdClient, err := freePort()
	if err != nil {
		return nil, err
	}
	etcdPeer, err := freePort()
	if err != nil {
		return nil, err
	}
	etcdURL := "http://127.0.0.1:" + strconv.Itoa(etcdClient)
	peerURL := "http://127.0.0.1:" + strconv.Itoa(etcdPeer)
	if err := start(filepath.Join(bin, "etcd"),
		"--name", name,
		"--data-dir", filepath.Join(c.dir, "etcd"),
		"--listen-client-urls", etcdURL, "--advertise-client-urls", etcdURL,
		"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
		"--initial-cluster", name+"="+peerURL,
		"--log-level", "error",
		"--quota-backend-bytes", strconv.Itoa(1<<30),
	); err != nil {
		return nil, err
	}

	// The ServiceAccount signing key and an admin token.
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return nil, err
	}
	saKey := filepath.Join(c.dir, "sa.key")
	saPub := filepath.Join(c.dir, "sa.pub")
	if err := os.WriteFile(saKey, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(saPub, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o600); err != nil {
		return nil, err
	}
	tok := make([]byte, 16)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	c.token = hex.EncodeToString(tok)
	tokens := filepath.Join(c.dir, "tokens.csv")
	if err := os.WriteFile(tokens, []byte(c.token+",admin,admin,system:masters\n"), 0o600); err != nil {
		return nil, err
	}

	port, err := freePort()
	if err != nil {
		return nil, err
	}
	certDir := filepath.Join(c.dir, "certs")
	if err := start(filepath.Join(bin, "kube-apiserver"),
		"--etcd-servers="+etcdURL,
		"--cert-dir="+certDir,
		"--secure-port="+strconv.Itoa(port),
		"--bind-address=127.0.0.1",
		"--endpoint-reconciler-type=none",
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-account-key-file="+saPub,
		"--service-account-signing-key-file="+saKey,
		"--token-auth-file="+tokens,
		"--authorization-mode=RBAC",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--disable-admission-plugins=ServiceAccount",
		"--enable-priority-and-fairness=false",
		"--profiling=false",
		"--v=0",
	); err != nil {
		return nil, err
	}
	c.url = "https://127.0.0.1:" + strconv.Itoa(port)
	c.cfg = &rest.Config{
		Host:        c.url,
		BearerToken: c.token,
		// The API server made its own self-signed certificate in certDir.
		TLSClientConfig: rest.TLSClientConfig{CAFile: filepath.Join(certDir, "apiserver.crt")},
		QPS:             200,
		Burst:           400,
	}

	// Ready when /readyz answers ok (etcd too, as the API server checks it).
	deadline := time.Now().Add(90 * time.Second)
	for {
		err := c.readyz(ctx)
		if err == nil {
			return c, nil
		}
		for _, p := range c.procs {
			select {
			case <-p.done:
				return nil, fmt.Errorf("%s exited: %s", p.cmd.Path, tail())
			default:
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("cluster %s not ready: %v\n%s", name, err, tail())
		}
		time.Sleep(100 * time.Millisecond) // polling a process we started; nothing to wait on
	}
}

func (c *apiCluster) readyz(ctx context.Context) error {
	if _, err := os.Stat(c.cfg.TLSClientConfig.CAFile); err != nil {
		return err
	}
	rt, err := rest.TransportFor(c.cfg)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.url+"/readyz", nil)
	if err != nil {
		return err
	}
	cl := &http.Client{Transport: rt, Timeout: 2 * time.Second}
	resp, err := cl.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return errors.New(resp.Status)
	}
	return nil
}

// stop kills the API server, then etcd, and waits for both.
func (c *apiCluster) stop() {
	for i := len(c.procs) - 1; i >= 0; i-- {
		p := c.procs[i]
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	}
	c.procs = nil
}
