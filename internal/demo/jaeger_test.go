package demo

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// writeExec writes an executable file (a stand-in for jaeger) at path.
func writeExec(t *testing.T, path, script string) string {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestFindJaeger(t *testing.T) {
	dir := t.TempDir()
	tools := writeExec(t, filepath.Join(dir, "tools", "jaeger"), "#!/bin/sh\n")
	cached := writeExec(t, filepath.Join(dir, "home", ".cache", "fedmesh", "tools", "telemetry-jaeger-"+JaegerVersion, "jaeger"), "#!/bin/sh\n")
	xdg := writeExec(t, filepath.Join(dir, "xdg", "fedmesh", "tools", "telemetry-jaeger-"+JaegerVersion, "jaeger"), "#!/bin/sh\n")
	toolsDir := writeExec(t, filepath.Join(dir, "fmtools", "telemetry-jaeger-"+JaegerVersion, "jaeger"), "#!/bin/sh\n")
	notExec := filepath.Join(dir, "plain")
	if err := os.WriteFile(notExec, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	home := filepath.Join(dir, "home")
	tests := []struct {
		name     string
		flag     string
		env      map[string]string
		want     string
		wantNote string
		wantErr  string
	}{
		{name: "flag", flag: tools, env: map[string]string{"HOME": home}, want: tools},
		{name: "flag none", flag: "none", env: map[string]string{"FEDMESH_TELEMETRY_TOOLS": filepath.Dir(tools)}, wantNote: "--jaeger none"},
		{name: "flag names no file", flag: filepath.Join(dir, "missing"), wantErr: "--jaeger: stat " + filepath.Join(dir, "missing")},
		{name: "flag names a plain file", flag: notExec, wantErr: "--jaeger: " + notExec + " is not an executable file"},
		{name: "flag names a directory", flag: dir, wantErr: "is not an executable file"},
		{name: "FEDMESH_TELEMETRY_TOOLS", env: map[string]string{"FEDMESH_TELEMETRY_TOOLS": filepath.Dir(tools), "HOME": home}, want: tools},
		{name: "FEDMESH_TELEMETRY_TOOLS without jaeger: the cache", env: map[string]string{"FEDMESH_TELEMETRY_TOOLS": dir, "HOME": home}, want: cached},
		{name: "the cache under HOME", env: map[string]string{"HOME": home}, want: cached},
		{name: "the cache under XDG_CACHE_HOME", env: map[string]string{"XDG_CACHE_HOME": filepath.Join(dir, "xdg"), "HOME": home}, want: xdg},
		{name: "the cache in FEDMESH_TOOLS_DIR", env: map[string]string{"FEDMESH_TOOLS_DIR": filepath.Join(dir, "fmtools"), "HOME": home}, want: toolsDir},
		{name: "none found", env: map[string]string{"HOME": filepath.Join(dir, "nobody")}, wantNote: JaegerMissing},
		{name: "no HOME", wantNote: JaegerMissing},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, note, err := FindJaeger(tt.flag, func(k string) string { return tt.env[k] })
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want || note != tt.wantNote {
				t.Errorf("FindJaeger = %q, %q; want %q, %q", got, note, tt.want, tt.wantNote)
			}
		})
	}
	if !strings.Contains(JaegerMissing, "scripts/telemetry-tools.sh") || strings.Contains(JaegerMissing, "\n") {
		t.Errorf("JaegerMissing %q: want one line saying how to get Jaeger", JaegerMissing)
	}
}

// testJaegerIP is a loopback address inside the demo's 127.0.0.0/16
// that no demo binds (its clusters use 127.0.0.11 up, their workloads
// 127.0.1-50.x), so a demo running on this machine is not disturbed.
const testJaegerIP = "127.0.250.10"

func testDemo(t *testing.T, jaeger string) *demo {
	t.Helper()
	dir := t.TempDir()
	return &demo{cfg: Config{Dir: dir, Jaeger: jaeger, Out: io.Discard}, procs: &Procs{LogDir: dir}, jaegerIP: testJaegerIP}
}

// A Jaeger that cannot bind exits at once: the demo says why, from
// Jaeger's log, without waiting out the start-up deadline.
func TestStartJaegerFailsFast(t *testing.T) {
	bin := writeExec(t, filepath.Join(t.TempDir(), "jaeger"), `#!/bin/sh
echo "info starting"
echo "Error: failed to start extensions: listen tcp `+testJaegerIP+`:16685: bind: address already in use"
echo "2026/12/06 15:01:14 failed to start extensions"
exit 1
`)
	d := testDemo(t, bin)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := d.startJaeger(ctx)
	if err == nil {
		t.Fatal("a jaeger that exits started")
	}
	for _, want := range []string{"jaeger exited (exit status 1)", "Error: failed to start extensions: listen tcp " + testJaegerIP + ":16685: bind: address already in use", filepath.Join(d.procs.LogDir, "jaeger.log")} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "timed out") || ctx.Err() != nil {
		t.Errorf("error %q: want it before the deadline, not after", err)
	}
	cfg, rerr := os.ReadFile(filepath.Join(d.cfg.Dir, "jaeger.yaml"))
	if rerr != nil {
		t.Fatal(rerr)
	}
	for _, want := range []string{"endpoint: " + testJaegerIP + ":16686", "endpoint: " + testJaegerIP + ":4317", "endpoint: " + testJaegerIP + ":4318"} {
		if !strings.Contains(string(cfg), want) {
			t.Errorf("jaeger.yaml lacks %q:\n%s", want, cfg)
		}
	}
	if strings.Contains(string(cfg), "{{") {
		t.Errorf("jaeger.yaml has a placeholder left:\n%s", cfg)
	}
}

// A port of Jaeger's that is taken is found before Jaeger starts.
func TestStartJaegerPortTaken(t *testing.T) {
	l, err := net.Listen("tcp", net.JoinHostPort(testJaegerIP, "4318"))
	if err != nil {
		t.Skipf("cannot hold %s:4318 for the test: %v", testJaegerIP, err)
	}
	defer l.Close()
	bin := writeExec(t, filepath.Join(t.TempDir(), "jaeger"), "#!/bin/sh\nexit 3\n")
	d := testDemo(t, bin)
	err = d.startJaeger(context.Background())
	if err == nil || !strings.Contains(err.Error(), "jaeger: "+testJaegerIP+":4318 is not free") {
		t.Fatalf("err = %v, want it to name %s:4318", err, testJaegerIP)
	}
	if d.procs.Get("jaeger") != nil {
		t.Error("jaeger was started although its port was taken")
	}
}
