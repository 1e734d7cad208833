package webview

import (
	"crypto/rand"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"strings"
	"time"
)

// ProxyConfig configures a Proxy.
type ProxyConfig struct {
	// Admin is the control plane's admin URL (https://HOST:PORT, or
	// http:// for a control plane without a CA). Required.
	Admin *url.URL
	// TLS presents the operator certificate to Admin and checks the
	// control plane's. Required for https.
	TLS *tls.Config
	// Token is the secret first path segment every request must carry.
	// Default: 128 random bits.
	Token string
	// Logger receives the proxy's logs. Default: discard.
	Logger *slog.Logger
}

// Proxy is what `fedmesh dashboard` serves on a loopback address: it
// holds the operator certificate and forwards the web view's read-only
// requests to the control plane's admin API, so that a browser without
// that certificate can look while the admin API stays closed.
//
// Anyone who can open the loopback address could use the operator's
// certificate through it, so it answers only:
//
//   - requests whose first path segment is the secret Token (the URL
//     PageURL returns: a capability, as Jupyter's token is);
//   - with a Host header that is a loopback address or localhost name
//     (no DNS rebinding), and an Origin, when sent, of that same host;
//   - GET and HEAD of the web view's paths: UIPath, GraphPath,
//     /debug/endpoints and /debug/quotas. Nothing that changes state is
//     forwarded.
type Proxy struct {
	cfg ProxyConfig
	rp  *httputil.ReverseProxy
}

// pathsForwarded are the admin paths the web view reads.
var pathsForwarded = []string{UIPath, GraphPath, "/debug/endpoints", QuotaPath}

// NewProxy validates cfg and returns the proxy handler.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Admin == nil || cfg.Admin.Host == "" {
		return nil, errors.New("dashboard proxy: admin URL is required")
	}
	switch cfg.Admin.Scheme {
	case "https":
		if cfg.TLS == nil {
			return nil, errors.New("dashboard proxy: an https admin URL needs the operator's TLS configuration")
		}
	case "http":
	default:
		return nil, fmt.Errorf("dashboard proxy: admin URL %q is not http or https", cfg.Admin)
	}
	if cfg.Token == "" {
		b := make([]byte, 16)
		if _, err := rand.Read(b); err != nil {
			return nil, err
		}
		cfg.Token = base64.RawURLEncoding.EncodeToString(b)
	}
	if strings.ContainsAny(cfg.Token, "/?#%") {
		return nil, fmt.Errorf("dashboard proxy: token %q must be one path segment", cfg.Token)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	target := *cfg.Admin
	target.Path, target.RawQuery = "", ""
	tr := &http.Transport{TLSClientConfig: cfg.TLS, Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: 10 * time.Second}
	p := &Proxy{cfg: cfg}
	p.rp = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&target)
			r.Out.Host = target.Host
			for _, h := range []string{"Origin", "Referer", "Cookie", "Authorization"} {
				r.Out.Header.Del(h)
			}
		},
		Transport: tr,
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			cfg.Logger.Warn("dashboard proxy: admin API unreachable", "admin", target.String(), "err", err)
			http.Error(w, "control plane admin API unreachable: "+err.Error(), http.StatusBadGateway)
		},
	}
	return p, nil
}

// PageURL is the web view's URL on the proxy listening at addr.
func (p *Proxy) PageURL(addr string) string {
	return "http://" + addr + "/" + p.cfg.Token + UIPath
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !loopbackHost(r.Host) {
		http.Error(w, fmt.Sprintf("host %q refused: open the dashboard by a loopback address", r.Host), http.StatusForbidden)
		return
	}
	if o := r.Header.Get("Origin"); o != "" && !strings.EqualFold(strings.TrimSuffix(o, "/"), "http://"+r.Host) {
		http.Error(w, fmt.Sprintf("cross-origin request from %q refused", o), http.StatusForbidden)
		return
	}
	prefix := "/" + p.cfg.Token
	rest, ok := strings.CutPrefix(r.URL.Path, prefix)
	if !ok || !strings.HasPrefix(rest, "/") {
		http.Error(w, "not found: open the URL that fedmesh dashboard printed", http.StatusNotFound)
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "the dashboard only reads", http.StatusMethodNotAllowed)
		return
	}
	if !forwarded(rest) {
		http.Error(w, "not found: the dashboard forwards only "+strings.Join(pathsForwarded, ", "), http.StatusNotFound)
		return
	}
	out := r.Clone(r.Context())
	out.URL.Path, out.URL.RawPath = rest, ""
	p.rp.ServeHTTP(w, out)
}

func forwarded(path string) bool {
	for _, f := range pathsForwarded {
		if path == f || (strings.HasSuffix(f, "/") && strings.HasPrefix(path, f)) {
			return !strings.Contains(path, "..")
		}
	}
	return false
}

func loopbackHost(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.Trim(strings.ToLower(host), "[]"), ".")
	if host == "localhost" || strings.HasSuffix(host, ".localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}
