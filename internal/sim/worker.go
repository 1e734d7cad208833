package sim

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
)

// A hostHandle is how the coordinator drives one host; events come back
// on the channel given to its constructor.
type hostHandle interface {
	// send queues a command; the host carries them out in order.
	send(cmd command) error
	// close waits for the host to end (after opStop or an error).
	close() error
}

// localHost runs a host in this process, on a goroutine of its own.
type localHost struct {
	cmds chan command
	done chan struct{}
}

func startLocalHost(ctx context.Context, cfg hostConfig, log *slog.Logger, events chan<- event) *localHost {
	l := &localHost{cmds: make(chan command, 1024), done: make(chan struct{})}
	h := newHost(cfg, log, func(e event) { events <- e })
	go func() {
		defer close(l.done)
		for cmd := range l.cmds {
			if err := h.handle(ctx, cmd); err != nil {
				h.stop()
				events <- event{Kind: evError, Err: err.Error()}
				return
			}
			if cmd.Op == opStop {
				return
			}
		}
		h.stop()
	}()
	return l
}

func (l *localHost) send(cmd command) error {
	select {
	case l.cmds <- cmd:
		return nil
	case <-l.done:
		return errors.New("host has ended")
	}
}

func (l *localHost) close() error {
	close(l.cmds)
	<-l.done
	return nil
}

// workerHost runs a host in a child process (RunWorker) and speaks JSON
// lines with it.
type workerHost struct {
	cmd  *exec.Cmd
	enc  *json.Encoder
	mu   sync.Mutex // guards enc
	in   io.WriteCloser
	wg   sync.WaitGroup
	logf *os.File
}

func startWorkerHost(argv []string, k int, cfg hostConfig, events chan<- event) (*workerHost, error) {
	logf, err := os.Create(filepath.Join(cfg.DataDir, fmt.Sprintf("worker-%d.log", k)))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stderr = logf
	if cfg.MemLimit > 0 && os.Getenv("GOMEMLIMIT") == "" {
		cmd.Env = append(os.Environ(), fmt.Sprintf("GOMEMLIMIT=%dMiB", cfg.MemLimit>>20))
	}
	in, err := cmd.StdinPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		logf.Close()
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return nil, fmt.Errorf("start worker %d: %w", k, err)
	}
	w := &workerHost{cmd: cmd, enc: json.NewEncoder(in), in: in, logf: logf}
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		sc := bufio.NewScanner(out)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var e event
			if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
				events <- event{Kind: evError, Err: fmt.Sprintf("worker %d: bad event %q: %v", k, sc.Text(), err)}
				return
			}
			events <- e
		}
		if err := sc.Err(); err != nil {
			events <- event{Kind: evError, Err: fmt.Sprintf("worker %d: %v", k, err)}
		}
	}()
	if err := w.send(command{Op: opInit, Init: &cfg}); err != nil {
		w.close()
		return nil, err
	}
	return w, nil
}

func (w *workerHost) send(cmd command) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.enc.Encode(cmd)
}

func (w *workerHost) close() error {
	w.in.Close()
	err := w.cmd.Wait()
	w.wg.Wait()
	w.logf.Close()
	return err
}

// RunWorker is a worker process's main: it reads the coordinator's
// commands as JSON lines from in (the first one opInit) and writes its
// events as JSON lines to out, until opStop or the end of in.
func RunWorker(ctx context.Context, in io.Reader, out io.Writer, log *slog.Logger) error {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	dec := json.NewDecoder(bufio.NewReader(in))
	var first command
	if err := dec.Decode(&first); err != nil {
		return fmt.Errorf("read init: %w", err)
	}
	if first.Op != opInit || first.Init == nil {
		return fmt.Errorf("first command is %q, want %q", first.Op, opInit)
	}
	var mu sync.Mutex
	enc := json.NewEncoder(out)
	emit := func(e event) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(e)
	}
	h := newHost(*first.Init, log, emit)
	defer h.stop()
	for {
		var cmd command
		if err := dec.Decode(&cmd); err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return fmt.Errorf("read command: %w", err)
		}
		if err := h.handle(ctx, cmd); err != nil {
			emit(event{Kind: evError, Err: err.Error()})
			return err
		}
		if cmd.Op == opStop {
			return nil
		}
	}
}
