package demo

import (
	"context"
	"errors"
	"fmt"
)

// supervise watches the demo's children: the returned context ends, with
// the child's *ExitError as its cause, as soon as one exits without the
// demo having stopped it (it could not bind, it crashed), so that every
// wait and the scenario stop at once. The returned function releases the
// context.
func (d *demo) supervise(ctx context.Context) (context.Context, func()) {
	ctx, cancel := context.WithCancelCause(ctx)
	d.procs.OnExit = func(e *ExitError) { cancel(e) }
	return ctx, func() { cancel(nil) }
}

// childExit is the exit of a child that ended ctx, or nil.
func (d *demo) childExit(ctx context.Context) *ExitError {
	var e *ExitError
	if errors.As(context.Cause(ctx), &e) {
		return e
	}
	return nil
}

// failure is what made the demo fail with err: the exit of a child when
// one exited unexpectedly (then it prints the child's last log lines),
// else err.
func (d *demo) failure(ctx context.Context, err error) error {
	e := d.childExit(ctx)
	if e == nil {
		return err
	}
	d.progress("%s exited before the demo stopped it; its last log lines (%s):", e.Name, e.Log)
	for _, l := range e.Tail {
		fmt.Fprintf(d.cfg.Out, "    %s\n", l)
	}
	return e
}

// checkAddresses fails, before anything starts, when an address one of
// the demo's processes would listen on is taken: a demo that started
// anyway would find another's control planes answering on its addresses
// and drive them.
func (d *demo) checkAddresses() error {
	var callers []string
	for _, c := range d.callers() {
		callers = append(callers, c.Name)
	}
	return CheckFree(Bindings(d.clusters, d.cfg.Replicas, canaryReplicas, d.canaryCluster().Name, callers))
}
