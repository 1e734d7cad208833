package demo

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestProcsOnExit runs real processes: one that fails as a child that
// cannot bind does is reported with its exit status and its last log
// lines; one the demo kills is not.
func TestProcsOnExit(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Skip("no sh")
	}
	exits := make(chan *ExitError, 4)
	p := &Procs{Binary: sh, LogDir: t.TempDir(), OnExit: func(e *ExitError) { exits <- e }}
	t.Cleanup(func() { p.StopAll(5 * time.Second) })

	killed, err := p.Start("killed", "-c", "exec sleep 60")
	if err != nil {
		t.Fatal(err)
	}
	killed.Kill()
	select {
	case e := <-exits:
		t.Fatalf("a process the demo killed was reported: %v", e)
	default:
	}

	const bindErr = "listen tcp 127.0.0.11:15014: bind: address already in use"
	if _, err := p.Start("boom", "-c", "echo starting; echo '"+bindErr+"' >&2; exit 3"); err != nil {
		t.Fatal(err)
	}
	var e *ExitError
	select {
	case e = <-exits:
	case <-time.After(time.Minute):
		t.Fatal("the failed process was not reported within a minute")
	}
	var status *exec.ExitError
	if e.Name != "boom" || !errors.As(e, &status) || status.ExitCode() != 3 {
		t.Errorf("exit %+v, want boom with exit status 3", e)
	}
	if got := strings.Join(e.Tail, "|"); got != "starting|"+bindErr {
		t.Errorf("tail %q, want the process's two lines of this run", got)
	}
	if !strings.Contains(e.Error(), bindErr) || !strings.Contains(e.Error(), "exit status 3") {
		t.Errorf("error %q does not say the cause", e)
	}

	// Started again under the same name, its tail is this run's alone.
	if _, err := p.Start("boom", "-c", "echo second; exit 4"); err != nil {
		t.Fatal(err)
	}
	select {
	case e = <-exits:
	case <-time.After(time.Minute):
		t.Fatal("the restarted process was not reported within a minute")
	}
	if got := strings.Join(e.Tail, "|"); got != "second" {
		t.Errorf("tail of the second run %q, want %q", got, "second")
	}
}
