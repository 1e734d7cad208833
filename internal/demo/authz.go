package demo

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/fedmesh/fedmesh/sidecar/audit"
)

// auditLog is the audit log file of replica r's sidecar in cluster c: the
// sidecar writes a JSON line there for every request it denies.
func (d *demo) auditLog(c Cluster, r int) string {
	return d.dir(c.Name, "workloads", fmt.Sprintf("echo-%d", r), "audit.log")
}

// probeDenied sends a request the demo's DenyPolicy denies through the
// client's sidecar, then finds its audit record in the echo sidecars'
// audit logs: it tells which cluster's sidecar refused it.
func (d *demo) probeDenied(ctx context.Context) Denial {
	dn := Denial{Method: http.MethodGet, Path: DeniedPath}
	sent := time.Now()
	var code int
	err := poll(ctx, 3*time.Second, "an answer to "+dn.Method+" "+dn.Path+" made by the service", func() error {
		dn.Attempts++
		var err error
		code, err = d.send(ctx, dn.Method, strings.TrimSuffix(echoURL, "/")+dn.Path)
		switch {
		case err != nil:
			return err
		case code == http.StatusBadGateway || code == http.StatusServiceUnavailable || code == http.StatusGatewayTimeout:
			return fmt.Errorf("status %d", code)
		}
		return nil
	})
	dn.Code = code
	if err != nil && code == 0 {
		dn.Err = err.Error()
		return dn
	}
	if code != http.StatusForbidden {
		return dn
	}
	// The sidecar writes its records in the background: wait a little.
	err = poll(ctx, 5*time.Second, "the audit record of "+dn.Method+" "+dn.Path, func() error {
		return d.findDenial(&dn, sent)
	})
	if err != nil {
		dn.Err = err.Error()
	}
	return dn
}

// send sends one request through the client's sidecar and returns the
// status code.
func (d *demo) send(ctx context.Context, method, url string) (int, error) {
	req, err := http.NewRequestWithContext(ctx, method, url, nil)
	if err != nil {
		return 0, err
	}
	c := d.client(d.clusters[0])
	defer c.CloseIdleConnections()
	resp, err := c.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// findDenial fills dn from the first record, at or after since, of the
// demo client's dn.Method dn.Path in any echo sidecar's audit log.
func (d *demo) findDenial(dn *Denial, since time.Time) error {
	for _, c := range d.clusters {
		for r := 1; r <= d.cfg.Replicas; r++ {
			file := d.auditLog(c, r)
			line, rec, err := findRecord(file, func(rec *audit.Record) bool {
				return !rec.Time.Before(since) && rec.SourcePrincipal == ClientID && rec.Method == dn.Method && rec.Path == dn.Path
			})
			if err != nil {
				return err
			}
			if rec == nil {
				continue
			}
			dn.Cluster, dn.Workload, dn.AuditLog = c.Name, fmt.Sprintf("echo-%d", r), file
			dn.Record = json.RawMessage(line)
			dn.Decision, dn.Policy, dn.Rule = rec.Decision, rec.Policy, rec.Rule
			return nil
		}
	}
	return errors.New("no echo sidecar has recorded it")
}

// findRecord returns the first record of an audit log file that match
// accepts, and its line; nil when there is none (or no file yet).
func findRecord(file string, match func(*audit.Record) bool) (string, *audit.Record, error) {
	f, err := os.Open(file)
	if errors.Is(err, os.ErrNotExist) {
		return "", nil, nil
	}
	if err != nil {
		return "", nil, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		var rec audit.Record
		if json.Unmarshal(sc.Bytes(), &rec) != nil {
			continue // a line being written
		}
		if match(&rec) {
			return sc.Text(), &rec, nil
		}
	}
	return "", nil, sc.Err()
}

// showDenial prints a policy probe in the live view: the answer, where it
// was refused and why, and the audit record as the sidecar wrote it.
func (d *demo) showDenial(dn Denial) {
	what := dn.Method + " " + dn.Path
	if dn.Attempts > 1 {
		what += fmt.Sprintf(" (sent %d times)", dn.Attempts)
	}
	switch {
	case dn.Code == 0:
		fmt.Fprintf(d.cfg.Out, "  -- %s: failed: %s\n", what, dn.Err)
		return
	case dn.Cluster == "":
		fmt.Fprintf(d.cfg.Out, "  -- %s: %d %s, no audit record: %s\n", what, dn.Code, http.StatusText(dn.Code), dn.Err)
		return
	}
	rule := "-"
	if dn.Rule != nil {
		rule = strconv.Itoa(*dn.Rule)
	}
	rel, err := filepath.Rel(d.cfg.Dir, dn.AuditLog)
	if err != nil {
		rel = dn.AuditLog
	}
	fmt.Fprintf(d.cfg.Out, "  -- %s: %d %s by %s's %s sidecar (%s rule %s); its audit log %s:\n       %s\n",
		what, dn.Code, http.StatusText(dn.Code), dn.Cluster, dn.Workload, dn.Policy, rule, rel, dn.Record)
}
