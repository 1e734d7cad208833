package demo

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Procs starts and stops fedmesh processes; each one's output goes to
// LOGDIR/NAME.log. Its methods are safe for concurrent use.
type Procs struct {
	// Binary is the fedmesh binary to run.
	Binary string
	// LogDir holds one log file per process.
	LogDir string
	// Detach leaves processes running when this process exits (--keep);
	// otherwise they die with it.
	Detach bool

	mu    sync.Mutex // guards procs
	procs map[string]*Proc
}

// Proc is one running process.
type Proc struct {
	Name string
	// Bin is the program it runs.
	Bin  string
	Args []string
	cmd  *exec.Cmd
	done chan struct{}
	err  error // set before done is closed
}

// Start runs Binary with args under name; a process of that name that has
// exited may be started again (its log is appended to).
func (p *Procs) Start(name string, args ...string) (*Proc, error) {
	return p.StartProgram(name, p.Binary, args...)
}

// StartProgram runs the program bin (not Binary: Jaeger) with args under
// name, as Start does.
func (p *Procs) StartProgram(name, bin string, args ...string) (*Proc, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.procs[name]; old != nil && !old.Exited() {
		return nil, fmt.Errorf("process %s is already running", name)
	}
	f, err := os.OpenFile(filepath.Join(p.LogDir, name+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(f, "=== %s %s %s\n", time.Now().Format(time.RFC3339Nano), bin, strings.Join(args, " "))
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if !p.Detach {
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	pr := &Proc{Name: name, Bin: bin, Args: args, cmd: cmd, done: make(chan struct{})}
	go func() {
		pr.err = cmd.Wait()
		f.Close()
		close(pr.done)
	}()
	if p.procs == nil {
		p.procs = map[string]*Proc{}
	}
	p.procs[name] = pr
	return pr, nil
}

// Get returns the process started under name, or nil.
func (p *Procs) Get(name string) *Proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.procs[name]
}

// Restart starts the named process again with its last arguments.
func (p *Procs) Restart(name string) (*Proc, error) {
	old := p.Get(name)
	if old == nil {
		return nil, fmt.Errorf("no process %s", name)
	}
	return p.StartProgram(name, old.Bin, old.Args...)
}

// Exited reports whether the process has ended.
func (pr *Proc) Exited() bool {
	select {
	case <-pr.done:
		return true
	default:
		return false
	}
}

// Err is the process's exit error once it has exited.
func (pr *Proc) Err() error {
	<-pr.done
	return pr.err
}

// Pid is the process id.
func (pr *Proc) Pid() int { return pr.cmd.Process.Pid }

// Kill ends the process at once, as a crash would, and waits for it.
func (pr *Proc) Kill() {
	pr.cmd.Process.Kill()
	<-pr.done
}

// Stop sends SIGTERM and waits up to timeout, then kills. It returns the
// process's exit error (nil for a clean exit).
func (pr *Proc) Stop(timeout time.Duration) error {
	if pr.Exited() {
		return pr.err
	}
	pr.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-pr.done:
		return pr.err
	case <-time.After(timeout):
		pr.Kill()
		return fmt.Errorf("%s did not stop within %v of SIGTERM", pr.Name, timeout)
	}
}

// StopAll stops every running process, in parallel.
func (p *Procs) StopAll(timeout time.Duration) {
	p.mu.Lock()
	var all []*Proc
	for _, pr := range p.procs {
		all = append(all, pr)
	}
	p.mu.Unlock()
	var wg sync.WaitGroup
	for _, pr := range all {
		wg.Add(1)
		go func() {
			defer wg.Done()
			pr.Stop(timeout)
		}()
	}
	wg.Wait()
}

// Running lists the names and pids of running processes, sorted.
func (p *Procs) Running() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for name, pr := range p.procs {
		if !pr.Exited() {
			out = append(out, fmt.Sprintf("%s (pid %d)", name, pr.Pid()))
		}
	}
	sortStrings(out)
	return out
}
